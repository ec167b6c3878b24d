"""Invalid config values fail before anything is built (``check_d2_instseg_config``: run by
``setup_cfg``, the Trainer's ``build_model``, ``Predictor`` and our meta-architectures'
``from_config``), with a ValueError naming the full key."""

import os
import re
from unittest import mock

import pytest
from detectron2.modeling import build_model

from d2_instseg import check_d2_instseg_config
from d2_instseg.engine import Trainer
from d2_instseg.utils.config_checks import (
    Rule,
    at_least,
    check_backbone_features,
    check_keys,
    one_of,
    set_key,
)

from ..conftest import REPO, shapes_cfg

CENTERMASK = "configs/shapes/centermask.yaml"
SPATIAL_EMBED = "configs/shapes/spatial_embeddings.yaml"
CPNET = "configs/shapes/cpnet.yaml"
FCN = "configs/shapes/fcn8s.yaml"
UNET = "configs/shapes/unet.yaml"
IRNET = "configs/shapes/irnet.yaml"  # builds IRNetCAM

# (config file, full key, invalid value, other keys set first)
CASES = [
    (CENTERMASK, "MODEL.CENTERMASK.NUM_CLASSES", 0, {}),
    (CENTERMASK, "MODEL.CENTERMASK.HEAD_CONV", 0, {}),
    (CENTERMASK, "MODEL.CENTERMASK.SHAPE_SIZE", 0, {}),
    (CENTERMASK, "MODEL.CENTERMASK.SHAPE_SIZE", -4, {}),
    (CENTERMASK, "MODEL.CENTERMASK.MASK_BRANCHES", "none", {}),
    (CENTERMASK, "MODEL.CENTERMASK.HEATMAP_PRIOR_PROB", 1.0, {}),
    (CENTERMASK, "MODEL.CENTERMASK.GAUSSIAN_MIN_OVERLAP", 1.5, {}),
    (CENTERMASK, "MODEL.CENTERMASK.HEATMAP_LOSS_WEIGHT", -1.0, {}),
    (CENTERMASK, "MODEL.CENTERMASK.OFFSET_LOSS_WEIGHT", -1.0, {}),
    (CENTERMASK, "MODEL.CENTERMASK.SIZE_LOSS_WEIGHT", -0.1, {}),
    (CENTERMASK, "MODEL.CENTERMASK.MASK_LOSS_WEIGHT", -1.0, {}),
    (CENTERMASK, "MODEL.CENTERMASK.SALIENCY_LOSS_WEIGHT", -1.0, {}),
    (
        CENTERMASK,
        "MODEL.CENTERMASK.SALIENCY_LOSS_WEIGHT",
        1.0,
        {"MODEL.CENTERMASK.MASK_BRANCHES": "shape"},  # no saliency map to supervise
    ),
    (CENTERMASK, "MODEL.CENTERMASK.TOPK_TEST", 0, {}),
    (CENTERMASK, "MODEL.CENTERMASK.SCORE_THRESH_TEST", -0.1, {}),
    (CENTERMASK, "MODEL.CENTERMASK.SCORE_THRESH_TEST", 1.5, {}),
    (CENTERMASK, "MODEL.CENTERMASK.MASK_THRESH_TEST", 1.1, {}),
    (CENTERMASK, "MODEL.CENTERMASK.TRAIN_CROP_SIZE", 0, {}),
    (CENTERMASK, "MODEL.CENTERMASK.TRAIN_SCALE_RANGE", (1.3, 0.6), {}),
    (CENTERMASK, "MODEL.DLA.CHANNELS", [4, 4, 8], {}),
    (
        CENTERMASK,
        "MODEL.HOURGLASS.NUM_STACKS",
        0,
        {"MODEL.BACKBONE.NAME": "build_hourglass_backbone"},
    ),
    (CENTERMASK, "MODEL.CENTERMASK.IN_FEATURE", "p2", {}),
    (SPATIAL_EMBED, "MODEL.SPATIAL_EMBED.NUM_CLASSES", 0, {}),
    (SPATIAL_EMBED, "MODEL.SPATIAL_EMBED.N_SIGMA", 3, {}),
    (SPATIAL_EMBED, "MODEL.SPATIAL_EMBED.DECODER_WIDTHS", [], {}),
    (SPATIAL_EMBED, "MODEL.SPATIAL_EMBED.DECODER_WIDTHS", [16], {}),  # stride 8 needs 2 widths
    (SPATIAL_EMBED, "MODEL.SPATIAL_EMBED.DECODER_BLOCKS", -1, {}),
    (SPATIAL_EMBED, "MODEL.SPATIAL_EMBED.PIXELS_PER_UNIT", 0.0, {}),
    (SPATIAL_EMBED, "MODEL.SPATIAL_EMBED.INSTANCE_LOSS_WEIGHT", -1.0, {}),
    (SPATIAL_EMBED, "MODEL.SPATIAL_EMBED.VARIANCE_LOSS_WEIGHT", -1.0, {}),
    (SPATIAL_EMBED, "MODEL.SPATIAL_EMBED.SEED_LOSS_WEIGHT", -1.0, {}),
    (SPATIAL_EMBED, "MODEL.SPATIAL_EMBED.FOREGROUND_WEIGHT", -1.0, {}),
    (SPATIAL_EMBED, "MODEL.SPATIAL_EMBED.SEED_THRESHOLD", 1.5, {}),
    (SPATIAL_EMBED, "MODEL.SPATIAL_EMBED.FG_THRESHOLD", -0.1, {}),
    (SPATIAL_EMBED, "MODEL.SPATIAL_EMBED.MIN_PIXELS", -1, {}),
    (SPATIAL_EMBED, "MODEL.SPATIAL_EMBED.MIN_UNCLUSTERED", 2.0, {}),
    (SPATIAL_EMBED, "MODEL.SPATIAL_EMBED.IN_FEATURE", "res5", {}),
    (SPATIAL_EMBED, "MODEL.ERFNET.WIDTHS", [16, 8, 64], {}),
    (SPATIAL_EMBED, "MODEL.ERFNET.NUM_STAGE2_BLOCKS", -1, {}),
    (SPATIAL_EMBED, "MODEL.ERFNET.STAGE3_DILATIONS", [0], {}),
    (SPATIAL_EMBED, "MODEL.ERFNET.STAGE3_REPEATS", -1, {}),
    (SPATIAL_EMBED, "MODEL.ERFNET.DROPOUTS", [0.5, 1.5], {}),
    (CPNET, "MODEL.SEM_SEG_HEAD.NUM_CLASSES", 0, {}),
    (CPNET, "MODEL.SEM_SEG_HEAD.IGNORE_VALUE", 2, {}),
    (CPNET, "MODEL.CPNET.PRIOR_SIZE", [16], {}),
    (CPNET, "MODEL.CPNET.PRIOR_SIZE", [15, 15], {}),  # 128 px crop at stride 8 needs [16, 16]
    (CPNET, "MODEL.CPNET.AM_KERNEL_SIZE", 4, {}),
    (CPNET, "MODEL.CPNET.CHANNELS", 0, {}),
    (CPNET, "MODEL.CPNET.AUX_CHANNELS", 0, {}),
    (CPNET, "MODEL.CPNET.DROPOUT", 1.5, {}),
    (CPNET, "MODEL.CPNET.LOSS_WEIGHT", -1.0, {}),
    (CPNET, "MODEL.CPNET.AUX_LOSS_WEIGHT", -0.4, {}),
    (CPNET, "MODEL.CPNET.AFFINITY_LOSS_WEIGHT", -1.0, {}),
    (CPNET, "MODEL.CPNET.UNARY_WEIGHT", -1.0, {}),
    (CPNET, "MODEL.CPNET.GLOBAL_WEIGHT", -1.0, {}),
    (CPNET, "MODEL.CPNET.IN_FEATURE", "res9", {}),
    (CPNET, "MODEL.CPNET.TEST.MODE", "tile", {}),
    (CPNET, "MODEL.CPNET.TEST.SLIDE_STRIDE", [200, 96], {}),
    (CPNET, "MODEL.CPNET.TEST.SCALES", [], {}),
    (CPNET, "MODEL.CPNET.TEST.SCALES", [1.0, 0.0], {}),
    (FCN, "MODEL.SEM_SEG_HEAD.LOSS_WEIGHT", -1.0, {}),
    (FCN, "MODEL.FCN.VARIANT", 4, {}),
    (FCN, "MODEL.FCN.IN_FEATURES", ["res4", "res5"], {}),
    (FCN, "MODEL.FCN.IN_FEATURES", ["res2", "res4", "res5"], {}),  # res2 is not an output
    (FCN, "MODEL.FCN.CONV_DIM", 0, {}),
    (FCN, "MODEL.FCN.DROPOUT", -0.1, {}),
    (UNET, "MODEL.SEM_SEG_HEAD.IGNORE_VALUE", 0, {}),
    (UNET, "MODEL.UNET.IN_FEATURES", ["res5"], {}),
    (UNET, "MODEL.UNET.IN_FEATURES", ["p2", "res3", "res4", "res5"], {}),  # no p2 output
    (UNET, "MODEL.UNET.DECODER_CHANNELS", [64, 32], {}),
    (UNET, "MODEL.UNET.DECODER_CHANNELS", [64, 32, 0], {}),
    (IRNET, "MODEL.IRNET.NUM_CLASSES", 0, {}),
    (IRNET, "MODEL.IRNET.CAM.EPOCHS", 0.0, {}),
    (IRNET, "MODEL.IRNET.CAM.BASE_LR", -0.1, {}),
    (IRNET, "MODEL.IRNET.CAM.HEAD_LR_MULT", 0.0, {}),
    (IRNET, "MODEL.IRNET.CAM.WEIGHT_DECAY", -1e-4, {}),
    (IRNET, "MODEL.IRNET.CAM.MOMENTUM", 1.0, {}),
    (IRNET, "MODEL.IRNET.CAM.RESIZE_LONG", (192, 112), {}),
    (IRNET, "MODEL.IRNET.CAM.SCALES", (), {}),
    (IRNET, "MODEL.IRNET.CAM.EVAL_THRESH", 1.5, {}),
    (IRNET, "MODEL.IRNET.CAM.FG_FRACTION", 1.0, {}),
    (IRNET, "MODEL.IRNET.CAM.OPTIMIZER", "ADAM", {}),
    (IRNET, "MODEL.IRNET.IRN.CROP_SIZE", 0, {}),
    (IRNET, "MODEL.IRNET.IRN.IMS_PER_BATCH", 0, {}),
    (IRNET, "MODEL.IRNET.IRN.POLY_POWER", -0.9, {}),
    (IRNET, "MODEL.IRNET.IRN.OPTIMIZER", "LAMB", {}),
    (IRNET, "MODEL.IRNET.IRN.RESCALE", (0.0, 1.0), {}),
    (IRNET, "MODEL.IRNET.IRN.RADIUS", 1, {}),
    (IRNET, "MODEL.IRNET.IRN.IN_FEATURES", ["res2", "res3", "res4", "res5"], {}),
    (IRNET, "MODEL.IRNET.IRN.BOUNDARY_DIM", 30, {}),
    (IRNET, "MODEL.IRNET.IRN.DISPLACEMENT_DIMS", (64, 128, 256, 256), {}),
    (IRNET, "MODEL.IRNET.IRN.DISPLACEMENT_DIMS", (64, 100, 256, 256, 256), {}),
    (IRNET, "MODEL.IRNET.IRN.DISPLACEMENT_DIM", 100, {}),
    (IRNET, "MODEL.IRNET.IRN.DISPLACEMENT_LR_MULT", 0.0, {}),
    (IRNET, "MODEL.IRNET.RELATION.FG_THRESH", 1.0, {}),
    (IRNET, "MODEL.IRNET.RELATION.BG_THRESH", 0.5, {}),  # above FG_THRESH 0.30
    (IRNET, "MODEL.IRNET.RELATION.CRF_ITERS", -1, {}),
    (IRNET, "MODEL.IRNET.RELATION.CRF_GT_PROB", 1.0, {}),
    (IRNET, "MODEL.IRNET.SYNTHESIS.RADIUS", 1, {}),
    (IRNET, "MODEL.IRNET.SYNTHESIS.BETA", 0.0, {}),
    (IRNET, "MODEL.IRNET.SYNTHESIS.EXP_TIMES", -1, {}),
    (IRNET, "MODEL.IRNET.SYNTHESIS.CENTROID_ITERS", 0, {}),
    (IRNET, "MODEL.IRNET.SYNTHESIS.CLUSTER_THRESH", 0.0, {}),
    (IRNET, "MODEL.IRNET.SYNTHESIS.SEM_BG_THRESH", 1.5, {}),
    (IRNET, "MODEL.IRNET.SYNTHESIS.INS_BG_THRESH", -0.5, {}),
    (IRNET, "MODEL.IRNET.SYNTHESIS.MIN_AREA_FRAC", -0.1, {}),
    (IRNET, "MODEL.IRNET.SYNTHESIS.TRAIN_MIN_SCORE", 1.0, {}),
    (IRNET, "MODEL.IRNET.PIPELINE.MASK_RCNN_OPTS", ["SOLVER.MAX_ITER"], {}),
]


