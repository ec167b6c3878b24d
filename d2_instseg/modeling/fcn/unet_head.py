"""UNetHead: a U-Net decoder (Ronneberger et al., MICCAI 2015) over a backbone's levels.

Shape shorthand:
    B: batch; K: classes; C_l: channels of level l; h_l, w_l: its size; s_0: finest level stride.

From the coarsest level up, each step up-samples by 2 (learnable 2x2 transposed conv, "up-conv"),
crops to the skip's size (odd sizes), concatenates the skip, and applies two 3x3 conv + norm +
ReLU. A 1x1 classifier on the finest level is bilinearly up-sampled by its stride.
"""

from typing import Dict

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from torch import nn

from ...layers.conv import conv_norm_act
from ...layers.resize import resize_and_crop
from ...utils.config_checks import check_backbone_features
from .base import DenseHead


class UpBlock(nn.Module):
    """up-conv 2x2 of the deeper map, crop, concat with the skip, two 3x3 conv + norm + ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, norm: str):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.convs = nn.Sequential(
            conv_norm_act(out_channels + skip_channels, out_channels, 3, norm=norm),
            conv_norm_act(out_channels, out_channels, 3, norm=norm),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """(B, C_in, h, w), (B, C_skip, H, W) with H <= 2h -> (B, C_out, H, W)."""
        up = resize_and_crop(self.up(x), skip.shape[-2:], factor=1)
        return self.convs(torch.cat([skip, up], dim=1))


@SEM_SEG_HEADS_REGISTRY.register()
class UNetHead(DenseHead):
    """U-Net decoder head; logits at ``s_0 * h_0`` (>= the input size)."""

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        in_features,
        decoder_channels,
        num_classes: int,
        ignore_value: int,
        norm: str,
        loss_weight: float,
    ):
        """
        Args:
            in_features: encoder levels, finest first.
            decoder_channels: width after each skip fusion, deepest skip first
                (len(in_features) - 1 values).
        """
        super().__init__()
        self.in_features = list(in_features)
        self.ignore_value = ignore_value
        self.loss_weight = loss_weight
        self.stride = input_shape[self.in_features[0]].stride
        channels = input_shape[self.in_features[-1]].channels
        self.blocks = nn.ModuleList()
        for f, out_channels in zip(reversed(self.in_features[:-1]), decoder_channels):
            self.blocks.append(UpBlock(channels, input_shape[f].channels, out_channels, norm))
            channels = out_channels
        self.predictor = nn.Conv2d(channels, num_classes, 1)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        u = cfg.MODEL.UNET
        check_backbone_features("MODEL.UNET.IN_FEATURES", u.IN_FEATURES, input_shape)
        return {
            "input_shape": input_shape,
            "in_features": u.IN_FEATURES,
            "decoder_channels": u.DECODER_CHANNELS,
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "ignore_value": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            "norm": u.NORM,
            "loss_weight": cfg.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT,
        }

    def layers(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        """features -> (B, K, s_0 * h_0, s_0 * w_0) logits."""
        x = features[self.in_features[-1]]
        for block, f in zip(self.blocks, reversed(self.in_features[:-1])):
            x = block(x, features[f])
        logits = self.predictor(x)
        return F.interpolate(logits, scale_factor=self.stride, mode="bilinear", align_corners=False)
