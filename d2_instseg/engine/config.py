"""Config keys of the engine: the Trainer's optimizer and poly schedule, the Predictor's inference
preparation."""

from detectron2.config import CfgNode as CN

from ..utils.config_checks import Rule, check_keys, one_of
from ..utils.config_registry import register_config_part
from ..utils.deeplab_config import add_deeplab_config_once
from .checkpoint import ON_FAILURE

# TEST.BACKEND values d2_instseg.Predictor runs.
BACKENDS = ("torch", "torchscript", "onnxruntime")

# SOLVER.OPTIMIZER values the Trainer builds (CenterNet/CenterMask and Spatial Embeddings train with
# Adam; "SGD" is Detectron2's, with SOLVER.MOMENTUM).
OPTIMIZERS = ("SGD", "ADAM", "ADAMW")


def add_engine_config(cfg: CN) -> None:
    """Add SOLVER.OPTIMIZER, TEST.FUSE_CONV_BN, TEST.CHANNELS_LAST, TEST.BACKEND (and, through
    Detectron2's ``add_deeplab_config``, the poly schedule's SOLVER.POLY_LR_POWER /
    POLY_LR_CONSTANT_ENDING)."""
    # Optimizer built by the Trainer, one of OPTIMIZERS. Same key as Detectron2's Panoptic-DeepLab.
    if "OPTIMIZER" not in cfg.SOLVER:
        cfg.SOLVER.OPTIMIZER = "SGD"
    # Poly learning rate (SOLVER.LR_SCHEDULER_NAME "WarmupPolyLR", the papers' schedule):
    # lr * (1 - iter / max_iter)^POLY_LR_POWER, from Detectron2's DeepLab project.
    add_deeplab_config_once(cfg)
    # d2_instseg.Predictor (and tools/benchmark.py) fold every BatchNorm that follows a conv into
    # that conv after loading the weights: same outputs, one pass less over each feature map.
    cfg.TEST.FUSE_CONV_BN = True
    # ... and convert its weights to channels-last memory format, which makes the convolutions
    # pick faster kernels (measured on this 2-core CPU: Spatial Embeddings at 1024x2048 3.1 -> 2.2
    # s, Mask R-CNN R50-FPN at 512x512 375 -> 313 ms).
    cfg.TEST.CHANNELS_LAST = True
    # What d2_instseg.Predictor runs: "torch" (the eager model, MODEL.WEIGHTS a checkpoint), or an
    # exported file (tools/export_model.py) named by MODEL.WEIGHTS with its JSON sidecar beside it:
    # "torchscript" (model.ts) or "onnxruntime" (model.onnx / model.int8.onnx; CPU provider, CUDA's
    # when MODEL.DEVICE is cuda and onnxruntime-gpu is installed).
    cfg.TEST.BACKEND = "torch"
    # A checkpoint that cannot be written (e.g. a full disk): "stop" training with the reason, or
    # "continue" (logged; the previous checkpoint stays the one to resume from).
    cfg.SOLVER.CHECKPOINT_ON_FAILURE = "stop"


def check_engine_config(cfg: CN) -> None:
    """Raise ValueError naming the first invalid key of the engine."""
    known = Rule(lambda v: str(v).upper() in OPTIMIZERS, f"must be one of {list(OPTIMIZERS)}")
    check_keys(
        cfg, "SOLVER", [("OPTIMIZER", known), ("CHECKPOINT_ON_FAILURE", one_of(*ON_FAILURE))]
    )
    check_keys(cfg, "TEST", [("BACKEND", one_of(*BACKENDS))])


register_config_part("engine", add_engine_config, check_engine_config)
