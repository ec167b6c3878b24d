"""Loading weights never runs code, and a checkpoint that cannot be written loses nothing.

A crafted file whose unpickling would write a marker file (its ``__reduce__`` calls ``exec``) is
refused as ``.pkl`` and as ``.pth``, by the checkpointer, the Predictor and the Trainer; the marker
is never written. ``tools/convert_weights.py`` turns a trusted pickle into tensors that load.
"""

import errno
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import d2_instseg.engine.checkpoint as ckpt_module
from d2_instseg.engine import Predictor, SafeCheckpointer, Trainer
from d2_instseg.engine.checkpoint import CheckpointSaveError, UnsafeWeightsError
from d2_instseg.irnet.files import load_cams

from ..conftest import REPO, shapes_cfg

CONFIG = "configs/shapes/fcn8s.yaml"


class _WritesAFile:
    """Unpickling this runs ``open(marker, "w").write("ran")``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


@pytest.fixture
def crafted(tmp_path):
    """(marker path, {suffix: crafted file}): a .pkl in Detectron2's model-zoo layout and a .pth
    written by torch.save, each carrying the code-running object next to real weights."""
    marker = str(tmp_path / "marker.txt")
    weights = {"w": np.zeros(3, np.float32)}
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(
        pickle.dumps({"model": weights, "__author__": "x", "extra": _WritesAFile(marker)})
    )
    pth = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(3)}, "extra": _WritesAFile(marker)}, pth)
    return marker, {".pkl": str(pkl), ".pth": str(pth)}


@pytest.mark.parametrize("suffix", [".pkl", ".pth"])
def test_crafted_files_are_refused_and_never_run(crafted, suffix, tmp_path):
    marker, files = crafted
    model = torch.nn.Linear(3, 1)
    with pytest.raises(UnsafeWeightsError, match="tools/convert_weights.py"):
        SafeCheckpointer(model).load(files[suffix])
    cfg = shapes_cfg(CONFIG, "MODEL.WEIGHTS", files[suffix], "OUTPUT_DIR", str(tmp_path))
    with pytest.raises(UnsafeWeightsError, match="could run any code"):
        Predictor(cfg)
    opts = ["DATASETS.TEST", "()", "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(tmp_path)]
    trainer = Trainer(shapes_cfg(CONFIG, "MODEL.WEIGHTS", files[suffix], *opts))
    with pytest.raises(UnsafeWeightsError):
        trainer.resume_or_load(resume=False)
    assert not os.path.exists(marker)


def test_the_check_is_not_vacuous(crafted):
    """Loading the crafted .pth the unsafe way does write the marker (so the test above would see
    it if anything unpickled the file)."""
    marker, files = crafted
    torch.load(files[".pth"], weights_only=False)
    assert open(marker).read() == "ran"


def test_convert_weights_writes_tensors_the_predictor_loads(tmp_path):
    """A trusted Detectron2 model-zoo .pkl of a model's weights (NumPy arrays) converted by
    tools/convert_weights.py: the Predictor loads it and gives the outputs of the same weights
    loaded directly; the pickle itself stays refused."""
    torch.manual_seed(0)
    cfg = shapes_cfg(CONFIG, "OUTPUT_DIR", str(tmp_path))
    model = Trainer.build_model(cfg)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    pkl = tmp_path / "trusted.pkl"
    pkl.write_bytes(pickle.dumps({"model": state, "__author__": "a trusted run"}))
    out = tmp_path / "trusted.safe.pth"
    proc = subprocess.run(
        [sys.executable, "tools/convert_weights.py", "--input", str(pkl), "--output", str(out)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    loaded = torch.load(out, weights_only=True)
    assert set(loaded["model"]) == set(state) and loaded["__author__"] == "a trusted run"
    direct = tmp_path / "direct.pth"
    torch.save({"model": model.state_dict()}, direct)
    image = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
    a = Predictor(shapes_cfg(CONFIG, "MODEL.WEIGHTS", str(out)))(image)["sem_seg"]
    b = Predictor(shapes_cfg(CONFIG, "MODEL.WEIGHTS", str(direct)))(image)["sem_seg"]
    torch.testing.assert_close(a, b)


def test_cam_cache_refuses_pickled_arrays(tmp_path):
    """The IRNet CAM files are plain arrays: one holding objects is not unpickled."""
    path = tmp_path / "cams.npz"
    np.savez(path, keys=np.array([0]), cam=np.array([object()]), high_res=np.zeros(1))
    with pytest.raises(ValueError, match="allow_pickle"):
        load_cams(str(path))


def _full_disk_on(call: int, monkeypatch):
    """torch.save in the checkpointer writes part of the file, then fails with ENOSPC on its
    ``call``-th use."""
    calls = []
    real = torch.save

    def save(data, f):
        calls.append(1)
        if len(calls) == call:
            f.write(b"PK\x03\x04 part of a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        real(data, f)

    monkeypatch.setattr(ckpt_module.torch, "save", save)


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 2)
    ck = SafeCheckpointer(model, str(tmp_path))
    ck.save("model_0000001", iteration=1)
    _full_disk_on(1, monkeypatch)
    with pytest.raises(CheckpointSaveError, match="No space left.*model_0000001.pth"):
        ck.save("model_0000002", iteration=2)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]
    assert SafeCheckpointer(model, str(tmp_path)).resume_or_load("")["iteration"] == 1


@pytest.mark.parametrize("policy", ["continue", "stop"])
def test_training_with_a_full_disk(tmp_path, monkeypatch, policy, caplog):
    """Checkpoints every 2 iterations of 6; the second save (iteration 4) hits a full disk.
    "continue": logged, training ends, model_final is tagged and model_0000003 never appears;
    "stop": training stops with the reason, model_0000001 still tagged."""
    cfg = shapes_cfg(
        CONFIG,
        "DATASETS.TRAIN", "('shapes_sem_seg_tiny_train',)", "DATASETS.TEST", "()",
        "SOLVER.MAX_ITER", "6", "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.IMS_PER_BATCH", "2",
        "DATALOADER.NUM_WORKERS", "0", "SOLVER.CHECKPOINT_ON_FAILURE", policy,
        "OUTPUT_DIR", str(tmp_path),
    )  # fmt: skip
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    _full_disk_on(2, monkeypatch)
    if policy == "stop":
        with pytest.raises(CheckpointSaveError, match="model_0000003.pth"):
            trainer.train()
        assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
        return
    trainer.train()
    # Detectron2 leaves ``iter`` at MAX_ITER once every iteration has run
    assert trainer.iter == 6 and "Could not save checkpoint" in caplog.text
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    assert not (tmp_path / "model_0000003.pth").exists()
    assert not list(tmp_path.glob("*.tmp"))