@pytest.mark.parametrize(
    "config, key, value, others",
    CASES,
    ids=[f"{key}={value!r}" for _, key, value, _ in CASES],
)
def test_invalid_value_fails_at_build_naming_the_key(config, key, value, others):
    """Values are assigned after merging (merge_from_list would reject some types before the
    model sees them); the message starts the problem with "<full key>=<value>"."""
    cfg = shapes_cfg(config)
    for other, v in others.items():
        set_key(cfg, other, v)
    set_key(cfg, key, value)
    with pytest.raises(ValueError, match=re.escape(f"{key}=")):
        Trainer.build_model(cfg)


@pytest.mark.parametrize(
    "config, key, value",
    [
        (CENTERMASK, "MODEL.CENTERMASK.TOPK_TEST", 0),
        (SPATIAL_EMBED, "MODEL.ERFNET.STAGE3_REPEATS", -1),
        (CPNET, "MODEL.CPNET.TEST.MODE", "tile"),
        (IRNET, "MODEL.IRNET.CAM.EPOCHS", 0.0),
    ],
)
def test_our_meta_architectures_check_in_detectron2_build_model(config, key, value):
    """Detectron2's own ``build_model`` (as ``DefaultPredictor`` calls it) checks too, through the
    meta-architecture's ``from_config``, before building the backbone."""
    cfg = shapes_cfg(config)
    set_key(cfg, key, value)
    with mock.patch("detectron2.modeling.build_backbone", side_effect=AssertionError("built")):
        with pytest.raises(ValueError, match=re.escape(f"{key}=")):
            build_model(cfg)


