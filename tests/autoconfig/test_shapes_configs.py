"""The hand-written shapes configs agree with what tools/configure.py derives for shapes_train;
every key where one deliberately differs is listed here with the reason (also in its config)."""

import pytest
from detectron2.config import get_cfg

from d2_instseg import add_d2_instseg_config
from d2_instseg.autoconfig import DataStats, derive
from d2_instseg.data import fingerprint

# key -> why the shapes config keeps its own value
ALWAYS = {
    "INPUT.MAX_SIZE_TRAIN": "a cap: Base-Shapes' 256 admits every shapes image unshrunk",
    "INPUT.MAX_SIZE_TEST": "a cap: Base-Shapes' 256 admits every shapes image unshrunk",
    "TEST.DETECTIONS_PER_IMAGE": "Base-Shapes' 50 >= the rule's 40: more candidates, same AP",
}
# Measured 2026-12-05 (seed 42, 600 iterations, shapes_sem_seg_val mIoU, hand-set vs the tool's
# 104 px crops, 112 px scale): CPNet 41.1 vs 38.0, FCN-8s 36.9 vs 35.6, UNet 26.3 vs 25.1.
# IRNet, 2026-12-05 (docs/irnet.md): the tool's whole pipeline gave pseudo AP50 2.4 against 10.9
_IRNET_MEASURED = "the tool's sizes gave lower pseudo-label AP50 than the hand-set ones (measured)"
_SEMANTIC_MEASURED = "the hand-set 128 px crops and scale scored higher than the tool's (measured)"
_SEMANTIC = {
    "INPUT.CROP.SIZE": _SEMANTIC_MEASURED,
    "INPUT.RANDOM_SCALE.BASE_SIZE": _SEMANTIC_MEASURED,
    "INPUT.MIN_SIZE_TEST": _SEMANTIC_MEASURED,
    "INPUT.MAX_SIZE_TEST": _SEMANTIC_MEASURED,
}
DIFFERS = {
    "mask_rcnn_R18_FPN": {},
    "centermask": {},
    "spatial_embeddings": {},
    "cpnet": {
        **_SEMANTIC,
        "MODEL.CPNET.PRIOR_SIZE": _SEMANTIC_MEASURED,
        "MODEL.CPNET.TEST.SLIDE_STRIDE": _SEMANTIC_MEASURED,
    },
    "fcn8s": _SEMANTIC,
    "unet": _SEMANTIC,
    "irnet": {
        f"MODEL.IRNET.{k}": _IRNET_MEASURED
        for k in (
            "IRN.RADIUS",
            "IRN.CROP_SIZE",
            "SYNTHESIS.RADIUS",
            "SYNTHESIS.EXP_TIMES",
            "SYNTHESIS.CLUSTER_THRESH",
            "SYNTHESIS.MIN_AREA_FRAC",
            "RELATION.CRF_GAUSSIAN",
            "RELATION.CRF_BILATERAL",
            "CAM.RESIZE_LONG",
            "CAM.CROP_SIZE",
            "CAM.SCALES",
        )
    },
}


def _get(cfg, key):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _same(a, b):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return b == pytest.approx(a, rel=1e-3)
    return a == b


@pytest.mark.parametrize(
    "name, method, dataset",
    [
        ("mask_rcnn_R18_FPN", "mask_rcnn", "shapes_train"),
        ("centermask", "centermask", "shapes_train"),
        ("spatial_embeddings", "spatial_embeddings", "shapes_train"),
        ("cpnet", "cpnet", "shapes_sem_seg_train"),
        ("fcn8s", "fcn8s", "shapes_sem_seg_train"),
        ("unet", "unet", "shapes_sem_seg_train"),
        ("irnet", "irnet", "shapes_train_weak"),
    ],
)
def test_shapes_config_agrees_with_the_tool(repo_root, name, method, dataset):
    stats = DataStats.from_fingerprint(fingerprint(dataset))
    cfg = get_cfg()
    add_d2_instseg_config(cfg)
    cfg.merge_from_file(f"{repo_root}/configs/shapes/{name}.yaml")
    exempt = {**ALWAYS, **DIFFERS[name]}
    wrong = [
        f"{d.key}: config {_get(cfg, d.key)!r}, tool {d.value!r} ({d.reason})"
        for d in derive(method, stats)
        if d.key not in exempt and not _same(d.value, _get(cfg, d.key))
    ]
    assert not wrong, "\n".join(wrong)
