"""The five CenterMask heads on the stride-R feature map, each CenterNet-style: conv3x3, ReLU,
conv1x1.

Shape shorthand:
    N: images, F: input feature channels, H x W: feature map (output-stride pixels), C: classes,
    S: local shape side, C_s: saliency channels (1 or C), K: objects, centers are (x, y).
"""
import math
from typing import Dict

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from torch import nn

__all__ = ["CenterMaskHead", "MASK_BRANCHES"]

# Which of local shape L and global saliency G build the mask (the paper's ablation).
MASK_BRANCHES = ("both", "shape", "saliency")


def _hidden(in_channels: int, head_conv: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, head_conv, 3, padding=1), nn.ReLU(inplace=True))


def _head(in_channels: int, head_conv: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(_hidden(in_channels, head_conv), nn.Conv2d(head_conv, out_channels, 1))


class CenterMaskHead(nn.Module):
    """Heatmap (C), offset (2), size (2), local shape (S^2) and global saliency (C_s) heads.

    The local shape head's last 1x1 conv is applied only at the K centers (:meth:`shapes_at`): a 1x1
    conv at one pixel is a linear map of that pixel's features, so this equals reading the dense
    (N, S^2, H, W) output at the centers without computing S^2 channels everywhere.
    """

    @configurable
    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        head_conv: int = 256,
        shape_size: int = 32,
        mask_branches: str = "both",
        saliency_class_specific: bool = False,
        prior_prob: float = 0.1,
    ):
        """
        Args:
            in_channels: F, channels of the feature map.
            num_classes: C, heatmap channels.
            head_conv: hidden channels of every head.
            shape_size: S, the local shape is an S x S map.
            mask_branches: "both", "shape" (no saliency head) or "saliency" (no local shape head).
            saliency_class_specific: C saliency channels if True, else 1.
            prior_prob: initial sigmoid of the heatmap (bias -log((1 - p) / p); 0.1 gives -2.19).
        """
        super().__init__()
        if mask_branches not in MASK_BRANCHES:
            raise ValueError(
                f"MODEL.CENTERMASK.MASK_BRANCHES must be one of {MASK_BRANCHES}, "
                f"got {mask_branches!r}"
            )
        self.shape_size = shape_size
        self.heatmap = _head(in_channels, head_conv, num_classes)
        self.offset = _head(in_channels, head_conv, 2)
        self.size = _head(in_channels, head_conv, 2)
        self.shape_hidden = None
        self.saliency = None
        if mask_branches in ("both", "shape"):
            self.shape_hidden = _hidden(in_channels, head_conv)
            self.shape_out = nn.Conv2d(head_conv, shape_size**2, 1)
        if mask_branches in ("both", "saliency"):
            saliency_channels = num_classes if saliency_class_specific else 1
            self.saliency = _head(in_channels, head_conv, saliency_channels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.zeros_(m.bias)
        nn.init.constant_(self.heatmap[-1].bias, -math.log((1 - prior_prob) / prior_prob))

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        cm = cfg.MODEL.CENTERMASK
        return {
            "in_channels": input_shape.channels,
            "num_classes": cm.NUM_CLASSES,
            "head_conv": cm.HEAD_CONV,
            "shape_size": cm.SHAPE_SIZE,
            "mask_branches": cm.MASK_BRANCHES,
            "saliency_class_specific": cm.SALIENCY_CLASS_SPECIFIC,
            "prior_prob": cm.HEATMAP_PRIOR_PROB,
        }

    def forward(self, features: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            features: (N, F, H, W).
        Returns:
            dict with "heatmap" (N, C, H, W) logits, "offset" (N, 2, H, W) sub-pixel (dx, dy),
            "size" (N, 2, H, W) box (w, h) in feature pixels; "shape_features" (N, head_conv, H, W)
            when the local shape branch is on; "saliency" (N, C_s, H, W) logits when saliency is on.
        """
        out = {
            "heatmap": self.heatmap(features),
            "offset": self.offset(features),
            "size": self.size(features),
        }
        if self.shape_hidden is not None:
            out["shape_features"] = self.shape_hidden(features)
        if self.saliency is not None:
            out["saliency"] = self.saliency(features)
        return out

    def shapes_at(
        self, shape_features: torch.Tensor, batch_idx: torch.Tensor, centers: torch.Tensor
    ) -> torch.Tensor:
        """Local shape logits L of each object, from the S^2 vector at its center.

        Args:
            shape_features: (N, head_conv, H, W) from :meth:`forward`.
            batch_idx: (K,) long image of each object.
            centers: (K, 2) long integer center (x, y) in feature pixels.
        Returns:
            (K, S, S) logits; row-major over the box (row 0 = top of the box).
        """
        vectors = shape_features[batch_idx, :, centers[:, 1], centers[:, 0]]  # (K, head_conv)
        weight = self.shape_out.weight.flatten(1)
        logits = F.linear(vectors, weight, self.shape_out.bias)
        return logits.view(-1, self.shape_size, self.shape_size)
