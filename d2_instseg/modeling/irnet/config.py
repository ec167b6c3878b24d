"""Config keys of IRNet (Ahn, Cho, Kwak, CVPR 2019), under ``MODEL.IRNET``: the CAM network, the
relation labels, IRNet and the label synthesis, read by the models, their mappers and the steps of
the IRNet workflow (whose own keys, MODEL.IRNET.PIPELINE, are in ``d2_instseg/irnet/config.py``).

Defaults are the paper's / authors' code values (PASCAL VOC 2012, ResNet-50); the CPU config
``configs/shapes/irnet.yaml`` changes the budget-related ones.
"""

from detectron2.config import CfgNode as CN

from ...utils.config_checks import (
    POSITIVE_RANGE,
    Rule,
    at_least,
    check_keys,
    closed_interval,
    greater_than,
    multiple_of,
    one_of,
    open_interval,
)
from ...utils.config_registry import register_config_part


def add_irnet_config(cfg: CN) -> None:
    """Add ``MODEL.IRNET`` (without PIPELINE) to ``cfg``."""
    _C = cfg
    _C.MODEL.IRNET = CN()
    # C: number of (foreground) classes; the image-level labels are contiguous ids 0..C-1.
    _C.MODEL.IRNET.NUM_CLASSES = 20

    # ---- Step 1: CAM network (classifier on the backbone's output-stride-16 features) ----
    _C.MODEL.IRNET.CAM = CN()
    _C.MODEL.IRNET.CAM.IN_FEATURE = "res5"  # feature the 1x1 classifier (no bias) reads
    _C.MODEL.IRNET.CAM.EPOCHS = 5.0  # training epochs over DATASETS.TRAIN
    _C.MODEL.IRNET.CAM.IMS_PER_BATCH = 16
    _C.MODEL.IRNET.CAM.RESIZE_LONG = (320, 640)  # random long side (px) before cropping
    _C.MODEL.IRNET.CAM.CROP_SIZE = 512  # random square crop (px); smaller images are padded
    _C.MODEL.IRNET.CAM.BASE_LR = 0.1  # backbone learning rate (poly schedule)
    _C.MODEL.IRNET.CAM.HEAD_LR_MULT = 10.0  # classifier lr = 10x the backbone's
    _C.MODEL.IRNET.CAM.WEIGHT_DECAY = 1e-4
    # The authors' PolyOptimizer passes weight_decay positionally into SGD's momentum slot, so their
    # effective momentum is 1e-4 (i.e. none); keep it to reproduce their numbers.
    _C.MODEL.IRNET.CAM.MOMENTUM = 1e-4
    _C.MODEL.IRNET.CAM.POLY_POWER = 0.9  # lr = base * (1 - iter / max_iter) ^ power
    # "SGD" (the paper) or "ADAMW" (MOMENTUM unused), for training from scratch on CPU data.
    _C.MODEL.IRNET.CAM.OPTIMIZER = "SGD"
    _C.MODEL.IRNET.CAM.SCALES = (1.0, 0.5, 1.5, 2.0)  # multi-scale CAM inference (each + flip)
    _C.MODEL.IRNET.CAM.EVAL_THRESH = 0.15  # constant background score for the CAM mIoU report
    # Share of foreground pixels (tools/configure.py: the dataset fingerprint's). 0 keeps the
    # paper's score thresholds (RELATION.FG/BG_THRESH, SYNTHESIS.SEM/INS_BG_THRESH); > 0 moves them
    # to the CAMs at hand: the score this share of the pixels exceeds is their operating point,
    # carried to EVAL_THRESH (the paper's) by a power map (d2_instseg/irnet/calibration.py).
    _C.MODEL.IRNET.CAM.FG_FRACTION = 0.0

    # ---- Step 2: inter-pixel relation labels from CAMs ----
    _C.MODEL.IRNET.RELATION = CN()
    _C.MODEL.IRNET.RELATION.FG_THRESH = 0.30  # conf_fg_thres: bg score giving confident foreground
    _C.MODEL.IRNET.RELATION.BG_THRESH = 0.05  # conf_bg_thres: bg score giving confident background
    _C.MODEL.IRNET.RELATION.CRF_ITERS = 10  # dense CRF mean-field iterations
    _C.MODEL.IRNET.RELATION.CRF_GT_PROB = 0.7  # unary_from_labels(gt_prob)
    _C.MODEL.IRNET.RELATION.CRF_GAUSSIAN = (3.0, 3.0)  # (sxy, compat)
    _C.MODEL.IRNET.RELATION.CRF_BILATERAL = (50.0, 5.0, 10.0)  # (sxy, srgb, compat)

    # ---- Step 3: IRNet (displacement field D + class boundary B on the frozen backbone) ----
    _C.MODEL.IRNET.IRN = CN()
    # The five backbone levels the branches read (strides 4, 4, 8, 16, 16 with res5 dilated).
    _C.MODEL.IRNET.IRN.IN_FEATURES = ["stem", "res2", "res3", "res4", "res5"]
    _C.MODEL.IRNET.IRN.RADIUS = 10  # gamma: pair radius (stride-4 px) of the training losses
    _C.MODEL.IRNET.IRN.BOUNDARY_DIM = 32  # channels per level in the boundary branch (GN(4, 32))
    # Per-level channels of the displacement branch.
    _C.MODEL.IRNET.IRN.DISPLACEMENT_DIMS = (64, 128, 256, 256, 256)
    _C.MODEL.IRNET.IRN.DISPLACEMENT_DIM = 256  # fused dims of the D branch
    _C.MODEL.IRNET.IRN.EPOCHS = 3.0
    _C.MODEL.IRNET.IRN.IMS_PER_BATCH = 32
    _C.MODEL.IRNET.IRN.RESCALE = (0.5, 1.5)  # random rescale factor range
    _C.MODEL.IRNET.IRN.CROP_SIZE = 512
    _C.MODEL.IRNET.IRN.BASE_LR = 0.1  # boundary branch learning rate
    _C.MODEL.IRNET.IRN.DISPLACEMENT_LR_MULT = 10.0  # displacement branch lr = 10x
    _C.MODEL.IRNET.IRN.WEIGHT_DECAY = 1e-4
    _C.MODEL.IRNET.IRN.MOMENTUM = 1e-4  # same PolyOptimizer quirk as the CAM step
    _C.MODEL.IRNET.IRN.POLY_POWER = 0.9
    _C.MODEL.IRNET.IRN.OPTIMIZER = "SGD"  # "SGD" (the paper) or "ADAMW"

    # ---- Step 4: label synthesis ----
    _C.MODEL.IRNET.SYNTHESIS = CN()
    _C.MODEL.IRNET.SYNTHESIS.RADIUS = 5  # pair radius of the random-walk affinities
    _C.MODEL.IRNET.SYNTHESIS.BETA = 10.0  # beta: Hadamard power of the affinity matrix
    _C.MODEL.IRNET.SYNTHESIS.EXP_TIMES = 8  # t = 2^EXP_TIMES random-walk steps (8 -> t = 256)
    _C.MODEL.IRNET.SYNTHESIS.CENTROID_ITERS = 300  # centroid refinement steps
    _C.MODEL.IRNET.SYNTHESIS.CLUSTER_THRESH = 2.5  # |D| below this = centroid region (stride-4 px)
    _C.MODEL.IRNET.SYNTHESIS.SEM_BG_THRESH = 0.25  # background score of semantic pseudo labels
    _C.MODEL.IRNET.SYNTHESIS.INS_BG_THRESH = 0.25  # background score of instance pseudo labels
    _C.MODEL.IRNET.SYNTHESIS.MIN_AREA_FRAC = 0.01  # smaller segments get score 0
    # Pseudo instances with score <= this are left out of the Mask R-CNN training JSON (they stay in
    # the detections scored against GT); 0.0 drops exactly the score-0 small fragments.
    _C.MODEL.IRNET.SYNTHESIS.TRAIN_MIN_SCORE = 0.0


