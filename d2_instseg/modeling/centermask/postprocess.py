"""CenterMask inference after the heads: CenterNet decoding (peaks -> centers, boxes), the boxes
clipped to their images, the size of the mask grid, the masks assembled
(:func:`decode_detections`), and the detections at the output resolution (boxes scaled, masks
pasted) as Detectron2's ``detector_postprocess`` returns them.

Shape shorthand:
    N: images, C: classes, H x W: feature map, K: objects (all images together),
    R_m: side of the assembled mask grid.
Feature coordinates: feature pixel (y, x) covers [x, x + 1) x [y, y + 1), so its center is at
(x + 0.5, y + 0.5); boxes are XYXY floats in these units.
"""

import math
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.modeling import detector_postprocess
from detectron2.structures import Boxes, Instances

from ...layers import paste_masks
from .assemble import assemble_masks, saliency_channel

__all__ = [
    "center_boxes",
    "centermask_postprocess",
    "clip_to_images",
    "decode_detections",
    "find_centers",
    "keep_confident",
    "mask_grid_size",
    "topk_peaks",
]


def topk_peaks(heatmap_logits: torch.Tensor, topk: int) -> Dict[str, torch.Tensor]:
    """CenterNet's peak picking without the score threshold: 3x3 max-pool peaks, then the top-K
    over classes and positions of each image (a fixed K, so it lives in an exported graph). No NMS.

    Computed as CenterNet does: a top-K per class, then the top-K of the C * K candidates, which
    equals the top-K over all C * H * W scores (up to ties) and is faster: this function 6 ms
    against 12-14 with the flat top-K over the 1.3 M scores of an 80-class 128 x 128 channels-last
    heatmap (one image, 2 CPU threads; the same peaks).

    Args:
        heatmap_logits: (N, C, H, W).
        topk: K per image; at most C * H * W.
    Returns:
        dict of (N, K) tensors: "scores" (sigmoid, descending), "classes" long, and "centers"
        (N, K, 2) long (x, y) peaks.
    """
    n, c, h, w = heatmap_logits.shape
    heat = torch.sigmoid(heatmap_logits)
    peaks = F.max_pool2d(heat, 3, stride=1, padding=1)
    heat = heat * (peaks == heat)
    per_class = min(topk, h * w)
    scores, position = heat.reshape(n, c, h * w).topk(per_class, dim=2)  # (N, C, K')
    scores, index = scores.reshape(n, -1).topk(topk, dim=1)  # (N, K) among the C * K' candidates
    position = position.reshape(n, -1).gather(1, index)
    centers = torch.stack([position % w, position // w], 2)
    return {"scores": scores, "classes": index // per_class, "centers": centers}


def keep_confident(peaks: Dict[str, torch.Tensor], score_thresh: float) -> Dict[str, torch.Tensor]:
    """The peaks scoring above ``score_thresh``, of all images together.

    Args:
        peaks: (N, K, ...) tensors, among them "scores" (N, K) (e.g. :func:`topk_peaks` plus the
            point heads' outputs at those peaks).
        score_thresh: minimum score kept.
    Returns:
        the same keys over the D kept peaks, (D, ...), grouped by image in the order of K, plus
        "batch_idx" (D,) long.
    """
    keep = peaks["scores"] > score_thresh  # (N, K)
    n, k = keep.shape
    batch_idx = torch.arange(n, device=keep.device)[:, None].expand(n, k)
    return {"batch_idx": batch_idx[keep], **{name: v[keep] for name, v in peaks.items()}}


def find_centers(
    heatmap_logits: torch.Tensor, *, topk: int, score_thresh: float
) -> Dict[str, torch.Tensor]:
    """:func:`topk_peaks` (K at most C * H * W) then :func:`keep_confident`: dict over the kept
    detections D of all images, "batch_idx" (D,) long, "scores" (D,), "classes" (D,) long,
    "centers" (D, 2) long (x, y) peaks."""
    n, c, h, w = heatmap_logits.shape
    return keep_confident(topk_peaks(heatmap_logits, min(topk, c * h * w)), score_thresh)


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


def decode_detections(
    outputs: Dict[str, torch.Tensor],
    image_sizes: Sequence[Tuple[int, int]],
    *,
    stride: int,
    score_thresh: float,
    shape_size: int,
    saliency_class_specific: bool,
) -> List[Instances]:
    """The network's outputs at the top-K peaks -> detections per image before post-processing.

    Args:
        outputs: :meth:`CenterMaskPoint.inference_network`'s dict: "scores", "classes" (N, K),
            "centers" (N, K, 2) long (x, y), "offset", "size" (N, K, 2), "shape" (N, K, S, S)
            logits (with the local shape branch), "saliency" (N, C_s, H, W) logits (with the
            saliency branch).
        image_sizes: (h, w) of each image before padding, input pixels.
        stride: input pixels per feature pixel.
        score_thresh: minimum center score.
        shape_size: S.
        saliency_class_specific: objects read the saliency channel of their class (else 0).
    Returns:
        per image, Instances with pred_boxes (clipped to the image, input pixels), scores,
        pred_classes and mask_probs (k, R_m, R_m) over each box, to be pasted and thresholded by
        :func:`centermask_postprocess`.
    """
    det = keep_confident({k: v for k, v in outputs.items() if k != "saliency"}, score_thresh)
    boxes = center_boxes(det["centers"], det["offset"], det["size"])
    # The masks are assembled over the clipped box, the box they are pasted into.
    rois = clip_to_images(boxes, det["batch_idx"], image_sizes, stride)
    masks = assemble_masks(
        shape_logits=det.get("shape"),
        saliency_logits=outputs.get("saliency"),
        saliency_channel=saliency_channel(det["classes"], saliency_class_specific),
        batch_idx=det["batch_idx"],
        boxes=boxes,
        rois=rois,
        mask_size=mask_grid_size(rois, shape_size),
    )
    results = []
    for i, size in enumerate(image_sizes):
        sel = det["batch_idx"] == i
        r = Instances(size)
        r.pred_boxes = Boxes(rois[sel] * stride)
        r.scores = det["scores"][sel]
        r.pred_classes = det["classes"][sel]
        r.mask_probs = masks[sel]
        results.append(r)
    return results


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
