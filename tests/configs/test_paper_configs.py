"""Every paper config runs end to end on its dataset's real on-disk layout, as a new user runs it.

``DETECTRON2_DATASETS`` points at miniature copies of COCO, Cityscapes, ADE20K and VOC 2012
(:mod:`d2_instseg.data.datasets.miniature`), and each config goes through the real command line
(``tools/train_net.py`` or ``tools/irnet_pipeline.py``) in a fresh process: 2 iterations, then the
config's own evaluator. The overrides only size the run for a CPU (iterations, batch, crops, image
sizes, workers) and train from scratch (no pretrained weights here: ``MODEL.WEIGHTS ""``).
"""

import glob
import json
import math
import os
import subprocess
import sys
import time

import pytest

from d2_instseg.data.datasets.miniature import write_miniature_datasets

from ..conftest import REPO

CPU = ["DATALOADER.NUM_WORKERS", "0", "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2"]
SMALL_TEST = ["INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "256"]
# 64 x 64 crops: the context prior is (64 / 8)^2 and the test windows are crop-sized.
SEM_SEG = [
    "INPUT.CROP.SIZE", "[64, 64]", "INPUT.RANDOM_SCALE.BASE_SIZE", "[128, 256]", *SMALL_TEST,
]  # fmt: skip
CPNET = ["MODEL.CPNET.PRIOR_SIZE", "[8, 8]", "MODEL.CPNET.TEST.SLIDE_STRIDE", "[48, 48]"]
# Detectron2's recipe for ResNets trained from scratch: GroupNorm, nothing frozen (FrozenBN with
# random weights explodes: the CAM loss was 216 and IRNet's losses NaN at iteration 0).
SCRATCH = ["MODEL.WEIGHTS", "", "MODEL.RESNETS.NORM", "GN", "MODEL.BACKBONE.FREEZE_AT", "0"]
# A Mask R-CNN after 2 iterations scores every box below the 0.05 default: keep them all, so that
# the evaluator has predictions to score (bbox and segm).
KEEP_BOXES = ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]
MASK_RCNN = [*SCRATCH, *CPU, "INPUT.MIN_SIZE_TRAIN", "(128,)", *SMALL_TEST, *KEEP_BOXES]
IRNET = [
    # The paper config keeps Detectron2's SEED -1 (a new seed each run). After one CAM iteration
    # from scratch, whether any pixel is confident foreground depends on the initialisation (one
    # CI run found none: no pseudo instance, no image for the Mask R-CNN), so the test fixes it.
    *SCRATCH, "SEED", "0", "DATALOADER.NUM_WORKERS", "0",
    "MODEL.IRNET.CAM.IMS_PER_BATCH", "4", "MODEL.IRNET.CAM.EPOCHS", "0.5",
    "MODEL.IRNET.CAM.CROP_SIZE", "64", "MODEL.IRNET.CAM.RESIZE_LONG", "(64, 96)",
    "MODEL.IRNET.IRN.IMS_PER_BATCH", "4", "MODEL.IRNET.IRN.EPOCHS", "0.5",
    "MODEL.IRNET.IRN.CROP_SIZE", "64",
    # 1 CAM iteration gives no confident instance: put every one into the Mask R-CNN's JSON
    "MODEL.IRNET.SYNTHESIS.TRAIN_MIN_SCORE", "-1.0",
    "MODEL.IRNET.PIPELINE.MASK_RCNN_OPTS", repr(MASK_RCNN),
]  # fmt: skip

