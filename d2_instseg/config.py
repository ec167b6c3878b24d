"""Config keys of d2_instseg. One adder per method, composed by :func:`add_d2_instseg_config`.

Our keys live under our own nodes (``MODEL.CENTERMASK``, ``MODEL.SPATIAL_EMBED``, ``MODEL.CPNET``,
``MODEL.IRNET``) plus a few package-wide keys below; nothing mutates Detectron2's global defaults.
"""
from detectron2.config import CfgNode as CN

# Method adders: one import and one call each (keep this list sorted by method).


def add_common_config(cfg: CN) -> None:
    """Package-wide keys shared by every method."""
    # Name of the dataset mapper in d2_instseg.data.MAPPER_REGISTRY used by the Trainer; "" means
    # Detectron2's DatasetMapper (Mask R-CNN and other built-in models).
    cfg.INPUT.DATASET_MAPPER_NAME = ""
    # Where the README's main job and tools/demo.py write overlays; relative to OUTPUT_DIR.
    cfg.D2_INSTSEG = CN()
    cfg.D2_INSTSEG.VIS_DIR = "vis"


def add_d2_instseg_config(cfg: CN) -> None:
    """Add every config key defined by d2_instseg to ``cfg`` (idempotent)."""
    if hasattr(cfg, "D2_INSTSEG"):
        return
    add_common_config(cfg)
