"""tools/configure.py: the YAML it writes trains unchanged with tools/train_net.py; the schedule
fractions; the errors it gives."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog

from d2_instseg import add_d2_instseg_config
from d2_instseg.autoconfig.schedule import schedule_keys

from ..conftest import REPO

sys.path.insert(0, f"{REPO}/tools")
import configure  # noqa: E402


def _load(path):
    cfg = get_cfg()
    add_d2_instseg_config(cfg)
    cfg.merge_from_file(str(path))
    return cfg


def test_configure_then_train_net_trains_it_unchanged(tmp_path):
    out, run_dir = tmp_path / "se_tiny.yaml", tmp_path / "run"
    argv = [
        "--dataset", "shapes_tiny_train", "--test-dataset", "shapes_tiny_val",
        "--method", "spatial_embeddings", "--max-iter", "3", "-o", str(out),
        "--output-dir", str(run_dir),
    ]  # fmt: skip
    assert configure.main(argv) == 0
    text = out.read_text()
    # every derived key carries its reason
    for line in text.splitlines():
        if ":" in line and not line.strip().startswith("#") and not line.endswith(":"):
            assert "  # " in line or line.startswith("_BASE_"), line
    cfg = _load(out)
    rows = cfg.INPUT.MIN_SIZE_TEST
    assert f"PIXELS_PER_UNIT: {rows - 1.0}  # 1 unit = the input's {rows} rows" in text
    assert cfg.DATASETS.TRAIN == ("shapes_tiny_train",) and cfg.SOLVER.MAX_ITER == 3
    assert cfg.MODEL.SPATIAL_EMBED.NUM_CLASSES == 3
    proc = subprocess.run(
        [sys.executable, "tools/train_net.py", "--config-file", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run_dir / "model_final.pth").is_file()
    assert "bbox" in (run_dir / "results.json").read_text()  # the evaluation ran (3 its: no masks)


def test_minutes_give_iterations_from_a_measured_iteration_time(tmp_path):
    out = tmp_path / "mrcnn.yaml"
    argv = [
        "--dataset", "shapes_tiny_train", "--method", "mask_rcnn", "--minutes", "0.2",
        "-o", str(out), "--output-dir", str(tmp_path / "run"),
    ]  # fmt: skip
    assert configure.main(argv) == 0
    line = next(ln for ln in out.read_text().splitlines() if "MAX_ITER" in ln)
    # "MAX_ITER: N  # 0.2 min / S s per iteration measured here": N = floor(12 s / t) for the
    # measured t, which the comment shows rounded to 2 decimals (S - 0.005 <= t <= S + 0.005)
    seconds = float(line.split("/ ")[1].split(" s per")[0])
    iterations = int(line.split(":")[1].split("#")[0])
    assert max(1, int(12 / (seconds + 0.005))) <= iterations <= max(1, int(12 / (seconds - 0.005)))
    sizes = yaml.safe_load(out.read_text())["MODEL"]["ANCHOR_GENERATOR"]["SIZES"]
    assert sizes == [[sizes[0][0] * 2**i] for i in range(5)] and sizes[0][0] >= 8


@pytest.mark.parametrize("native", [True, False])
def test_mixed_precision_only_where_the_cpu_has_bfloat16(tmp_path, monkeypatch, native):
    """The CPU Mask R-CNN base config trains in bfloat16 autocast; on a CPU that would emulate
    bfloat16 the tool turns it off and says why."""
    monkeypatch.setattr(configure.amp, "cpu_has_native_bfloat16", lambda: native)
    out = tmp_path / "mrcnn.yaml"
    argv = [
        "--dataset", "shapes_tiny_train", "--method", "mask_rcnn", "--max-iter", "3",
        "-o", str(out),
    ]  # fmt: skip
    assert configure.main(argv) == 0
    assert _load(out).SOLVER.AMP.ENABLED is native
    assert ("ENABLED: False  # this CPU has no native bfloat16" in out.read_text()) is not native


def test_schedule_keeps_the_base_fractions():
    cfg = get_cfg()
    cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS, cfg.SOLVER.WARMUP_ITERS = 600, (450, 550), 100
    cfg.SOLVER.CHECKPOINT_PERIOD = 200
    v = {d.key: d.value for d in schedule_keys(cfg, 300, "test")}
    assert v == {
        "SOLVER.MAX_ITER": 300,
        "SOLVER.STEPS": (225, 275),
        "SOLVER.WARMUP_ITERS": 50,
        "SOLVER.CHECKPOINT_PERIOD": 100,
    }


def test_irnet_writes_its_mask_rcnn_config_beside_it(tmp_path):
    out = tmp_path / "irnet_tiny.yaml"
    argv = ["--dataset", "shapes_tiny_train", "--method", "irnet", "-o", str(out)]
    assert configure.main(argv) == 0
    cfg = _load(out)
    assert cfg.MODEL.IRNET.PIPELINE.MASK_RCNN_CONFIG == str(tmp_path / "irnet_tiny_mask_rcnn.yaml")
    assert (
        _load(tmp_path / "irnet_tiny_mask_rcnn.yaml").MODEL.META_ARCHITECTURE == "GeneralizedRCNN"
    )
    assert cfg.MODEL.IRNET.IRN.RADIUS == 3  # 10 x 35 / 110 px on shapes
    assert "budget" not in out.read_text()


def test_irnet_max_iter_reaches_step_5_only(tmp_path):
    """``--max-iter`` with IRNet: step 5's Mask R-CNN config gets the schedule (SOLVER.MAX_ITER 7),
    the IRNet config says in its header that its cam and irn trainings keep their epochs, and its
    CAM / IRN epochs are the base config's (configs/shapes/irnet.yaml)."""
    out = tmp_path / "irnet_tiny.yaml"
    argv = ["--dataset", "shapes_tiny_train", "--method", "irnet", "-o", str(out)]
    argv += ["--max-iter", "7"]
    assert configure.main(argv) == 0
    text = out.read_text()
    assert "--max-iter sets the schedule of step 5's Mask R-CNN only" in text
    assert "keep MODEL.IRNET.CAM.EPOCHS / IRN.EPOCHS of the base" in text
    base = _load(os.path.join(REPO, "configs", "shapes", "irnet.yaml"))
    cfg = _load(out)
    assert (cfg.MODEL.IRNET.CAM.EPOCHS, cfg.MODEL.IRNET.IRN.EPOCHS) == (
        base.MODEL.IRNET.CAM.EPOCHS,
        base.MODEL.IRNET.IRN.EPOCHS,
    )
    assert _load(tmp_path / "irnet_tiny_mask_rcnn.yaml").SOLVER.MAX_ITER == 7


