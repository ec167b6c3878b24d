"""PASCAL VOC 2012 segmentation splits (registered on import), read from
``$DETECTRON2_DATASETS/VOC2012``: VOCdevkit's ``JPEGImages``, ``SegmentationClass``,
``SegmentationObject`` and ``ImageSets/Segmentation``, plus the augmented ``SegmentationClassAug``
(SBD) and ``ImageSets/Segmentation/train_aug.txt`` used by weakly supervised methods.

=========================  ========  ==========================================================
name                       images    contents
=========================  ========  ==========================================================
``voc_2012_seg_train_aug`` 10,582    ``image_labels`` only (from SegmentationClassAug), for IRNet
``voc_2012_seg_train``     1,464     instances (SegmentationObject, RLE) + ``sem_seg_file_name``
``voc_2012_seg_val``       1,449     same, for testing (evaluator ``coco``)
=========================  ========  ==========================================================

Detectron2's own ``voc_2012_{train,val}`` (detection boxes from ``Annotations/``) are unrelated.
"""
import os
from typing import Dict, List

import numpy as np
import pycocotools.mask as mask_util
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

VOC_CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
]  # fmt: skip
# split -> (has instance ground truth, folders it reads)
SPLITS = {
    "train_aug": (False, ("JPEGImages", "SegmentationClassAug")),
    "train": (True, ("JPEGImages", "SegmentationClass", "SegmentationObject")),
    "val": (True, ("JPEGImages", "SegmentationClass", "SegmentationObject")),
}


def voc_root() -> str:
    return os.path.join(os.getenv("DETECTRON2_DATASETS", "datasets"), "VOC2012")


def _voc_missing(root: str, what: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"PASCAL VOC 2012 segmentation data not found: {what!r} does not exist. Put VOCdevkit's "
        f"VOC2012 (JPEGImages, SegmentationClass, SegmentationObject, ImageSets/Segmentation) and "
        "the augmented SegmentationClassAug (+ ImageSets/Segmentation/train_aug.txt) under "
        f"{root!r} ($DETECTRON2_DATASETS/VOC2012), or run the CPU config configs/shapes/irnet.yaml."
    )


def split_file(root: str, split: str) -> str:
    return os.path.join(root, "ImageSets", "Segmentation", f"{split}.txt")


def _read_ids(root: str, split: str) -> List[str]:
    path = split_file(root, split)
    if not os.path.isfile(path):
        raise _voc_missing(root, path)
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def _instance_annotations(obj: np.ndarray, cls_map: np.ndarray) -> List[Dict]:
    """One COCO-RLE annotation per object id of a SegmentationObject map (0 = background, 255 =
    void); its class is the most frequent SegmentationClass label under it (contiguous id)."""
    annos = []
    for inst in np.unique(obj):
        if inst in (0, 255):
            continue
        mask = obj == inst
        rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        annos.append(
            {
                "bbox": mask_util.toBbox(rle).tolist(),
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": int(np.bincount(cls_map[mask]).argmax()) - 1,
                "segmentation": rle,
                "iscrowd": 0,
            }
        )
    return annos


def load_voc_seg(root: str, split: str, with_instances: bool) -> List[Dict]:
    """VOC 2012 segmentation dicts. ``image_labels`` come from the class PNGs (SegmentationClassAug,
    else SegmentationClass); with ``with_instances`` each object of SegmentationObject becomes a
    COCO-RLE annotation (the class read from SegmentationClass) and ``sem_seg_file_name`` names the
    SegmentationClass PNG (0 = background, c + 1 = class c, 255 = void), for evaluation only."""
    dicts = []
    for idx, name in enumerate(_read_ids(root, split)):
        cls_png = os.path.join(root, "SegmentationClassAug", name + ".png")
        if not os.path.isfile(cls_png):
            cls_png = os.path.join(root, "SegmentationClass", name + ".png")
        if not os.path.isfile(cls_png):
            raise _voc_missing(root, cls_png)
        cls_map = np.asarray(Image.open(cls_png))
        present = sorted(int(c) - 1 for c in np.unique(cls_map) if 0 < c < 255)
        d = {
            "file_name": os.path.join(root, "JPEGImages", name + ".jpg"),
            "height": cls_map.shape[0],
            "width": cls_map.shape[1],
            "image_id": idx,
            "image_labels": present,
        }
        if with_instances:
            sem_png = os.path.join(root, "SegmentationClass", name + ".png")
            obj_png = os.path.join(root, "SegmentationObject", name + ".png")
            for path in (sem_png, obj_png):
                if not os.path.isfile(path):
                    raise _voc_missing(root, path)
            obj = np.asarray(Image.open(obj_png))
            d["annotations"] = _instance_annotations(obj, np.asarray(Image.open(sem_png)))
            d["sem_seg_file_name"] = sem_png
        dicts.append(d)
    return dicts


def register_voc2012_seg(root: str = None) -> None:
    """Register ``voc_2012_seg_{train_aug,train,val}`` (see the module docstring). Lazy: nothing is
    read until ``DatasetCatalog.get``; a clear FileNotFoundError then says what is missing."""
    root = root or voc_root()
    for split, (with_instances, folders) in SPLITS.items():
        name = f"voc_2012_seg_{split}"
        if name in DatasetCatalog.list():
            continue
        DatasetCatalog.register(name, lambda s=split, w=with_instances: load_voc_seg(root, s, w))
        MetadataCatalog.get(name).set(
            thing_classes=VOC_CLASSES,
            image_root=os.path.join(root, "JPEGImages"),
            split_file=split_file(root, split),
            voc_folders=[os.path.join(root, f) for f in folders],
            evaluator_type="coco",
        )
