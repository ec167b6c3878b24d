"""Modulated deformable convolution (DCNv2, stride 1) as one weighted gather + one 1x1 convolution.

``torchvision.ops.deform_conv2d`` computes the same function; its CPU kernel samples one value at a
time, which made the 16 deformable convs of DLA-34's IDA-up 70% of CenterMask's CPU latency. Here
each output pixel's K = kh * kw bilinear samples, already multiplied by the modulation mask, are
gathered in one ``F.embedding_bag`` call: each sample is a "bag" of its 4 corner pixels (rows of the
channels-last input) summed with per-sample weights = bilinear weight x mask (0 for corners outside
the image). That is a fused, vectorised row gather on CPU and CUDA, differentiable in the input and
in the weights (hence offsets and mask). The gathered (N, H, W, K * C_in) columns are then reduced
by the weight as a 1x1 convolution over channels-last memory, which oneDNN runs 2-3x faster than the
same matrix product through ``torch.matmul`` on CPU.

On CPU in inference (float32, no gradient asked for, not being traced or compiled), the same
function runs as one native kernel (``csrc/deform_conv_cpu.cpp``, see :mod:`.native`), which fills
the columns tile by tile in cache and multiplies each tile by the weight at once, with no index
tensors and no full-size column matrix: DLA-34's 16 DCNs at 512 x 512 took 108 ms against 147 on
this file's path (2 CPU threads) with a oneDNN product per tile, and take 0.87x that with the
kernel's own product on a weight packed once per call (1.17x dense 3x3 convs of the same shapes).

Conventions are torchvision's: ``offset`` (N, 2K, H, W) holds (dy, dx) pairs per kernel position
in row-major kernel order; ``mask`` (N, K, H, W) multiplies each sample; a sample is bilinear in
the input's pixel grid, with zeros outside the image.
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

from .native import native_ops_available

__all__ = ["modulated_deform_conv2d"]


def _bilinear_corners(py: torch.Tensor, px: torch.Tensor, n: int, h: int, w: int):
    """Row indices into the (N * H * W, C) pixel table and bilinear weights of the 4 corners around
    each sample point.

    Args:
        py, px: (N, ...) float sample positions in pixels of image n (pixel i has its centre at i).
        n, h, w: batch and image size; corners outside the image get weight 0 (and some valid
        index).
    Returns:
        index (N, ..., 4) long, weight (N, ..., 4); corners in the order (y0, x0), (y0, x0 + 1),
        (y0 + 1, x0), (y0 + 1, x0 + 1).
    """
    y0, x0 = py.floor(), px.floor()
    fy, fx = py - y0, px - x0
    # Weights of the two rows and the two columns, 0 where that row / column is outside the image.
    top, bottom = (1 - fy) * ((y0 >= 0) & (y0 < h)), fy * ((y0 >= -1) & (y0 < h - 1))
    left, right = (1 - fx) * ((x0 >= 0) & (x0 < w)), fx * ((x0 >= -1) & (x0 < w - 1))
    weight = torch.stack([top * left, top * right, bottom * left, bottom * right], -1)
    image = torch.arange(n, device=py.device).view((n,) + (1,) * (py.dim() - 1)) * (h * w)
    # Clamped first so far-away (or non-finite) positions cannot overflow the integer index.
    top_left = image + y0.clamp(-1, h).long() * w + x0.clamp(-1, w).long()
    # A corner outside its image has weight 0; clamping only keeps its row index inside the table.
    index = torch.stack([top_left, top_left + 1, top_left + w, top_left + w + 1], -1)
    index = index.clamp_(0, n * h * w - 1)
    return index, weight


def _native_applies(x, offset, weight, bias, mask) -> bool:
    """Whether the native forward kernel computes this call: CPU float32 tensors, no gradient
    asked for, and not inside a trace / compile (whose graphs keep the portable PyTorch ops)."""
    tensors = [t for t in (x, offset, weight, bias, mask) if t is not None]
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    return native_ops_available()


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
        x: (N, C_in, H, W) input (channels-last memory avoids one copy).
        offset: (N, 2K, H, W) sampling offsets in pixels, (dy, dx) per kernel position.
        weight: (C_out, C_in, kh, kw), K = kh * kw; ``2 * padding == dilation * (k - 1)``.
        bias: (C_out,) or None.
        mask: (N, K, H, W) modulation of each sample (DCNv2's sigmoid output).

    Returns:
        (N, C_out, H, W), in channels-last memory.
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
    if torch.onnx.is_in_onnx_export():
        # ONNX has no EmbeddingBag; its DeformConv (opset 19, which d2_instseg.export maps
        # torchvision's op to) is the same function, and ONNX Runtime's CPU kernel measured as fast
        # as this one (20.7 vs 24.1 ms, 64 channels at 128 x 128).
        return deform_conv2d(
            x,
            offset,
            weight,
            bias,
            padding=(padding, padding),
            dilation=(dilation, dilation),
            mask=mask,
        )
    if _native_applies(x, offset, weight, bias, mask):
        return torch.ops.d2_instseg.modulated_deform_conv2d_forward(
            x, offset, weight, bias, mask, padding, dilation
        )
    # Positions and weights in float32 whatever the input dtype: in half precision a position near
    # pixel 1024 would be rounded to 0.5 px. The weights are cast to the input's dtype for the
    # gather.
    arange = lambda size: torch.arange(size, device=x.device, dtype=torch.float32)  # noqa: E731
    # Sample positions ordered (N, H, W, K): each pixel's K samples are adjacent in the columns.
    off = offset.float().view(n, k, 2, h, w).permute(0, 3, 4, 1, 2).contiguous()
    tap_y = (dilation * arange(kh)).repeat_interleave(kw)  # (K,) row-major kernel positions
    tap_x = (dilation * arange(kw)).repeat(kh)
    py = arange(h).view(h, 1, 1) - padding + tap_y + off[..., 0]  # (N, H, W, K)
    px = arange(w).view(1, w, 1) - padding + tap_x + off[..., 1]
    index, corner_weight = _bilinear_corners(py, px, n, h, w)
    corner_weight = (corner_weight * mask.float().permute(0, 2, 3, 1).unsqueeze(-1)).to(x.dtype)
    rows = x.permute(0, 2, 3, 1).reshape(n * h * w, c)  # a view when x is channels-last
    columns = F.embedding_bag(
        index.reshape(-1, 4), rows, per_sample_weights=corner_weight.reshape(-1, 4), mode="sum"
    )  # (N * H * W * K, C_in)
    columns = columns.view(n, h, w, k * c).permute(0, 3, 1, 2)  # channels-last (N, K * C_in, H, W)
    kernel = weight.permute(0, 2, 3, 1).reshape(
        c_out, k * c, 1, 1
    )  # (K, C_in) order of the columns
    return F.conv2d(columns, kernel, bias)
