"""CPNetHead: aggregation module, context prior layer and classifier, plus the auxiliary FCN head.

Shape shorthand:
    B: batch size; H, W: input (padded) image size; h, w: size of the stride-s feature (s = 8 with
    a dilated ResNet), which must equal MODEL.CPNET.PRIOR_SIZE; N = h * w; K: number of classes.
"""

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from torch import nn

from ...layers.affinity import affinity_loss, ideal_affinity_map
from ...layers.conv import conv_norm_act
from ...layers.cross_entropy import cross_entropy_ignore
from ...layers.resize import resize_and_crop
from ...utils.config_checks import check_backbone_features
from .aggregation import AggregationModule
from .context_prior import ContextPriorLayer


@SEM_SEG_HEADS_REGISTRY.register()
class CPNetHead(nn.Module):
    """Context Prior head (Yu et al., CVPR 2020).

    ``X~ = AM(X)``; ``P, intra, inter = ContextPrior(X~)``; ``F = [X, conv(intra), conv(inter)]``;
    logits = classifier(dropout(conv3x3(F))). Training adds an auxiliary FCN head on res4 and the
    affinity loss on P. Returns logits at the input resolution (``stride`` times the feature).
    """

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        num_classes: int,
        ignore_value: int,
        in_feature: str,
        aux_in_feature: str,
        prior_size: Tuple[int, int],
        am_kernel_size: int,
        channels: int,
        aux_channels: int,
        dropout: float,
        norm: str,
        loss_weight: float,
        aux_loss_weight: float,
        affinity_loss_weight: float,
        unary_weight: float,
        global_weight: float,
    ):
        """
        Args:
            input_shape: backbone output shapes; must contain ``in_feature`` and, when
                ``aux_loss_weight > 0``, ``aux_in_feature``.
            num_classes: K. ignore_value: label ignored by the CE losses and treated as an extra
                class by the ideal affinity map.
            prior_size: (h, w) of the ``in_feature`` map (the prior has N = h * w channels).
            Other arguments: see ``add_cpnet_config`` (MODEL.CPNET.*).
        """
        super().__init__()
        self.num_classes = num_classes
        self.ignore_value = ignore_value
        self.in_feature = in_feature
        self.aux_in_feature = aux_in_feature
        self.stride = input_shape[in_feature].stride
        self.loss_weight = loss_weight
        self.aux_loss_weight = aux_loss_weight
        self.affinity_loss_weight = affinity_loss_weight
        self.unary_weight = unary_weight
        self.global_weight = global_weight

        in_channels = input_shape[in_feature].channels
        self.aggregation = AggregationModule(in_channels, channels, am_kernel_size, norm)
        self.context_prior = ContextPriorLayer(channels, prior_size, norm)
        self.intra_conv = conv_norm_act(channels, channels, 1, norm=norm)
        self.inter_conv = conv_norm_act(channels, channels, 1, norm=norm)
        # The concatenation uses the backbone feature X, not the AM output X~ (authors' code).
        self.bottleneck = conv_norm_act(in_channels + 2 * channels, channels, 3, norm=norm)
        self.predictor = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(channels, num_classes, 1))
        self.aux_head = None
        if aux_loss_weight > 0:
            self.aux_stride = input_shape[aux_in_feature].stride
            self.aux_head = nn.Sequential(
                conv_norm_act(input_shape[aux_in_feature].channels, aux_channels, 3, norm=norm),
                nn.Dropout2d(dropout),
                nn.Conv2d(aux_channels, num_classes, 1),
            )

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        c = cfg.MODEL.CPNET
        hint = "see MODEL.RESNETS.OUT_FEATURES"
        check_backbone_features("MODEL.CPNET.IN_FEATURE", c.IN_FEATURE, input_shape, hint)
        if c.AUX_LOSS_WEIGHT > 0:
            check_backbone_features(
                "MODEL.CPNET.AUX_IN_FEATURE", c.AUX_IN_FEATURE, input_shape, hint
            )
        return {
            "input_shape": input_shape,
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "ignore_value": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            "in_feature": c.IN_FEATURE,
            "aux_in_feature": c.AUX_IN_FEATURE,
            "prior_size": tuple(c.PRIOR_SIZE),
            "am_kernel_size": c.AM_KERNEL_SIZE,
            "channels": c.CHANNELS,
            "aux_channels": c.AUX_CHANNELS,
            "dropout": c.DROPOUT,
            "norm": c.NORM,
            "loss_weight": c.LOSS_WEIGHT,
            "aux_loss_weight": c.AUX_LOSS_WEIGHT,
            "affinity_loss_weight": c.AFFINITY_LOSS_WEIGHT,
            "unary_weight": c.UNARY_WEIGHT,
            "global_weight": c.GLOBAL_WEIGHT,
        }

    def forward(self, features: Dict[str, torch.Tensor], targets: Optional[torch.Tensor] = None):
        """
        Args:
            features: backbone outputs; ``features[in_feature]`` is (B, C_in, h, w).
            targets: (B, H, W) long labels at the input size (training only).

        Returns:
            (logits (B, K, stride * h, stride * w), {}) at inference;
            (None, {"loss_sem_seg", "loss_aux", "loss_affinity"}) in training.
        """
        logits, prior = self.layers(features)
        if self.training:
            return None, self.losses(logits, prior, features, targets)
        x = features[self.in_feature]
        size = (x.shape[-2] * self.stride, x.shape[-1] * self.stride)
        return resize_and_crop(logits, size, factor=self.stride), {}

    def layers(self, features: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, K, h, w) at the feature's stride and the prior map P (B, N, N)."""
        x = features[self.in_feature]
        prior, intra, inter = self.context_prior(self.aggregation(x))
        fused = torch.cat([x, self.intra_conv(intra), self.inter_conv(inter)], dim=1)
        return self.predictor(self.bottleneck(fused)), prior

    def losses(self, logits, prior, features, targets) -> Dict[str, torch.Tensor]:
        """CE on the up-sampled logits, auxiliary CE (both 0 when every pixel is ignored), and the
        affinity loss on P against the ideal affinity map of the labels nearest-down-sampled to the
        prior's size."""
        size = tuple(targets.shape[-2:])
        up = resize_and_crop(logits, size, factor=self.stride)
        ce = cross_entropy_ignore(up, targets, self.ignore_value)
        losses = {"loss_sem_seg": self.loss_weight * ce}
        if self.aux_head is not None:
            aux_logits = self.aux_head(features[self.aux_in_feature])
            aux = resize_and_crop(aux_logits, size, factor=self.aux_stride)
            aux_ce = cross_entropy_ignore(aux, targets, self.ignore_value)
            losses["loss_aux"] = self.aux_loss_weight * aux_ce
        small = F.interpolate(targets[:, None].float(), size=logits.shape[-2:], mode="nearest")
        ideal = ideal_affinity_map(small[:, 0].long(), self.num_classes, self.ignore_value)
        aff = affinity_loss(prior, ideal, self.unary_weight, self.global_weight)
        losses["loss_affinity"] = self.affinity_loss_weight * aff
        return losses
