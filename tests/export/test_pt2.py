"""The pt2 export (``torch.export`` program, run by inductor with TEST.BACKEND "inductor") and its
PT2E x86 int8 version: parity with the eager Predictor at another size than exported, the layers
kept float in int8, a clear refusal for Mask R-CNN."""

import sys

import numpy as np
import pytest
import torch
from torch import nn

import d2_instseg
from d2_instseg.export import ExportedModel, read_sidecar
from d2_instseg.export.pt2 import output_layers, plain_convolutions, reshaped_weight_convolutions
from d2_instseg.export.quantize import quantize_int8_on_batches

from ..conftest import REPO, TRAINED_CENTERMASK, shapes_cfg
from .test_parity import CASES, IMAGE, assert_same_outputs
from .test_quantize import TwoHeads

sys.path.insert(0, f"{REPO}/tools")
import export_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def export_pt2(tmp_path, config, opts, weights, *extra):
    out = tmp_path / "pt2"
    argv = ["--config-file", f"{REPO}/{config}", "--format", "pt2", "--output", str(out)]
    argv += ["--size", "96x128", *extra, *map(str, opts), "MODEL.WEIGHTS", weights]
    assert export_model.main(argv) == 0
    return out


@pytest.fixture(scope="module")
def centermask_pt2(tmp_path_factory, trained_centermask):
    """(cfg, eager Predictor output on IMAGE, folder of model.pt2) of the trained CenterMask."""
    cfg, _, weights = trained_centermask
    cfg = cfg.clone()
    cfg.MODEL.WEIGHTS = weights
    out = export_pt2(
        tmp_path_factory.mktemp("cm"), TRAINED_CENTERMASK[0], TRAINED_CENTERMASK[1:], weights
    )
    return cfg, d2_instseg.Predictor(cfg)(IMAGE), out


def test_centermask_inductor_backend_parity_at_another_size(centermask_pt2):
    """Compiled by inductor (frozen weights), run at 128 x 192 (exported at 96 x 128): the eager
    Predictor's instances, masks IoU >= 0.99, scores within 1e-3."""
    cfg, eager, out = centermask_pt2
    cfg = cfg.clone()
    cfg.TEST.BACKEND, cfg.MODEL.WEIGHTS = "inductor", str(out / "model.pt2")
    predictor = d2_instseg.Predictor(cfg)
    assert predictor.model.backend == "inductor"
    assert read_sidecar(cfg.MODEL.WEIGHTS)["format"] == "pt2"
    assert_same_outputs(eager, predictor(IMAGE))


@pytest.mark.parametrize("name", ["spatial_embeddings", "cpnet"])
def test_pt2_export_parity_at_another_size(tmp_path, name):
    """The other model kinds as programs (run uncompiled: the export is what is tested here, the
    compiled path above): the eager Predictor's outputs at another size (CPNet: its fixed crop)."""
    config, opts = CASES[name]
    cfg = shapes_cfg(config, *opts)
    torch.manual_seed(0)
    model = d2_instseg.engine.Trainer.build_model(cfg)
    weights = str(tmp_path / "model.pth")
    torch.save({"model": model.state_dict()}, weights)
    cfg.MODEL.WEIGHTS = weights
    predictor = d2_instseg.Predictor(cfg)
    eager = predictor(IMAGE)
    out = export_pt2(tmp_path, config, opts, weights)
    predictor.model = ExportedModel(str(out / "model.pt2"), eager=True)
    assert_same_outputs(eager, predictor(IMAGE))


@pytest.mark.parametrize("name", ["mask_rcnn", "fcn8s"])
def test_models_that_do_not_export_to_pt2_are_named(tmp_path, name):
    """Mask R-CNN (data-dependent heads) and FCN-8s (crops no one graph expresses for every size)
    are refused with the model's name and the formats that work."""
    config, opts = CASES[name]
    arch = shapes_cfg(config).MODEL.META_ARCHITECTURE
    with pytest.raises(ValueError, match=f"{arch} does not export to pt2.*--format onnx"):
        export_pt2(tmp_path, config, opts, "")


