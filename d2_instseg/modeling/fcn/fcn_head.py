"""FCNHead: FCN-32s / 16s / 8s (Long, Shelhamer and Darrell, CVPR 2015) on any backbone.

Shape shorthand:
    B: batch; K: classes; h_s, w_s: size of the backbone feature at stride s (8, 16, 32).

score_32 = classifier(conv(res5)); FCN-16s adds up2(score_32) to score(res4); FCN-8s adds up2 of
that to score(res3); the finest fused score map is up-sampled by its stride. Every up-sampling is
fixed bilinear interpolation, as in the authors' reference nets (fcn.berkeleyvision.org: each
``Deconvolution`` is filled with a bilinear kernel and has ``lr_mult: 0``); it runs as
``F.interpolate`` (align_corners=False), which equals that deconvolution inside the image (their
input padding of 100 px keeps its zero-padded border outside the output), and as a ``Resize`` in
ONNX. Up-sampled maps are cropped to their skip's size, which aligns them on odd input sizes
(2 * ceil(h / 2) >= h, same top-left origin).
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

_LEVELS = {32: 1, 16: 2, 8: 3}  # variant -> number of fused backbone levels


@SEM_SEG_HEADS_REGISTRY.register()
class FCNHead(DenseHead):
    """FCN-{32,16,8}s head; logits at ``stride(finest fused level) * h`` (>= the input size).
    Its only parameters are the convolutions: the up-samplings are fixed (module docstring)."""

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        in_features,
        num_classes: int,
        ignore_value: int,
        conv_dim: int,
        dropout: float,
        norm: str,
        loss_weight: float,
    ):
        """
        Args:
            input_shape: backbone output shapes.
            in_features: fused features, finest first, each of twice the previous stride
                (e.g. res3, res4, res5 for FCN-8s; just res5 for FCN-32s).
            conv_dim: width of the conv on the coarsest feature (FCN's fc6 / fc7).
        """
        super().__init__()
        self.in_features = list(in_features)
        self.ignore_value = ignore_value
        self.loss_weight = loss_weight
        strides = [input_shape[f].stride for f in self.in_features]
        if any(b != 2 * a for a, b in zip(strides, strides[1:])):
            raise ValueError(f"FCN features {self.in_features} must double in stride: {strides}")
        coarsest = input_shape[self.in_features[-1]].channels
        self.score_coarsest = nn.Sequential(
            conv_norm_act(coarsest, conv_dim, 3, norm=norm),
            nn.Dropout2d(dropout),
            nn.Conv2d(conv_dim, num_classes, 1),
        )
        self.score_skips = nn.ModuleList()
        for f in self.in_features[:-1]:
            score = nn.Conv2d(input_shape[f].channels, num_classes, 1)
            # Zero-initialised skips (FCN paper): training starts from the coarser net's output.
            nn.init.zeros_(score.weight)
            nn.init.zeros_(score.bias)
            self.score_skips.append(score)
        self.final_stride = strides[0]

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        f = cfg.MODEL.FCN
        if f.VARIANT not in _LEVELS:
            raise ValueError(f"MODEL.FCN.VARIANT={f.VARIANT!r}: must be one of {list(_LEVELS)}")
        check_backbone_features("MODEL.FCN.IN_FEATURES", f.IN_FEATURES, input_shape)
        return {
            "input_shape": input_shape,
            "in_features": f.IN_FEATURES[3 - _LEVELS[f.VARIANT] :],
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "ignore_value": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            "conv_dim": f.CONV_DIM,
            "dropout": f.DROPOUT,
            "norm": f.NORM,
            "loss_weight": cfg.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT,
        }

    def layers(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        """features -> (B, K, s * h_s, s * w_s) logits, s the finest fused stride."""
        score = self.score_coarsest(features[self.in_features[-1]])
        for i in reversed(range(len(self.score_skips))):
            skip = features[self.in_features[i]]
            up = resize_and_crop(_up(score, 2), skip.shape[-2:], factor=1)
            score = up + self.score_skips[i](skip)
        return _up(score, self.final_stride)


def _up(x: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, K, h, w) -> (B, K, factor * h, factor * w), bilinear (FCN's fixed up-sampling)."""
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
