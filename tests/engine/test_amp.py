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
    # conv1's output rounded to bfloat16 (8 significant bits: relative error <= 2^-9), then
    # float32 layers of unit-scale weights: the outputs differ from float32 by well under 1e-2
    assert torch.allclose(out["a"], expected["a"], atol=1e-2)
    assert torch.allclose(out["b"], expected["b"], atol=1e-2)
