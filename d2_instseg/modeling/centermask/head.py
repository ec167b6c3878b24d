"""The five CenterMask heads on the stride-R feature map, each CenterNet-style: conv3x3, ReLU,
conv1x1. The heatmap and the saliency map are needed everywhere; the offset, size and local shape
heads are only ever read at object centers, so they are evaluated there (:meth:`at_points`).

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

from .config import MASK_BRANCHES

__all__ = ["CenterMaskHead", "patches_at"]


def _hidden(in_channels: int, head_conv: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, head_conv, 3, padding=1), nn.ReLU(inplace=True))


def patches_at(
    features: torch.Tensor, batch_idx: torch.Tensor, centers: torch.Tensor
) -> torch.Tensor:
    """The 3x3 neighbourhood of each point, zeros outside the map, flattened in the order of a
    (out, F, 3, 3) conv weight's ``flatten(1)``: a padded 3x3 conv at the point is then one linear
    map.

    Args:
        features: (N, F, H, W).
        batch_idx: (K,) long image of each point.
        centers: (K, 2) long integer (x, y).
    Returns:
        (K, F * 9).
    """
    n, f, h, w = features.shape
    step = torch.arange(-1, 2, device=features.device)
    ys = centers[:, 1, None] + step  # (K, 3)
    xs = centers[:, 0, None] + step
    inside = ((ys >= 0) & (ys < h))[:, :, None] & ((xs >= 0) & (xs < w))[:, None, :]  # (K, 3, 3)
    values = features[
        batch_idx[:, None, None], :, ys.clamp(0, h - 1)[:, :, None], xs.clamp(0, w - 1)[:, None, :]
    ]  # (K, 3, 3, F): the advanced indices' dimensions come first
    values = values * inside[..., None].to(values.dtype)
    return values.permute(0, 3, 1, 2).reshape(-1, f * 9)


def _head(in_channels: int, head_conv: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(_hidden(in_channels, head_conv), nn.Conv2d(head_conv, out_channels, 1))


class CenterMaskHead(nn.Module):
    """Heatmap (C), offset (2), size (2), local shape (S^2) and global saliency (C_s) heads.

    :meth:`forward` computes the two dense maps (heatmap, saliency). :meth:`at_points` computes the
    offset, size and local shape heads only at given centers (the ground-truth ones in training, the
    decoded peaks at inference): a padded 3x3 conv followed by ReLU and a 1x1 conv, evaluated at one
    pixel, is a linear map of that pixel's 3x3 neighbourhood, then ReLU, then a linear map. This
    equals reading dense (N, 2 + 2 + S^2, H, W) outputs at the centers, in values and gradients,
    without computing three 3x3 convs over the whole map. The parameters are the dense heads'
    (same names, so checkpoints are interchangeable).
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
            dict with "heatmap" (N, C, H, W) logits, and "saliency" (N, C_s, H, W) logits when the
            saliency branch is on.
        """
        out = {"heatmap": self.heatmap(features)}
        if self.saliency is not None:
            out["saliency"] = self.saliency(features)
        return out

    def at_points(
        self, features: torch.Tensor, batch_idx: torch.Tensor, centers: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        """Offset, size and local shape heads at the given centers.

        Args:
            features: (N, F, H, W), the map :meth:`forward` read.
            batch_idx: (K,) long image of each object.
            centers: (K, 2) long integer center (x, y) in feature pixels.
        Returns:
            dict with "offset" (K, 2) sub-pixel (dx, dy), "size" (K, 2) box (w, h) in feature
            pixels, and "shape" (K, S, S) local shape logits (row-major over the box, row 0 = top)
            when the local shape branch is on.
        """
        # (name, conv3x3, conv1x1) of each point head: the first convs share one patch product.
        heads = [
            ("offset", self.offset[0][0], self.offset[1]),
            ("size", self.size[0][0], self.size[1]),
        ]
        if self.shape_hidden is not None:
            heads.append(("shape", self.shape_hidden[0], self.shape_out))
        weight = torch.cat([first.weight.flatten(1) for _, first, _ in heads])
        bias = torch.cat([first.bias for _, first, _ in heads])
        hidden = F.relu(F.linear(patches_at(features, batch_idx, centers), weight, bias))
        hidden = hidden.split([first.out_channels for _, first, _ in heads], dim=1)
        result = {
            name: F.linear(x, last.weight.flatten(1), last.bias)
            for x, (name, _, last) in zip(hidden, heads)
        }
        if "shape" in result:
            result["shape"] = result["shape"].view(-1, self.shape_size, self.shape_size)
        return result
