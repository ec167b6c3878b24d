"""Data for IRNet: image-label-only views of training sets, the CAM / IRNet dataset mappers and
registration of the synthesised pseudo-label datasets.

The IRNet steps only ever see :func:`image_label_dicts`, which keeps ``file_name``, ``height``,
``width``, ``image_id`` and ``image_labels`` of each dataset dict and drops every annotation.
"""
import copy
import os
from typing import Dict, List, Optional

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.data.datasets import register_coco_instances
from PIL import Image

from ..data import MAPPER_REGISTRY
from .relations import downsample_label

_KEEP = ("file_name", "height", "width", "image_id", "image_labels")


def image_label_dicts(dataset_name: str) -> List[Dict]:
    """Dataset dicts of ``dataset_name`` reduced to image-level labels (no masks, boxes or classes
    of objects). Raises ValueError if a dict has no ``image_labels``."""
    out = []
    for d in DatasetCatalog.get(dataset_name):
        if "image_labels" not in d:
            raise ValueError(
                f"IRNet needs image-level labels: dataset {dataset_name!r} has a dict without "
                f"'image_labels' ({d.get('file_name')})"
            )
        out.append({k: d[k] for k in _KEEP if k in d})
    return out


class RandomLongEdgeResize(T.Augmentation):
    """Resize so that the long side is uniform in [min_long, max_long] (IRNet's ``resize_long``)."""

    def __init__(self, min_long: int, max_long: int):
        super().__init__()
        self._init(locals())

    def get_transform(self, image):
        h, w = image.shape[:2]
        scale = np.random.randint(self.min_long, self.max_long + 1) / max(h, w)
        return T.ResizeTransform(h, w, max(1, round(h * scale)), max(1, round(w * scale)))


class RandomRescale(T.Augmentation):
    """Resize by a factor uniform in [min_scale, max_scale] (IRNet's ``random_scale``)."""

    def __init__(self, min_scale: float, max_scale: float):
        super().__init__()
        self._init(locals())

    def get_transform(self, image):
        h, w = image.shape[:2]
        s = np.random.uniform(self.min_scale, self.max_scale)
        return T.ResizeTransform(h, w, max(1, round(h * s)), max(1, round(w * s)))


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) array -> (3, H, W) float tensor, as the IRNet models take it."""
    return torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))).float()


class _AugmentingMapper:
    """Shared part of the IRNet mappers: a random resize, horizontal flip and square crop of the
    image (and of a label map), the image returned as a (3, H, W) float tensor."""

    @configurable
    def __init__(self, *, augmentations: List[T.Augmentation], image_format: str):
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format

    @staticmethod
    def config(cfg, resize: T.Augmentation, crop_size: int) -> Dict:
        """``from_config`` arguments: ``resize``, flip, ``crop_size`` x ``crop_size`` crop."""
        return {
            "augmentations": [
                resize,
                T.RandomFlip(horizontal=True),
                T.RandomCrop("absolute", (crop_size, crop_size)),
            ],
            "image_format": cfg.INPUT.FORMAT,
        }

    def augment(self, dataset_dict: Dict, sem_seg: Optional[np.ndarray] = None) -> T.AugInput:
        """The dict's image (and ``sem_seg``, (H, W)) read and augmented together."""
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        aug = T.AugInput(image, sem_seg=sem_seg)
        self.augmentations(aug)
        return aug


@MAPPER_REGISTRY.register()
class IRNetCAMMapper(_AugmentingMapper):
    """Training mapper of the CAM network: random long-side resize, flip, crop (smaller images are
    padded in the model). Output: ``image`` (3, H, W) float and ``image_labels``."""

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        cam = cfg.MODEL.IRNET.CAM
        return cls.config(cfg, RandomLongEdgeResize(*cam.RESIZE_LONG), cam.CROP_SIZE)

    def __call__(self, dataset_dict: Dict) -> Dict:
        d = {k: dataset_dict[k] for k in _KEEP if k in dataset_dict}
        d["image"] = image_to_tensor(self.augment(d).image)
        return d


@MAPPER_REGISTRY.register()
class IRNetRelationMapper(_AugmentingMapper):
    """Training mapper of IRNet: random rescale, flip and crop of the image and of its relation
    label (``relation_label_file``, full resolution), then the label taken on the stride-4 grid.
    Output: ``image`` (3, H, W) float, ``relation_label`` ((H-1)//4+1, (W-1)//4+1) int64."""

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        irn = cfg.MODEL.IRNET.IRN
        return cls.config(cfg, RandomRescale(*irn.RESCALE), irn.CROP_SIZE)

    def __call__(self, dataset_dict: Dict) -> Dict:
        d = copy.copy(dataset_dict)
        label = np.asarray(Image.open(d["relation_label_file"]), dtype=np.uint8)
        aug = self.augment(d, sem_seg=label)
        d["image"] = image_to_tensor(aug.image)
        small = np.ascontiguousarray(downsample_label(aug.sem_seg))
        d["relation_label"] = torch.as_tensor(small.astype(np.int64))
        return d


# ---------------------------------------------------------------------------- pseudo-label datasets


def _unregister(name: str) -> None:
    """Forget ``name`` (a rerun of the pipeline registers its new labels under the same name)."""
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def register_pseudo_datasets(
    name: str, json_file: str, image_root: str, sem_seg_root: str, thing_classes: List[str]
) -> None:
    """Register the synthesised labels: ``name`` (COCO instances, evaluator ``coco``) and
    ``name + "_sem_seg"`` (label PNGs named like the images, 0 = background, c + 1 = class c)."""
    _unregister(name)
    register_coco_instances(name, {}, json_file, image_root)
    MetadataCatalog.get(name).set(thing_classes=list(thing_classes))
    sem = name + "_sem_seg"
    _unregister(sem)

    def load_sem():
        dicts = DatasetCatalog.get(name)
        return [
            {
                "file_name": d["file_name"],
                "sem_seg_file_name": os.path.join(
                    sem_seg_root, os.path.splitext(os.path.basename(d["file_name"]))[0] + ".png"
                ),
                "height": d["height"],
                "width": d["width"],
                "image_id": d["image_id"],
            }
            for d in dicts
        ]

    DatasetCatalog.register(sem, load_sem)
    MetadataCatalog.get(sem).set(
        stuff_classes=["background"] + list(thing_classes),
        thing_classes=list(thing_classes),
        ignore_label=255,
        sem_seg_root=sem_seg_root,
        image_root=image_root,
        evaluator_type="sem_seg",
    )