COCO = ("bbox", ("AP", "AP50", "AP75")), ("segm", ("AP", "AP50", "AP75"))
ADE = (("sem_seg", ("mIoU", "fwIoU", "mACC", "pACC")),)
# config -> (tool, overrides, (task, metrics) the evaluator must report)
RUNS = {
    "centermask.yaml": ("train_net.py", [*CPU, "MODEL.CENTERMASK.TRAIN_CROP_SIZE", "128"], COCO),
    "spatial_embeddings.yaml": (
        "train_net.py",
        [
            *CPU,
            "INPUT.CROP.SIZE",
            "[128, 128]",
            "INPUT.MIN_SIZE_TRAIN",
            "(128,)",
            "INPUT.MAX_SIZE_TRAIN",
            "256",
            *SMALL_TEST,
        ],
        (("segm", ("AP", "AP50")),),
    ),  # fmt: skip
    "cpnet_cityscapes.yaml": (
        "train_net.py",
        [*CPU, *SEM_SEG, *CPNET],
        (("sem_seg", ("IoU", "iIoU", "IoU_sup", "iIoU_sup")),),
    ),
    "cpnet_ade20k.yaml": ("train_net.py", [*CPU, *SEM_SEG, *CPNET], ADE),
    "fcn8s_ade20k.yaml": ("train_net.py", [*CPU, *SEM_SEG], ADE),
    "unet_ade20k.yaml": ("train_net.py", [*CPU, *SEM_SEG], ADE),
    # evaluation only, with the cpnet_ade20k run's weights: 6 scales x flip of 64-px short sides
    "cpnet_ade20k_ms_flip.yaml": (
        "train_net.py",
        ["DATALOADER.NUM_WORKERS", "0", *SEM_SEG, *CPNET, "INPUT.MIN_SIZE_TEST", "64"],
        ADE,
    ),
    "irnet/irnet_R50_voc12.yaml": ("irnet_pipeline.py", IRNET, None),
    # the recipe of its header, on the pseudo labels of the irnet_R50_voc12 run
    "irnet/mask_rcnn_R50_FPN_voc12_irnet_pseudo.yaml": ("train_net.py", MASK_RCNN, COCO),
}
PAPER_CONFIGS = sorted(
    os.path.relpath(p, os.path.join(REPO, "configs"))
    for p in glob.glob(os.path.join(REPO, "configs", "*.yaml"))
    + glob.glob(os.path.join(REPO, "configs", "irnet", "*.yaml"))
    if not os.path.basename(p).startswith("Base-")
)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("datasets"))
    write_miniature_datasets(root)
    return root


def run_tool(tool: str, args, root: str, **env) -> subprocess.CompletedProcess:
    """``python tools/<tool> args`` in a fresh process with DETECTRON2_DATASETS=root."""
    env = dict(os.environ, DETECTRON2_DATASETS=root, **env)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", tool), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    proc.wall_s = time.perf_counter() - start
    proc.output = proc.stdout + proc.stderr  # Detectron2 logs to stdout, tracebacks go to stderr
    print(f"{tool} {' '.join(args[:2])}: {proc.wall_s:.1f} s")
    return proc


@pytest.fixture(scope="module")
def runs(datasets, tmp_path_factory):
    """config -> (output folder, completed process); each config is run once, on demand."""
    done = {}

    def run(config: str):
        if config in done:
            return done[config]
        tool, overrides, _ = RUNS[config]
        out = str(tmp_path_factory.mktemp(config.replace("/", "_").replace(".yaml", "")))
        args = ["--config-file", os.path.join("configs", config)]
        if config == "cpnet_ade20k_ms_flip.yaml":
            weights = os.path.join(run("cpnet_ade20k.yaml")[0], "model_final.pth")
            args += ["--eval-only", "MODEL.WEIGHTS", weights]
        if config == "irnet/mask_rcnn_R50_FPN_voc12_irnet_pseudo.yaml":
            pseudo = os.path.join(run("irnet/irnet_R50_voc12.yaml")[0], "pseudo", "instances.json")
            images = os.path.join(datasets, "VOC2012", "JPEGImages")
            args += ["--dataset", f"voc_2012_seg_train_aug_irnet_pseudo:{pseudo}:{images}"]
        proc = run_tool(tool, args + overrides + ["OUTPUT_DIR", out], datasets)
        assert proc.returncode == 0, f"{config} failed:\n{proc.output[-6000:]}"
        done[config] = out, proc
        return done[config]

    return run


def test_every_paper_config_has_a_run():
    assert PAPER_CONFIGS == sorted(RUNS), "add the new paper config to RUNS"


def _assert_metrics(results, expected, config):
    for task, metrics in expected:
        assert task in results, f"{config}: no {task!r} in {results}"
        for metric in metrics:
            value = results[task][metric]
            assert isinstance(value, float) and 0.0 <= value <= 100.0, (config, task, metric, value)


@pytest.mark.parametrize("config", [c for c in sorted(RUNS) if RUNS[c][2] is not None])
def test_paper_config_trains_and_evaluates(config, runs):
    out, proc = runs(config)
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    _assert_metrics(results, RUNS[config][2], config)
    if config != "cpnet_ade20k_ms_flip.yaml":
        assert "Starting training from iteration 0" in proc.output
        assert os.path.isfile(os.path.join(out, "model_final.pth"))


