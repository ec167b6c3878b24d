"""CenterNet's training augmentation as a Detectron2 dataset mapper (``INPUT.DATASET_MAPPER_NAME:
"CenterMaskDatasetMapper"``): random scale, fixed-size crop (padded), horizontal flip; keys
``MODEL.CENTERMASK.TRAIN_CROP_SIZE`` / ``TRAIN_SCALE_RANGE``."""

from detectron2.config import configurable
from detectron2.data import DatasetMapper
from detectron2.data import transforms as T

from .build import MAPPER_REGISTRY

__all__ = ["CenterMaskDatasetMapper"]


@MAPPER_REGISTRY.register()
class CenterMaskDatasetMapper(DatasetMapper):
    """DatasetMapper whose training augmentation follows CenterNet (``ctdet.py``): the image's
    longer side is scaled to ``size / s`` with s uniform in [0.6, 1.3] (``ResizeScale`` over [1 /
    1.3, 1 / 0.6]), a random ``size`` x ``size`` crop is taken (padded when smaller) and the image
    is flipped with probability 0.5. Boxes are recomputed from the cropped masks. Testing is
    Detectron2's usual path (``INPUT.MIN_SIZE_TEST: 0`` keeps the resolution, as CenterNet's
    ``--keep_res``)."""

    @configurable
    def __init__(self, is_train: bool = True, **kwargs):
        super().__init__(is_train, **kwargs)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        ret = super().from_config(cfg, is_train)
        if is_train:
            size = cfg.MODEL.CENTERMASK.TRAIN_CROP_SIZE
            lo, hi = cfg.MODEL.CENTERMASK.TRAIN_SCALE_RANGE
            ret["augmentations"] = [
                T.ResizeScale(1 / hi, 1 / lo, size, size),
                T.FixedSizeCrop((size, size)),
                T.RandomFlip(),
            ]
            ret["recompute_boxes"] = cfg.MODEL.MASK_ON
        return ret
