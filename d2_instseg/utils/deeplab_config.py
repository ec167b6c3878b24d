"""Detectron2's DeepLab keys, added once however many of our parts need them."""

from detectron2.config import CfgNode
from detectron2.projects.deeplab import add_deeplab_config


def add_deeplab_config_once(cfg: CfgNode) -> None:
    """``add_deeplab_config`` (SOLVER.POLY_LR_*, MODEL.RESNETS.RES4_DILATION, ...) unless it ran:
    it resets its keys to their defaults, so a second call would undo a merged value."""
    if "RES4_DILATION" not in cfg.MODEL.RESNETS:
        add_deeplab_config(cfg)
