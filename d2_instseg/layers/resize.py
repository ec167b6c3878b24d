"""Bringing a coarser map to a finer size: bilinear up-sampling by an integer stride ratio, then the
bottom / right overhang cropped and any shortfall zero-padded (Detectron2's convention for padded
inputs: real pixels stay at the top-left)."""

from typing import Optional, Sequence

import torch
import torch.nn.functional as F


def resize_and_crop(
    x: torch.Tensor, size: Sequence[int], factor: Optional[int] = None
) -> torch.Tensor:
    """(..., h, w) -> (..., H, W) with (H, W) = ``size``.

    ``factor``: the integer up-sampling factor (1: no resampling, only crop / pad). By default it is
    H // h when h divides H (the stride ratio of two levels of one padded input); otherwise the map
    is resized to ``size`` directly. E.g. a stride-8 map of a 100-px input has 13 rows: up by 8 it
    has 104, and the last 4 are cropped; a 2x up-sampled 5-row map gains a zero row to fit 11.
    """
    height, width = size
    if factor is None:
        if tuple(x.shape[-2:]) == (height, width):
            return x
        if height % x.shape[-2]:
            return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
        factor = height // x.shape[-2]
    if factor != 1:
        x = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    x = x[..., :height, :width]
    return F.pad(x, (0, width - x.shape[-1], 0, height - x.shape[-2]))
