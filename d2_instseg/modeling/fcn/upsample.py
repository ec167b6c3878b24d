"""Aligning up-sampled maps with their skips (FCN and UNet heads)."""
import torch
from torch import nn


def fit_to(x: torch.Tensor, size) -> torch.Tensor:
    """Crop the bottom / right of (..., h, w) ``x`` to ``size`` = (H, W), zero-padding where it is
    smaller: aligns an up-sampled map (2 * ceil(H / 2) >= H on odd sizes) with its skip."""
    x = x[..., : size[0], : size[1]]
    return nn.functional.pad(x, (0, size[1] - x.shape[-1], 0, size[0] - x.shape[-2]))
