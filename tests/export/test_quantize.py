"""int8 quantisation's choice of float32 nodes: the layer that makes each output, found by walking
back through the ops between it and the output, and everything downstream of it."""

import onnx
import torch
from torch import nn

from d2_instseg.export.quantize import output_layers


class TwoHeads(nn.Module):
    """trunk conv -> relu -> (head conv -> sigmoid: "scores"), (flatten -> linear: "boxes"), and
    "peaks", the top-k indices of the scores (made by the same head conv, through TopK)."""

    def __init__(self):
        super().__init__()
        self.trunk, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 2, 1)
        self.fc = nn.Linear(4 * 8 * 8, 4)

    def forward(self, x):
        f = torch.relu(self.trunk(x))
        scores = torch.sigmoid(self.head(f))
        return scores, self.fc(f.flatten(1)), scores.flatten(1).topk(3).indices


def test_output_layers_are_the_last_weighted_node_of_each_output(tmp_path):
    path = str(tmp_path / "m.onnx")
    torch.onnx.export(TwoHeads().eval(), (torch.randn(1, 3, 8, 8),), path, dynamo=False,
                      opset_version=17, output_names=["scores", "boxes", "peaks"])  # fmt: skip
    nodes = {n.name: n for n in onnx.load(path).graph.node}
    found = output_layers(path)
    weighted = sorted(n for n in found if nodes[n].op_type in ("Conv", "Gemm"))
    # the 1x1 head conv (for "scores" and "peaks") and the linear layer (a Gemm); not the trunk
    assert sorted(nodes[n].op_type for n in weighted) == ["Conv", "Gemm"]
    assert any("head" in n for n in weighted) and not any("trunk" in n for n in found)
    # downstream of them: the sigmoid and the top-k; upstream: the trunk's relu is quantised
    ops = {nodes[n].op_type for n in found}
    assert {"Sigmoid", "TopK"} <= ops and "Relu" not in ops
