"""Dataset mappers of IRNet's steps: the CAM network's (random long-side resize, flip, crop) and
IRNet's (random rescale, flip, crop of the image and of its relation label, the label then taken on
the stride-4 grid). Both see only the image-level view of a dataset
(:func:`d2_instseg.data.datasets.irnet.image_label_dicts`)."""

import copy
from typing import Dict, List, Optional

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from PIL import Image

from ..datasets.irnet import IMAGE_LABEL_KEYS
from .build import MAPPER_REGISTRY


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
    def augmentation_kwargs(cfg, resize: T.Augmentation, crop_size: int) -> Dict:
        """The ``__init__`` arguments (for ``from_config``): ``resize``, flip, ``crop_size`` x
        ``crop_size`` crop."""
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
        return cls.augmentation_kwargs(cfg, RandomLongEdgeResize(*cam.RESIZE_LONG), cam.CROP_SIZE)

    def __call__(self, dataset_dict: Dict) -> Dict:
        d = {k: dataset_dict[k] for k in IMAGE_LABEL_KEYS if k in dataset_dict}
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
        return cls.augmentation_kwargs(cfg, RandomRescale(*irn.RESCALE), irn.CROP_SIZE)

    def __call__(self, dataset_dict: Dict) -> Dict:
        d = copy.copy(dataset_dict)
        label = np.asarray(Image.open(d["relation_label_file"]), dtype=np.uint8)
        aug = self.augment(d, sem_seg=label)
        d["image"] = image_to_tensor(aug.image)
        small = np.ascontiguousarray(downsample_label(aug.sem_seg))
        d["relation_label"] = torch.as_tensor(small.astype(np.int64))
        return d


def downsample_label(label: np.ndarray, stride: int = 4) -> np.ndarray:
    """Nearest downsampling of an (H, W) label map to its stride-s grid (one pixel out of s)."""
    return label[::stride, ::stride]
