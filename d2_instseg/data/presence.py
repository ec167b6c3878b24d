"""What a registered dataset needs on disk, whether it is there, and how to prepare it.

:func:`dataset_status` knows the layouts of Detectron2's builtin COCO, Cityscapes and ADE20K
registrations, of :mod:`d2_instseg.data.voc` and of COCO-format datasets (``--dataset``,
``register_coco_instances``); for any other dataset it checks the paths named in its metadata.
The built-in shapes splits are generated on first use and always count as present.
"""

import glob
import os
from dataclasses import dataclass, field
from typing import List, Tuple

from detectron2.data import MetadataCatalog

# Metadata fields that name files or folders a dataset reads from.
PATH_FIELDS = ("json_file", "image_root", "image_dir", "gt_dir", "sem_seg_root", "panoptic_root")

_COCO = (
    "Download COCO 2017 from https://cocodataset.org (train2017.zip, val2017.zip, "
    "annotations_trainval2017.zip) and unzip into $DETECTRON2_DATASETS/coco: train2017/, val2017/, "
    "annotations/instances_{train,val}2017.json."
)
_CITYSCAPES = (
    "Download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from "
    "https://www.cityscapes-dataset.com and unzip into $DETECTRON2_DATASETS/cityscapes "
    "(leftImg8bit/, gtFine/)."
)
_CITYSCAPES_TRAIN_IDS = (
    " Then make the *_labelTrainIds.png files: python tools/prepare_datasets.py cityscapes "
    "(runs cityscapesscripts' createTrainIdLabelImgs)."
)
_ADE20K = (
    "Download ADEChallengeData2016.zip (MIT SceneParsing, http://sceneparsing.csail.mit.edu) and "
    "unzip into $DETECTRON2_DATASETS, then write annotations_detectron2/: python "
    "tools/prepare_datasets.py ade20k (what Detectron2's datasets/prepare_ade20k_sem_seg.py does)."
)
_VOC = (
    "Put VOCdevkit's VOC2012 (VOCtrainval_11-May-2012.tar: JPEGImages, SegmentationClass, "
    "SegmentationObject, ImageSets/Segmentation) into $DETECTRON2_DATASETS/VOC2012, and for "
    "train_aug the SBD-augmented SegmentationClassAug/ with ImageSets/Segmentation/train_aug.txt "
    "(10,582 ids: SBD train + VOC train, minus VOC val)."
)


@dataclass
class DatasetStatus:
    """``items``: (what, path or glob pattern, present) rows; ``prepare``: how to make it."""

    name: str
    items: List[Tuple[str, str, bool]] = field(default_factory=list)
    prepare: str = ""
    generated: bool = False

    @property
    def present(self) -> bool:
        return all(ok for _, _, ok in self.items)

    @property
    def missing(self) -> List[Tuple[str, str]]:
        return [(what, path) for what, path, ok in self.items if not ok]

    def describe(self) -> str:
        """One line per item (``ok`` / ``MISSING``), then the preparation step if anything is
        missing."""
        if self.generated:
            return f"{self.name}: ok (generated on first use)"
        lines = [f"{self.name}: {'ok' if self.present else 'MISSING'}"]
        lines += [
            f"  {'ok     ' if ok else 'MISSING'} {what}: {path}" for what, path, ok in self.items
        ]
        if not self.present and self.prepare:
            lines.append(f"  to prepare: {self.prepare}")
        return "\n".join(lines)


def _exists(path: str) -> bool:
    return bool(glob.glob(path)) if any(c in path for c in "*?[") else os.path.exists(path)


def _rows(*pairs: Tuple[str, str]) -> List[Tuple[str, str, bool]]:
    return [(what, path, _exists(path)) for what, path in pairs]


def dataset_status(name: str) -> DatasetStatus:
    """What ``name`` (a registered dataset) needs on disk and whether it is there."""
    meta = MetadataCatalog.get(name)
    if meta.get("shapes_spec", None) is not None:
        return DatasetStatus(name, generated=True)
    evaluator = meta.get("evaluator_type", None)
    if evaluator in ("cityscapes_instance", "cityscapes_sem_seg"):
        image_dir, gt_dir = meta.image_dir, meta.gt_dir
        rows = [
            ("images", os.path.join(image_dir, "*", "*_leftImg8bit.png")),
            ("polygons", os.path.join(gt_dir, "*", "*_gtFine_polygons.json")),
            ("label ids", os.path.join(gt_dir, "*", "*_gtFine_labelIds.png")),
        ]
        prepare = _CITYSCAPES
        if evaluator == "cityscapes_instance":
            rows.append(("instance ids", os.path.join(gt_dir, "*", "*_gtFine_instanceIds.png")))
        else:
            rows.append(("train ids", os.path.join(gt_dir, "*", "*_gtFine_labelTrainIds.png")))
            prepare += _CITYSCAPES_TRAIN_IDS
        return DatasetStatus(name, _rows(*rows), prepare)
    if meta.get("voc_folders", None) is not None:
        rows = [("split list", meta.split_file)]
        rows += [(os.path.basename(f), f) for f in meta.voc_folders]
        return DatasetStatus(name, _rows(*rows), _VOC)
    if name.startswith("ade20k_sem_seg"):
        rows = [
            ("images", os.path.join(meta.image_root, "*.jpg")),
            ("labels", os.path.join(meta.sem_seg_root, "*.png")),
        ]
        return DatasetStatus(name, _rows(*rows), _ADE20K)
    rows = [(f, meta.get(f)) for f in PATH_FIELDS if meta.get(f, None)]
    prepare = _COCO if name.startswith("coco_") else ""
    return DatasetStatus(name, _rows(*rows), prepare)
