"""Modulated deformable convolution (DCNv2, stride 1) as bilinear sampling + one matrix product.

``torchvision.ops.deform_conv2d`` computes the same function; its CPU kernel samples one value at a
time, which made the 16 deformable convs of DLA-34's IDA-up 70% of CenterMask's CPU latency. Here
the K = kh * kw sampled copies of the input are taken by one ``F.grid_sample`` call (vectorised on
CPU, a native kernel on CUDA, differentiable in input, offsets and mask), and the convolution is one
matmul with the (C_out, C_in * K) weight.

Conventions are torchvision's: ``offset`` (N, 2K, H, W) holds (dy, dx) pairs per kernel position
in row-major kernel order; ``mask`` (N, K, H, W) multiplies each sample; a sample is bilinear in
the input's pixel grid, with zeros outside the image.
"""
from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["modulated_deform_conv2d"]


def modulated_deform_conv2d(
    x: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    mask: torch.Tensor,
    padding: int = 1,
    dilation: int = 1,
) -> torch.Tensor:
    """Stride-1 DCNv2 with a "same"-sized output.

    Args:
        x: (N, C_in, H, W) input.
        offset: (N, 2K, H, W) sampling offsets in pixels, (dy, dx) per kernel position.
        weight: (C_out, C_in, kh, kw), K = kh * kw; ``2 * padding == dilation * (k - 1)``.
        bias: (C_out,) or None.
        mask: (N, K, H, W) modulation of each sample (DCNv2's sigmoid output).

    Returns:
        (N, C_out, H, W).
    """
    n, c, h, w = x.shape
    c_out, c_w, kh, kw = weight.shape
    k = kh * kw
    if c_w != c or offset.shape != (n, 2 * k, h, w) or mask.shape != (n, k, h, w):
        raise ValueError(
            f"modulated_deform_conv2d: input {tuple(x.shape)}, weight {tuple(weight.shape)}, "
            f"offset {tuple(offset.shape)} (expected {(n, 2 * k, h, w)}), mask {tuple(mask.shape)} "
            f"(expected {(n, k, h, w)})"
        )
    if 2 * padding != dilation * (kh - 1) or 2 * padding != dilation * (kw - 1):
        raise ValueError(f"padding {padding} does not keep the size of a {kh}x{kw} kernel")
    ky, kx = torch.meshgrid(
        torch.arange(kh, device=x.device, dtype=x.dtype),
        torch.arange(kw, device=x.device, dtype=x.dtype),
        indexing="ij",
    )
    base_y = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1) - padding
    base_x = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w) - padding
    off = offset.view(n, k, 2, h, w)
    py = base_y + dilation * ky.reshape(k, 1, 1) + off[:, :, 0]  # (N, K, H, W) pixel rows
    px = base_x + dilation * kx.reshape(k, 1, 1) + off[:, :, 1]
    # grid_sample with align_corners=False puts pixel i at (2i + 1) / size - 1.
    grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], dim=-1)
    sampled = F.grid_sample(
        x, grid.view(n, k * h, w, 2), mode="bilinear", padding_mode="zeros", align_corners=False
    )  # (N, C_in, K * H, W)
    sampled = sampled.view(n, c, k, h, w) * mask.unsqueeze(1)
    out = torch.matmul(weight.reshape(c_out, c * k), sampled.view(n, c * k, h * w))
    if bias is not None:
        out = out + bias.view(1, c_out, 1)
    return out.view(n, c_out, h, w)
