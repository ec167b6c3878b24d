"""DLA-34 with iterative deep aggregation up to stride 4 (Yu et al., "Deep Layer Aggregation", CVPR
2018), as CenterNet's ``DLASeg`` uses it: hierarchical trees of residual blocks (HDA), then DLA-up
and IDA-up nodes that bring strides 8..32 back to stride 4. The up-sampling nodes use modulated
deformable 3x3 convs (DCNv2, through ``d2_instseg.layers.modulated_deform_conv2d``, the function of
``torchvision.ops.deform_conv2d`` 2-4x faster on CPU) or plain 3x3 convs.

Shape shorthand: N images, C_i channels of level i, H x W input; level i has stride 2^i.
"""

import math
from typing import List, Optional, Sequence

import torch
from detectron2.layers import ShapeSpec, get_norm
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import nn

from ...layers.conv import conv_norm_act
from ...layers.deform_conv import modulated_deform_conv2d
from ...layers.upsample import BilinearUpsample

__all__ = ["DLA", "DLASeg", "ModulatedDeformConv3x3", "build_dla_backbone"]


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual; the residual may come from outside (the tree's projection)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = conv_norm_act(in_ch, out_ch, 3, stride, norm)
        self.conv2 = conv_norm_act(out_ch, out_ch, 3, 1, norm, relu=False)

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        residual = x if residual is None else residual
        # In place on the conv's fresh output: two full-size tensors fewer per block (CenterMask at
        # 512 x 512 0.985x with the same in UpNodeConv; the convs' backward needs no output).
        out = self.conv2(self.conv1(x))
        out += residual
        return torch.relu_(out)


class Root(nn.Module):
    """Aggregation node: 1x1 conv + norm + ReLU over the concatenation of its children."""

    def __init__(self, in_ch: int, out_ch: int, norm: str):
        super().__init__()
        self.conv = conv_norm_act(in_ch, out_ch, 1, 1, norm)

    def forward(self, *children: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat(children, dim=1))


class Tree(nn.Module):
    """Hierarchical deep aggregation tree of ``levels`` levels of BasicBlocks.

    A level-1 tree is two blocks merged by a Root; a deeper tree chains two sub-trees and its last
    Root also merges the first sub-tree's output and, at a ``level_root``, the stage input.
    """

    def __init__(
        self,
        levels: int,
        in_ch: int,
        out_ch: int,
        stride: int,
        norm: str,
        level_root: bool = False,
        root_dim: int = 0,
    ):
        super().__init__()
        root_dim = root_dim or 2 * out_ch
        if level_root:
            root_dim += in_ch
        self.levels = levels
        self.level_root = level_root
        if levels == 1:
            self.tree1 = BasicBlock(in_ch, out_ch, stride, norm)
            self.tree2 = BasicBlock(out_ch, out_ch, 1, norm)
            self.root = Root(root_dim, out_ch, norm)
        else:
            self.tree1 = Tree(levels - 1, in_ch, out_ch, stride, norm)
            self.tree2 = Tree(levels - 1, out_ch, out_ch, 1, norm, root_dim=root_dim + out_ch)
        self.downsample = nn.MaxPool2d(stride, stride=stride) if stride > 1 else nn.Identity()
        # The projection of the stage input is the residual of a level-1 tree's first block. The
        # authors' DLA also builds (and computes) one at deeper trees, whose first sub-tree makes
        # its own and ignores it: an unused parameter stops DistributedDataParallel training
        # ("parameters that were not used in producing loss"), so it exists only where it is used.
        if levels == 1:
            self.project = (
                conv_norm_act(in_ch, out_ch, 1, 1, norm, relu=False)
                if in_ch != out_ch
                else nn.Identity()
            )

    def forward(
        self, x: torch.Tensor, children: Optional[List[torch.Tensor]] = None
    ) -> torch.Tensor:
        children = [] if children is None else children
        bottom = self.downsample(x)
        if self.level_root:
            children.append(bottom)
        if self.levels == 1:
            x1 = self.tree1(x, self.project(bottom))
            return self.root(self.tree2(x1), x1, *children)
        x1 = self.tree1(x)
        children.append(x1)
        return self.tree2(x1, children=children)


class DLA(nn.Module):
    """DLA encoder: a 7x7 stem, two conv levels (strides 1, 2) and four trees (strides 4..32).

    forward: (N, 3, H, W) -> list of 6 maps, level i of shape (N, C_i, H / 2^i, W / 2^i).
    """

    def __init__(self, levels: Sequence[int], channels: Sequence[int], norm: str):
        super().__init__()
        if len(levels) != 6 or len(channels) != 6:
            raise ValueError("MODEL.DLA.LEVELS and .CHANNELS need 6 entries each")
        self.channels = list(channels)
        self.base_layer = conv_norm_act(3, channels[0], 7, 1, norm)
        self.level0 = self._conv_level(channels[0], channels[0], levels[0], 1, norm)
        self.level1 = self._conv_level(channels[0], channels[1], levels[1], 2, norm)
        self.level2 = Tree(levels[2], channels[1], channels[2], 2, norm, level_root=False)
        self.level3 = Tree(levels[3], channels[2], channels[3], 2, norm, level_root=True)
        self.level4 = Tree(levels[4], channels[3], channels[4], 2, norm, level_root=True)
        self.level5 = Tree(levels[5], channels[4], channels[5], 2, norm, level_root=True)

    @staticmethod
    def _conv_level(in_ch: int, out_ch: int, convs: int, stride: int, norm: str) -> nn.Module:
        layers = [conv_norm_act(in_ch, out_ch, 3, stride, norm)]
        layers += [conv_norm_act(out_ch, out_ch, 3, 1, norm) for _ in range(convs - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.base_layer(x)
        outs = []
        for i in range(6):
            x = getattr(self, f"level{i}")(x)
            outs.append(x)
        return outs


class ModulatedDeformConv3x3(nn.Module):
    """DCNv2 3x3 conv (stride 1): a zero-initialised 3x3 conv predicts 2*9 offsets and 9 modulation
    logits; ``modulated_deform_conv2d`` samples the input with them. At init it equals a plain
    3x3 conv scaled by sigmoid(0) = 0.5, as DCNv2 does.

    forward: (N, C_in, H, W) -> (N, C_out, H, W).
    """

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.offset_mask = nn.Conv2d(in_ch, 3 * 9, 3, padding=1)
        nn.init.zeros_(self.offset_mask.weight)
        nn.init.zeros_(self.offset_mask.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dy_dx_mask = self.offset_mask(x)
        offset = dy_dx_mask[:, :18]
        mask = torch.sigmoid(dy_dx_mask[:, 18:])
        return modulated_deform_conv2d(x, offset, self.weight, self.bias, mask, padding=1)


class UpNodeConv(nn.Module):
    """The conv of an aggregation node: 3x3 (deformable or plain) + norm + ReLU."""

    conv_bn_pairs = (("conv", "norm"),)  # foldable at inference when norm is a BatchNorm

    def __init__(self, in_ch: int, out_ch: int, deformable: bool, norm: str):
        super().__init__()
        if deformable:
            self.conv = ModulatedDeformConv3x3(in_ch, out_ch)
        else:
            self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm = get_norm(norm, out_ch) or nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu_(self.norm(self.conv(x)))  # in place: see BasicBlock


class IDAUp(nn.Module):
    """Iterative deep aggregation: maps ``layers[start+1:end]`` (channels ``in_channels[1:]``, each
    ``up_factors[i]`` times coarser than ``layers[start]``) to ``out_ch`` channels at the resolution
    of ``layers[start]``, each merged with its finer neighbour:
    ``layers[i] = node(up(proj(layers[i])) + layers[i - 1])``. Modifies ``layers`` in place."""

    def __init__(
        self,
        out_ch: int,
        in_channels: Sequence[int],
        up_factors: Sequence[int],
        deformable: bool,
        norm: str,
    ):
        super().__init__()
        self.proj = nn.ModuleList()
        self.up = nn.ModuleList()
        self.node = nn.ModuleList()
        for ch, f in zip(in_channels[1:], up_factors[1:]):
            self.proj.append(UpNodeConv(ch, out_ch, deformable, norm))
            self.up.append(BilinearUpsample(out_ch, int(f)))
            self.node.append(UpNodeConv(out_ch, out_ch, deformable, norm))

    def forward(self, layers: List[torch.Tensor], start: int, end: int) -> None:
        for i in range(start + 1, end):
            j = i - start - 1
            layers[i] = self.node[j](self.up[j](self.proj[j](layers[i])) + layers[i - 1])


class DLAUp(nn.Module):
    """DLA-up: IDA stages from the coarsest pair of levels down to ``first_level``; returns the
    finest aggregated map of each stage, finest first (each of shape (N, channels[i], ...))."""

    def __init__(self, first_level: int, channels: Sequence[int], deformable: bool, norm: str):
        super().__init__()
        self.first_level = first_level
        channels = list(channels)
        in_channels = list(channels)
        scales = [2**i for i in range(len(channels))]
        self.ida = nn.ModuleList()
        for i in range(len(channels) - 1):
            j = -i - 2
            factors = [s // scales[j] for s in scales[j:]]
            self.ida.append(IDAUp(channels[j], in_channels[j:], factors, deformable, norm))
            scales[j + 1 :] = [scales[j]] * len(scales[j + 1 :])
            in_channels[j + 1 :] = [channels[j]] * len(in_channels[j + 1 :])

    def forward(self, layers: List[torch.Tensor]) -> List[torch.Tensor]:
        layers = list(layers)
        outs = [layers[-1]]
        for i, ida in enumerate(self.ida):
            ida(layers, len(layers) - i - 2, len(layers))
            outs.insert(0, layers[-1])
        return outs


class DLASeg(Backbone):
    """CenterNet's DLASeg (down ratio 4, last level 5) as a Detectron2 backbone.

    forward: (N, 3, H, W), H and W multiples of 32 -> {"dla2": (N, C_2, H / 4, W / 4)}.
    """

    def __init__(
        self,
        *,
        levels: Sequence[int] = (1, 1, 1, 2, 2, 1),
        channels: Sequence[int] = (16, 32, 64, 128, 256, 512),
        deformable: bool = True,
        norm: str = "BN",
    ):
        super().__init__()
        first_level, last_level = 2, 5
        self.base = DLA(levels, channels, norm)
        self.dla_up = DLAUp(first_level, channels[first_level:], deformable, norm)
        n_up = last_level - first_level
        self.ida_up = IDAUp(
            channels[first_level],
            channels[first_level:last_level],
            [2**i for i in range(n_up)],
            deformable,
            norm,
        )
        self._n_up = n_up
        self._out_features = ["dla2"]
        self._out_feature_channels = {"dla2": channels[first_level]}
        self._out_feature_strides = {"dla2": 2**first_level}
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                nn.init.zeros_(m.bias)

    @property
    def size_divisibility(self) -> int:
        return 32

    def forward(self, x: torch.Tensor):
        levels = self.base(x)
        up = self.dla_up(levels)
        y = [t.clone() for t in up[: self._n_up]]
        self.ida_up(y, 0, len(y))
        return {"dla2": y[-1]}


@BACKBONE_REGISTRY.register()
def build_dla_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """DLA-34 (or the levels/channels of ``MODEL.DLA``) with IDA-up to stride 4."""
    if input_shape.channels != 3:
        raise ValueError(f"DLA expects 3 input channels, got {input_shape.channels}")
    dla = cfg.MODEL.DLA
    return DLASeg(
        levels=dla.LEVELS, channels=dla.CHANNELS, deformable=dla.DEFORMABLE, norm=dla.NORM
    )
