"""Built-in datasets (registered on import), dataset mappers and user-dataset registration."""
from .builtin import register_all_shapes, register_shapes
from .mappers import MAPPER_REGISTRY, build_mapper
from .shapes import ShapesSpec
from .user_datasets import register_user_dataset, register_user_datasets

register_all_shapes()

__all__ = [
    "MAPPER_REGISTRY",
    "ShapesSpec",
    "build_mapper",
    "register_shapes",
    "register_user_dataset",
    "register_user_datasets",
]
