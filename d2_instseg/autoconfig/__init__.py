"""Size-aware configuration: derive every pixel-valued setting of a method from a dataset's
fingerprint (``d2_instseg.data.fingerprint``) with one small pure rule per method, each keeping
the paper's value per object (or per image) of its own dataset (``references``); the rules and
their derivations are written down in docs/autoconfig.md. ``tools/configure.py`` writes the
result as a commented YAML that inherits the method's base config."""

from typing import Dict, List

from .centermask import centermask_input_scale, centermask_rules
from .irnet import irnet_cam_scale, irnet_rules
from .mask_rcnn import COCO_AT_800, mask_rcnn_rules
from .references import ADE20K, CITYSCAPES, COCO, VOC, Reference
from .semantic import semantic_reference, semantic_rules
from .spatial_embed import spatial_embed_rules
from .stats import DataStats, Derived

# method -> (base config for --device cpu, for --device cuda, the key of its class count)
METHODS: Dict[str, tuple] = {
    "mask_rcnn": (
        "configs/shapes/mask_rcnn_R18_FPN.yaml",
        "detectron2://COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
        "MODEL.ROI_HEADS.NUM_CLASSES",
    ),
    "centermask": (
        "configs/shapes/centermask.yaml",
        "configs/centermask.yaml",
        "MODEL.CENTERMASK.NUM_CLASSES",
    ),
    "spatial_embeddings": (
        "configs/shapes/spatial_embeddings.yaml",
        "configs/spatial_embeddings.yaml",
        "MODEL.SPATIAL_EMBED.NUM_CLASSES",
    ),
    "cpnet": (
        "configs/shapes/cpnet.yaml",
        "configs/cpnet_ade20k.yaml",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES",
    ),
    "fcn8s": (
        "configs/shapes/fcn8s.yaml",
        "configs/fcn8s_ade20k.yaml",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES",
    ),
    "unet": (
        "configs/shapes/unet.yaml",
        "configs/unet_ade20k.yaml",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES",
    ),
    "irnet": (
        "configs/shapes/irnet.yaml",
        "configs/irnet/irnet_R50_voc12.yaml",
        "MODEL.IRNET.NUM_CLASSES",
    ),
}
SEMANTIC = ("cpnet", "fcn8s", "unet")


def derive(method: str, stats: DataStats) -> List[Derived]:
    """The derived keys of ``method`` for data with ``stats``."""
    if method == "mask_rcnn":
        return mask_rcnn_rules(stats)
    if method == "centermask":
        return centermask_rules(stats)
    if method == "spatial_embeddings":
        return spatial_embed_rules(stats)
    if method in SEMANTIC:
        return semantic_rules(stats, method)
    if method == "irnet":
        return irnet_rules(stats)
    raise ValueError(f"Unknown method {method!r}; choose one of {sorted(METHODS)}")


__all__ = [
    "ADE20K",
    "CITYSCAPES",
    "COCO",
    "COCO_AT_800",
    "METHODS",
    "SEMANTIC",
    "VOC",
    "DataStats",
    "Derived",
    "Reference",
    "centermask_input_scale",
    "centermask_rules",
    "derive",
    "irnet_cam_scale",
    "irnet_rules",
    "mask_rcnn_rules",
    "semantic_reference",
    "semantic_rules",
    "spatial_embed_rules",
]
