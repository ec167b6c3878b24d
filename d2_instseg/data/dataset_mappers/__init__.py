"""Dataset mappers chosen by name (``INPUT.DATASET_MAPPER_NAME``): each method brings its own, all
registered here on import."""

from .build import MAPPER_REGISTRY, build_mapper
from .centermask import CenterMaskDatasetMapper
from .irnet import IRNetCAMMapper, IRNetRelationMapper, image_to_tensor
from .semseg_crop import SemSegScaleCropMapper

__all__ = [
    "CenterMaskDatasetMapper",
    "IRNetCAMMapper",
    "IRNetRelationMapper",
    "MAPPER_REGISTRY",
    "SemSegScaleCropMapper",
    "build_mapper",
    "image_to_tensor",
]
