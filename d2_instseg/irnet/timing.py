"""Iteration times of IRNet's own two trainings (the CAM network's, IRNet's) on this machine, for
the time budget of ``tools/configure.py --method irnet --minutes N``.

IRNet trains on relation labels that the pipeline makes from the trained CAM network's output, so
before the pipeline has run there are none. Their values change which terms the losses add up,
not what is computed: every pair of the stride-4 grid is scored whatever its label
(:func:`d2_instseg.modeling.irnet.relations.pair_labels`), so placeholder labels that hold all
three kinds (background, a class, unsure) give the iteration time of the real ones."""

import os
import tempfile
from typing import Dict, List

import numpy as np
from PIL import Image

from ..data.datasets.irnet import image_label_dicts
from ..engine import measure_iteration_time
from ..modeling.irnet.relations import IGNORE_LABEL
from .steps import cam_training, irn_training


def placeholder_relation_label(height: int, width: int, class_id: int) -> np.ndarray:
    """(height, width) uint8 relation label in three horizontal bands: confident background (0),
    unsure (IGNORE_LABEL) and class ``class_id`` (stored as ``class_id + 1``)."""
    label = np.zeros((height, width), dtype=np.uint8)
    label[height // 3 : 2 * height // 3] = IGNORE_LABEL
    label[2 * height // 3 :] = class_id + 1
    return label


def _with_placeholder_labels(dicts: List[Dict], folder: str) -> List[Dict]:
    """``dicts`` with a ``relation_label_file`` each, written as PNGs under ``folder``."""
    out = []
    for i, d in enumerate(dicts):
        if "height" in d and "width" in d:
            height, width = d["height"], d["width"]
        else:
            with Image.open(d["file_name"]) as im:
                width, height = im.size
        classes = d["image_labels"] or [0]
        path = os.path.join(folder, f"{i}.png")
        Image.fromarray(placeholder_relation_label(height, width, classes[0])).save(path)
        out.append(dict(d, relation_label_file=path))
    return out


def irnet_iteration_times(cfg, dataset_name: str) -> Dict[str, float]:
    """Seconds per iteration of the ``cam`` and ``irn`` trainings of ``cfg`` (an IRNet pipeline
    config) on ``dataset_name``'s images, and that set's ``num_images`` (the epochs' unit). IRNet
    is timed on placeholder labels of the first four batches of images."""
    dicts = image_label_dicts(dataset_name)
    times = {"num_images": len(dicts)}
    cam_cfg, model, loader, lr_factor = cam_training(cfg, dicts)
    times["cam"] = measure_iteration_time(cam_cfg, model, loader, lr_factor)
    with tempfile.TemporaryDirectory() as tmp:
        some = dicts[: 4 * cfg.MODEL.IRNET.IRN.IMS_PER_BATCH]
        irn_cfg, model, loader, lr_factor = irn_training(cfg, _with_placeholder_labels(some, tmp))
        times["irn"] = measure_iteration_time(irn_cfg, model, loader, lr_factor)
    return times
