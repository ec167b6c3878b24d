"""Learnable up-sampling initialised to bilinear interpolation (DLA's IDA-up, CenterNet's
``fill_up_weights``; FCN's own are fixed: modeling/fcn/fcn_head.py)."""

import torch
from torch import nn

__all__ = ["BilinearUpsample", "bilinear_kernel"]


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """(channels, 1, k, k) weights of a per-channel bilinear interpolation kernel.

    For k = 2 * f (f the up-sampling factor, k even) the kernel is the outer product of
    ``1 - |x - c| / f`` with ``c = (k - 1) / 2``: e.g. f = 2 gives [0.25, 0.75, 0.75, 0.25].
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    coords = torch.arange(kernel_size, dtype=torch.float32)
    profile = 1 - (coords - center).abs() / factor
    return (profile[:, None] * profile[None, :]).expand(channels, 1, kernel_size, kernel_size)


class BilinearUpsample(nn.ConvTranspose2d):
    """Depth-wise ``ConvTranspose2d(k=2f, stride=f, padding=f/2)`` (f even) initialised to bilinear
    up-sampling by ``f = factor`` (align_corners=False sampling away from the border); learnable.
    The output is exactly ``factor`` times the input size."""

    def __init__(self, channels: int, factor: int):
        if factor < 2 or factor % 2:
            raise ValueError(f"BilinearUpsample factor must be even and >= 2, got {factor}")
        super().__init__(
            channels,
            channels,
            2 * factor,
            stride=factor,
            padding=factor // 2,
            groups=channels,
            bias=False,
        )
        with torch.no_grad():
            self.weight.copy_(bilinear_kernel(channels, 2 * factor))
