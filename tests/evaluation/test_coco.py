"""FastCOCOEvaluator (faster-coco-eval's C++ COCOeval) gives exactly pycocotools' figures."""

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.evaluation import COCOEvaluator
from detectron2.structures import Boxes, Instances
from pycocotools import mask as mask_util

import d2_instseg  # noqa: F401
from d2_instseg.evaluation.coco import FastCOCOEvaluator


def _predictions():
    """shapes_tiny_val's masks, each twice shifted by up to 4 px, one in five with a wrong class,
    random scores: a mix of hits and misses at every IoU threshold."""
    rng = np.random.default_rng(0)
    pairs = []
    for d in DatasetCatalog.get("shapes_tiny_val"):
        masks, classes = [], []
        for ann in d["annotations"]:
            m = mask_util.decode(ann["segmentation"])
            for _ in range(2):
                masks.append(np.roll(m, int(rng.integers(-4, 5)), axis=int(rng.integers(0, 2))))
                wrong = rng.uniform() < 0.2
                classes.append(int(rng.integers(0, 3)) if wrong else ann["category_id"])
        inst = Instances((d["height"], d["width"]))
        inst.pred_masks = torch.from_numpy(np.stack(masks).astype(bool))
        boxes = [mask_util.toBbox(mask_util.encode(np.asfortranarray(m))) for m in masks]
        xyxy = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in boxes], dtype=torch.float32)
        inst.pred_boxes = Boxes(xyxy)
        inst.scores = torch.from_numpy(rng.uniform(size=len(masks)).astype(np.float32))
        inst.pred_classes = torch.tensor(classes)
        pairs.append(({"image_id": d["image_id"]}, {"instances": inst}))
    return pairs


def _evaluate(evaluator):
    evaluator.reset()
    for inputs, outputs in _predictions():
        evaluator.process([inputs], [outputs])
    return evaluator.evaluate()


def test_fast_evaluator_matches_pycocotools(tmp_path):
    reference = _evaluate(COCOEvaluator("shapes_tiny_val", output_dir=None, use_fast_impl=False))
    fast = _evaluate(FastCOCOEvaluator("shapes_tiny_val", output_dir=None))
    assert set(fast) == {"bbox", "segm"}
    for task in ("bbox", "segm"):
        assert 5 < reference[task]["AP"] < 95  # neither trivial end
        assert fast[task].keys() == reference[task].keys()
        for key, value in reference[task].items():  # AP, AP50, ..., and per-class AP
            assert fast[task][key] == pytest.approx(value, abs=1e-9, nan_ok=True), (task, key)
