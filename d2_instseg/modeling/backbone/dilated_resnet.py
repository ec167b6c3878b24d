"""Dilated ResNet (output stride 8 or 16) for dense prediction, ResNet-18/34 included.

Detectron2's ``build_resnet_backbone`` dilates res5 only, and not for ResNet-18/34; the DeepLab
project's builder dilates res4 and res5 but only for ResNet-50 and deeper. This builder dilates
res4 (``MODEL.RESNETS.RES4_DILATION``) and res5 (``RES5_DILATION``) for every depth, replacing their
stride: dilations (1, 1, 2, 4) give output stride 8 as in CPNet / PSPNet / DeepLab. ResNet-18/34
may also be narrowed (STEM_OUT_CHANNELS = RES2_OUT_CHANNELS = 32 for CPU configs).
"""

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem, BottleneckBlock, ResNet

from .config import RESNET_BLOCKS

__all__ = ["DilatedBasicBlock", "build_dilated_resnet_backbone"]


class DilatedBasicBlock(BasicBlock):
    """Detectron2's BasicBlock (two 3x3 convs) with both convs dilated (padding = dilation, so the
    spatial size is kept)."""

    def __init__(self, in_channels, out_channels, *, stride=1, norm="BN", dilation=1):
        super().__init__(in_channels, out_channels, stride=stride, norm=norm)
        for conv in (self.conv1, self.conv2):
            conv.dilation = (dilation, dilation)
            conv.padding = (dilation, dilation)


@BACKBONE_REGISTRY.register()
def build_dilated_resnet_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """ResNet from ``MODEL.RESNETS`` with res4 / res5 dilated instead of strided.

    Keys read: DEPTH (18, 34, 50, 101, 152), NORM, STEM_OUT_CHANNELS, RES2_OUT_CHANNELS,
    NUM_GROUPS, WIDTH_PER_GROUP, STRIDE_IN_1X1, RES4_DILATION (1 or 2), RES5_DILATION (1, 2 or 4;
    4 when res4 is dilated), OUT_FEATURES, and MODEL.BACKBONE.FREEZE_AT.
    """
    r = cfg.MODEL.RESNETS
    basic = r.DEPTH in (18, 34)
    stem = BasicStem(input_shape.channels, r.STEM_OUT_CHANNELS, norm=r.NORM)
    in_channels, out_channels = r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS
    bottleneck_channels = r.NUM_GROUPS * r.WIDTH_PER_GROUP
    stages = []
    for idx, num_blocks in enumerate(RESNET_BLOCKS[r.DEPTH]):
        dilation = {2: r.RES4_DILATION, 3: r.RES5_DILATION}.get(idx, 1)
        # A dilated stage keeps the resolution of the previous one.
        first_stride = 1 if idx == 0 or dilation > 1 else 2
        kwargs = dict(
            num_blocks=num_blocks,
            stride_per_block=[first_stride] + [1] * (num_blocks - 1),
            in_channels=in_channels,
            out_channels=out_channels,
            norm=r.NORM,
            dilation=dilation,
        )
        if basic:
            kwargs["block_class"] = DilatedBasicBlock
        else:
            kwargs.update(
                block_class=BottleneckBlock,
                bottleneck_channels=bottleneck_channels,
                stride_in_1x1=r.STRIDE_IN_1X1,
                num_groups=r.NUM_GROUPS,
            )
        stages.append(ResNet.make_stage(**kwargs))
        in_channels, out_channels = out_channels, out_channels * 2
        bottleneck_channels *= 2
    return ResNet(stem, stages, out_features=r.OUT_FEATURES, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)
