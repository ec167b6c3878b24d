"""Every YAML under configs/ merges into a config with all of d2_instseg's keys, passes the config
checks and builds its model on the CPU; the CPU configs' models then run inference on one odd-sized
image (the paper configs' inference, at their GPU sizes, is run on the miniature datasets by
tests/configs/test_paper_configs.py)."""

import glob
import os

import pytest
import torch

import d2_instseg
from d2_instseg.engine import Trainer

from .conftest import REPO, shapes_cfg

CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True))
# Base-*.yaml are bases: they merge but leave keys (crop size, classes) to their children
RUNNABLE = [c for c in CONFIGS if not os.path.basename(c).startswith("Base-")]
# what each meta-architecture returns per image at inference
OUTPUT = {
    "CenterMaskPoint": "instances",
    "GeneralizedRCNN": "instances",
    "SpatialEmbeddings": "instances",
    "CPNetSegmentor": "sem_seg",
    "SemanticSegmentor": "sem_seg",
    "IRNetCAM": "cam",
}


def test_configs_found():
    assert len(CONFIGS) >= 20 and any(c.endswith("mask_rcnn_R18_FPN.yaml") for c in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.relpath(c, REPO) for c in CONFIGS])
def test_config_merges(path):
    cfg = shapes_cfg(os.path.relpath(path, REPO))
    assert cfg.MODEL.META_ARCHITECTURE in OUTPUT


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("path", RUNNABLE, ids=[os.path.relpath(c, REPO) for c in RUNNABLE])
def test_config_builds_and_runs_on_cpu(path):
    cfg = shapes_cfg(os.path.relpath(path, REPO), "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "")
    d2_instseg.check_d2_instseg_config(cfg)
    torch.manual_seed(0)
    model = Trainer.build_model(cfg).eval()
    assert type(model).__name__ == cfg.MODEL.META_ARCHITECTURE
    if "configs/shapes/" not in path:
        return
    with torch.no_grad():
        (out,) = model([{"image": torch.rand(3, 67, 93) * 255, "height": 67, "width": 93}])
    assert OUTPUT[cfg.MODEL.META_ARCHITECTURE] in out
