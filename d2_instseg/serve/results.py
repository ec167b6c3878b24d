"""A prediction in the forms clients read: COCO-style results (RLE masks), an instance label image
(16-bit PNG: 0 background, 1..K instances) or a semantic label image with per-class areas, and the
Visualizer overlay; every form filtered by a score threshold without running the model again."""

import io
from dataclasses import dataclass
from typing import Dict, List

import numpy as np
import pycocotools.mask as mask_util
import torch
from PIL import Image

from ..engine.visualize import draw_predictions


@dataclass
class Prediction:
    """One request's image and model outputs (on the CPU), kept for re-rendering."""

    rgb: np.ndarray  # (H, W, 3) uint8
    outputs: Dict  # {"instances": Instances} or {"sem_seg": (K, H, W)}
    metadata: object
    kind: str  # "instance" or "semantic"

    def instances(self, threshold: float):
        inst = self.outputs["instances"]
        return inst[inst.scores >= threshold]


def _category_ids(metadata, num: int) -> List[int]:
    """Contiguous class id -> dataset category id (the COCO file's), else id + 1."""
    mapping = metadata.get("thing_dataset_id_to_contiguous_id", None)
    if mapping:
        inverse = {v: k for k, v in mapping.items()}
        return [inverse.get(c, c + 1) for c in range(num)]
    return [c + 1 for c in range(num)]


def coco_instances(pred: Prediction, threshold: float, image_id: int = 1) -> List[Dict]:
    """COCO results of the instances with score >= ``threshold``: image_id, category_id (and
    category_name), bbox [x, y, w, h], score, area and an RLE segmentation (counts as str)."""
    inst = pred.instances(threshold)
    names = pred.metadata.get("thing_classes", None)
    classes = inst.pred_classes.tolist()
    ids = _category_ids(pred.metadata, max(classes, default=-1) + 1)
    masks = np.asfortranarray(inst.pred_masks.numpy().transpose(1, 2, 0).astype(np.uint8))
    rles = mask_util.encode(masks) if len(inst) else []
    results = []
    for i, (rle, cls) in enumerate(zip(rles, classes)):
        rle["counts"] = rle["counts"].decode("ascii")
        x0, y0, x1, y1 = inst.pred_boxes.tensor[i].tolist()
        results.append(
            {
                "image_id": image_id,
                "category_id": ids[cls],
                "category_name": names[cls] if names and cls < len(names) else str(cls),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "score": float(inst.scores[i]),
                "area": int(mask_util.area(rle)),
                "segmentation": rle,
            }
        )
    return results


def semantic_classes(pred: Prediction) -> List[Dict]:
    """Per class present in the label map: id, name, area (pixels) and its share of the image."""
    labels = pred.outputs["sem_seg"].argmax(dim=0)
    counts = torch.bincount(labels.flatten(), minlength=pred.outputs["sem_seg"].shape[0])
    names = pred.metadata.get("stuff_classes", None)
    total = labels.numel()
    return [
        {
            "id": c,
            "name": names[c] if names and c < len(names) else str(c),
            "area": int(n),
            "fraction": float(n) / total,
        }
        for c, n in enumerate(counts.tolist())
        if n
    ]


def label_png(pred: Prediction, threshold: float) -> bytes:
    """The label image as PNG bytes: instances 16-bit, 0 background and k = the k-th instance in
    score order (a pixel of overlapping masks takes the highest-scoring one); semantic: the class
    ids (8-bit, 16-bit beyond 255 classes)."""
    if pred.kind == "semantic":
        labels = pred.outputs["sem_seg"].argmax(dim=0).numpy()
        dtype = np.uint8 if labels.max(initial=0) < 256 else np.uint16
        return _png(labels.astype(dtype))
    inst = pred.instances(threshold)
    labels = np.zeros(pred.rgb.shape[:2], np.uint16)
    order = torch.argsort(inst.scores, descending=True).tolist()
    for rank, i in reversed(list(enumerate(order, start=1))):  # best last: wins overlaps
        labels[inst.pred_masks[i].numpy()] = rank
    return _png(labels)


def overlay_png(pred: Prediction, threshold: float) -> bytes:
    """The Visualizer overlay (instances >= ``threshold``, or the label map) as PNG bytes."""
    outputs = pred.outputs
    if pred.kind == "instance":
        outputs = {"instances": pred.instances(threshold)}
    return _png(draw_predictions(pred.rgb, outputs, pred.metadata, threshold=threshold))


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
