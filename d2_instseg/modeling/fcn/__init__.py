"""Baseline semantic heads for CPNet's comparison: FCN-32s/16s/8s and a U-Net decoder.

Registers ``FCNHead`` and ``UNetHead`` in SEM_SEG_HEADS_REGISTRY; use them with Detectron2's
``SemanticSegmentor`` (config keys MODEL.FCN.*, MODEL.UNET.*, see ``add_fcn_config``).
"""

from .config import add_fcn_config
from .fcn_head import FCNHead
from .unet_head import UNetHead

__all__ = ["FCNHead", "UNetHead", "add_fcn_config"]
