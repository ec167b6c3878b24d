"""The baseline through the whole pipeline: train a few iterations, evaluate, draw a demo
overlay."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.utils.env import seed_all_rng
from detectron2.utils.events import EventStorage

from d2_instseg.engine import Trainer
from d2_instseg.utils.plots import plot_loss_curves, read_metrics

from ..conftest import REPO, shapes_cfg

CONFIG = "configs/shapes/mask_rcnn_R18_FPN.yaml"


def tiny_cfg(out_dir, iters=30):
    return shapes_cfg(
        CONFIG,
        "DATASETS.TRAIN",
        "('shapes_tiny_train',)",
        "DATASETS.TEST",
        "('shapes_tiny_val',)",
        "SOLVER.IMS_PER_BATCH",
        "4",
        "SOLVER.MAX_ITER",
        str(iters),
        "SOLVER.WARMUP_ITERS",
        "5",
        "SOLVER.STEPS",
        "()",
        "SOLVER.CHECKPOINT_PERIOD",
        "1000",
        "DATALOADER.NUM_WORKERS",
        "0",
        "OUTPUT_DIR",
        str(out_dir),
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Mask R-CNN trained 30 iterations on shapes_tiny_train; returns (cfg, trainer, results).

    Every RNG is seeded (``SEED`` and ``seed_all_rng``): the training sampler draws its seed from
    NumPy's global state, which otherwise depends on the tests that ran before. After 30
    iterations the scores are still low, so the test keeps every detection
    (``SCORE_THRESH_TEST`` 0): the evaluator must see predictions to give AP figures."""
    cfg = tiny_cfg(tmp_path_factory.mktemp("mrcnn"))
    cfg.SEED = 0
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    seed_all_rng(0)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    results = trainer.train()
    return cfg, trainer, results


def test_loss_goes_down(trained):
    cfg, trainer, _ = trained
    losses = [v for v, _ in trainer.storage.history("total_loss").values()]
    assert len(losses) == cfg.SOLVER.MAX_ITER
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.8 * first, (first, last)
    assert len(read_metrics(os.path.join(cfg.OUTPUT_DIR, "metrics.json"))) >= 1


def test_evaluation_produces_ap_numbers(trained):
    _, _, results = trained
    for task in ("bbox", "segm"):
        assert {"AP", "AP50", "AP75"} <= set(results[task])
        assert all(np.isfinite(results[task][k]) for k in ("AP", "AP50"))


def test_loss_plot_written(trained, tmp_path):
    cfg, _, _ = trained
    names = plot_loss_curves(os.path.join(cfg.OUTPUT_DIR, "metrics.json"), str(tmp_path / "l.png"))
    assert "total_loss" in names and "loss_mask" in names
    assert (tmp_path / "l.png").stat().st_size > 1000


def test_demo_writes_overlay_png(trained, tmp_path):
    cfg, trainer, _ = trained
    DetectionCheckpointer(trainer.model, save_dir=cfg.OUTPUT_DIR).save("model_final")
    weights = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    out = tmp_path / "vis"
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import demo

    args = demo.argument_parser().parse_args(
        [
            "--config-file",
            os.path.join(REPO, CONFIG),
            "--from-dataset",
            "shapes_tiny_val",
            "--max-images",
            "2",
            "--output",
            str(out),
            "--confidence-threshold",
            "0.0",
            "MODEL.WEIGHTS",
            weights,
            "DATASETS.TEST",
            "('shapes_tiny_val',)",
        ]
    )
    written = demo.main(args)
    assert len(written) == 2
    from PIL import Image

    img = np.asarray(Image.open(written[0]))
    assert img.ndim == 3 and img.shape[2] == 3 and img.std() > 0


def test_empty_image_trains_without_error(tmp_path):
    """An image with no annotations (FILTER_EMPTY_ANNOTATIONS off) goes through a training step."""
    cfg = tiny_cfg(tmp_path, iters=1)
    cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS = False
    trainer = Trainer(cfg)
    image = torch.zeros(3, 96, 128, dtype=torch.uint8)
    from detectron2.structures import Boxes, Instances

    empty = Instances(
        (96, 128), gt_boxes=Boxes(torch.zeros(0, 4)), gt_classes=torch.zeros(0).long()
    )
    from detectron2.structures import BitMasks

    empty.gt_masks = BitMasks(torch.zeros(0, 96, 128, dtype=torch.bool))
    with EventStorage():
        losses = trainer.model([{"image": image, "instances": empty, "height": 96, "width": 128}])
    assert all(torch.isfinite(v) for v in losses.values())


