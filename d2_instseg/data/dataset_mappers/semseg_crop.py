"""SemSegScaleCropMapper: random scale, flip and fixed-size crop (padded with the ignore label)."""

import numpy as np
from detectron2.data import DatasetMapper
from detectron2.data import transforms as T

from .build import MAPPER_REGISTRY


@MAPPER_REGISTRY.register()
class SemSegScaleCropMapper(DatasetMapper):
    """Detectron2's DatasetMapper with the augmentation of CPNet / DeepLab-style training:

    - training: fit the image inside ``INPUT.RANDOM_SCALE.BASE_SIZE * s``, ``s ~ U(RANGE)``
      (aspect kept), flip (``INPUT.RANDOM_FLIP``), then a random ``INPUT.CROP.SIZE`` crop, padded
      at the bottom / right when the image is smaller (image: mean colour, label:
      ``MODEL.SEM_SEG_HEAD.IGNORE_VALUE``), so every training image has exactly the crop size;
    - test: Detectron2's test resize (``INPUT.MIN_SIZE_TEST``; 0 keeps the original size).
    """

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        ret = super().from_config(cfg, is_train)
        if not is_train:
            return ret
        low, high = cfg.INPUT.RANDOM_SCALE.RANGE  # (checked by the data layer's config part)
        base_h, base_w = cfg.INPUT.RANDOM_SCALE.BASE_SIZE
        augs = [T.ResizeScale(low, high, base_h, base_w)]
        if cfg.INPUT.RANDOM_FLIP != "none":
            augs.append(
                T.RandomFlip(
                    horizontal=cfg.INPUT.RANDOM_FLIP == "horizontal",
                    vertical=cfg.INPUT.RANDOM_FLIP == "vertical",
                )
            )
        augs.append(
            T.FixedSizeCrop(
                tuple(cfg.INPUT.CROP.SIZE),
                pad=True,
                pad_value=float(np.mean(cfg.MODEL.PIXEL_MEAN)),
                seg_pad_value=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            )
        )
        ret["augmentations"] = augs
        return ret
