"""Datasets: the synthetic shapes splits, VOC 2012 segmentation (instances from SegmentationObject),
miniature copies of the real datasets' layouts, user COCO datasets from the command line, and
IRNet's image-label view and pseudo-label registration."""

from .shapes import register_all_shapes, register_shapes
from .synthetic_shapes import ShapesSpec
from .user_datasets import register_user_dataset, register_user_datasets
from .voc import VOC_CLASSES, load_voc_seg, register_voc2012_seg

__all__ = [
    "VOC_CLASSES",
    "ShapesSpec",
    "load_voc_seg",
    "register_all_shapes",
    "register_shapes",
    "register_user_dataset",
    "register_user_datasets",
    "register_voc2012_seg",
]
