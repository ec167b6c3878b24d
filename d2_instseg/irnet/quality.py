"""Pseudo-label quality against ground truth, and the CAM classifier's quality on held-out image
labels (reports only: nothing here feeds the IRNet steps).

Semantic maps: (H, W) uint8, 0 = background, c + 1 = class c, 255 = ignored. Instances: COCO results
(``image_id``, ``category_id``, ``segmentation`` RLE, ``score``) scored with pycocotools.
"""

import contextlib
import io
import json
import os
from typing import Dict, List, Optional

import numpy as np
import pycocotools.mask as mask_util
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.coco import convert_to_coco_json
from faster_coco_eval import COCOeval_faster
from PIL import Image
from pycocotools.coco import COCO

from .files import stem


def _has_masks(d: Dict) -> bool:
    """Whether a dataset dict has ground-truth masks: a label PNG or an instance segmentation
    (image labels, boxes or an empty ``annotations`` list are not)."""
    return "sem_seg_file_name" in d or any("segmentation" in a for a in d.get("annotations", []))


class GroundTruth:
    """Ground truth of a dataset with annotations, looked up by image file stem."""

    def __init__(self, dataset_name: str, cache_dir: str):
        self.dataset_name = dataset_name
        self.dicts = {stem(d["file_name"]): d for d in DatasetCatalog.get(dataset_name)}
        if not any(_has_masks(d) for d in self.dicts.values()):
            raise ValueError(f"Dataset {dataset_name!r} has no masks to report against")
        self.coco_json = os.path.join(cache_dir, f"{dataset_name}_coco_format.json")
        self._coco: Optional[COCO] = None
        id_map = MetadataCatalog.get(dataset_name).get("thing_dataset_id_to_contiguous_id", None)
        # contiguous class id -> category id of the COCO json (convert_to_coco_json's convention)
        self.category_ids = {v: k for k, v in id_map.items()} if id_map else None

    def __contains__(self, file_name: str) -> bool:
        return stem(file_name) in self.dicts

    def get(self, file_name: str) -> Optional[Dict]:
        """The ground-truth dataset dict of the image named like ``file_name``, or None."""
        return self.dicts.get(stem(file_name))

    def semantic(self, file_name: str) -> np.ndarray:
        """(H, W) uint8 GT labels: the dataset's label PNG, else the union of its instance masks."""
        d = self.dicts[stem(file_name)]
        if "sem_seg_file_name" in d:
            return np.asarray(Image.open(d["sem_seg_file_name"]), dtype=np.uint8)
        label = np.zeros((d["height"], d["width"]), dtype=np.uint8)
        for a in d.get("annotations", []):
            seg = a.get("segmentation")
            if seg is None:  # a box without a mask: unknown pixels, left out of the label image
                continue
            if isinstance(seg, list):  # polygons
                seg = mask_util.merge(mask_util.frPyObjects(seg, d["height"], d["width"]))
            elif isinstance(seg["counts"], list):
                seg = mask_util.frPyObjects(seg, d["height"], d["width"])
            label[mask_util.decode(seg).astype(bool)] = a["category_id"] + 1
        return label

    @property
    def coco(self) -> COCO:
        if self._coco is None:
            convert_to_coco_json(self.dataset_name, self.coco_json)
            with contextlib.redirect_stdout(io.StringIO()):
                self._coco = COCO(self.coco_json)
        return self._coco

    def category_id(self, contiguous_id: int) -> int:
        return self.category_ids[contiguous_id] if self.category_ids else contiguous_id

    def image_id(self, file_name: str) -> int:
        return self.dicts[stem(file_name)]["image_id"]


class ConfusionMatrix:
    """Accumulates a (K, K) confusion matrix of semantic maps; K = C + 1 (with background)."""

    def __init__(self, num_labels: int):
        self.matrix = np.zeros((num_labels, num_labels), dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        k = len(self.matrix)
        valid = gt < k
        self.matrix += np.bincount(
            k * gt[valid].astype(np.int64) + pred[valid], minlength=k * k
        ).reshape(k, k)

    def miou(self) -> float:
        """Mean IoU (%) over the labels that occur in GT or prediction."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - tp
        present = union > 0
        return float(100.0 * np.mean(tp[present] / union[present])) if present.any() else 0.0


def instance_ap(gt: GroundTruth, results: List[Dict], image_ids: List[int]) -> Dict[str, float]:
    """COCO mask AP / AP50 / AP75 (%) of ``results`` (image ids already in ``gt``'s ids) over
    ``image_ids``. An empty result list scores 0."""
    if not results:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.coco.loadRes(json.loads(json.dumps(results)))
        ev = COCOeval_faster(gt.coco, dt, "segm")
        ev.params.imgIds = sorted(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": 100.0 * ev.stats[0], "AP50": 100.0 * ev.stats[1], "AP75": 100.0 * ev.stats[2]}


def multilabel_scores(logits: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """Image-level classification quality of (N, C) ``logits`` against (N, C) 0/1 ``labels``:

    - ``cls_mAP``: mean over the classes with a positive of average precision (%), each AP the mean,
      over the positives, of the precision at the positive's rank (logits sorted high to low);
    - ``cls_acc``: accuracy (%) of the N x C present / absent decisions ``logit > 0``;
    - ``cls_acc_constant``: the accuracy (%) of answering each class's majority label for every
      image: the level a classifier that ignores the image reaches.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if logits.shape != labels.shape or logits.ndim != 2:
        raise ValueError(f"logits {logits.shape} and labels {labels.shape} must both be (N, C)")
    order = np.argsort(-logits, axis=0, kind="stable")
    ranked = np.take_along_axis(labels, order, axis=0)  # (N, C) labels by descending logit
    precision = np.cumsum(ranked, axis=0) / np.arange(1, len(labels) + 1)[:, None]
    positives = ranked.sum(axis=0)
    has_pos = positives > 0
    ap = (precision * ranked).sum(axis=0)[has_pos] / positives[has_pos]
    prior = labels.mean(axis=0)
    return {
        "cls_mAP": float(100.0 * ap.mean()) if has_pos.any() else 0.0,
        "cls_acc": float(100.0 * ((logits > 0) == labels).mean()),
        "cls_acc_constant": float(100.0 * np.maximum(prior, 1.0 - prior).mean()),
    }
