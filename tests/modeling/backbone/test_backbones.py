"""Backbones: DLA-34 + IDA-up and Hourglass (CenterMask), the dilated ResNet (CPNet); ERFNet's are
in tests/layers/test_fuse.py and tests/modeling/spatial_embed."""

import pytest
import torch
import torch.nn.functional as F
from detectron2.layers import ShapeSpec

from d2_instseg import check_d2_instseg_config
from d2_instseg.modeling.backbone.dilated_resnet import build_dilated_resnet_backbone
from d2_instseg.modeling.backbone.dla import (
    DLASeg,
    ModulatedDeformConv3x3,
)
from d2_instseg.modeling.backbone.hourglass import Hourglass

from ...conftest import shapes_cfg


def test_dla34_structure_and_output_stride():
    """DLA-34: levels (1, 1, 1, 2, 2, 1), channels (16 ... 512); the heads read level-2 channels
    (64) at stride 4. An odd multiple of 32 (96 x 160) gives a 24 x 40 map."""
    model = DLASeg(deformable=False)
    assert model.output_shape()["dla2"].channels == 64 and model.output_shape()["dla2"].stride == 4
    assert model.size_divisibility == 32
    # Level 3 is a 2-level tree: its first sub-tree is itself a tree of two blocks.
    assert type(model.base.level3.tree1).__name__ == "Tree"
    assert type(model.base.level2.tree1).__name__ == "BasicBlock"
    with torch.no_grad():
        out = DLASeg(channels=(4, 4, 8, 8, 16, 16), deformable=True)(torch.randn(1, 3, 96, 160))
    assert out["dla2"].shape == (1, 8, 24, 40)


def test_dla34_every_parameter_gets_a_gradient():
    """DistributedDataParallel stops on a parameter that no loss reaches: a backward pass from
    the output gives every DLA-34 parameter a gradient (the deeper trees have no projection of
    their own, which their first sub-tree would ignore). Level 3 and 4 are the 2-level trees."""
    model = DLASeg(channels=(4, 4, 8, 8, 16, 16), deformable=True)
    assert not hasattr(model.base.level3, "project") and not hasattr(model.base.level4, "project")
    assert hasattr(model.base.level3.tree1, "project")  # a level-1 tree: its block's residual
    model(torch.randn(1, 3, 64, 64))["dla2"].square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_deformable_conv_starts_as_half_a_plain_conv():
    """Offsets and modulation logits start at 0, so DCNv2 samples the regular grid with mask
    sigmoid(0) = 0.5: output = 0.5 * conv(x, W) + b."""
    torch.manual_seed(0)
    conv = ModulatedDeformConv3x3(3, 5)
    torch.nn.init.normal_(conv.bias)
    x = torch.randn(2, 3, 7, 9)
    expected = 0.5 * F.conv2d(x, conv.weight, padding=1) + conv.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(conv(x), expected, atol=1e-5, rtol=1e-5)


def test_hourglass_stacks_and_stride():
    """A 2-stack hourglass with 2 down-samplings: stem stride 4, so a 64 x 96 input (multiple of
    4 * 2^2 = 16) gives 16 x 24 maps; one output per stack plus "hg" = the last stack."""
    model = Hourglass(num_stacks=2, dims=(8, 8, 16), modules=(1, 1, 2))
    assert model.size_divisibility == 16
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96))
    assert set(out) == {"hg0", "hg1", "hg"}
    assert out["hg0"].shape == out["hg"].shape == (1, 256, 16, 24)
    assert out["hg"] is out["hg1"]
    assert model.output_shape()["hg"].stride == 4


@pytest.mark.parametrize("depth, res4, res5", [(18, 2, 4), (18, 1, 2), (50, 2, 4), (50, 1, 1)])
def test_dilated_resnet_strides_and_dilations(depth, res4, res5):
    """Dilating a stage replaces its stride 2: (res4, res5) dilations (2, 4) give output stride 8
    at res4 and res5, (1, 2) stride 16 at res5, (1, 1) Detectron2's usual 32. The 3x3 convs of a
    dilated stage have dilation = padding = its dilation (BasicBlock: both convs; bottleneck:
    conv2), so each stage keeps its input size; 2 images of 96 x 128 give 12 x 16 at stride 8."""
    cfg = shapes_cfg(
        "configs/shapes/cpnet.yaml",
        "MODEL.RESNETS.DEPTH", depth,
        "MODEL.RESNETS.RES4_DILATION", res4,
        "MODEL.RESNETS.RES5_DILATION", res5,
        "MODEL.RESNETS.RES2_OUT_CHANNELS", 64 if depth >= 50 else 32,
        "MODEL.RESNETS.OUT_FEATURES", ["res2", "res3", "res4", "res5"],
    )  # fmt: skip
    check_d2_instseg_config(cfg)
    backbone = build_dilated_resnet_backbone(cfg, ShapeSpec(channels=3))
    res4_stride = 8 * (2 if res4 == 1 else 1)
    res5_stride = res4_stride * (2 if res5 == res4 else 1)
    expected = {"res2": 4, "res3": 8, "res4": res4_stride, "res5": res5_stride}
    assert {k: v.stride for k, v in backbone.output_shape().items()} == expected
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 96, 128))
    for name, stride in expected.items():
        assert out[name].shape[-2:] == (96 // stride, 128 // stride)
    for stage, dilation in (("res4", res4), ("res5", res5)):
        block = getattr(backbone, stage)[0]
        convs = [block.conv1, block.conv2] if depth < 50 else [block.conv2]
        assert all(c.dilation == (dilation, dilation) == c.padding for c in convs)


def test_dilated_resnet_rejects_res5_not_following_res4():
    """res4 dilated by 2 needs res5 dilated by 4 (else res5 would shrink the map again)."""
    cfg = shapes_cfg("configs/shapes/cpnet.yaml", "MODEL.RESNETS.RES5_DILATION", 2)
    with pytest.raises(ValueError, match="MODEL.RESNETS.RES5_DILATION=2"):
        check_d2_instseg_config(cfg)
