"""Baseline semantic heads for CPNet's comparison: FCN-32s/16s/8s and a U-Net decoder.

Registers ``FCNHead`` and ``UNetHead`` in SEM_SEG_HEADS_REGISTRY; use them with Detectron2's
``SemanticSegmentor`` (config keys MODEL.FCN.*, MODEL.UNET.*, see ``add_cpnet_config``).
"""
from .fcn_head import FCNHead
from .unet_head import UNetHead
from ...layers.upsample import BilinearUpsample, bilinear_kernel
from .upsample import fit_to

__all__ = ["BilinearUpsample", "FCNHead", "UNetHead", "bilinear_kernel", "fit_to"]
