"""CenterMask training targets from Detectron2 ``Instances``: CenterNet heatmaps, offsets and sizes
(``ctdet.py`` rules) plus S x S local shape targets and optional saliency targets, for a batch.

Shape shorthand:
    N: images, C: classes, H x W: feature map, R: output stride (input pixels per feature pixel),
    K: objects of all images together, S: local shape side, C_s: saliency channels (1 or C).
Feature coordinates: feature pixel (y, x) covers input pixels [R y, R (y + 1)) x [R x, R (x + 1)),
so a box in input pixels is divided by R; centers, offsets, sizes are (x, y) / (w, h) in feature
pixels.
"""

from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from detectron2.structures import BitMasks, Instances, PolygonMasks

from ...layers.centernet import draw_gaussians, integer_gaussian_radius

__all__ = ["centermask_targets", "saliency_targets"]


def centermask_targets(
    gt_instances: List[Instances],
    *,
    num_classes: int,
    feature_hw: Tuple[int, int],
    stride: int,
    shape_size: int,
    min_overlap: float = 0.7,
) -> Dict[str, torch.Tensor]:
    """Targets of every object of the batch, following CenterNet's ``ctdet`` sample:

    - the box is divided by R and clipped to [0, W - 1] x [0, H - 1]; boxes left with w or h = 0
      are dropped;
    - center ct = box center (float), integer center ``int(ct)``, offset ``ct - int(ct)``,
      size (w, h);
    - a gaussian of radius ``max(0, int(gaussian_radius((ceil(h), ceil(w)))))`` at ``int(ct)``
      on the heatmap of the object's class;
    - the local shape target is the object's mask inside that (clipped) box, resampled to S x S with
      ROIAlign and binarised at 0.5.

    Args:
        gt_instances: N Instances with ``gt_boxes`` (input pixels, XYXY), ``gt_classes`` and
            ``gt_masks`` (BitMasks or PolygonMasks; Detectron2 omits them on images with no object).
        num_classes: C.
        feature_hw: (H, W) of the feature map of the padded batch.
        stride: R.
        shape_size: S.
        min_overlap: m of the gaussian radius rule.
    Returns:
        dict with "heatmap" (N, C, H, W), "batch_idx" (K,) long, "classes" (K,) long, "centers" (K,
        2) long (x, y), "offsets" (K, 2) float (dx, dy), "sizes" (K, 2) float (w, h), "boxes" (K, 4)
        float XYXY in feature pixels, "masks" (K, S, S) float in {0, 1}.
    """
    h_feat, w_feat = feature_hw
    device = gt_instances[0].gt_boxes.device
    boxes, batch_idx, classes, masks = [], [], [], []
    for i, inst in enumerate(gt_instances):
        b = inst.gt_boxes.tensor / stride
        b = torch.stack(
            [
                b[:, 0].clamp(0, w_feat - 1),
                b[:, 1].clamp(0, h_feat - 1),
                b[:, 2].clamp(0, w_feat - 1),
                b[:, 3].clamp(0, h_feat - 1),
            ],
            dim=1,
        )
        keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        b = b[keep]
        boxes.append(b)
        batch_idx.append(torch.full((len(b),), i, dtype=torch.long, device=device))
        classes.append(inst.gt_classes[keep])
        masks.append(_crop_and_resize(inst, keep, b * stride, shape_size))
    boxes = torch.cat(boxes)
    batch_idx = torch.cat(batch_idx)
    classes = torch.cat(classes).long()
    sizes = boxes[:, 2:] - boxes[:, :2]
    ct = (boxes[:, :2] + boxes[:, 2:]) / 2
    centers = ct.long()  # ct >= 0, so truncation is CenterNet's int()
    radii = integer_gaussian_radius(sizes.flip(1), min_overlap)
    heatmap = draw_gaussians(
        (len(gt_instances), num_classes, h_feat, w_feat), batch_idx, classes, centers, radii
    )
    return {
        "heatmap": heatmap,
        "batch_idx": batch_idx,
        "classes": classes,
        "centers": centers,
        "offsets": ct - centers.float(),
        "sizes": sizes,
        "boxes": boxes,
        "masks": torch.cat(masks),
    }


def _crop_and_resize(
    inst: Instances, keep: torch.Tensor, boxes: torch.Tensor, size: int
) -> torch.Tensor:
    """Masks of ``inst[keep]`` inside ``boxes`` (k, 4) (image pixels) -> (k, size, size) floats
    in {0, 1}.

    Detectron2 leaves ``gt_masks`` unset on images without annotations, hence the check."""
    if len(boxes) == 0:
        return boxes.new_zeros((0, size, size))
    # BitMasks and PolygonMasks both resample with aligned ROIAlign and binarise at 0.5.
    return inst.gt_masks[keep].crop_and_resize(boxes, size).float()


def _bitmasks(inst: Instances) -> torch.Tensor:
    """(k, Hi, Wi) float masks of ``inst`` (bitmask or polygon ``gt_masks``; none when k = 0)."""
    hi, wi = inst.image_size
    if not inst.has("gt_masks"):
        return torch.zeros((0, hi, wi), device=inst.gt_boxes.device)
    masks = inst.gt_masks
    if isinstance(masks, PolygonMasks):
        masks = BitMasks.from_polygon_masks(masks, hi, wi)
    return masks.tensor.float()


def saliency_targets(
    gt_instances: List[Instances],
    *,
    num_channels: int,
    feature_hw: Tuple[int, int],
    stride: int,
) -> torch.Tensor:
    """Targets of the optional direct saliency loss: per channel, the fraction of each feature pixel
    covered by the union of the masks of that channel's class (all objects if ``num_channels`` = 1).

    Args:
        gt_instances: N Instances with ``gt_classes`` and ``gt_masks`` (as for centermask_targets).
        num_channels: C_s (1: class-agnostic; C: class-specific).
        feature_hw: (H, W); the padded input is (R H, R W).
        stride: R.
    Returns:
        (N, C_s, H, W) floats in [0, 1].
    """
    h_feat, w_feat = feature_hw
    canvases = []
    for inst in gt_instances:
        masks = _bitmasks(inst)  # (k, Hi, Wi)
        channel = inst.gt_classes if num_channels > 1 else torch.zeros_like(inst.gt_classes)
        canvas = masks.new_zeros((num_channels, h_feat, w_feat))
        if len(masks):
            # Only the u channels of the classes present get a full-resolution union (u, Hi, Wi):
            # with 80 classes a whole (C_s, R H, R W) canvas was ~20% of a DLA-34 training step.
            present, inverse = torch.unique(channel.long(), return_inverse=True)
            union = masks.new_zeros((len(present),) + masks.shape[1:])
            union = union.index_add_(0, inverse, masks).clamp_(max=1)
            # Sum of each R x R cell / R^2: the cells cut by the image's bottom / right edge count
            # the padding as 0, as pooling the zero-padded batch does.
            pooled = F.avg_pool2d(union[None], stride, ceil_mode=True, divisor_override=stride**2)
            canvas[present, : pooled.shape[2], : pooled.shape[3]] = pooled[0]
        canvases.append(canvas)
    return torch.stack(canvases)
