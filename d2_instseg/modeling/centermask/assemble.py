"""CenterMask's mask assembly M_k = sigmoid(L_k) * sigmoid(G_k) over each object's box, used in
training (ground-truth centers and sizes) and at inference (decoded ones).

Shape shorthand:
    N: images, K: objects (all images together), S: local shape side, C_s: saliency channels,
    H x W: feature map, R_m: side of the assembled mask grid. Boxes are XYXY in feature pixels
    (feature pixel (y, x) covers [x, x + 1) x [y, y + 1)).
"""

from typing import Optional

import torch
from torchvision.ops import roi_align

__all__ = ["assemble_masks", "saliency_channel"]


def saliency_channel(classes: torch.Tensor, class_specific: bool) -> torch.Tensor:
    """(K,) long channel of the saliency map each object reads: its class with class-specific
    saliency, else channel 0."""
    return classes if class_specific else torch.zeros_like(classes)


def assemble_masks(
    *,
    shape_logits: Optional[torch.Tensor],
    saliency_logits: Optional[torch.Tensor],
    saliency_channel: torch.Tensor,
    batch_idx: torch.Tensor,
    boxes: torch.Tensor,
    rois: torch.Tensor,
    mask_size: int,
) -> torch.Tensor:
    """M_k = sigmoid(L_k) * sigmoid(G_k) on an R_m x R_m grid over each object's ROI.

    L_k is the S x S local shape stretched over the object's box (bilinear: "resized to h x w"), G_k
    the saliency map cropped to the box; both are sampled at the centers of the R_m x R_m cells of
    ``rois`` (the box itself, or its part inside the image) with aligned ROIAlign, one sampling
    point per cell. Pasting the grid into the ROI (Detectron2's ``paste_masks_in_image``) then gives
    the image mask.

    Args:
        shape_logits: (K, S, S) local shape logits L, or None (saliency-only: sigmoid(L) := 1).
        saliency_logits: (N, C_s, H, W) global saliency logits G, or None (shape-only).
        saliency_channel: (K,) long channel of G read by each object (its class, or 0).
        batch_idx: (K,) long image of each object.
        boxes: (K, 4) the boxes the local shapes span, feature pixels.
        rois: (K, 4) the regions to assemble, feature pixels (``boxes``, or ``boxes`` clipped).
        mask_size: R_m.
    Returns:
        (K, R_m, R_m) mask probabilities.
    """
    if shape_logits is None and saliency_logits is None:
        raise ValueError("assemble_masks needs the local shape, the saliency map, or both")
    k = len(rois)
    masks = rois.new_ones((k, mask_size, mask_size))
    if k == 0:
        # Keep the graph so an empty batch still back-propagates (zero) gradients to both branches.
        for logits in (shape_logits, saliency_logits):
            if logits is not None:
                masks = masks + logits.sum() * 0
        return masks
    if shape_logits is not None:
        s = shape_logits.shape[-1]
        wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-6)
        # The ROI in the local shape's own grid, where the whole box spans [0, S] x [0, S].
        in_shape = (rois - boxes[:, :2].repeat(1, 2)) / wh.repeat(1, 2) * s
        index = torch.arange(k, device=rois.device, dtype=rois.dtype)[:, None]
        local = roi_align(
            shape_logits[:, None], torch.cat([index, in_shape], 1), mask_size, 1.0, 1, True
        )
        masks = masks * torch.sigmoid(local[:, 0])
    if saliency_logits is not None:
        n, cs, h, w = saliency_logits.shape
        # Each (image, channel) pair as a single-channel map, so each ROI reads only its channel.
        index = (batch_idx * cs + saliency_channel).to(rois.dtype)[:, None]
        crops = roi_align(
            saliency_logits.reshape(n * cs, 1, h, w),
            torch.cat([index, rois], 1),
            mask_size,
            1.0,
            1,
            True,
        )
        masks = masks * torch.sigmoid(crops[:, 0])
    return masks
