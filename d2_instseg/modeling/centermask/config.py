"""Config keys of CenterMask (point representation; Wang et al., CVPR 2020), under
``MODEL.CENTERMASK``."""

from detectron2.config import CfgNode as CN

from ...utils.config_checks import (
    POSITIVE_RANGE,
    Rule,
    at_least,
    check_keys,
    closed_interval,
    one_of,
    open_interval,
)
from ...utils.config_registry import register_config_part

# The mask branches of the paper's ablation (MODEL.CENTERMASK.MASK_BRANCHES).
MASK_BRANCHES = ("both", "shape", "saliency")


def add_centermask_config(cfg: CN) -> None:
    """Add ``MODEL.CENTERMASK`` (heads, losses, inference, training augmentation) to ``cfg`` (the
    DLA-34 and Hourglass backbones' keys are ``MODEL.DLA`` / ``MODEL.HOURGLASS``)."""
    _C = cfg
    _C.MODEL.CENTERMASK = CN()
    # C: number of thing classes (heatmap channels); the Trainer syncs it from dataset metadata.
    _C.MODEL.CENTERMASK.NUM_CLASSES = 80
    # Backbone output read by the heads; it must have stride R = 4 (CenterNet's output stride).
    _C.MODEL.CENTERMASK.IN_FEATURE = "dla2"
    # Channels of each head's hidden 3x3 conv (CenterNet's head_conv: 256 for DLA-34 and Hourglass).
    _C.MODEL.CENTERMASK.HEAD_CONV = 256
    # S: side of the local shape; the shape head predicts an S^2 vector at each center (paper: 32).
    _C.MODEL.CENTERMASK.SHAPE_SIZE = 32
    # Mask branches (paper's ablation table): "both" (M = sigma(L) * sigma(G)), "shape" (local shape
    # only, M = sigma(L)) or "saliency" (global saliency only, M = sigma(G)).
    _C.MODEL.CENTERMASK.MASK_BRANCHES = "both"
    # Global saliency G: one class-agnostic channel (False) or C class-specific channels (True),
    # where object k reads the channel of its class.
    _C.MODEL.CENTERMASK.SALIENCY_CLASS_SPECIFIC = False
    # Prior probability of a heatmap peak: the heatmap conv's bias is -log((1 - pi) / pi) = -2.19.
    _C.MODEL.CENTERMASK.HEATMAP_PRIOR_PROB = 0.1
    # m: min IoU of CenterNet's gaussian radius rule.
    _C.MODEL.CENTERMASK.GAUSSIAN_MIN_OVERLAP = 0.7
    # lambda_p, lambda_off, lambda_size, lambda_mask of L = sum lambda_i L_i (paper: 1, 1, 0.1, 1).
    _C.MODEL.CENTERMASK.HEATMAP_LOSS_WEIGHT = 1.0
    _C.MODEL.CENTERMASK.OFFSET_LOSS_WEIGHT = 1.0
    _C.MODEL.CENTERMASK.SIZE_LOSS_WEIGHT = 0.1
    _C.MODEL.CENTERMASK.MASK_LOSS_WEIGHT = 1.0
    # Weight of the extra BCE supervising the saliency map G directly with the union of the masks of
    # each channel's class (the paper adds it with class-specific saliency); 0 disables it.
    _C.MODEL.CENTERMASK.SALIENCY_LOSS_WEIGHT = 0.0
    # K: number of centers kept after 3x3 max-pool peak extraction (paper: top-100); no NMS.
    _C.MODEL.CENTERMASK.TOPK_TEST = 100
    # Minimum center score sigma(heatmap) of a detection at test time.
    _C.MODEL.CENTERMASK.SCORE_THRESH_TEST = 0.05
    # Threshold on the assembled mask M_k at test time (paper: 0.4).
    _C.MODEL.CENTERMASK.MASK_THRESH_TEST = 0.4

    # Training augmentation of INPUT.DATASET_MAPPER_NAME "CenterMaskDatasetMapper": CenterNet's
    # random scale s (longer side -> TRAIN_CROP_SIZE / s), square crop (paper: 512).
    _C.MODEL.CENTERMASK.TRAIN_CROP_SIZE = 512
    _C.MODEL.CENTERMASK.TRAIN_SCALE_RANGE = (0.6, 1.3)


def check_centermask_config(cfg: CN) -> None:
    """Raise ValueError naming the first invalid ``MODEL.CENTERMASK`` key (the backbone-dependent
    IN_FEATURE is checked by the model once the backbone is built)."""
    cm = cfg.MODEL.CENTERMASK
    weights = ("HEATMAP", "OFFSET", "SIZE", "MASK", "SALIENCY")
    saliency_needs_map = Rule(
        lambda v: v == 0 or cm.MASK_BRANCHES != "shape",
        "must be 0 when MODEL.CENTERMASK.MASK_BRANCHES is 'shape' (there is no saliency map)",
    )
    check_keys(
        cfg,
        "MODEL.CENTERMASK",
        [
            ("NUM_CLASSES", at_least(1)),
            ("HEAD_CONV", at_least(1)),
            ("SHAPE_SIZE", at_least(1)),
            ("MASK_BRANCHES", one_of(*MASK_BRANCHES)),
            ("HEATMAP_PRIOR_PROB", open_interval(0, 1)),
            ("GAUSSIAN_MIN_OVERLAP", open_interval(0, 1)),
            *[(f"{w}_LOSS_WEIGHT", at_least(0)) for w in weights],
            ("SALIENCY_LOSS_WEIGHT", saliency_needs_map),
            ("TOPK_TEST", at_least(1)),
            ("SCORE_THRESH_TEST", closed_interval(0, 1)),
            ("MASK_THRESH_TEST", closed_interval(0, 1)),
            ("TRAIN_CROP_SIZE", at_least(1)),
            ("TRAIN_SCALE_RANGE", POSITIVE_RANGE),
        ],
    )


register_config_part("centermask", add_centermask_config, check_centermask_config)