def test_channels_last_training(tmp_path):
    """SOLVER.CHANNELS_LAST: the Trainer's model has channels-last conv weights, trains (finite
    losses) and saves a checkpoint that a default-layout model loads to the same weights."""
    cfg = tiny_cfg(tmp_path, iters=2)
    cfg.SOLVER.CHANNELS_LAST = True
    trainer = Trainer(cfg)
    convs = [m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    trainer.resume_or_load(resume=False)
    trainer.train()
    losses = [v for v, _ in trainer.storage.history("total_loss").values()]
    assert len(losses) == 2 and all(np.isfinite(losses))
    DetectionCheckpointer(trainer.model, save_dir=str(tmp_path)).save("cl")
    cfg.SOLVER.CHANNELS_LAST = False
    plain = Trainer.build_model(cfg)
    DetectionCheckpointer(plain).load(str(tmp_path / "cl.pth"))
    for (name, a), b in zip(trainer.model.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), name


def test_two_process_cpu_training(tmp_path):
    """`--num-gpus 2` on CPU: two gloo processes (each logs its rank and the world size, and both
    start training), DDP without device ids, a checkpoint at the end."""
    cmd = [
        sys.executable,
        "tools/train_net.py",
        "--num-gpus",
        "2",
        "--config-file",
        CONFIG,
        "DATASETS.TRAIN",
        "('shapes_tiny_train',)",
        "DATASETS.TEST",
        "()",
        "SOLVER.IMS_PER_BATCH",
        "4",
        "SOLVER.MAX_ITER",
        "3",
        "SOLVER.STEPS",
        "()",
        "DATALOADER.NUM_WORKERS",
        "0",
        "OUTPUT_DIR",
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # both ranks really ran: rank 0 logs to stdout, rank 1 only to its own log file
    assert "Rank of current process: 0. World size: 2" in proc.stdout
    rank1 = (tmp_path / "log.txt.rank1").read_text()
    assert "Rank of current process: 1. World size: 2" in rank1
    assert "Starting training from iteration 0" in rank1
    assert os.path.exists(tmp_path / "model_final.pth")
    with open(tmp_path / "last_checkpoint") as f:
        assert f.read().strip() == "model_final.pth"


@pytest.mark.parametrize(
    "name, cls",
    [("SGD", torch.optim.SGD), ("ADAM", torch.optim.Adam), ("AdamW", torch.optim.AdamW)],
)
def test_optimizer_choice(tmp_path, name, cls):
    cfg = tiny_cfg(tmp_path)
    cfg.SOLVER.OPTIMIZER = name
    model = Trainer.build_model(cfg)
    optimizer = Trainer.build_optimizer(cfg, model)
    assert isinstance(optimizer, cls)
    assert {g["lr"] for g in optimizer.param_groups} == {cfg.SOLVER.BASE_LR}


def test_unknown_optimizer_names_the_key(tmp_path):
    cfg = tiny_cfg(tmp_path)
    cfg.SOLVER.OPTIMIZER = "LAMB"
    with pytest.raises(ValueError, match="SOLVER.OPTIMIZER"):
        Trainer.build_optimizer(cfg, Trainer.build_model(cfg))


def test_poly_schedule(tmp_path):
    """WarmupPolyLR without warm-up: lr(it) = base * (1 - it / max_iter)^0.9; at it = 15 of 30
    that is 0.02 * 0.5^0.9 = 0.010718."""
    cfg = tiny_cfg(tmp_path)
    cfg.SOLVER.LR_SCHEDULER_NAME, cfg.SOLVER.WARMUP_ITERS = "WarmupPolyLR", 0
    model = Trainer.build_model(cfg)
    optimizer = Trainer.build_optimizer(cfg, model)
    scheduler = Trainer.build_lr_scheduler(cfg, optimizer)
    for _ in range(15):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.010718, abs=1e-6)


def test_amp_trains_in_bfloat16_on_cpu(tmp_path):
    """SOLVER.AMP.ENABLED on the CPU: Detectron2's AMPTrainer would stop at its first step (CUDA
    only); the Trainer's step runs the forward pass under bfloat16 autocast (a convolution's output
    is bfloat16) while the weights stay float32 and are updated, with finite losses."""
    from d2_instseg.engine.amp import CPUAMPTrainer

    cfg = tiny_cfg(tmp_path, iters=2)
    cfg.SOLVER.AMP.ENABLED = True
    cfg.DATASETS.TEST = ()  # the final evaluation (float32) would add its own forward passes
    trainer = Trainer(cfg)
    assert isinstance(trainer._trainer, CPUAMPTrainer)
    trainer.resume_or_load(resume=False)
    stem = trainer.model.backbone.bottom_up.stem.conv1
    before = stem.weight.detach().clone()
    dtypes = []
    stem.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    trainer.train()
    assert dtypes == [torch.bfloat16, torch.bfloat16]
    assert stem.weight.dtype == torch.float32 and not torch.equal(stem.weight, before)
    losses = [v for v, _ in trainer.storage.history("total_loss").values()]
    assert len(losses) == 2 and all(np.isfinite(losses))
