"""Built-in datasets (registered on import), dataset mappers and user-dataset registration."""
from .builtin import register_all_shapes, register_shapes
from .mappers import MAPPER_REGISTRY, build_mapper
from .shapes import ShapesSpec
from .user_datasets import register_user_dataset, register_user_datasets
from .voc import VOC_CLASSES, load_voc_seg, register_voc2012_seg

register_all_shapes()
register_voc2012_seg()

__all__ = [
    "MAPPER_REGISTRY",
    "VOC_CLASSES",
    "ShapesSpec",
    "build_mapper",
    "load_voc_seg",
    "register_shapes",
    "register_user_dataset",
    "register_user_datasets",
    "register_voc2012_seg",
]
