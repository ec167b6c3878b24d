"""Config keys of d2_instseg. One adder per method, composed by :func:`add_d2_instseg_config`.

Our keys live under our own nodes (``MODEL.CENTERMASK``, ``MODEL.SPATIAL_EMBED``, ``MODEL.CPNET``,
``MODEL.IRNET``) plus the package-wide ``INPUT.DATASET_MAPPER_NAME``; nothing mutates Detectron2's global defaults.
"""
from detectron2.config import CfgNode as CN

# Method adders: one import and one call each (keep this list sorted by method).
from .modeling.centermask.config import add_centermask_config
from .modeling.cpnet.config import add_cpnet_config
from .irnet.config import add_irnet_config
from .modeling.spatial_embed.config import add_spatial_embed_config


def add_common_config(cfg: CN) -> None:
    """Package-wide keys shared by every method."""
    # Name of the dataset mapper in d2_instseg.data.MAPPER_REGISTRY used by the Trainer; "" means
    # Detectron2's DatasetMapper (Mask R-CNN and other built-in models).
    cfg.INPUT.DATASET_MAPPER_NAME = ""
    # What to do with a bad annotation (unknown category, polygon < 3 points, empty segmentation,
    # box outside the image) or an unreadable/missing image: "error" stops with the file and
    # annotation id named; "skip" logs it and trains without it.
    cfg.DATASETS.INVALID_ANNOTATIONS = "error"
    # Optimizer built by the Trainer: "SGD" (Detectron2's, with SOLVER.MOMENTUM), "ADAM" or "ADAMW"
    # (CenterNet/CenterMask and Spatial Embeddings train with Adam). Same key as Detectron2's DeepLab.
    if "OPTIMIZER" not in cfg.SOLVER:
        cfg.SOLVER.OPTIMIZER = "SGD"
    # Poly learning rate (SOLVER.LR_SCHEDULER_NAME "WarmupPolyLR", the papers' schedule):
    # lr * (1 - iter / max_iter)^POLY_LR_POWER. Same keys as Detectron2's DeepLab project, whose
    # scheduler the Trainer uses; added only when that project's adder has not run already.
    # d2_instseg.Predictor (and tools/benchmark.py) fold every BatchNorm that follows a conv into
    # that conv after loading the weights: same outputs, one pass less over each feature map.
    cfg.TEST.FUSE_CONV_BN = True
    # ... and convert its weights to channels-last memory format, which makes the convolutions
    # pick faster kernels (measured on this 2-core CPU: Spatial Embeddings at 1024x2048 3.1 -> 2.2 s,
    # Mask R-CNN R50-FPN at 512x512 375 -> 313 ms).
    cfg.TEST.CHANNELS_LAST = True
    if "POLY_LR_POWER" not in cfg.SOLVER:
        cfg.SOLVER.POLY_LR_POWER = 0.9
        cfg.SOLVER.POLY_LR_CONSTANT_ENDING = 0.0


def add_d2_instseg_config(cfg: CN) -> None:
    """Add every config key defined by d2_instseg to ``cfg`` (idempotent)."""
    if "DATASET_MAPPER_NAME" in cfg.INPUT:
        return
    add_common_config(cfg)
    add_centermask_config(cfg)
    add_spatial_embed_config(cfg)
    add_cpnet_config(cfg)
    add_irnet_config(cfg)
