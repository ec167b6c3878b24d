"""Crash-safe checkpoints: atomic saves, corrupt-file detection, kill -9 and resume."""

import signal
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

import d2_instseg.engine.checkpoint as ckpt_module
from d2_instseg.engine import CheckpointCorruptError, SafeCheckpointer, Trainer

from ..conftest import REPO, shapes_cfg


def _checkpointer(tmp_path):
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return SafeCheckpointer(model, str(tmp_path), optimizer=opt), model


def test_interrupted_save_leaves_previous_checkpoint_tagged(tmp_path, monkeypatch):
    ck, _ = _checkpointer(tmp_path)
    ck.save("model_0000001", iteration=1)

    def dies_half_way(data, f):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # the process is stopped in the middle of torch.save

    monkeypatch.setattr(ckpt_module.torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        ck.save("model_0000002", iteration=2)
    assert not (tmp_path / "model_0000002.pth").exists()
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    monkeypatch.undo()
    ck2, _ = _checkpointer(tmp_path)
    assert ck2.resume_or_load("", resume=True)["iteration"] == 1
    assert not (tmp_path / "model_0000002.pth.tmp").exists()  # stray temp file cleaned up


def test_truncated_checkpoint_is_reported_with_its_name(tmp_path):
    ck, _ = _checkpointer(tmp_path)
    ck.save("model_0000004", iteration=4)
    path = tmp_path / "model_0000004.pth"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointCorruptError, match="model_0000004.pth is corrupt or truncated"):
        _checkpointer(tmp_path)[0].load(str(path))


def test_resume_falls_back_to_previous_good_checkpoint(tmp_path):
    ck, model = _checkpointer(tmp_path)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ck.save("model_0000004", iteration=4)
    with torch.no_grad():
        model.weight.fill_(7.0)
    ck.save("model_0000009", iteration=9)
    last = tmp_path / "model_0000009.pth"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated by a crash
    ck2, model2 = _checkpointer(tmp_path)
    assert ck2.resume_or_load("", resume=True)["iteration"] == 4
    assert torch.all(model2.weight == 3.0)


def test_no_readable_checkpoint_is_a_clear_error(tmp_path):
    ck, _ = _checkpointer(tmp_path)
    ck.save("model_0000001", iteration=1)
    (tmp_path / "model_0000001.pth").write_bytes(b"garbage")
    with pytest.raises(CheckpointCorruptError, match="No readable checkpoint"):
        _checkpointer(tmp_path)[0].resume_or_load("", resume=True)


def _train_opts(out_dir, max_iter):
    return [
        "DATASETS.TRAIN",
        "('shapes_tiny_train',)",
        "DATASETS.TEST",
        "()",
        "SOLVER.IMS_PER_BATCH",
        "2",
        "SOLVER.MAX_ITER",
        str(max_iter),
        "SOLVER.STEPS",
        "(4,)",
        "SOLVER.WARMUP_ITERS",
        "2",
        "SOLVER.CHECKPOINT_PERIOD",
        "3",
        "DATALOADER.NUM_WORKERS",
        "0",
        "OUTPUT_DIR",
        str(out_dir),
    ]


def test_sigkill_during_training_then_resume(tmp_path):
    """kill -9 a training run after a few checkpoints; --resume continues from the last complete
    one with its iteration, optimizer and scheduler state, and every file on disk is readable."""
    config = "configs/shapes/mask_rcnn_R18_FPN.yaml"
    cmd = [sys.executable, "tools/train_net.py", "--config-file", config]
    proc = subprocess.Popen(
        cmd + _train_opts(tmp_path, 10_000),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 240
        while not (tmp_path / "model_0000008.pth").exists():
            assert proc.poll() is None, "training exited early"
            assert time.time() < deadline, "no checkpoint written in time"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    tagged = (tmp_path / "last_checkpoint").read_text()
    saved = torch.load(tmp_path / tagged, map_location="cpu", weights_only=False)
    for f in tmp_path.glob("*.pth"):  # nothing corrupt on disk (a .tmp may be left)
        torch.load(f, map_location="cpu", weights_only=False)

    cfg = shapes_cfg(config, *_train_opts(tmp_path, saved["iteration"] + 3))
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=True)
    assert trainer.start_iter == saved["iteration"] + 1
    state = saved["trainer"]  # Detectron2 keeps optimizer and scheduler inside the trainer's state
    sched = state["hooks"]["LRScheduler"]
    assert (
        trainer.scheduler.state_dict()["last_epoch"]
        == sched["last_epoch"]
        == saved["iteration"] + 1
    )
    opt_state = trainer.optimizer.state_dict()["state"]
    assert len(state["_trainer"]["optimizer"]["state"]) > 0
    for key, value in state["_trainer"]["optimizer"]["state"].items():
        assert torch.equal(opt_state[key]["momentum_buffer"], value["momentum_buffer"])
    trainer.train()
    assert trainer.iter == cfg.SOLVER.MAX_ITER  # iterations saved+1 .. saved+2 ran
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    torch.load(tmp_path / "model_final.pth", map_location="cpu", weights_only=False)
    assert not list(tmp_path.glob("*.tmp"))
