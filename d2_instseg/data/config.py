"""Config keys of the data layer: the dataset mapper's name, the bad-annotation policy, and the
random scale of ``SemSegScaleCropMapper``."""

from detectron2.config import CfgNode as CN

from ..utils.config_checks import ABSOLUTE_CROP, POSITIVE_RANGE, all_at_least, check_keys, one_of
from ..utils.config_registry import register_config_part
from .checks import POLICIES
from .dataset_mappers.build import MAPPER_REGISTRY


def add_data_config(cfg: CN) -> None:
    """Add INPUT.DATASET_MAPPER_NAME, DATASETS.INVALID_ANNOTATIONS and INPUT.RANDOM_SCALE."""
    # Name of the dataset mapper in d2_instseg.data.MAPPER_REGISTRY used by the Trainer; "" means
    # Detectron2's DatasetMapper (Mask R-CNN and other built-in models).
    cfg.INPUT.DATASET_MAPPER_NAME = ""
    # What to do with a bad annotation (unknown category, polygon < 3 points, empty segmentation,
    # box outside the image) or an unreadable/missing image: "error" stops with the file and
    # annotation id named; "skip" logs it and trains without it.
    cfg.DATASETS.INVALID_ANNOTATIONS = "error"
    # Random scale augmentation of SemSegScaleCropMapper: the image is fitted inside
    # BASE_SIZE * s, s ~ U(RANGE), then flipped (INPUT.RANDOM_FLIP) and cropped / padded (label =
    # ignore) to INPUT.CROP.SIZE.
    cfg.INPUT.RANDOM_SCALE = CN()
    cfg.INPUT.RANDOM_SCALE.BASE_SIZE = [512, 2048]
    cfg.INPUT.RANDOM_SCALE.RANGE = [0.5, 2.0]


def check_data_config(cfg: CN) -> None:
    """Raise ValueError naming the first invalid key of the data layer."""
    mappers = ["", *sorted(name for name, _ in MAPPER_REGISTRY)]
    check_keys(cfg, "DATASETS", [("INVALID_ANNOTATIONS", one_of(*POLICIES))])
    check_keys(cfg, "INPUT", [("DATASET_MAPPER_NAME", one_of(*mappers))])
    if cfg.INPUT.DATASET_MAPPER_NAME == "SemSegScaleCropMapper":
        check_keys(
            cfg,
            "INPUT",
            [
                ("CROP", ABSOLUTE_CROP),
                ("RANDOM_SCALE.RANGE", POSITIVE_RANGE),
                ("RANDOM_SCALE.BASE_SIZE", all_at_least(1, length=2)),
            ],
        )


register_config_part("data", add_data_config, check_data_config)
