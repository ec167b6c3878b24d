"""ROIAlign on CPU as one weighted row gather (``F.embedding_bag``), equal to torchvision's
``roi_align`` (which Detectron2's ``ROIAlign`` calls without its compiled ``_C``) and several times
faster in training: torchvision's CPU backward loops over every sample point of every RoI on one
thread (measured here: 1024 RoIs of 7 x 7 bins on 128 channels, forward + backward 378 -> 64 ms;
the box and mask heads' RoIAlign backward was 21% of a shapes Mask R-CNN training step).

Each output bin is a "bag" of its sampling points' 4 bilinear corners (rows of the channels-last
feature map), weighted by bilinear weight / number of points in the bin; embedding_bag sums each
bag, and its backward scatters the gradient back to the rows. The sampling follows torchvision
exactly: ``sampling_ratio`` points per bin side, or ceil(bin size) when it is 0 (adaptive, so bags
have different sizes); ``aligned`` shifts by half a pixel; points beyond one pixel outside the map
give 0, points inside are clamped to the border (unlike DCN's zero padding, see deform_conv.py).
"""

from typing import Tuple

import torch
import torch.nn.functional as F
from detectron2.layers import ROIAlign as D2ROIAlign
from torch import nn
from torchvision.ops import roi_align as tv_roi_align

__all__ = ["ROIAlignGather", "roi_align_gather", "use_gather_roi_align"]


def _sample_points(rois, spatial_scale, output_size, sampling_ratio, aligned):
    """The sampling points of every bin.

    Args:
        rois: (R, 5) float (batch index, x1, y1, x2, y2) in input pixels.
    Returns:
        image (S,) long, y, x (S,) float positions in feature pixels, weight (S,) = 1 / points in
        the bin, bag_start (R * ph * pw,) long index of each bin's first point.
    """
    ph, pw = output_size
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, i] * spatial_scale - offset for i in range(1, 5))
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:  # torchvision's legacy mode forces RoIs to be at least 1 x 1
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / ph, roi_w / pw
    if sampling_ratio > 0:
        grid_h = torch.full_like(bin_h, sampling_ratio, dtype=torch.long)
        grid_w = grid_h
    else:
        grid_h, grid_w = bin_h.ceil().long(), bin_w.ceil().long()
    points = (grid_h * grid_w).repeat_interleave(ph * pw)  # per bin, (R * ph * pw,)
    bag_start = points.cumsum(0) - points
    bin_of = torch.repeat_interleave(torch.arange(len(points), device=rois.device), points)
    j = torch.arange(len(bin_of), device=rois.device) - bag_start[bin_of]  # point within its bin
    r = bin_of // (ph * pw)
    gw = grid_w[r]
    iy, ix = j // gw, j % gw
    by, bx = (bin_of // pw) % ph, bin_of % pw
    y = y1[r] + by * bin_h[r] + (iy + 0.5) * bin_h[r] / grid_h[r]
    x = x1[r] + bx * bin_w[r] + (ix + 0.5) * bin_w[r] / gw
    weight = 1.0 / (grid_h[r] * gw).clamp(min=1)
    return rois[r, 0].long(), y, x, weight.to(rois.dtype), bag_start


def _corners(image, y, x, h: int, w: int):
    """Row indices (S, 4) into the (N * H * W) table and bilinear weights (S, 4) of each point,
    with torchvision's border rules: 0 beyond one pixel outside, clamped to the last row / column.
    """
    inside = (y >= -1.0) & (y <= h) & (x >= -1.0) & (x <= w)
    y, x = y.clamp(min=0), x.clamp(min=0)
    y0, x0 = y.floor().clamp(max=h - 1), x.floor().clamp(max=w - 1)
    y, x = torch.where(y0 >= h - 1, y0, y), torch.where(x0 >= w - 1, x0, x)
    ly, lx = y - y0, x - x0
    y0, x0 = y0.long(), x0.long()
    y1, x1 = (y0 + 1).clamp(max=h - 1), (x0 + 1).clamp(max=w - 1)
    base = image * (h * w)
    index = torch.stack([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1], 1) + base[:, None]
    weight = torch.stack([(1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx], 1)
    return index, weight * inside[:, None]


def roi_align_gather(
    input: torch.Tensor,
    rois: torch.Tensor,
    output_size: Tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> torch.Tensor:
    """torchvision's ``roi_align(input, rois, output_size, spatial_scale, sampling_ratio,
    aligned)``, differentiable in ``input``.

    Args:
        input: (N, C, H, W) feature map (channels-last memory avoids one copy).
        rois: (R, 5) (batch index, x1, y1, x2, y2) in input-image pixels.
        output_size: (ph, pw) bins.
    Returns:
        (R, C, ph, pw).
    """
    n, c, h, w = input.shape
    ph, pw = output_size
    image, y, x, point_weight, bag_start = _sample_points(
        rois.float(), spatial_scale, (ph, pw), sampling_ratio, aligned
    )
    index, weight = _corners(image, y, x, h, w)
    weight = (weight * point_weight[:, None]).to(input.dtype)
    rows = input.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1)
    out = F.embedding_bag(
        index.reshape(-1),
        rows.reshape(n * h * w, c),
        bag_start * 4,
        mode="sum",
        per_sample_weights=weight.reshape(-1),
    )  # (R * ph * pw, C)
    return out.view(len(rois), ph, pw, c).permute(0, 3, 1, 2)


class ROIAlignGather(D2ROIAlign):
    """Detectron2's ``ROIAlign`` with :func:`roi_align_gather` on CPU; on CUDA torchvision's
    kernel, whose backward is parallel there."""

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        if rois.dim() != 2 or rois.size(1) != 5:
            raise ValueError(f"ROIAlign expects (R, 5) rois, got {tuple(rois.shape)}")
        if input.is_quantized:
            input = input.dequantize()
        size = self.output_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        args = (size, self.spatial_scale, self.sampling_ratio, self.aligned)
        if input.device.type != "cpu" or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            # exports keep torchvision's op: ONNX's RoiAlign / TorchScript map it directly
            return tv_roi_align(input, rois.to(dtype=input.dtype), *args)
        return roi_align_gather(input, rois, *args)


def use_gather_roi_align(model: nn.Module, gather: bool = True) -> int:
    """Make every Detectron2 ``ROIAlign`` in ``model`` (the RoI poolers of Mask R-CNN's box and
    mask heads) a :class:`ROIAlignGather` with the same settings, in place, or back to Detectron2's
    own with ``gather=False``; returns how many were changed."""
    source, target = (D2ROIAlign, ROIAlignGather) if gather else (ROIAlignGather, D2ROIAlign)
    count = 0
    for module in model.modules():
        if type(module) is source:
            module.__class__ = target
            count += 1
    return count