@pytest.mark.parametrize("config", [CENTERMASK, SPATIAL_EMBED, CPNET, FCN, UNET, IRNET])
def test_shapes_configs_pass_the_checks(config):
    cfg = shapes_cfg(config)
    check_d2_instseg_config(cfg)
    assert type(build_model(cfg)).__name__ == cfg.MODEL.META_ARCHITECTURE


def test_a_renamed_key_fails_naming_its_new_name(tmp_path):
    """MODEL.CENTERMASK.DLA moved to MODEL.DLA (CHANGELOG.md): an old config says so."""
    old = tmp_path / "old.yaml"
    old.write_text(
        '_BASE_: "{}"\nMODEL:\n  CENTERMASK:\n    DLA:\n      NORM: "GN"\n'.format(
            os.path.join(REPO, "configs/Base-CenterMask.yaml")
        )
    )
    cfg = shapes_cfg(CENTERMASK)
    with pytest.raises(KeyError, match=r"MODEL\.CENTERMASK\.DLA was renamed to MODEL\.DLA;"):
        cfg.merge_from_file(str(old))
    with pytest.raises(KeyError, match=r"renamed.*MODEL\.HOURGLASS\.DIMS"):
        cfg.merge_from_list(["MODEL.CENTERMASK.HOURGLASS.DIMS", "[8, 8]"])


