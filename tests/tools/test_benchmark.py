"""Smoke test of tools/benchmark.py (no timing assertions: benchmarks are not tests)."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch

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
        "--modules",
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
        assert row["train_data_ms"] >= 0
        assert 0 <= row["instances"] <= 100
    assert reference["instances"] > 0 and ours["instances"] > 0
    # --modules: the parts with >= 1% of the FLOPs, each counted by fvcore, together no more than
    # the whole network (CenterMask: DLA-34's trunk, DLA-up, IDA-up and the heads)
    names = {r["config"].split("/")[-1]: [m["module"] for m in r["modules"]] for r in rows}
    assert names["centermask.yaml"] == [
        "backbone.base",
        "backbone.dla_up",
        "backbone.ida_up",
        "head",
    ]
    assert "backbone.bottom_up" in names["mask_rcnn_R_50_FPN_3x.yaml"]
    for row in rows:
        assert row["modules"] and all(m["gflops"] > 0 and m["ms"] > 0 for m in row["modules"])
        assert sum(m["gflops"] for m in row["modules"]) <= row["gflops"] * (1 + 1e-6)
    assert "| configs/shapes/centermask.yaml | 64x96 | backbone.dla_up |" in proc.stdout
    assert (tmp_path / "bench_latency.png").stat().st_size > 1000


def test_benchmark_backend_rows(tmp_path):
    """One config on every backend: a row each, in order after the eager fp32 reference, each with
    its ratio to the same config's eager row (1 for the eager row itself); training speed in the
    eager (float32) and bf16 (SOLVER.AMP) rows only."""
    out = tmp_path / "bench.json"
    backends = ["eager", "bf16", "compile", "torchscript", "onnxruntime", "int8"]
    cmd = [sys.executable, "tools/benchmark.py", "--config-file", "configs/shapes/cpnet.yaml"]
    cmd += ["--sizes", "64x64", "--batch-sizes", "1", "--warmup", "0", "--iters", "1"]
    cmd += ["--train-iters", "1", "--train-batch", "1", "--calib-images", "1"]
    cmd += ["--output", str(out), "--backends", *backends]
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
        trains = row["backend"] in ("eager", "bf16")
        assert ("train_iters_per_s" in row) == trains and row.get("train_iters_per_s", 1) > 0
    assert "| int8 | 64x64 |" in proc.stdout


def _benchmark_module():
    import importlib.util

    path = os.path.join(REPO, "tools", "benchmark.py")
    spec = importlib.util.spec_from_file_location("benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_planted_spatial_embed_outputs_cluster_into_the_planted_discs():
    """K = 6 on 60 x 90: cols = round(sqrt(6 * 90 / 60)) = 3, rows = 2, 30 x 30 cells, discs of
    radius 0.35 * 30 = 10.5 around (15 + 30 c, 15 + 30 r): each holds the 349 lattice points with
    dx^2 + dy^2 < 110.25 (counted below by a loop); classes alternate 0, 1. Clustering them with the
    shapes config's thresholds finds exactly those 6 discs."""
    from d2_instseg.modeling.spatial_embed import cluster_instances

    maps = _benchmark_module().planted_spatial_embed_outputs(6, 60, 90, 37.0, 1, 2)
    masks, classes, scores = cluster_instances(
        maps["embedding"][0],
        maps["sigma"][0],
        maps["seed"][0],
        seed_threshold=0.9,
        fg_threshold=0.5,
        min_pixels=81,
    )
    lattice = sum(1 for dy in range(-11, 12) for dx in range(-11, 12) if dx * dx + dy * dy < 110.25)
    assert lattice == 349
    expected = []
    for index in range(6):
        cy, cx = 15 + 30 * (index // 3), 15 + 30 * (index % 3)
        disc = torch.zeros(60, 90, dtype=torch.bool)
        for y in range(60):
            for x in range(90):
                disc[y, x] = (y - cy) ** 2 + (x - cx) ** 2 < 110.25
        expected.append((index % 2, disc))
    expected.sort(key=lambda e: e[0])  # cluster_instances groups by class
    assert classes.tolist() == [0, 0, 0, 1, 1, 1]
    assert scores.tolist() == pytest.approx([1.0] * 6)
    found = {tuple(m.nonzero().flatten().tolist()) for m in masks}
    assert found == {tuple(d.nonzero().flatten().tolist()) for _, d in expected}
    assert all(int(m.sum()) == 349 for m in masks)


def test_benchmark_instances_rows(tmp_path):
    """``--instances 3 12``: for the reference and each instance config one row per K with K
    instances out (CenterMask, Spatial Embeddings and Mask R-CNN post-process the planted
    objects); the semantic config gets no row."""
    out = tmp_path / "bench.json"
    configs = [
        "configs/shapes/centermask.yaml",
        "configs/shapes/spatial_embeddings.yaml",
        "configs/shapes/fcn8s.yaml",
    ]
    cmd = [sys.executable, "tools/benchmark.py", "--config-file", *configs]
    cmd += ["--sizes", "96x128", "--batch-sizes", "1", "--warmup", "0", "--iters", "1"]
    cmd += ["--train-iters", "0", "--instances", "3", "12", "--output", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    scaling = json.loads(out.read_text())["scaling"]
    assert [(r["config"].split("/")[-1], r["planted"]) for r in scaling] == [
        ("mask_rcnn_R_50_FPN_3x.yaml", 3),
        ("mask_rcnn_R_50_FPN_3x.yaml", 12),
        ("centermask.yaml", 3),
        ("centermask.yaml", 12),
        ("spatial_embeddings.yaml", 3),
        ("spatial_embeddings.yaml", 12),
    ]
    for row in scaling:
        assert row["instances"] == row["planted"]
        assert 0 <= row["postprocess_fraction"] < 1 and row["latency_ms"] > 0
    assert "Post-processing against the number of instances" in proc.stdout


def test_rounds_keep_each_rows_median_round_and_its_ratios_round_by_round():
    """Hand-made latencies over 3 rounds: reference 100 / 300 / 200 ms, a config's eager row
    50 / 90 / 120, its int8 row 20 / 60 / 40. Medians: 200 (round 3), 90 (round 2), 40 (round 3);
    ratios round by round: eager / reference 0.5, 0.3, 0.6; int8 / eager 0.4, 2/3, 1/3."""
    bench = _benchmark_module()
    latencies = {
        (bench.REFERENCE, "eager"): [100.0, 300.0, 200.0],
        ("ours.yaml", "eager"): [50.0, 90.0, 120.0],
        ("ours.yaml", "int8"): [20.0, 60.0, 40.0],
    }
    rows = []
    for (config, backend), values in latencies.items():
        results = [
            {"config": config, "backend": backend, "size": "8x8", "latency_ms": v, "round": k}
            for k, v in enumerate(values)
        ]
        rows.append(bench.median_round(results))
    assert [r["round"] for r in rows] == [2, 1, 2]
    assert rows[1]["round_latencies_ms"] == [50.0, 90.0, 120.0]
    bench.add_ratios(rows)
    reference, eager, int8 = rows
    assert reference["round_ratios_to_mask_rcnn"] == [1.0, 1.0, 1.0]
    assert eager["ratio_to_mask_rcnn"]["latency_ms"] == pytest.approx(90 / 200)
    assert eager["round_ratios_to_mask_rcnn"] == pytest.approx([0.5, 0.3, 0.6])
    assert int8["latency_ratio_to_eager"] == pytest.approx(40 / 90)
    assert int8["round_ratios_to_eager"] == pytest.approx([0.4, 2 / 3, 1 / 3])
    assert bench._ratio(40 / 90, int8["round_ratios_to_eager"]) == "0.44 (0.33-0.67)"
    assert bench._ratio(0.5, [0.5]) == "0.50"  # one round: no range


def test_benchmark_rounds_interleave_rows(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "tools/benchmark.py", "--config-file", "configs/shapes/cpnet.yaml"]
    cmd += ["--sizes", "64x64", "--batch-sizes", "1", "--warmup", "0", "--iters", "1"]
    cmd += ["--train-iters", "0", "--rounds", "2", "--output", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    order = [line for line in proc.stdout.splitlines() if line.startswith("benchmarking")]
    assert [line.split()[1].split("/")[-1] + line.split(",")[-1] for line in order] == [
        "mask_rcnn_R_50_FPN_3x.yaml round 1 of 2 ...",
        "cpnet.yaml round 1 of 2 ...",
        "mask_rcnn_R_50_FPN_3x.yaml round 2 of 2 ...",
        "cpnet.yaml round 2 of 2 ...",
    ]
    result = json.loads(out.read_text())
    assert result["rounds"] == 2
    for row in result["rows"]:
        assert row["latency_ms"] in row["round_latencies_ms"]
        assert len(row["round_latencies_ms"]) == 2
        assert len(row["round_ratios_to_mask_rcnn"]) == 2
    ratio_with_range = r"\| \d+\.\d\d \(\d+\.\d\d-\d+\.\d\d\) \|"
    assert re.search(r"\| configs/shapes/cpnet\.yaml \|[^\n]*" + ratio_with_range, proc.stdout)


def test_reference_opts_refuse_the_keys_of_a_d2_instseg_model():
    """``--reference-opts`` takes every KEY VALUE up to the next option, so a model's pair written
    after it lands on the reference, which ignores it: the keys of a d2_instseg model's section
    (MODEL.CENTERMASK, MODEL.DLA) are refused by name before anything runs; Detectron2's own keys
    (MODEL.ROI_HEADS, TEST) pass."""
    opts = ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "MODEL.CENTERMASK.SCORE_THRESH_TEST", "0.0"]
    opts += ["MODEL.DLA.DEFORMABLE", "True", "TEST.COMPILE", "True", "MODEL.DEVICE", "cpu"]
    assert _benchmark_module().model_section_keys(opts) == [
        "MODEL.CENTERMASK.SCORE_THRESH_TEST",
        "MODEL.DLA.DEFORMABLE",
    ]
    cmd = [sys.executable, os.path.join(REPO, "tools", "benchmark.py"), "--config-file"]
    cmd += ["configs/shapes/centermask.yaml", "--reference-opts", *opts]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--reference-opts got MODEL.CENTERMASK.SCORE_THRESH_TEST, MODEL.DLA.DEFORMABLE" in (
        proc.stderr
    )
    assert "benchmarking" not in proc.stdout
