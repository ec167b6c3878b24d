"""Config keys of the baseline semantic heads of CPNet's comparison: ``MODEL.FCN`` (FCN-32s/16s/8s)
and ``MODEL.UNET``; the classes and the ignore label are Detectron2's ``MODEL.SEM_SEG_HEAD``
keys."""

from detectron2.config import CfgNode as CN

from ...utils.config_checks import (
    Rule,
    all_at_least,
    at_least,
    check_keys,
    check_sem_seg_head,
    closed_interval,
    one_of,
)
from ...utils.config_registry import register_config_part


def add_fcn_config(cfg: CN) -> None:
    """Add MODEL.FCN and MODEL.UNET."""
    cfg.MODEL.FCN = CN()
    # FCN-32s / 16s / 8s: the finest stride whose score map is fused (by addition) before the
    # final (fixed bilinear) up-sampling.
    cfg.MODEL.FCN.VARIANT = 8
    # Backbone features at strides 8, 16, 32 (pool3, pool4, pool5 in the FCN paper).
    cfg.MODEL.FCN.IN_FEATURES = ["res3", "res4", "res5"]
    # Width of the conv (3x3 + norm + ReLU + dropout) on the coarsest feature (FCN's fc6/fc7).
    cfg.MODEL.FCN.CONV_DIM = 512
    cfg.MODEL.FCN.DROPOUT = 0.1
    cfg.MODEL.FCN.NORM = "BN"

    cfg.MODEL.UNET = CN()
    # Encoder levels, finest first; the decoder climbs from the last one with concatenation skips.
    cfg.MODEL.UNET.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    # Decoder width after fusing each skip, deepest skip first (one entry per skip level).
    cfg.MODEL.UNET.DECODER_CHANNELS = [256, 128, 64]
    cfg.MODEL.UNET.NORM = "BN"


def check_fcn_config(cfg: CN) -> None:
    """Raise ValueError naming the first invalid key of the head in use (FCNHead: ``MODEL.FCN``,
    UNetHead: ``MODEL.UNET``, with ``MODEL.SEM_SEG_HEAD``)."""
    head = cfg.MODEL.SEM_SEG_HEAD.NAME
    if head == "FCNHead":
        check_sem_seg_head(cfg)
        check_keys(
            cfg,
            "MODEL.FCN",
            [
                ("VARIANT", one_of(32, 16, 8)),
                (
                    "IN_FEATURES",
                    Rule(lambda v: len(v) == 3, "must name 3 features (stride 8, 16, 32)"),
                ),
                ("CONV_DIM", at_least(1)),
                ("DROPOUT", closed_interval(0, 1)),
            ],
        )
    elif head == "UNetHead":
        check_sem_seg_head(cfg)
        levels = len(cfg.MODEL.UNET.IN_FEATURES)
        check_keys(
            cfg,
            "MODEL.UNET",
            [
                ("IN_FEATURES", Rule(lambda v: len(v) >= 2, "must name >= 2 backbone outputs")),
                ("DECODER_CHANNELS", all_at_least(1, length=max(levels - 1, 1))),
            ],
        )


register_config_part("fcn", add_fcn_config, check_fcn_config)
