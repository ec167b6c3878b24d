"""Hourglass-104 (Newell et al. 2016, in the CornerNet / CenterNet ``large_hourglass`` form): a
stride-4 stem, then stacked hourglasses of residual blocks (5 down-samplings by stride-2 residuals,
nearest up-sampling, skip branches added), joined by 1x1 conv + norm merges.

Shape shorthand: N images, H x W input (multiple of 128); each hourglass output is
(N, 256, H/4, W/4).
"""

from typing import Dict, Sequence

import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import nn
from torch.nn import functional as F

from ...layers.conv import conv_norm_act

__all__ = ["Hourglass", "build_hourglass_backbone"]


class Residual(nn.Module):
    """3x3 conv-norm-ReLU, 3x3 conv-norm, plus the (1x1 conv-norm projected) skip, then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = conv_norm_act(in_ch, out_ch, 3, stride, norm, True)
        self.conv2 = conv_norm_act(out_ch, out_ch, 3, 1, norm, False)
        self.skip = (
            conv_norm_act(in_ch, out_ch, 1, stride, norm, False)
            if stride != 1 or in_ch != out_ch
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.skip(x))


def _residuals(in_ch: int, out_ch: int, count: int, stride: int, norm: str) -> nn.Sequential:
    """``count`` residual blocks; the first changes channels / stride."""
    blocks = [Residual(in_ch, out_ch, stride, norm)]
    blocks += [Residual(out_ch, out_ch, 1, norm) for _ in range(count - 1)]
    return nn.Sequential(*blocks)


class HourglassModule(nn.Module):
    """One recursive hourglass level: skip = residuals(x); low = deeper(residuals_s2(x));
    out = skip + upsample2(residuals(low)). ``dims[0]``/``modules[0]`` are this level's
    channels/blocks."""

    def __init__(self, dims: Sequence[int], modules: Sequence[int], norm: str):
        super().__init__()
        cur, nxt = dims[0], dims[1]
        self.skip = _residuals(cur, cur, modules[0], 1, norm)
        self.down = _residuals(cur, nxt, modules[0], 2, norm)
        if len(dims) > 2:
            self.inner = HourglassModule(dims[1:], modules[1:], norm)
        else:
            self.inner = _residuals(nxt, nxt, modules[1], 1, norm)
        # Back to this level's channels: the last block of the reversed stack changes channels.
        self.up = nn.Sequential(
            *[Residual(nxt, nxt, 1, norm) for _ in range(modules[0] - 1)],
            Residual(nxt, cur, 1, norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.up(self.inner(self.down(x)))
        return self.skip(x) + F.interpolate(low, scale_factor=2.0, mode="nearest")


class Hourglass(Backbone):
    """Stacked hourglass network (Hourglass-104: 2 stacks, dims 256-256-384-384-384-512, blocks
    2-2-2-2-2-4). Outputs ``hg{i}`` for every stack i, the last one also as ``"hg"``; each (N, 256,
    H/4, W/4). CenterNet supervises every stack; CenterMaskPoint reads one (``"hg"``)."""

    def __init__(
        self,
        *,
        num_stacks: int = 2,
        dims: Sequence[int] = (256, 256, 384, 384, 384, 512),
        modules: Sequence[int] = (2, 2, 2, 2, 2, 4),
        norm: str = "BN",
        cnv_dim: int = 256,
    ):
        super().__init__()
        if len(dims) != len(modules) or len(dims) < 2:
            raise ValueError(
                "MODEL.HOURGLASS.DIMS and .MODULES need the same length (>= 2), got "
                f"{list(dims)} and {list(modules)}"
            )
        self.num_stacks = num_stacks
        self.stem = nn.Sequential(
            conv_norm_act(3, 128, 7, 2, norm, True), Residual(128, dims[0], 2, norm)
        )
        self.hourglasses = nn.ModuleList(
            [HourglassModule(dims, modules, norm) for _ in range(num_stacks)]
        )
        self.cnvs = nn.ModuleList(
            [conv_norm_act(dims[0], cnv_dim, 3, 1, norm, True) for _ in range(num_stacks)]
        )
        # Merges feeding stack i + 1: 1x1 conv-norm of its input and of its output, summed.
        self.merge_inter = nn.ModuleList(
            [conv_norm_act(dims[0], dims[0], 1, 1, norm, False) for _ in range(num_stacks - 1)]
        )
        self.merge_cnv = nn.ModuleList(
            [conv_norm_act(cnv_dim, dims[0], 1, 1, norm, False) for _ in range(num_stacks - 1)]
        )
        self.inters = nn.ModuleList(
            [Residual(dims[0], dims[0], 1, norm) for _ in range(num_stacks - 1)]
        )
        self._depth = len(dims) - 1
        self._out_features = [f"hg{i}" for i in range(num_stacks)] + ["hg"]
        self._out_feature_channels = {name: cnv_dim for name in self._out_features}
        self._out_feature_strides = {name: 4 for name in self._out_features}

    @property
    def size_divisibility(self) -> int:
        return 4 * 2**self._depth

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        inter = self.stem(x)
        outs = {}
        for i, hourglass in enumerate(self.hourglasses):
            cnv = self.cnvs[i](hourglass(inter))
            outs[f"hg{i}"] = cnv
            if i < self.num_stacks - 1:
                inter = F.relu(self.merge_inter[i](inter) + self.merge_cnv[i](cnv))
                inter = self.inters[i](inter)
        outs["hg"] = outs[f"hg{self.num_stacks - 1}"]
        return outs


@BACKBONE_REGISTRY.register()
def build_hourglass_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """Hourglass-104 (``MODEL.HOURGLASS``), trained from scratch."""
    if input_shape.channels != 3:
        raise ValueError(f"Hourglass expects 3 input channels, got {input_shape.channels}")
    hg = cfg.MODEL.HOURGLASS
    return Hourglass(num_stacks=hg.NUM_STACKS, dims=hg.DIMS, modules=hg.MODULES, norm=hg.NORM)