def test_irnet_voc_pipeline_through_its_mask_rcnn(runs):
    """All five steps on VOC's layout: the CAM report scores the held-out image labels, synthesize
    scores the pseudo masks against SegmentationObject and draws the overlays (the ground truth
    there carries sem_seg_file_name, which used to crash the step), and the Mask R-CNN trained on
    the pseudo labels is evaluated on voc_2012_seg_val (bbox and segm)."""
    out, _ = runs("irnet/irnet_R50_voc12.yaml")
    reports = {
        step: json.load(open(os.path.join(out, "reports", f"{step}.json")))
        for step in ("cam", "ir_label", "irn", "synthesize", "maskrcnn")
    }
    assert reports["cam"]["num_images"] == 8  # train_aug = 4 train + 4 SBD-only images
    assert 0.0 <= reports["cam"]["voc_2012_seg_val_cls_acc"] <= 100.0
    assert reports["synthesize"]["num_gt_images"] == 4  # the train images (with instances)
    assert 0.0 <= reports["synthesize"]["pseudo_mask_AP50"] <= 100.0
    assert os.path.isfile(reports["synthesize"]["overlays"])
    for task in ("bbox", "segm"):
        for metric in ("AP", "AP50", "AP75"):
            value = reports["maskrcnn"][f"voc_2012_seg_val_{task}_{metric}"]
            assert not math.isnan(value) and 0.0 <= value <= 100.0


def test_pretrained_weights_fail_at_start_offline(datasets, tmp_path):
    """Weights that are not here stop a run before anything is built, naming the file and how to
    go on: a URL that cannot be fetched (offline, simulated by a proxy that refuses connections,
    with an empty download cache), the IRNet config's converted R-50 file when it was not made,
    and a Detectron2 model-zoo ``.pkl`` (refused even online: it would be unpickled)."""
    offline = {
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "FVCORE_CACHE": str(tmp_path / "cache"),
    }
    out = ["OUTPUT_DIR", str(tmp_path / "out")]
    url = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
    commands = [
        ("train_net.py", ["--config-file", "configs/centermask.yaml", "MODEL.WEIGHTS", url, *out],
         ["WeightsUnavailableError", 'MODEL.WEIGHTS ""', "resnet50-0676ba61.pth",
          "cannot be fetched"]),
        ("irnet_pipeline.py", ["--config-file", "configs/irnet/irnet_R50_voc12.yaml", *out],
         ["WeightsUnavailableError", 'MODEL.WEIGHTS ""', "weights/R-50.safe.pth",
          "does not exist"]),
        ("train_net.py", ["--config-file", "configs/centermask.yaml", "MODEL.WEIGHTS",
                          "detectron2://ImageNetPretrained/MSRA/R-50.pkl", *out],
         ["UnsafeWeightsError", "download https://dl.fbaipublicfiles.com/detectron2/"
          "ImageNetPretrained/MSRA/R-50.pkl", "tools/convert_weights.py --input R-50.pkl "
          "--output R-50.safe.pth"]),
    ]  # fmt: skip
    for tool, args, words in commands:
        proc = run_tool(tool, args, datasets, **offline)
        assert proc.returncode != 0
        assert all(w in proc.output for w in words), (words, proc.output[-2000:])
        assert "Starting training" not in proc.output and "Model:" not in proc.output


def test_check_data_lists_what_is_there_and_what_is_missing(datasets, tmp_path):
    """--check-data: exit 0 with every item ok on the miniature data; exit 1 on an empty root, each
    missing path named with its preparation step."""
    args = ["--config-file", "configs/cpnet_cityscapes.yaml", "--check-data"]
    proc = run_tool("train_net.py", args, datasets)
    assert proc.returncode == 0, proc.output
    assert "cityscapes_fine_sem_seg_val: ok" in proc.stdout and "MISSING" not in proc.stdout
    proc = run_tool("train_net.py", args, str(tmp_path))
    assert proc.returncode == 1
    missing = [line for line in proc.stdout.splitlines() if "MISSING train ids" in line]
    assert len(missing) == 2 and str(tmp_path) in missing[0]
    assert "tools/prepare_datasets.py cityscapes" in proc.stdout
