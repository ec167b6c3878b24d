"""IRNet (Ahn, Cho, Kwak, CVPR 2019): instance segmentation from image-level labels.

Importing registers the meta-architectures ``IRNetCAM`` and ``IRNetRelations``, the dataset mappers
``IRNetCAMMapper`` / ``IRNetRelationMapper`` (the PASCAL VOC 2012 segmentation splits are
registered by :mod:`d2_instseg.data.voc`). :class:`IRNetPipeline` runs the whole method
(``tools/irnet_pipeline.py``); see docs/irnet.md.
"""
from .cam import IRNetCAM, multiscale_cams
from .config import add_irnet_config, check_irnet_config
from .data import image_label_dicts, register_pseudo_datasets
from .irnet import IRNetRelations
from .pipeline import STEPS, IRNetPipeline, parse_steps

__all__ = [
    "STEPS",
    "IRNetCAM",
    "IRNetPipeline",
    "IRNetRelations",
    "add_irnet_config",
    "check_irnet_config",
    "image_label_dicts",
    "multiscale_cams",
    "parse_steps",
    "register_pseudo_datasets",
]