def test_irnet_minutes_are_shared_by_its_three_trainings(tmp_path, monkeypatch):
    """``--minutes 1`` with IRNet, iteration times fixed at cam 2 s, irn 1 s, Mask R-CNN 0.5 s on
    shapes_tiny_train (64 images): the base schedules are cam 64 epochs = 256 it of 16, irn 3
    epochs = 12 it of 16 (ceil), Mask R-CNN 600 it, 824 s in all; each is scaled by 60 / 824:
    cam int(18.64) = 18 it = 4.5 epochs, irn int(0.87) -> at least 1 it = 0.25 epochs, Mask R-CNN
    int(43.69) = 43 it."""
    monkeypatch.setattr(
        configure,
        "irnet_iteration_times",
        lambda cfg, name: {"cam": 2.0, "irn": 1.0, "num_images": 64},
    )
    monkeypatch.setattr(configure, "measure_iteration_time", lambda cfg: 0.5)
    out = tmp_path / "irnet_tiny.yaml"
    argv = ["--dataset", "shapes_tiny_train", "--method", "irnet", "-o", str(out)]
    assert configure.main(argv + ["--minutes", "1"]) == 0
    cfg = _load(out)
    assert (cfg.MODEL.IRNET.CAM.EPOCHS, cfg.MODEL.IRNET.IRN.EPOCHS) == (4.5, 0.25)
    mask_rcnn = _load(tmp_path / "irnet_tiny_mask_rcnn.yaml").SOLVER
    assert (mask_rcnn.MAX_ITER, mask_rcnn.STEPS) == (43, (32, 39))  # 450 / 550 of 600, x 43 / 600
    text = out.read_text()
    assert "--minutes 1 is shared by the three trainings" in text
    assert "EPOCHS: 4.5  # 18 it = 60% of 1 min at 2.00 s per iteration measured here" in text


