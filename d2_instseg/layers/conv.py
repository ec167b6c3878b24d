"""The conv + norm + ReLU unit used by every backbone and head of the package."""

from detectron2.layers import Conv2d, get_norm
from torch import nn

__all__ = ["conv_norm_act"]


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    norm: str = "",
    relu: bool = True,
) -> Conv2d:
    """(B, C_in, H, W) -> (B, C_out, H / stride, W / stride): k x k conv with "same" padding, then
    Detectron2's ``norm`` (name as in ``get_norm``; "" for none), then ReLU when ``relu``. The conv
    has a bias only without a norm. A Detectron2 ``Conv2d``, so ``fuse_conv_bn`` folds its norm."""
    return Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        bias=not norm,
        norm=get_norm(norm, out_channels),
        activation=nn.ReLU(inplace=True) if relu else None,
    )
