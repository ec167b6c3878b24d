"""The iteration times of IRNet's own trainings for configure.py's budget: the placeholder relation
labels, and that each training is timed with its own model and data (IRNet's on those labels)."""

import os

import numpy as np
import torch
from detectron2.config import get_cfg

from d2_instseg import add_d2_instseg_config
from d2_instseg.irnet import timing
from d2_instseg.irnet.timing import placeholder_relation_label

from ..conftest import REPO


def test_placeholder_label_has_the_three_kinds_in_bands():
    label = placeholder_relation_label(6, 4, class_id=2)
    expected = np.array([[0] * 4] * 2 + [[255] * 4] * 2 + [[3] * 4] * 2, dtype=np.uint8)
    assert label.dtype == np.uint8 and np.array_equal(label, expected)


def test_each_training_is_timed_on_its_own_model_and_data(monkeypatch):
    cfg = get_cfg()
    add_d2_instseg_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, "configs", "shapes", "irnet.yaml"))
    cfg.DATASETS.TRAIN = ("shapes_tiny_train",)
    cfg.DATALOADER.NUM_WORKERS = 0
    seen = {}

    def one_batch(step_cfg, model, loader, lr_factor):
        batch = next(iter(loader))
        seen[step_cfg.MODEL.META_ARCHITECTURE] = (type(model).__name__, batch)
        return {"IRNetCAM": 3.0, "IRNetRelations": 1.5}[step_cfg.MODEL.META_ARCHITECTURE]

    monkeypatch.setattr(timing, "measure_iteration_time", one_batch)
    times = timing.irnet_iteration_times(cfg, "shapes_tiny_train")
    assert times == {"cam": 3.0, "irn": 1.5, "num_images": 64}
    name, batch = seen["IRNetCAM"]
    assert name == "IRNetCAM" and len(batch) == 16 and "image_labels" in batch[0]
    name, batch = seen["IRNetRelations"]
    assert name == "IRNetRelations" and len(batch) == 16
    for d in batch:  # each image's label: background, unsure and its first class, on the grid
        values = set(torch.unique(d["relation_label"]).tolist())
        assert values == {0, 255, d["image_labels"][0] + 1}, values
        assert d["relation_label"].shape == tuple((s - 1) // 4 + 1 for s in d["image"].shape[1:])
