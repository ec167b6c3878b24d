"""CenterMask inference after the heads: CenterNet decoding (peaks -> centers, boxes), the boxes
clipped to their images, the size of the mask grid, and the detections at the output resolution
(boxes scaled, masks pasted) as Detectron2's ``detector_postprocess`` returns them.

Shape shorthand:
    N: images, C: classes, H x W: feature map, K: objects (all images together),
    R_m: side of the assembled mask grid.
Feature coordinates: feature pixel (y, x) covers [x, x + 1) x [y, y + 1), so its center is at
(x + 0.5, y + 0.5); boxes are XYXY floats in these units.
"""

import math
from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.modeling import detector_postprocess
from detectron2.structures import Instances

from ...layers import paste_masks

__all__ = [
    "center_boxes",
    "centermask_postprocess",
    "clip_to_images",
    "find_centers",
    "mask_grid_size",
]


def find_centers(
    heatmap_logits: torch.Tensor, *, topk: int, score_thresh: float
) -> Dict[str, torch.Tensor]:
    """CenterNet's peak picking: 3x3 max-pool peaks, top-K over classes and positions of each image,
    score threshold. No NMS.

    The top-K over all C * H * W scores equals CenterNet's per-class top-K followed by a top-K over
    the C * K candidates (up to ties).

    Args:
        heatmap_logits: (N, C, H, W).
        topk: K per image (at most C * H * W).
        score_thresh: minimum sigmoid score kept.
    Returns:
        dict over the kept detections D of all images: "batch_idx" (D,) long, "scores" (D,),
        "classes" (D,) long, "centers" (D, 2) long (x, y) peaks.
    """
    n, c, h, w = heatmap_logits.shape
    heat = torch.sigmoid(heatmap_logits)
    peaks = F.max_pool2d(heat, 3, stride=1, padding=1)
    heat = heat * (peaks == heat)
    scores, index = heat.reshape(n, -1).topk(min(topk, c * h * w), dim=1)  # (N, K)
    classes = index // (h * w)
    ys = (index % (h * w)) // w
    xs = index % w
    batch_idx = torch.arange(n, device=heat.device)[:, None].expand_as(index)
    keep = scores > score_thresh
    batch_idx, scores, classes, xs, ys = (t[keep] for t in (batch_idx, scores, classes, xs, ys))
    return {
        "batch_idx": batch_idx,
        "scores": scores,
        "classes": classes,
        "centers": torch.stack([xs, ys], 1),
    }


def center_boxes(centers: torch.Tensor, offset: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """CenterNet boxes: (x + dx, y + dy) -/+ (w, h) / 2.

    Args:
        centers: (K, 2) long integer (x, y) peaks.
        offset: (K, 2) sub-pixel (dx, dy) predicted there.
        size: (K, 2) (w, h) predicted there.
    Returns:
        (K, 4) XYXY boxes in feature pixels.
    """
    ct = centers.to(offset.dtype) + offset
    return torch.cat([ct - size / 2, ct + size / 2], 1)


def clip_to_images(
    boxes: torch.Tensor,
    batch_idx: torch.Tensor,
    image_sizes: Sequence[Tuple[int, int]],
    stride: int,
) -> torch.Tensor:
    """Each box clipped to its image.

    Args:
        boxes: (K, 4) XYXY in feature pixels; batch_idx: (K,) long image of each box.
        image_sizes: (h, w) of each image before padding, input pixels.
        stride: input pixels per feature pixel.
    Returns:
        (K, 4) boxes inside [0, w / stride] x [0, h / stride] of their image.
    """
    # stacked rather than torch.tensor(image_sizes): under tracing (fvcore's FLOP count, export)
    # the sizes are 0-d tensors
    limits = torch.stack(
        [torch.stack([torch.as_tensor(h), torch.as_tensor(w)]) for h, w in image_sizes]
    )
    limits = limits.to(device=boxes.device, dtype=boxes.dtype)
    limits = (limits.flip(1) / stride)[batch_idx].repeat(1, 2)
    return torch.minimum(boxes.clamp(min=0), limits)


def mask_grid_size(rois: torch.Tensor, shape_size: int) -> int:
    """R_m: at least the local shape's S and at least as fine as the feature map inside the widest
    of the (K, 4) ``rois`` (feature pixels), so that cropping the saliency map loses nothing."""
    side = (rois[:, 2:] - rois[:, :2]).max() if len(rois) else rois.new_zeros(())
    return max(shape_size, int(math.ceil(float(side))))


def centermask_postprocess(
    result: Instances, height: int, width: int, mask_threshold: float
) -> Instances:
    """One image's detections (``pred_boxes`` in input pixels, ``scores``, ``pred_classes``,
    ``mask_probs`` (K, R_m, R_m) over each box) -> the output resolution (``height``, ``width``):
    Detectron2's ``detector_postprocess`` (boxes scaled and clipped, empty ones dropped), then every
    mask pasted into its box at once (:func:`d2_instseg.layers.paste_masks`, equal to Detectron2's
    one-mask-at-a-time paste) and thresholded: ``pred_masks`` (K', height, width) bool."""
    result = detector_postprocess(result, height, width)
    result.pred_masks = paste_masks(
        result.mask_probs, result.pred_boxes.tensor, (height, width), mask_threshold
    )
    result.remove("mask_probs")
    return result
