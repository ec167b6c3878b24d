"""The data layer: datasets (registered on import), dataset mappers, input checks and the data
layer's config keys."""

from . import config  # noqa: F401  (registers the data layer's config part)
from .dataset_mappers import MAPPER_REGISTRY, build_mapper
from .datasets import (
    ShapesSpec,
    register_all_shapes,
    register_shapes,
    register_user_dataset,
    register_user_datasets,
    register_voc2012_seg,
)
from .fingerprint import compute_fingerprint, fingerprint

register_all_shapes()
register_voc2012_seg()

__all__ = [
    "MAPPER_REGISTRY",
    "ShapesSpec",
    "build_mapper",
    "compute_fingerprint",
    "fingerprint",
    "register_shapes",
    "register_user_dataset",
    "register_user_datasets",
]
