"""tools/export_model.py, then tools/train_net.py --eval-only on what it wrote: the briefly trained
CenterMask (the session's ``trained_centermask``) exported to ONNX and quantised to int8 on two
calibration images; Detectron2's COCO evaluation of the ONNX Runtime fp32 model gives the eager
model's mask AP on shapes_tiny_val, and the int8 model is evaluated the same way."""

import json
import subprocess
import sys

import pytest

from d2_instseg.export import read_sidecar

from ..conftest import REPO, TRAINED_CENTERMASK


def _run(script, *argv):
    cmd = [sys.executable, f"tools/{script}", *map(str, argv)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _eval(out_dir, *opts):
    config, *cfg_opts = TRAINED_CENTERMASK
    _run("train_net.py", "--config-file", config, "--eval-only", *cfg_opts, "OUTPUT_DIR", out_dir,
         *opts)  # fmt: skip
    return json.loads((out_dir / "results.json").read_text())["segm"]


@pytest.fixture(scope="module")
def exported(trained_centermask, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exported")
    config, *opts = TRAINED_CENTERMASK
    _run("export_model.py", "--config-file", config, "--format", "onnx", "--output", folder,
         "--quantize", "int8", "--calib-images", 2, *opts, "MODEL.WEIGHTS",
         trained_centermask[2])  # fmt: skip
    return folder


def test_export_writes_both_models_with_sidecars(exported):
    fp32, int8 = (
        read_sidecar(str(exported / "model.onnx")),
        read_sidecar(str(exported / "model.int8.onnx")),
    )
    assert fp32["meta_architecture"] == int8["meta_architecture"] == "CenterMaskPoint"
    assert fp32["class_names"] == ["circle", "square", "triangle"]
    assert fp32["quantization"] is None
    assert int8["quantization"]["calibration_inputs"] == 2
    assert int8["output_names"] == fp32["output_names"]


def test_eval_only_on_exported_models(trained_centermask, exported, tmp_path):
    eager = _eval(tmp_path / "eager", "MODEL.WEIGHTS", trained_centermask[2])
    ort = _eval(tmp_path / "ort", "TEST.BACKEND", "onnxruntime", "MODEL.WEIGHTS",
                exported / "model.onnx")  # fmt: skip
    int8 = _eval(tmp_path / "int8", "TEST.BACKEND", "onnxruntime", "MODEL.WEIGHTS",
                 exported / "model.int8.onnx")  # fmt: skip
    # The briefly trained model finds something (AP50 37.5 with these settings, conftest)
    assert eager["AP50"] > 10
    # fp32 under ONNX Runtime is the same function up to float rounding: the AP of the same
    # detections (a score tie may swap two of them, hence not exactly equal)
    assert abs(ort["AP"] - eager["AP"]) <= 0.5 and abs(ort["AP50"] - eager["AP50"]) <= 0.5
    # int8 from 2 calibration images: evaluated, and still a detector (no accuracy claim here;
    # the accuracy cost on shapes_val is a benchmark figure, in the README)
    assert int8["AP50"] > 0


def test_training_refuses_an_exported_backend(tmp_path):
    config, *opts = TRAINED_CENTERMASK
    cmd = [sys.executable, "tools/train_net.py", "--config-file", config, *map(str, opts)]
    cmd += ["OUTPUT_DIR", str(tmp_path), "TEST.BACKEND", "onnxruntime", "MODEL.WEIGHTS", ""]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "TEST.BACKEND 'onnxruntime' runs an exported model" in proc.stderr
