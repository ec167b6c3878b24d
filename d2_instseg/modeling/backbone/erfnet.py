"""ERFNet encoder (Romera et al., T-ITS 2018) as a Detectron2 backbone (used by Spatial Embeddings).

Shape shorthand:
    B: batch size; H, W: input size (multiples of 8)

Layout (the reference ``Encoder``, widths configurable): DownsamplerBlock(3, w0),
DownsamplerBlock(w0, w1), ``NUM_STAGE2_BLOCKS`` x non_bottleneck_1d(w1, dilation 1),
DownsamplerBlock(w1, w2), then ``STAGE3_REPEATS`` x [non_bottleneck_1d(w2, dilation d) for d in
``STAGE3_DILATIONS``]. The output "erf3" has stride 8 and w2 channels (128 in the paper).
"""
from typing import Sequence

import torch
import torch.nn.functional as F
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import nn

# ERFNet's BatchNorm epsilon.
_BN_EPS = 1e-3


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
        self.bn = nn.BatchNorm2d(out_channels, eps=_BN_EPS)

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
        self.bn1 = nn.BatchNorm2d(channels, eps=_BN_EPS)
        self.conv3x1_2 = nn.Conv2d(
            channels, channels, (3, 1), padding=(dilation, 0), dilation=(dilation, 1)
        )
        self.conv1x3_2 = nn.Conv2d(
            channels, channels, (1, 3), padding=(0, dilation), dilation=(1, dilation)
        )
        self.bn2 = nn.BatchNorm2d(channels, eps=_BN_EPS)
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


class ERFNetEncoder(Backbone):
    """ERFNet encoder: (B, 3, H, W) -> {"erf3": (B, widths[2], H/8, W/8)}."""

    def __init__(
        self,
        *,
        in_channels: int = 3,
        widths: Sequence[int] = (16, 64, 128),
        num_stage2_blocks: int = 5,
        stage3_dilations: Sequence[int] = (2, 4, 8, 16),
        stage3_repeats: int = 2,
        dropouts: Sequence[float] = (0.03, 0.3),
    ):
        """
        Args:
            widths: channels after the 1st, 2nd and 3rd downsampler.
            num_stage2_blocks: non_bottleneck_1d blocks at stride 4.
            stage3_dilations, stage3_repeats: dilations of the stride-8 blocks, repeated.
            dropouts: Dropout2d probability of the stride-4 and stride-8 blocks.
        """
        super().__init__()
        if len(widths) != 3 or len(dropouts) != 2:
            raise ValueError(f"ERFNet needs 3 widths and 2 dropouts, got {widths}, {dropouts}")
        w0, w1, w2 = widths
        layers = [DownsamplerBlock(in_channels, w0), DownsamplerBlock(w0, w1)]
        layers += [NonBottleneck1d(w1, dropouts[0], 1) for _ in range(num_stage2_blocks)]
        layers.append(DownsamplerBlock(w1, w2))
        layers += [
            NonBottleneck1d(w2, dropouts[1], d)
            for _ in range(stage3_repeats)
            for d in stage3_dilations
        ]
        self.layers = nn.Sequential(*layers)
        self._out_channels = w2

    def forward(self, x: torch.Tensor):
        return {"erf3": self.layers(x)}

    def output_shape(self):
        return {"erf3": ShapeSpec(channels=self._out_channels, stride=8)}

    @property
    def size_divisibility(self) -> int:
        return 8


@BACKBONE_REGISTRY.register()
def build_erfnet_backbone(cfg, input_shape: ShapeSpec) -> ERFNetEncoder:
    """ERFNet encoder from ``cfg.MODEL.ERFNET`` (see ``add_spatial_embed_config``)."""
    node = cfg.MODEL.ERFNET
    return ERFNetEncoder(
        in_channels=input_shape.channels,
        widths=node.WIDTHS,
        num_stage2_blocks=node.NUM_STAGE2_BLOCKS,
        stage3_dilations=node.STAGE3_DILATIONS,
        stage3_repeats=node.STAGE3_REPEATS,
        dropouts=node.DROPOUTS,
    )
