"""Config keys of Spatial Embeddings (``MODEL.SPATIAL_EMBED``; its ERFNet encoder's are
``MODEL.ERFNET``, in the backbone folder). Paper symbols: e (embedding), C_k (center), s / sigma
(margin), phi, w_*."""

from detectron2.config import CfgNode as CN

from ...utils.config_checks import (
    Rule,
    all_at_least,
    at_least,
    check_keys,
    closed_interval,
    greater_than,
)
from ...utils.config_registry import register_config_part


def add_spatial_embed_config(cfg: CN) -> None:
    """Add ``MODEL.SPATIAL_EMBED`` to ``cfg``."""
    cfg.MODEL.SPATIAL_EMBED = node = CN()
    # Number of thing classes = number of seed maps (one-vs-all, sigmoid). Synced from the metadata.
    node.NUM_CLASSES = 8
    # Backbone output the branched decoder reads ("erf3": ERFNet stride 8; "p3" for ResNet-FPN).
    node.IN_FEATURE = "erf3"
    # Channels after each 2x upsampler of both decoders; the feature stride must be 2^(len + 1).
    node.DECODER_WIDTHS = [64, 16]
    # non_bottleneck_1d blocks after each upsampler.
    node.DECODER_BLOCKS = 2
    # Sigma channels: 1 = circular margin, 2 = elliptical margin (one sigma for x, one for y).
    node.N_SIGMA = 1
    # Pixels per embedding unit: pixel (i, j) sits at (j, i) / PIXELS_PER_UNIT. 1023 reproduces the
    # reference's coordinate pitch (y in [0, 1] over 1024 rows); offsets e - xy are tanh-bounded to
    # +-1 unit, and sigma bias 1 at init is a margin of ~0.0048 units (~5 px).
    node.PIXELS_PER_UNIT = 1023.0
    # Initial bias of the sigma channels: bandwidth exp(10 s) = 1 / (2 sigma^2), so 1 is the
    # reference's starting margin sigma = 0.0048 units (4.9 px at 1023 px per unit). With fewer
    # pixels per unit, keep the margin a fraction of an object (tools/configure.py derives it).
    node.SIGMA_BIAS_INIT = 1.0
    # Center of attraction C_k: pixel centroid of the instance (True, released default) or the mean
    # of its predicted embeddings (False).
    node.TO_CENTER = True
    # Loss weights: w_inst (Lovasz hinge on 2 phi - 1), w_var (sigma smoothness), w_seed.
    node.INSTANCE_LOSS_WEIGHT = 1.0
    node.VARIANCE_LOSS_WEIGHT = 10.0
    node.SEED_LOSS_WEIGHT = 1.0
    # w_fg: weight of the seed regression to phi inside instances (background pixels weigh 1).
    node.FOREGROUND_WEIGHT = 10.0
    # Clustering: minimum seed value of an instance's seed pixel (the reference's test.py uses 0.9).
    node.SEED_THRESHOLD = 0.9
    # Clustering: pixels with seed > FG_THRESHOLD are a class's foreground.
    node.FG_THRESHOLD = 0.5
    # Clustering: an instance has more than MIN_PIXELS pixels (128 at Cityscapes' 1024x2048); the
    # search stops when no more than MIN_PIXELS foreground pixels are unclustered.
    node.MIN_PIXELS = 128
    # Clustering: a proposal is kept if more than this fraction of it is still unclustered.
    node.MIN_UNCLUSTERED = 0.5


def check_spatial_embed_config(cfg: CN) -> None:
    """Raise ValueError naming the first invalid ``MODEL.SPATIAL_EMBED`` key."""
    unit = closed_interval(0, 1)
    check_keys(
        cfg,
        "MODEL.SPATIAL_EMBED",
        [
            ("NUM_CLASSES", at_least(1)),
            ("N_SIGMA", Rule(lambda v: v in (1, 2), "must be 1 (circular) or 2 (elliptical)")),
            ("DECODER_WIDTHS", all_at_least(1)),
            ("DECODER_BLOCKS", at_least(0)),
            ("PIXELS_PER_UNIT", greater_than(0)),
            ("SIGMA_BIAS_INIT", greater_than(0)),
            ("INSTANCE_LOSS_WEIGHT", at_least(0)),
            ("VARIANCE_LOSS_WEIGHT", at_least(0)),
            ("SEED_LOSS_WEIGHT", at_least(0)),
            ("FOREGROUND_WEIGHT", at_least(0)),
            ("SEED_THRESHOLD", unit),
            ("FG_THRESHOLD", unit),
            ("MIN_PIXELS", at_least(0)),
            ("MIN_UNCLUSTERED", unit),
        ],
    )


register_config_part("spatial_embed", add_spatial_embed_config, check_spatial_embed_config)
