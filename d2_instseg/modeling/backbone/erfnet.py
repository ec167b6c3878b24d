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
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import nn

from ...layers.erfnet_blocks import DownsamplerBlock, NonBottleneck1d


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
    """ERFNet encoder from ``cfg.MODEL.ERFNET`` (see ``add_backbone_config``)."""
    node = cfg.MODEL.ERFNET
    return ERFNetEncoder(
        in_channels=input_shape.channels,
        widths=node.WIDTHS,
        num_stage2_blocks=node.NUM_STAGE2_BLOCKS,
        stage3_dilations=node.STAGE3_DILATIONS,
        stage3_repeats=node.STAGE3_REPEATS,
        dropouts=node.DROPOUTS,
    )
