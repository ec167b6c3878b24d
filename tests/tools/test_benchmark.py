"""Smoke test of tools/benchmark.py (no timing assertions: benchmarks are not tests)."""

import json
import subprocess
import sys

import pytest

from ..conftest import REPO


def test_benchmark_writes_valid_json(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable,
        "tools/benchmark.py",
        "--config-file",
        "configs/shapes/mask_rcnn_R18_FPN.yaml",
        "configs/shapes/centermask.yaml",
        "configs/shapes/spatial_embeddings.yaml",
        "--sizes",
        "64x96",
        "--batch-sizes",
        "1",
        "2",
        "--warmup",
        "0",
        "--iters",
        "2",
        "--train-iters",
        "1",
        "--train-batch",
        "1",
        "--output",
        str(out),
        "--malloc",
        "reuse",
        # With random weights every class score is about 1/(C+1), below the default 0.05: only a
        # threshold of 0, passed to each row separately, makes the models return instances.
        "--reference-opts",
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
        "0.0",
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
        "0.0",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["dense_gflops_per_s"]) == {"matmul_2048", "conv3x3_128ch_128px"}
    assert result["malloc"] == "reuse"
    rows = result["rows"]
    assert [r["config"].split("/")[-1] for r in rows] == [
        "mask_rcnn_R_50_FPN_3x.yaml",
        "mask_rcnn_R18_FPN.yaml",
        "centermask.yaml",
        "spatial_embeddings.yaml",
    ]
    reference, ours = rows[:2]
    assert reference["ratio_to_mask_rcnn"]["latency_ms"] == 1.0
    assert ours["params_M"] < reference["params_M"]  # R18 with 128-channel FPN vs R50
    for row in rows:
        assert row["size"] == "64x96" and row["gflops"] > 0 and row["latency_ms"] > 0
        assert 0 <= row["postprocess_fraction"] < 1
        assert row["forward_ms"] + row["postprocess_ms"] == pytest.approx(
            row["latency_ms"], rel=1e-6
        )
        assert set(row["throughput"]) == {"2"} and row["train_iters_per_s"] > 0
        assert 0 <= row["instances"] <= 100
    assert reference["instances"] > 0 and ours["instances"] > 0
    assert (tmp_path / "bench_latency.png").stat().st_size > 1000


def test_benchmark_backend_rows(tmp_path):
    """One config on every backend: a row each, in order after the eager fp32 reference, each with
    its ratio to the same config's eager row (1 for the eager row itself)."""
    out = tmp_path / "bench.json"
    backends = ["eager", "bf16", "torchscript", "onnxruntime", "int8"]
    cmd = [sys.executable, "tools/benchmark.py", "--config-file", "configs/shapes/cpnet.yaml"]
    cmd += ["--sizes", "64x64", "--batch-sizes", "1", "--warmup", "0", "--iters", "1"]
    cmd += ["--train-iters", "0", "--calib-images", "1", "--output", str(out)]
    cmd += ["--backends", *backends]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["backend"] for r in rows] == ["eager"] + backends
    assert rows[0]["config"].endswith("mask_rcnn_R_50_FPN_3x.yaml")
    ours = rows[1:]
    assert ours[0]["latency_ratio_to_eager"] == 1.0
    for row in ours:
        assert row["latency_ms"] > 0 and row["forward_ms"] <= row["latency_ms"]
        assert row["gflops"] == ours[0]["gflops"]  # the eager network's count on every backend
    assert "| int8 | 64x64 |" in proc.stdout