def check_irnet_config(cfg: CN) -> None:
    """Raise ValueError naming the first invalid ``MODEL.IRNET`` key."""
    c = cfg.MODEL.IRNET
    unit = closed_interval(0, 1)
    # GroupNorm(16 if d >= 128 else 8, d) in the displacement branch (GroupNorm(4, .) for boundary).
    groups = Rule(
        lambda v: len(v) == 5 and all(d >= 8 and d % (16 if d >= 128 else 8) == 0 for d in v),
        "needs 5 values, multiples of 8 (of 16 from 128 on) for their GroupNorm",
    )
    rows = [("NUM_CLASSES", at_least(1))]
    for step in ("CAM", "IRN"):
        positive = ("EPOCHS", "IMS_PER_BATCH", "CROP_SIZE", "BASE_LR")
        rows += [(f"{step}.{key}", greater_than(0)) for key in positive]
        rows += [
            (f"{step}.WEIGHT_DECAY", at_least(0)),
            (f"{step}.MOMENTUM", Rule(lambda v: 0 <= v < 1, "must be in [0, 1)")),
            (f"{step}.POLY_POWER", at_least(0)),
            (f"{step}.OPTIMIZER", one_of("SGD", "ADAMW")),
        ]
    rows += [
        ("CAM.HEAD_LR_MULT", greater_than(0)),
        ("CAM.RESIZE_LONG", POSITIVE_RANGE),
        ("CAM.SCALES", Rule(lambda v: len(v) > 0 and min(v) > 0, "needs one or more scales > 0")),
        ("CAM.EVAL_THRESH", unit),
        ("CAM.FG_FRACTION", Rule(lambda v: 0 <= v < 1, "must be in [0, 1) (0: the paper's)")),
        ("RELATION.FG_THRESH", open_interval(0, 1)),
        ("RELATION.BG_THRESH", open_interval(0, 1)),
        (
            "RELATION.BG_THRESH",
            Rule(
                lambda v: v <= c.RELATION.FG_THRESH,
                "must be <= RELATION.FG_THRESH (confident background needs the lower threshold)",
            ),
        ),
        ("RELATION.CRF_ITERS", at_least(0)),
        ("RELATION.CRF_GT_PROB", open_interval(0, 1)),
        ("IRN.RADIUS", at_least(2)),
        ("IRN.IN_FEATURES", Rule(lambda v: len(v) == 5, "needs 5 levels")),
        ("IRN.BOUNDARY_DIM", multiple_of(4)),
        ("IRN.DISPLACEMENT_DIMS", groups),
        ("IRN.DISPLACEMENT_DIM", multiple_of(16)),
        ("IRN.DISPLACEMENT_LR_MULT", greater_than(0)),
        ("IRN.RESCALE", POSITIVE_RANGE),
        ("SYNTHESIS.RADIUS", at_least(2)),
        ("SYNTHESIS.BETA", greater_than(0)),
        ("SYNTHESIS.EXP_TIMES", at_least(0)),
        ("SYNTHESIS.CENTROID_ITERS", at_least(1)),
        ("SYNTHESIS.CLUSTER_THRESH", greater_than(0)),
        ("SYNTHESIS.SEM_BG_THRESH", unit),
        ("SYNTHESIS.INS_BG_THRESH", unit),
        ("SYNTHESIS.MIN_AREA_FRAC", unit),
        (
            "SYNTHESIS.TRAIN_MIN_SCORE",
            Rule(lambda v: v < 1, "must be < 1 (scores are <= 1; a negative value keeps all)"),
        ),
    ]
    check_keys(cfg, "MODEL.IRNET", rows)


register_config_part("irnet", add_irnet_config, check_irnet_config)
