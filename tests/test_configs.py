"""Every YAML under configs/ merges into a config with all of d2_instseg's keys."""
import glob
import os

import pytest
from detectron2.config import get_cfg

import d2_instseg

from .conftest import REPO

CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True))


def test_configs_found():
    assert any(c.endswith("mask_rcnn_R18_FPN.yaml") for c in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.relpath(c, REPO) for c in CONFIGS])
def test_config_merges(path):
    cfg = get_cfg()
    d2_instseg.add_d2_instseg_config(cfg)
    cfg.merge_from_file(path)
    assert cfg.MODEL.META_ARCHITECTURE
