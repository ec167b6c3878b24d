"""Predictions in the formats other tools read: COCO results (RLE masks), instance and class label
images, semantic label maps. Pure functions of a Predictor's output (``instances`` with dense
``pred_masks`` or, from tiled inference, ``pred_masks_rle``; ``sem_seg`` scores).

Shape shorthand: (H, W) the image; N instances.
"""

from typing import Dict, List, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_util
from detectron2.structures import Instances

__all__ = [
    "category_ids",
    "class_label_image",
    "coco_results",
    "instance_label_image",
    "instance_mask",
    "label_dtype",
    "mask_rles",
    "semantic_label_image",
]


def category_ids(metadata) -> List[int]:
    """Contiguous class index -> the dataset's category id: the inverse of the metadata's
    ``thing_dataset_id_to_contiguous_id`` (a COCO-format dataset), else index + 1 (COCO's
    convention of ids from 1)."""
    mapping = getattr(metadata, "thing_dataset_id_to_contiguous_id", None)
    classes = getattr(metadata, "thing_classes", None) or []
    if mapping:
        inverse = {contiguous: dataset_id for dataset_id, contiguous in mapping.items()}
        return [inverse[i] for i in range(len(inverse))]
    return list(range(1, len(classes) + 1))


def mask_rles(instances: Instances) -> List[Dict]:
    """The instances' masks as compressed COCO RLE dicts (``counts`` as str: JSON-ready)."""
    if instances.has("pred_masks_rle"):
        rles = [dict(r) for r in instances.pred_masks_rle]
    else:
        masks = instances.pred_masks.cpu().numpy().astype(np.uint8)  # (N, H, W)
        rles = [mask_util.encode(np.asfortranarray(m)) for m in masks]
    for rle in rles:
        if isinstance(rle["counts"], bytes):
            rle["counts"] = rle["counts"].decode("ascii")
    return rles


def coco_results(instances: Instances, image_id: int, categories: Sequence[int]) -> List[Dict]:
    """COCO results entries (what ``COCO.loadRes`` reads): ``image_id``, ``category_id`` (through
    ``categories``, see :func:`category_ids`), ``bbox`` [x, y, w, h], ``score``, ``segmentation``
    (RLE)."""
    boxes = instances.pred_boxes.tensor.cpu().numpy().astype(float)
    scores = instances.scores.cpu().tolist()
    classes = instances.pred_classes.cpu().tolist()
    return [
        {
            "image_id": image_id,
            "category_id": int(categories[c]),
            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
            "score": float(s),
            "segmentation": rle,
        }
        for b, s, c, rle in zip(boxes.tolist(), scores, classes, mask_rles(instances))
    ]


def instance_mask(instances: Instances, index: int) -> np.ndarray:
    """The (H, W) bool mask of instance ``index`` (decoded from RLE after tiled inference)."""
    if instances.has("pred_masks_rle"):
        return mask_util.decode(instances.pred_masks_rle[index]).astype(bool)
    return instances.pred_masks[index].cpu().numpy().astype(bool)


def label_dtype(count: int):
    """The smallest unsigned type that holds labels 0..count."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if count <= np.iinfo(dtype).max:
            return dtype
    raise ValueError(f"{count} labels do not fit in 32 bits")


def instance_label_image(instances: Instances, dtype=np.uint16) -> np.ndarray:
    """(H, W) instance labels: 0 background, i + 1 for the i-th instance in the order given (the
    Predictor's: by descending score). Where masks overlap, the higher-scored instance (smaller
    label) keeps the pixel."""
    height, width = instances.image_size
    if len(instances) > np.iinfo(dtype).max:
        raise ValueError(f"{len(instances)} instances do not fit in {np.dtype(dtype).name} labels")
    labels = np.zeros((height, width), dtype=dtype)
    # highest score first, each instance taking the pixels still free (one mask in memory at once)
    for i in np.argsort(-instances.scores.cpu().numpy(), kind="stable"):
        mask = instance_mask(instances, int(i))
        labels[mask & (labels == 0)] = i + 1
    return labels


def class_label_image(
    instance_labels: np.ndarray, classes: Sequence[int], dtype: Optional[type] = None
) -> np.ndarray:
    """(H, W) class map from (H, W) instance labels: 0 background, c + 1 for contiguous class c."""
    lookup = np.concatenate([[0], np.asarray(classes, dtype=np.int64) + 1])
    dtype = dtype or label_dtype(int(lookup.max()))
    return lookup[instance_labels].astype(dtype)


def semantic_label_image(sem_seg, dtype: Optional[type] = None) -> np.ndarray:
    """(K, H, W) scores -> (H, W) labels: the class with the highest score (contiguous ids)."""
    labels = sem_seg.argmax(0).cpu().numpy()
    return labels.astype(dtype or label_dtype(sem_seg.shape[0] - 1))
