"""BatchNorm folding: a hand-worked 1x1 case, transposed convs, and whole blocks unchanged in
output."""

import pytest
import torch
from detectron2.layers import Conv2d, FrozenBatchNorm2d
from torch import nn

from d2_instseg.layers import NonBottleneck1d, UpsamplerBlock, fold_bn_into_conv, fuse_conv_bn


def _bn(channels, mean, var, gamma, beta, eps=0.0):
    bn = nn.BatchNorm2d(channels, eps=eps).eval()
    bn.running_mean.fill_(mean)
    bn.running_var.fill_(var)
    bn.weight.data.fill_(gamma)
    bn.bias.data.fill_(beta)
    return bn


def test_fold_1x1_by_hand():
    # conv: y = 2x + 1; bn: (y - 3) / sqrt(4) * 3 + 0.5  =>  3x - 2.5
    conv = nn.Conv2d(1, 1, 1)
    conv.weight.data.fill_(2.0)
    conv.bias.data.fill_(1.0)
    fold_bn_into_conv(conv, _bn(1, mean=3.0, var=4.0, gamma=3.0, beta=0.5))
    assert conv.weight.item() == pytest.approx(3.0)
    assert conv.bias.item() == pytest.approx(-2.5)


def test_fold_conv_without_bias_and_frozen_bn():
    # conv: y = -x (no bias); frozen bn: (y - 1) / sqrt(0.25 + 0) * 2 + 0  =>  -4x - 4
    conv = Conv2d(1, 1, 1, bias=False, norm=FrozenBatchNorm2d(1, eps=0.0))
    conv.weight.data.fill_(-1.0)
    conv.norm.running_mean.fill_(1.0)
    conv.norm.running_var.fill_(0.25)
    conv.norm.weight.fill_(2.0)
    conv.norm.bias.fill_(0.0)
    model = nn.Sequential(conv).eval()
    assert fuse_conv_bn(model) == 1
    assert conv.norm is None
    x = torch.tensor([[[[0.5, -2.0]]]])
    assert torch.allclose(model(x), torch.tensor([[[[-6.0, 4.0]]]]))


def test_fold_transposed_conv_scales_output_channels():
    # ConvTranspose2d weight is (C_in, C_out, kh, kw): the scale goes along dim 1.
    conv = nn.ConvTranspose2d(1, 2, 1, bias=False)
    conv.weight.data[:] = torch.tensor([1.0, 1.0]).reshape(1, 2, 1, 1)
    bn = nn.BatchNorm2d(2, eps=0.0).eval()
    bn.running_var[:] = torch.tensor([1.0, 4.0])
    fold_bn_into_conv(conv, bn)
    assert torch.allclose(conv.weight.flatten(), torch.tensor([1.0, 0.5]))


def test_sequential_and_declared_pairs_fold_without_changing_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        NonBottleneck1d(8, 0.0, 2),
        UpsamplerBlock(8, 4),
    )
    for m in model.modules():  # non-trivial statistics, as after training
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    x = torch.randn(2, 3, 10, 12)
    expected = model(x)
    assert fuse_conv_bn(model) == 4  # Sequential pair, two in NonBottleneck1d, one in Upsampler
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(model(x), expected, atol=1e-5)


def test_training_mode_is_refused():
    with pytest.raises(ValueError, match="eval mode"):
        fuse_conv_bn(nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)))
