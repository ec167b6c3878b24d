"""The branched decoder of Spatial Embeddings (the reference's ``BranchedERFNet``), on any feature.

Shape shorthand:
    B: batch size; H, W: network input size; s: stride of the input feature (2^(len(widths)+1))
    S: sigma channels (1 or 2); C: thing classes

Two decoders read the same feature map: one predicts (offset x, offset y, sigma..) and one the C
seed maps. Each is ``len(widths)`` x [UpsamplerBlock (transposed conv 3x3 stride 2, BN, ReLU),
``blocks_per_stage`` x non_bottleneck_1d] followed by a 2x2 stride-2 transposed conv to full
resolution. With ERFNet's 128-channel stride-8 feature and widths (64, 16) this is the reference
decoder; with a ResNet-FPN backbone, read e.g. "p3" (stride 8) or "p2" with widths (64,).
"""

from typing import Dict, Sequence

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from torch import nn

from ...layers.erfnet_blocks import NonBottleneck1d, UpsamplerBlock
from ...utils.config_checks import check_backbone_features


def _branch(in_channels: int, widths: Sequence[int], blocks: int, out_channels: int):
    layers = []
    for width in widths:
        layers.append(UpsamplerBlock(in_channels, width))
        layers += [NonBottleneck1d(width, 0.0, 1) for _ in range(blocks)]
        in_channels = width
    layers.append(nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2, bias=True))
    return nn.Sequential(*layers)


class SpatialEmbedDecoder(nn.Module):
    """features[in_feature] (B, F, H/s, W/s) -> (B, 2 + S + C, H, W) raw outputs
    (off_x, off_y, sigma.., seed logits..)."""

    @configurable
    def __init__(
        self,
        *,
        input_shape: ShapeSpec,
        in_feature: str,
        num_classes: int,
        n_sigma: int,
        widths: Sequence[int] = (64, 16),
        blocks_per_stage: int = 2,
        sigma_bias: float = 1.0,
    ):
        """
        Args:
            input_shape: channels and stride of the feature read.
            in_feature: name of the backbone output to decode.
            num_classes: C, number of seed maps.
            n_sigma: S, 1 (circular) or 2 (elliptical margin).
            widths: channels after each 2x upsampler; the stride must be 2^(len(widths) + 1).
            blocks_per_stage: non_bottleneck_1d blocks after each upsampler.
            sigma_bias: initial bias s of the sigma channels (margin 1 / sqrt(2 exp(10 s))).
        """
        super().__init__()
        if input_shape.stride != 2 ** (len(widths) + 1):
            raise ValueError(
                f"MODEL.SPATIAL_EMBED.DECODER_WIDTHS={list(widths)} upsamples by "
                f"{2 ** (len(widths) + 1)} but feature {in_feature!r} has stride "
                f"{input_shape.stride}"
            )
        self.in_feature = in_feature
        self.n_sigma = n_sigma
        self.embed_branch = _branch(input_shape.channels, widths, blocks_per_stage, 2 + n_sigma)
        self.seed_branch = _branch(input_shape.channels, widths, blocks_per_stage, num_classes)
        # Reference init: zero offsets and a narrow margin (sigma bias 1 -> exp(10) -> ~5 px at
        # 1023 px per unit; SIGMA_BIAS_INIT sets it for other scales).
        out = self.embed_branch[-1]
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias[:2])
        nn.init.constant_(out.bias[2:], sigma_bias)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        node = cfg.MODEL.SPATIAL_EMBED
        check_backbone_features("MODEL.SPATIAL_EMBED.IN_FEATURE", node.IN_FEATURE, input_shape)
        return {
            "input_shape": input_shape[node.IN_FEATURE],
            "in_feature": node.IN_FEATURE,
            "num_classes": node.NUM_CLASSES,
            "n_sigma": node.N_SIGMA,
            "widths": node.DECODER_WIDTHS,
            "blocks_per_stage": node.DECODER_BLOCKS,
            "sigma_bias": node.SIGMA_BIAS_INIT,
        }

    def forward(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        x = features[self.in_feature]
        return torch.cat([self.embed_branch(x), self.seed_branch(x)], dim=1)