def test_int8_keeps_the_output_layers_float(centermask_pt2, tmp_path):
    """int8 on 2 calibration images: every convolution runs int8 (its weight dequantised per
    channel) except CenterMask's two output convolutions, the heatmap's and the saliency's; the
    outputs are finite and the Predictor runs it."""
    cfg, _, out = centermask_pt2
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(3, 96, 128), dtype=np.uint8) for _ in range(2)]
    batches = [[{"image": torch.as_tensor(im), "height": 96, "width": 128}] for im in images]
    target = str(tmp_path / "model.int8.pt2")
    inputs = quantize_int8_on_batches(str(out / "model.pt2"), target, batches)
    assert len(inputs) == 2 and read_sidecar(target)["quantization"]["calibration_inputs"] == 2
    program = torch.export.load(target)
    convs = [
        n for n in program.graph.nodes if n.target is torch.ops.aten.conv2d.default
    ]  # fmt: skip
    int8 = [n for n in convs if "dequantize_per_channel" in str(n.args[1].target)]
    assert len(int8) == len(convs) - 2
    int8_cfg = cfg.clone()
    int8_cfg.TEST.BACKEND, int8_cfg.MODEL.WEIGHTS = "inductor", target
    instances = d2_instseg.Predictor(int8_cfg)(IMAGE)["instances"]
    assert instances.image_size == IMAGE.shape[:2] and torch.isfinite(instances.scores).all()


def test_output_layers_are_the_head_conv_and_the_linear_layer():
    """The toy of the ONNX walk's test as a torch.export graph: the head conv (for "scores" and
    "peaks") and the linear layer, not the trunk."""
    module = torch.export.export(TwoHeads().eval(), (torch.randn(1, 3, 8, 8),)).module()
    found = output_layers(module)
    stacks = [list(n.meta["nn_module_stack"].values())[-1][0] for n in found]
    assert sorted(stacks) == ["fc", "head"]


class ReshapedWeights(nn.Module):
    """Three convolutions: with a parameter as it is ("plain"), with a parameter permuted and
    reshaped in the graph (as a DCN's 1x1 conv over its samples: "reshaped"), and with an
    activation as the weight ("dynamic", not a layer with weights)."""

    def __init__(self):
        super().__init__()
        self.plain = nn.Conv2d(3, 4, 1)
        self.w = nn.Parameter(torch.randn(4, 1, 1, 4))

    def forward(self, x):
        y = self.plain(x)
        y = nn.functional.conv2d(y, self.w.permute(0, 3, 1, 2).reshape(4, 4, 1, 1))
        return nn.functional.conv2d(y, y[:1].mean((2, 3)).reshape(1, 4, 1, 1).expand(4, 4, 1, 1))


def test_reshaped_weight_convolutions_are_the_rearranged_parameters_only():
    module = torch.export.export(ReshapedWeights().eval(), (torch.randn(1, 3, 8, 8),)).module()
    (found,) = reshaped_weight_convolutions(module)
    convs = [n for n in module.graph.nodes if n.target is torch.ops.aten.conv2d.default]
    assert found is convs[1]  # graph order: plain, reshaped, dynamic


def test_plain_convolutions_share_weights_and_keep_outputs():
    """A Detectron2 Conv2d with a ReLU becomes nn.Conv2d + nn.ReLU on the same parameters; one
    with a norm is refused (fold BatchNorms first)."""
    from detectron2.layers import Conv2d

    conv = Conv2d(3, 4, 3, padding=1, activation=nn.ReLU())
    model = nn.Sequential(conv)
    x = torch.randn(1, 3, 8, 8)
    expected = model(x)
    plain_convolutions(model)
    assert type(model[0][0]) is nn.Conv2d and model[0][0].weight is conv.weight
    torch.testing.assert_close(model(x), expected)
    with pytest.raises(ValueError, match="fold BatchNorms first"):
        plain_convolutions(nn.Sequential(Conv2d(3, 4, 1, norm=nn.BatchNorm2d(4))))
