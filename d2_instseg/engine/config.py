"""Config keys of the engine: the Trainer's optimizer and poly schedule, the Predictor's inference
preparation."""

from detectron2.config import CfgNode as CN

from ..utils.config_checks import Rule, at_least, check_keys, one_of
from ..utils.config_registry import register_config_part
from ..utils.deeplab_config import add_deeplab_config_once
from .checkpoint import ON_FAILURE

# TEST.BACKEND values d2_instseg.Predictor runs.
BACKENDS = ("torch", "torchscript", "onnxruntime", "inductor")

# INPUT.NORMALIZE values: how the Predictor brings non-uint8 images to 8 bits.
NORMALIZATIONS = ("linear", "percentile")

# SOLVER.OPTIMIZER values the Trainer builds (CenterNet/CenterMask and Spatial Embeddings train with
# Adam; "SGD" is Detectron2's, with SOLVER.MOMENTUM).
OPTIMIZERS = ("SGD", "ADAM", "ADAMW")


def add_engine_config(cfg: CN) -> None:
    """Add SOLVER.OPTIMIZER, SOLVER.CHANNELS_LAST, TEST.FUSE_CONV_BN, TEST.CHANNELS_LAST,
    TEST.COMPILE, TEST.AMP, TEST.BACKEND, TEST.TILING, INPUT.NORMALIZE(_PERCENTILES) (and, through
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
    # ... and, when True, compile its network with torch.compile (inductor; on CPU it needs a C++
    # compiler such as g++): d2_instseg.engine.compile_network. Off by default: the first call of
    # each input size compiles (CenterMask DLA-34: ~50 s on this 2-core CPU), and compiling is not
    # thread-safe (call the Predictor once before sharing it between threads). Measured here
    # (tools/benchmark.py --backends eager compile, README "Speed"): CenterMask DLA-34 at 512x512
    # ~0.88x the eager latency.
    cfg.TEST.COMPILE = False
    # ... and, when True, run its network in mixed precision (engine.amp.autocast_network: bfloat16
    # autocast on the CPU, float16 on CUDA; the post-processing stays float32). Also
    # honoured by tools/train_net.py --eval-only, to measure what it costs. The eager model only
    # (TEST.BACKEND "torch"); exported graphs have their own precision (int8: --quantize). Off by
    # default: the accuracy cost is the user's call (README "Deploying": per model, on shapes_val).
    cfg.TEST.AMP = CN({"ENABLED": False})
    # Train with channels-last weights (and so channels-last activations): the Trainer converts the
    # model after building it. Measured here as in-process A/Bs (training step at batch 8): shapes
    # Mask R-CNN 1724 -> 1456 ms, CenterMask 375 -> 318, Spatial Embeddings 250 -> 226. Off by
    # default: the convolutions round differently, so a seeded run no longer repeats the figures
    # of one made without it (short trainings move by a few AP points).
    cfg.SOLVER.CHANNELS_LAST = False
    # What d2_instseg.Predictor runs: "torch" (the eager model, MODEL.WEIGHTS a checkpoint), or an
    # exported file (tools/export_model.py) named by MODEL.WEIGHTS with its JSON sidecar beside it:
    # "torchscript" (model.ts), "onnxruntime" (model.onnx / model.int8.onnx; CPU provider, CUDA's
    # when MODEL.DEVICE is cuda and onnxruntime-gpu is installed) or "inductor" (model.pt2 /
    # model.int8.pt2, a torch.export program compiled by inductor with frozen weights: the first
    # call of an input size compiles, tens of seconds on a CPU, and needs a C++ compiler).
    cfg.TEST.BACKEND = "torch"
    # Tiled inference (d2_instseg.engine.tiling) for images larger than the model should see at
    # once: the Predictor segments TILE x TILE tiles at the image's own resolution (no test-time
    # resizing: train the model at the resolution of the images it will segment), overlapping by
    # at least OVERLAP pixels, and merges instances across seams (each object comes out once, whole,
    # when no object is larger than OVERLAP). Memory is bounded by the tile: the instances' masks
    # come back as run-length codes (``pred_masks_rle``) instead of (H, W) arrays. OVERLAP 0: a
    # quarter of the tile. Both in pixels of the user's images, which only the user knows (the
    # dataset fingerprint's largest instance is a good OVERLAP).
    cfg.TEST.TILING = CN()
    cfg.TEST.TILING.ENABLED = False
    cfg.TEST.TILING.TILE = 1024
    cfg.TEST.TILING.OVERLAP = 0
    # How the Predictor brings 16-bit, float and other non-uint8 images to 8 bits: "linear"
    # (uint16 scaled by 255 / 65535, floats in [0, 1] by 255, floats in [0, 255] as they are) or
    # "percentile" (the microscopy convention: the image's NORMALIZE_PERCENTILES (low, high) values
    # map to 0 and 255, clipped outside; all channels together). uint8 images are used as they are.
    cfg.INPUT.NORMALIZE = "linear"
    cfg.INPUT.NORMALIZE_PERCENTILES = (1.0, 99.8)
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
    if cfg.TEST.AMP.ENABLED and cfg.TEST.BACKEND != "torch":
        raise ValueError(
            f"TEST.AMP.ENABLED runs the eager model in mixed precision; TEST.BACKEND "
            f"{cfg.TEST.BACKEND!r} runs an exported graph in the precision it was exported in "
            "(set TEST.AMP.ENABLED False; int8: tools/export_model.py --quantize int8)"
        )
    check_keys(cfg, "TEST.TILING", [("TILE", at_least(1)), ("OVERLAP", at_least(0))])
    if cfg.TEST.TILING.OVERLAP >= cfg.TEST.TILING.TILE:
        raise ValueError(
            f"TEST.TILING.OVERLAP ({cfg.TEST.TILING.OVERLAP}) must be smaller than "
            f"TEST.TILING.TILE ({cfg.TEST.TILING.TILE})"
        )
    check_keys(cfg, "INPUT", [("NORMALIZE", one_of(*NORMALIZATIONS))])
    low, high = cfg.INPUT.NORMALIZE_PERCENTILES
    if not 0 <= low < high <= 100:
        raise ValueError(
            f"INPUT.NORMALIZE_PERCENTILES must be (low, high) with 0 <= low < high <= 100, got "
            f"{tuple(cfg.INPUT.NORMALIZE_PERCENTILES)}"
        )


register_config_part("engine", add_engine_config, check_engine_config)
