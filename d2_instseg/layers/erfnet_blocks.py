"""The blocks of ERFNet (Romera et al., T-ITS 2018): its encoder's downsampler and factorised
residual block, and its decoder's upsampler (used by the ERFNet backbone and Spatial Embeddings'
branched decoder).

Shape shorthand: B batch size; C, C_in, C_out channels; H, W (h, w) input size.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BN_EPS", "DownsamplerBlock", "NonBottleneck1d", "UpsamplerBlock"]

# ERFNet's BatchNorm epsilon (the reference's, not PyTorch's 1e-5).
BN_EPS = 1e-3


class DownsamplerBlock(nn.Module):
    """(B, C_in, H, W) -> (B, C_out, H/2, W/2): concat(conv3x3 stride 2 with C_out - C_in channels,
    maxpool 2x2), BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        if out_channels <= in_channels:
            raise ValueError(
                f"DownsamplerBlock needs out_channels > in_channels ({in_channels}, {out_channels})"
            )
        self.conv = nn.Conv2d(
            in_channels, out_channels - in_channels, 3, stride=2, padding=1, bias=True
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu_(self.bn(torch.cat([self.conv(x), F.max_pool2d(x, 2, 2)], dim=1)))


class NonBottleneck1d(nn.Module):
    """Factorised residual block (B, C, H, W) -> (B, C, H, W): 3x1, ReLU, 1x3, BN, ReLU, dilated
    3x1, ReLU, dilated 1x3, BN, Dropout2d, then ReLU(out + input)."""

    # BatchNorms that d2_instseg.layers.fuse_conv_bn may fold into the conv before them.
    conv_bn_pairs = (("conv1x3_1", "bn1"), ("conv1x3_2", "bn2"))

    def __init__(self, channels: int, dropout: float, dilation: int):
        super().__init__()
        self.conv3x1_1 = nn.Conv2d(channels, channels, (3, 1), padding=(1, 0))
        self.conv1x3_1 = nn.Conv2d(channels, channels, (1, 3), padding=(0, 1))
        self.bn1 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.conv3x1_2 = nn.Conv2d(
            channels, channels, (3, 1), padding=(dilation, 0), dilation=(dilation, 1)
        )
        self.conv1x3_2 = nn.Conv2d(
            channels, channels, (1, 3), padding=(0, dilation), dilation=(1, dilation)
        )
        self.bn2 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In-place ReLU and residual add on fresh conv / BN / dropout outputs (their backward does
        # not read them): at full resolution, allocating a new tensor per elementwise op cost more
        # than the op itself.
        out = F.relu_(self.conv3x1_1(x))
        out = F.relu_(self.bn1(self.conv1x3_1(out)))
        out = F.relu_(self.conv3x1_2(out))
        out = self.dropout(self.bn2(self.conv1x3_2(out)))
        return F.relu_(out.add_(x))


class UpsamplerBlock(nn.Module):
    """(B, C_in, h, w) -> (B, C_out, 2h, 2w): transposed conv 3x3 stride 2, BN, ReLU."""

    conv_bn_pairs = (("conv", "bn"),)  # foldable at inference (d2_instseg.layers.fuse_conv_bn)

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(
            in_channels, out_channels, 3, stride=2, padding=1, output_padding=1, bias=True
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu_(self.bn(self.conv(x)))
