"""IRNet's models (Ahn, Cho, Kwak, CVPR 2019): the CAM network ``IRNetCAM`` and the inter-pixel
relation network ``IRNetRelations`` (registered meta-architectures), their losses and the pair
geometry they share. The workflow that trains them from image labels and synthesises pseudo masks is
``d2_instseg.irnet``."""

from .cam import IRNetCAM, cam_semantic_prediction, multiscale_cams
from .config import add_irnet_config
from .relation_net import IRNetRelations

__all__ = [
    "IRNetCAM",
    "IRNetRelations",
    "add_irnet_config",
    "cam_semantic_prediction",
    "multiscale_cams",
]
