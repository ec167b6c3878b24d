"""Config keys of CPNet (``MODEL.CPNET``); its FCN / UNet baselines' are in ``modeling/fcn``."""

from detectron2.config import CfgNode as CN

from ...utils.config_checks import (
    ABSOLUTE_CROP,
    Rule,
    all_at_least,
    at_least,
    check_keys,
    check_sem_seg_head,
    closed_interval,
    one_of,
)
from ...utils.config_registry import register_config_part


def add_cpnet_config(cfg: CN) -> None:
    """Add MODEL.CPNET (the head, and CPNetSegmentor's inference under MODEL.CPNET.TEST).

    The number of classes and the ignore label are Detectron2's MODEL.SEM_SEG_HEAD.NUM_CLASSES and
    MODEL.SEM_SEG_HEAD.IGNORE_VALUE (the Trainer syncs NUM_CLASSES from the dataset's metadata).
    """
    _C = cfg
    _C.MODEL.CPNET = CN()
    # Backbone feature X fed to the aggregation module and concatenated before the classifier.
    _C.MODEL.CPNET.IN_FEATURE = "res5"
    # Backbone feature of the auxiliary FCN head (stage 3 in the paper's numbering, res4 here).
    _C.MODEL.CPNET.AUX_IN_FEATURE = "res4"
    # (h, w) of the stride-8 feature map = the prior's size; N = h * w is the number of output
    # channels of the prior convolution. Must equal ceil(INPUT.CROP.SIZE / 8) (480 crop -> 60).
    _C.MODEL.CPNET.PRIOR_SIZE = [60, 60]
    # k, kernel size of the fully separable (k x 1, 1 x k, depth-wise) convolutions of the AM.
    _C.MODEL.CPNET.AM_KERNEL_SIZE = 11
    # C, channels of the AM output X~, of the intra / inter context and of the bottleneck.
    _C.MODEL.CPNET.CHANNELS = 512
    # Channels of the auxiliary FCN head's 3x3 convolution.
    _C.MODEL.CPNET.AUX_CHANNELS = 256
    # Dropout before the main and auxiliary classifiers.
    _C.MODEL.CPNET.DROPOUT = 0.1
    # Normalisation of every conv in the head ("BN"; "SyncBN" for multi-GPU training).
    _C.MODEL.CPNET.NORM = "BN"
    # Loss weights: L = LOSS_WEIGHT * CE + lambda_a * CE_aux + lambda_p * L_p (1, 0.4, 1 in the
    # authors' code) with L_p = lambda_u * L_u + lambda_g * L_g (both 1).
    _C.MODEL.CPNET.LOSS_WEIGHT = 1.0
    _C.MODEL.CPNET.AUX_LOSS_WEIGHT = 0.4  # lambda_a
    _C.MODEL.CPNET.AFFINITY_LOSS_WEIGHT = 1.0  # lambda_p
    _C.MODEL.CPNET.UNARY_WEIGHT = 1.0  # lambda_u
    _C.MODEL.CPNET.GLOBAL_WEIGHT = 1.0  # lambda_g
    # Inference of CPNetSegmentor (the prior only accepts INPUT.CROP.SIZE inputs):
    _C.MODEL.CPNET.TEST = CN()
    # "slide": windows of INPUT.CROP.SIZE every SLIDE_STRIDE pixels, logits averaged on overlaps;
    # "resize": the whole image resized to INPUT.CROP.SIZE and the logits resized back.
    _C.MODEL.CPNET.TEST.MODE = "slide"
    # (h, w) step between sliding windows, at most INPUT.CROP.SIZE (2/3 of the crop is common).
    _C.MODEL.CPNET.TEST.SLIDE_STRIDE = [320, 320]
    # Multi-scale testing: image scales whose softmax scores are averaged ((1.0,) = single scale).
    _C.MODEL.CPNET.TEST.SCALES = [1.0]
    # Also average the horizontally flipped prediction.
    _C.MODEL.CPNET.TEST.FLIP = False


def check_cpnet_config(cfg: CN) -> None:
    """Raise ValueError naming the first invalid key of CPNetHead (``MODEL.CPNET`` and
    ``MODEL.SEM_SEG_HEAD``, when it is the SEM_SEG_HEAD) and of CPNetSegmentor (``MODEL.CPNET.TEST``
    and INPUT.CROP, when it is the meta-architecture); the backbone-dependent feature names and the
    prior size are checked when the model is built."""
    if cfg.MODEL.SEM_SEG_HEAD.NAME == "CPNetHead":
        _check_head(cfg)
    if cfg.MODEL.META_ARCHITECTURE == "CPNetSegmentor":
        check_keys(cfg, "INPUT", [("CROP", ABSOLUTE_CROP)])
        _check_test(cfg)


def _check_head(cfg: CN) -> None:
    check_sem_seg_head(cfg, own_loss_weight=True)
    weights = (
        "LOSS_WEIGHT",
        "AUX_LOSS_WEIGHT",
        "AFFINITY_LOSS_WEIGHT",
        "UNARY_WEIGHT",
        "GLOBAL_WEIGHT",
    )
    check_keys(
        cfg,
        "MODEL.CPNET",
        [
            ("PRIOR_SIZE", all_at_least(1, length=2)),
            ("AM_KERNEL_SIZE", Rule(lambda v: v >= 1 and v % 2 == 1, "must be odd")),
            ("CHANNELS", at_least(1)),
            ("AUX_CHANNELS", at_least(1)),
            ("DROPOUT", closed_interval(0, 1)),
            *[(key, at_least(0)) for key in weights],
        ],
    )


def _check_test(cfg: CN) -> None:
    # the sliding windows are INPUT.CROP.SIZE
    crop = list(cfg.INPUT.CROP.SIZE)
    check_keys(
        cfg,
        "MODEL.CPNET.TEST",
        [
            ("MODE", one_of("slide", "resize")),
            (
                "SLIDE_STRIDE",
                Rule(
                    lambda v: len(v) == 2 and all(0 < s <= c for s, c in zip(v, crop)),
                    f"needs 2 values in (0, INPUT.CROP.SIZE={crop}]",
                ),
            ),
            ("SCALES", Rule(lambda v: len(v) > 0 and min(v) > 0, "needs one or more scales > 0")),
        ],
    )


register_config_part("cpnet", add_cpnet_config, check_cpnet_config)
