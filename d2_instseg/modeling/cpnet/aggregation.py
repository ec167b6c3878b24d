"""Aggregation Module (AM) of CPNet: a cheap large-kernel spatial context before the prior layer.

Shape shorthand:
    B: batch size; C_in: input channels; C: AM channels (512 in the paper); H, W: feature size.

``reduce_conv`` (3x3, C_in -> C, norm, ReLU) reduces the channels; then two "fully separable"
branches, each a depth-wise k x 1 and a depth-wise 1 x k convolution in opposite orders (spatially
separable and depth-wise: groups = C, no norm, activation or point-wise convolution between them),
are summed, normalised and rectified. Each branch covers a k x k window, so an output position sees
a (k + 2) x (k + 2) input window (the 3x3 reduction adds 2).
"""

from detectron2.layers import Conv2d, get_norm
from torch import nn


class AggregationModule(nn.Module):
    """``ReLU(norm(dw_1xk(dw_kx1(X')) + dw_kx1(dw_1xk(X'))))`` with ``X' = reduce_conv(X)``."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int, norm: str = "BN"):
        """
        Args:
            in_channels: C_in of the backbone feature.
            channels: C, width of the module (and of its output).
            kernel_size: k of the separable convolutions (odd; 11 in the paper).
            norm: Detectron2 norm name ("BN", "SyncBN", "GN", ...).
        """
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"AggregationModule kernel_size must be odd, got {kernel_size}")
        pad = kernel_size // 2
        self.reduce_conv = Conv2d(
            in_channels,
            channels,
            3,
            padding=1,
            bias=not norm,
            norm=get_norm(norm, channels),
            activation=nn.ReLU(inplace=True),
        )

        def depthwise(kh: int, kw: int, ph: int, pw: int) -> nn.Conv2d:
            return nn.Conv2d(channels, channels, (kh, kw), padding=(ph, pw), groups=channels)

        self.branch_a = nn.Sequential(
            depthwise(kernel_size, 1, pad, 0), depthwise(1, kernel_size, 0, pad)
        )
        self.branch_b = nn.Sequential(
            depthwise(1, kernel_size, 0, pad), depthwise(kernel_size, 1, pad, 0)
        )
        self.norm = get_norm(norm, channels) or nn.Identity()
        self.act = nn.ReLU(inplace=True)
        self.out_channels = channels

    def forward(self, x):
        """(B, C_in, H, W) -> (B, C, H, W)."""
        x = self.reduce_conv(x)
        return self.act(self.norm(self.branch_a(x) + self.branch_b(x)))
