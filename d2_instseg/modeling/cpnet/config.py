"""Config keys of CPNet and of its FCN / UNet baselines (issue #5)."""
from detectron2.config import CfgNode as CN

from ...utils.config_checks import (
    Rule,
    all_at_least,
    at_least,
    check_keys,
    closed_interval,
    one_of,
)


def add_cpnet_config(cfg: CN) -> None:
    """Add MODEL.CPNET, MODEL.FCN, MODEL.UNET and INPUT.RANDOM_SCALE (and the poly-LR / ResNet res4
    dilation keys, named as in Detectron2's DeepLab project so both adders compose).

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

    _C.MODEL.FCN = CN()
    # FCN-32s / 16s / 8s: the finest stride whose score map is fused (by addition) before the
    # final learnable up-sampling.
    _C.MODEL.FCN.VARIANT = 8
    # Backbone features at strides 8, 16, 32 (pool3, pool4, pool5 in the FCN paper).
    _C.MODEL.FCN.IN_FEATURES = ["res3", "res4", "res5"]
    # Width of the conv (3x3 + norm + ReLU + dropout) on the coarsest feature (FCN's fc6/fc7).
    _C.MODEL.FCN.CONV_DIM = 512
    _C.MODEL.FCN.DROPOUT = 0.1
    _C.MODEL.FCN.NORM = "BN"

    _C.MODEL.UNET = CN()
    # Encoder levels, finest first; the decoder climbs from the last one with concatenation skips.
    _C.MODEL.UNET.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    # Decoder width after fusing each skip, deepest skip first (one entry per skip level).
    _C.MODEL.UNET.DECODER_CHANNELS = [256, 128, 64]
    _C.MODEL.UNET.NORM = "BN"

    # Random scale augmentation of SemSegScaleCropMapper: the image is fitted inside
    # BASE_SIZE * s, s ~ U(RANGE), then flipped (INPUT.RANDOM_FLIP) and cropped / padded (label =
    # ignore) to INPUT.CROP.SIZE.
    _C.INPUT.RANDOM_SCALE = CN()
    _C.INPUT.RANDOM_SCALE.BASE_SIZE = [512, 2048]
    _C.INPUT.RANDOM_SCALE.RANGE = [0.5, 2.0]

    # Dilation of res4 for build_dilated_resnet_backbone (2 with RES5_DILATION 4: output stride 8).
    if "RES4_DILATION" not in _C.MODEL.RESNETS:
        _C.MODEL.RESNETS.RES4_DILATION = 1


def _check_sem_seg_head(cfg: CN, *, own_loss_weight: bool = False) -> None:
    """Detectron2's MODEL.SEM_SEG_HEAD keys as our heads read them (LOSS_WEIGHT unless the head has
    its own)."""
    num_classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    rows = [
        ("NUM_CLASSES", at_least(1)),
        (
            "IGNORE_VALUE",
            Rule(lambda v: not 0 <= v < num_classes, "must not be a class id (0..NUM_CLASSES-1)"),
        ),
    ]
    if not own_loss_weight:
        rows.append(("LOSS_WEIGHT", at_least(0)))
    check_keys(cfg, "MODEL.SEM_SEG_HEAD", rows)


def check_cpnet_config(cfg: CN) -> None:
    """Raise ValueError naming the first invalid key of CPNetHead (``MODEL.CPNET`` without TEST,
    ``MODEL.SEM_SEG_HEAD``); the backbone-dependent feature names are checked by the head."""
    _check_sem_seg_head(cfg, own_loss_weight=True)
    weights = (
        "LOSS_WEIGHT", "AUX_LOSS_WEIGHT", "AFFINITY_LOSS_WEIGHT", "UNARY_WEIGHT", "GLOBAL_WEIGHT"
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


def check_cpnet_test_config(cfg: CN) -> None:
    """Raise ValueError naming the first invalid ``MODEL.CPNET.TEST`` key of CPNetSegmentor (whose
    windows are INPUT.CROP.SIZE)."""
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


def check_fcn_config(cfg: CN) -> None:
    """Raise ValueError naming the first invalid key of FCNHead (``MODEL.FCN``,
    ``MODEL.SEM_SEG_HEAD``)."""
    _check_sem_seg_head(cfg)
    check_keys(
        cfg,
        "MODEL.FCN",
        [
            ("VARIANT", one_of(32, 16, 8)),
            ("IN_FEATURES", Rule(lambda v: len(v) == 3, "must name 3 features (stride 8, 16, 32)")),
            ("CONV_DIM", at_least(1)),
            ("DROPOUT", closed_interval(0, 1)),
        ],
    )


def check_unet_config(cfg: CN) -> None:
    """Raise ValueError naming the first invalid key of UNetHead (``MODEL.UNET``,
    ``MODEL.SEM_SEG_HEAD``)."""
    _check_sem_seg_head(cfg)
    levels = len(cfg.MODEL.UNET.IN_FEATURES)
    check_keys(
        cfg,
        "MODEL.UNET",
        [
            ("IN_FEATURES", Rule(lambda v: len(v) >= 2, "must name >= 2 backbone outputs")),
            ("DECODER_CHANNELS", all_at_least(1, length=max(levels - 1, 1))),
        ],
    )
