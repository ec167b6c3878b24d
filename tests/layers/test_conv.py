"""conv_norm_act: padding, stride, bias only without a norm, optional ReLU."""

import torch

from d2_instseg.layers import conv_norm_act


def test_shapes_bias_and_relu():
    with_norm = conv_norm_act(3, 4, 3, 2, "BN")
    assert with_norm.bias is None and isinstance(with_norm.norm, torch.nn.BatchNorm2d)
    assert with_norm(torch.randn(2, 3, 9, 10)).shape == (2, 4, 5, 5)  # "same" padding, stride 2

    plain = conv_norm_act(1, 1, 1, relu=False)
    plain.weight.data.fill_(-2.0)
    plain.bias.data.fill_(1.0)
    x = torch.tensor([[[[1.0, -1.0]]]])
    assert torch.equal(plain(x), torch.tensor([[[[-1.0, 3.0]]]]))  # -2x + 1, no ReLU
    relu = conv_norm_act(1, 1, 1)
    relu.load_state_dict(plain.state_dict())
    assert torch.equal(relu(x), torch.tensor([[[[0.0, 3.0]]]]))
