"""Spatial Embeddings (Neven et al., CVPR 2019): meta-architecture, decoder, loss and clustering."""

from .cluster import cluster_class, cluster_instances, cluster_pixels, pixel_boxes, pixel_masks
from .config import add_spatial_embed_config, check_spatial_embed_config
from .decoder import SpatialEmbedDecoder
from .embedding import coordinate_map, gaussian_phi, split_outputs
from .loss import SpatialEmbedLoss, spatial_embed_image_loss
from .meta_arch import SpatialEmbeddings

__all__ = [
    "SpatialEmbedDecoder",
    "SpatialEmbedLoss",
    "SpatialEmbeddings",
    "add_spatial_embed_config",
    "check_spatial_embed_config",
    "cluster_class",
    "cluster_instances",
    "cluster_pixels",
    "coordinate_map",
    "gaussian_phi",
    "pixel_boxes",
    "pixel_masks",
    "spatial_embed_image_loss",
    "split_outputs",
]