def test_check_keys_reports_first_failing_row_and_unevaluable_values():
    """Rows are checked in order; a value a rule cannot even compare (a string for a number)
    fails that rule instead of raising TypeError."""
    cfg = shapes_cfg(CENTERMASK)
    rows = [
        ("TOPK_TEST", at_least(1)),
        ("MASK_BRANCHES", one_of("both")),
        ("NUM_CLASSES", at_least(9)),
    ]
    check_keys(cfg, "MODEL.CENTERMASK", rows[:2])
    with pytest.raises(ValueError, match=r"^MODEL\.CENTERMASK\.NUM_CLASSES=3: must be >= 9$"):
        check_keys(cfg, "MODEL.CENTERMASK", rows)
    cfg.MODEL.CENTERMASK.TOPK_TEST = "100"
    with pytest.raises(ValueError, match=r"^MODEL\.CENTERMASK\.TOPK_TEST='100': must be >= 1$"):
        check_keys(cfg, "MODEL.CENTERMASK", rows)
    odd = Rule(lambda v: v % 2 == 1, "must be odd")
    with pytest.raises(ValueError, match=r"^MODEL\.DLA\.LEVELS=\[.*\]: must be odd$"):
        check_keys(cfg, "MODEL", [("DLA.LEVELS", odd)])


def test_check_backbone_features_names_key_and_missing_outputs():
    available = {"res4": None, "res5": None}
    check_backbone_features("MODEL.X.IN_FEATURES", ["res4", "res5"], available)  # all present
    with pytest.raises(ValueError) as err:
        check_backbone_features("MODEL.X.IN_FEATURE", "p2", available, "see Y")
    assert str(err.value) == (
        "MODEL.X.IN_FEATURE='p2': ['p2'] not among the backbone outputs ['res4', 'res5']; see Y"
    )
