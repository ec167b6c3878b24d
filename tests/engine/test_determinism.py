"""The same config and SEED give the same training on CPU: two separate processes (different
PYTHONHASHSEED, two data-loader workers each, as the shapes configs use) record every loss of
their first 20 iterations, and the lists are equal to the last bit.

Mask R-CNN goes through Detectron2's aspect-ratio grouping (batches formed in the main process
from the stream the workers return), CenterMask through its random crop and flip in the workers.
"""

import json
import os
import subprocess
import sys

import pytest

from ..conftest import REPO

ITERS = 20
# Every loss of every iteration, from the trainer's EventStorage, written as JSON; the run goes
# through tools/train_net.py's own argument parser and setup (SEED, default_setup), in-process.
SCRIPT = """
import json, sys
sys.path.insert(0, "tools")
import train_net
from d2_instseg.engine import Trainer, setup_cfg

args = train_net.argument_parser().parse_args(sys.argv[2:])
trainer = Trainer(setup_cfg(args))
trainer.resume_or_load(resume=False)
trainer.train()
histories = trainer.storage.histories()
losses = {k: [v for v, _ in h.values()] for k, h in histories.items() if "loss" in k}
json.dump(losses, open(sys.argv[1], "w"))
"""

CONFIGS = {
    "mask_rcnn": "configs/shapes/mask_rcnn_R18_FPN.yaml",
    "centermask": "configs/shapes/centermask.yaml",
}


def _losses(config, out, hash_seed):
    opts = [
        "--config-file", config,
        "DATASETS.TRAIN", "('shapes_tiny_train',)", "DATASETS.TEST", "()",
        "SOLVER.MAX_ITER", str(ITERS), "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "2",
        "OUTPUT_DIR", str(out),
    ]  # fmt: skip
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed))
    path = out / "losses.json"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(path), *opts],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(path) as f:
        return json.load(f)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_two_runs_give_the_same_losses(name, tmp_path):
    first = _losses(CONFIGS[name], tmp_path / "a", 1)
    second = _losses(CONFIGS[name], tmp_path / "b", 2)
    assert "total_loss" in first and len(first["total_loss"]) == ITERS
    assert len(first) >= 3  # the total and at least two loss terms
    assert first == second
    # the losses do change over the 20 iterations (a run stuck on one value would pass vacuously)
    assert len(set(first["total_loss"])) > ITERS // 2