def _weak_coco(tmp_path):
    """shapes_tiny_train as a user brings data labelled per image: a COCO file whose images carry
    ``image_labels`` (category ids) and no annotations; its first 16 images (one CAM batch)."""
    DatasetCatalog.get("shapes_tiny_train")  # make sure the files exist
    meta = MetadataCatalog.get("shapes_tiny_train")
    with open(meta.json_file) as f:
        coco = json.load(f)
    category_ids = sorted(c["id"] for c in coco["categories"])
    labels = {d["image_id"]: d["image_labels"] for d in DatasetCatalog.get("shapes_tiny_train")}
    coco["images"] = coco["images"][:16]
    for im in coco["images"]:
        im["image_labels"] = [category_ids[c] for c in labels[im["id"]]]
    coco["annotations"] = []
    path = tmp_path / "weak.json"
    path.write_text(json.dumps(coco))
    return f"mine_weak:{path}:{meta.image_root}"


def test_image_labels_only_take_the_object_size_from_the_user(tmp_path, monkeypatch):
    """A user's weakly labelled set (image labels, no masks) has no instance sizes: the tool asks
    for --object-size, then derives from it (radius 10 x 55 / 110 = 5) and counts instances by the
    image labels (a lower bound: the classes an image has). IRNet's weak steps then run on it with
    the YAML unchanged but for a tiny schedule, and skip the quality report (no masks)."""
    monkeypatch.setenv("D2_INSTSEG_CACHE", str(tmp_path / "cache"))
    spec = _weak_coco(tmp_path)
    out, run_dir = tmp_path / "weak.yaml", tmp_path / "run"
    argv = ["--dataset", spec, "--method", "irnet", "-o", str(out), "--output-dir", str(run_dir)]
    try:
        with pytest.raises(SystemExit, match="--object-size PX"):
            configure.main(argv)
        DatasetCatalog.remove("mine_weak")  # configure registered it; it registers it again
        MetadataCatalog.remove("mine_weak")
        assert configure.main(argv + ["--object-size", "55"]) == 0
    finally:
        if "mine_weak" in DatasetCatalog.list():
            DatasetCatalog.remove("mine_weak")
            MetadataCatalog.remove("mine_weak")
    cfg = _load(out)
    assert cfg.MODEL.IRNET.IRN.RADIUS == 5 and cfg.MODEL.IRNET.NUM_CLASSES == 3
    assert cfg.DATASETS.TRAIN == ("mine_weak",)
    assert "given by --object-size" in out.read_text()
    mask_rcnn = _load(tmp_path / "weak_mask_rcnn.yaml")
    assert mask_rcnn.TEST.DETECTIONS_PER_IMAGE >= 3  # never fewer than the classes of an image
    tiny = [
        "MODEL.IRNET.CAM.EPOCHS", "1.0", "MODEL.IRNET.CAM.SCALES", "(1.0,)",
        "MODEL.IRNET.IRN.EPOCHS", "1.0", "MODEL.IRNET.SYNTHESIS.CENTROID_ITERS", "20",
        "MODEL.IRNET.SYNTHESIS.EXP_TIMES", "3",
        "DATALOADER.NUM_WORKERS", "0",
    ]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "tools/irnet_pipeline.py", "--config-file", str(out), "--dataset", spec,
         "--steps", "cam,ir_label,irn,synthesize", *tiny],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "No pseudo-label quality report" in proc.stderr
    with open(run_dir / "reports" / "synthesize.json") as f:
        report = json.load(f)
    assert report["num_images"] == 16 and "pseudo_mask_AP50" not in report


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(SystemExit, match="not registered"):
        configure.main(["--dataset", "nope", "--method", "cpnet", "-o", str(tmp_path / "a.yaml")])
    with pytest.raises(SystemExit, match="no stuff_classes"):
        configure.main(
            ["--dataset", "shapes_tiny_train", "--method", "cpnet", "-o", str(tmp_path / "b.yaml")]
        )
