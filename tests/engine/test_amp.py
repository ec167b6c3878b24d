"""d2_instseg.engine.amp: which layers mixed-precision inference keeps in float32."""

import torch
from torch import nn

from d2_instseg.engine.amp import autocast_network, output_layers


class TwoHeads(nn.Module):
    """conv1 -> relu -> conv2 -> sigmoid is output "a"; conv1 -> conv3 -> flatten -> x 2 is "b";
    "c" is made by no layer (an arange)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.conv3 = (nn.Conv2d(3, 3, 1) for _ in range(3))

    def inference_network(self, x):
        y = self.conv1(x)
        return {
            "a": self.conv2(torch.relu(y)).sigmoid(),
            "b": self.conv3(y).flatten(1) * 2,
            "c": torch.arange(3.0),
        }


def test_output_layers_walk_back_to_the_layer_that_makes_each_output():
    net = TwoHeads()
    x = torch.randn(1, 3, 4, 4)
    with torch.no_grad():  # the walk turns gradients on itself
        found = output_layers(lambda: net.inference_network(x), net)
    assert found == [net.conv2, net.conv3]


def test_autocast_network_keeps_the_output_layers_in_float32():
    torch.manual_seed(0)
    net = TwoHeads()
    x = torch.randn(1, 3, 4, 4)
    with torch.no_grad():
        expected = net.inference_network(x)
    autocast_network(net, "cpu")
    seen = {}
    for name in ("conv1", "conv2", "conv3"):
        getattr(net, name).register_forward_hook(
            lambda m, args, out, name=name: seen.__setitem__(name, out.dtype)
        )
    with torch.no_grad():
        out = net.inference_network(x)
    assert seen == {"conv1": torch.bfloat16, "conv2": torch.float32, "conv3": torch.float32}
    assert all(v.dtype == torch.float32 for v in out.values())
    # conv1 in bfloat16 (8 significant bits: each rounding of x, its weight, its bias and its
    # output moves a value by at most u = 2^-8 of itself), so y is off by at most
    # 3u |W1| |x| + u |b1| + u |y| (a product of two rounded factors: (1 + u)^2 - 1 < 3u); the
    # float32 layers after it pass that on through |W| (sigmoid's slope is at most 1/4, "b" is
    # doubled).
    u = 2.0**-8
    w1, w3, w2 = (getattr(net, n).weight.flatten(1) for n in ("conv1", "conv3", "conv2"))
    x_col = x.flatten(2)[0]  # (3, 16)
    y = w1 @ x_col + net.conv1.bias[:, None]
    err_y = 3 * u * w1.abs() @ x_col.abs() + u * net.conv1.bias.abs()[:, None] + u * y.abs()
    err_a = 0.25 * w2.abs() @ err_y
    err_b = 2 * w3.abs() @ err_y
    assert ((out["a"] - expected["a"]).flatten(2)[0].abs() <= err_a + 1e-6).all()
    assert ((out["b"] - expected["b"]).view(3, 16).abs() <= err_b + 1e-6).all()
