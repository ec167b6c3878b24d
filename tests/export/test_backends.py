"""The exported backends behind ``d2_instseg.Predictor``: the same input checks and output sizes as
the torch backend, clear errors for a wrong or incomplete export, and an int8 model quantised on a
tiny calibration set that runs with finite outputs."""

import json
import shutil

import numpy as np
import pytest
import torch
from detectron2.modeling import build_model

import d2_instseg
from d2_instseg.engine import prepare_for_inference
from d2_instseg.export import ExportedModel, export_model, quantize_int8, read_sidecar
from d2_instseg.export.quantize import network_inputs

from ..conftest import shapes_cfg
from ..engine.test_predictor import BAD_IMAGES

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = "configs/shapes/spatial_embeddings.yaml"
# random weights: a low minimum size so that some seeds become instances
OPTS = ("MODEL.SPATIAL_EMBED.MIN_PIXELS", 32)
RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory):
    cfg = shapes_cfg(CONFIG, *OPTS)
    torch.manual_seed(0)
    model = prepare_for_inference(build_model(cfg).eval(), cfg)
    path = export_model(model, cfg, str(tmp_path_factory.mktemp("onnx")), "onnx", size=(64, 64))
    return cfg, path


def exported_cfg(cfg, path, backend="onnxruntime"):
    cfg = cfg.clone()
    cfg.TEST.BACKEND, cfg.MODEL.WEIGHTS = backend, path
    return cfg


@pytest.fixture(scope="module")
def ort_predictor(onnx_export):
    return d2_instseg.Predictor(exported_cfg(*onnx_export))


@pytest.mark.parametrize("image, message", BAD_IMAGES)
def test_ort_predictor_refuses_with_a_named_problem(ort_predictor, image, message):
    with pytest.raises(ValueError, match=message):
        ort_predictor(image)


@pytest.mark.parametrize("shape", [(1, 1, 3), (40, 60), (37, 83, 4), (300, 500, 3)])
def test_ort_predictor_returns_instances_at_input_size(ort_predictor, shape):
    image = RNG.integers(0, 256, size=shape, dtype=np.uint8)
    instances = ort_predictor(image)["instances"]
    assert instances.image_size == shape[:2]
    for field in ("pred_boxes", "scores", "pred_classes", "pred_masks"):
        assert instances.has(field)
    assert tuple(instances.pred_masks.shape[1:]) == shape[:2]


def test_export_of_another_model_is_refused(onnx_export):
    cfg, path = onnx_export
    other = shapes_cfg("configs/shapes/centermask.yaml")
    with pytest.raises(ValueError, match="exported from a SpatialEmbeddings"):
        d2_instseg.Predictor(exported_cfg(other, path))


def test_backend_must_match_the_file_format(onnx_export):
    with pytest.raises(ValueError, match="is a onnx export; TEST.BACKEND 'torchscript'"):
        d2_instseg.Predictor(exported_cfg(*onnx_export, backend="torchscript"))


def test_missing_or_foreign_sidecar_is_named(onnx_export, tmp_path):
    cfg, path = onnx_export
    lone = str(tmp_path / "model.onnx")
    shutil.copy(path, lone)
    with pytest.raises(FileNotFoundError, match="has no sidecar .*model.onnx.json"):
        d2_instseg.Predictor(exported_cfg(cfg, lone))
    with open(lone + ".json", "w") as f:
        json.dump({"format": "onnx"}, f)
    with pytest.raises(ValueError, match="not a d2_instseg export sidecar"):
        d2_instseg.Predictor(exported_cfg(cfg, lone))
    with pytest.raises(FileNotFoundError, match="Exported model not found"):
        d2_instseg.Predictor(exported_cfg(cfg, str(tmp_path / "absent.onnx")))


def test_int8_on_a_tiny_calibration_set_runs_with_finite_outputs(onnx_export, tmp_path):
    cfg, path = onnx_export
    fp32 = ExportedModel(path)
    images = [RNG.integers(0, 256, size=(3, 64, 80), dtype=np.uint8) for _ in range(2)]
    batches = [[{"image": torch.as_tensor(im), "height": 64, "width": 80}] for im in images]
    calibration = network_inputs(fp32, batches)
    assert len(calibration) == 2 and calibration[0].dtype == np.float32
    target = quantize_int8(path, str(tmp_path / "model.int8.onnx"), calibration)
    meta = read_sidecar(target)
    assert meta["quantization"]["calibration_inputs"] == 2
    int8 = ExportedModel(target)
    x = torch.as_tensor(calibration[0])
    out, ref = int8.network(x), fp32.network(x)
    assert sorted(out) == sorted(ref)
    for name in ref:
        assert out[name].shape == ref[name].shape and torch.isfinite(out[name]).all(), name
    predictor = d2_instseg.Predictor(exported_cfg(cfg, target))
    instances = predictor(RNG.integers(0, 256, size=(50, 70, 3), dtype=np.uint8))["instances"]
    assert instances.image_size == (50, 70) and torch.isfinite(instances.scores).all()
