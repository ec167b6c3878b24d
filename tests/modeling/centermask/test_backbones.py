"""CenterMask backbones: DLA-34 + IDA-up (backbone/dla.py) and Hourglass (backbone/hourglass.py)."""
import torch
import torch.nn.functional as F

from d2_instseg.modeling.backbone.hourglass import Hourglass
from d2_instseg.modeling.backbone.dla import (
    DLASeg,
    ModulatedDeformConv3x3,
)


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
