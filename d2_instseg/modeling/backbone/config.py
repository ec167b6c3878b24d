"""Config keys of the backbones: ``MODEL.DLA`` and ``MODEL.HOURGLASS`` (CenterMask),
``MODEL.ERFNET`` (Spatial Embeddings) and the dilated ResNet's ``MODEL.RESNETS.RES4_DILATION``
(Detectron2's DeepLab key; CPNet)."""

from detectron2.config import CfgNode as CN

from ...utils.config_checks import Rule, all_at_least, at_least, check_keys, one_of
from ...utils.config_registry import register_config_part, register_renamed_keys
from ...utils.deeplab_config import add_deeplab_config_once

# ResNet depth -> blocks per stage (res2..res5), as Detectron2's build_resnet_backbone.
RESNET_BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3],
                 152: [3, 8, 36, 3]}  # fmt: skip


def add_backbone_config(cfg: CN) -> None:
    """Add MODEL.DLA, MODEL.HOURGLASS, MODEL.ERFNET (and Detectron2's DeepLab keys)."""
    # DLA-34 with iterative deep aggregation up to stride 4 (CenterNet's DLASeg), from scratch.
    cfg.MODEL.DLA = CN()
    # Channels of DLA levels 0..5 (strides 1..32); DLA-34: 16, 32, 64, 128, 256, 512.
    cfg.MODEL.DLA.CHANNELS = [16, 32, 64, 128, 256, 512]
    # Number of tree levels of DLA levels 0..5; DLA-34: 1, 1, 1, 2, 2, 1.
    cfg.MODEL.DLA.LEVELS = [1, 1, 1, 2, 2, 1]
    # IDA-up convs: modulated deformable 3x3 (DCNv2, as CenterNet) if True, plain 3x3 if False.
    cfg.MODEL.DLA.DEFORMABLE = True
    # Normalisation after every conv: "BN", "GN", "SyncBN", ... (Detectron2 get_norm names).
    cfg.MODEL.DLA.NORM = "BN"

    # Hourglass-104 (CenterNet's large_hourglass; two stacks), from scratch.
    cfg.MODEL.HOURGLASS = CN()
    # Number of stacked hourglasses; the heads read the last one.
    cfg.MODEL.HOURGLASS.NUM_STACKS = 2
    # Channels at the hourglass' 6 resolutions (stride 4 .. 128).
    cfg.MODEL.HOURGLASS.DIMS = [256, 256, 384, 384, 384, 512]
    # Residual blocks at each resolution.
    cfg.MODEL.HOURGLASS.MODULES = [2, 2, 2, 2, 2, 4]
    # Normalisation after every conv (Detectron2 get_norm names).
    cfg.MODEL.HOURGLASS.NORM = "BN"

    # ERFNet encoder (Romera et al.; Spatial Embeddings' backbone), from scratch.
    cfg.MODEL.ERFNET = CN()
    # Channels after the three downsampler blocks (strides 2, 4, 8).
    cfg.MODEL.ERFNET.WIDTHS = [16, 64, 128]
    # non_bottleneck_1d blocks at stride 4.
    cfg.MODEL.ERFNET.NUM_STAGE2_BLOCKS = 5
    # Dilations of the stride-8 non_bottleneck_1d blocks, repeated STAGE3_REPEATS times.
    cfg.MODEL.ERFNET.STAGE3_DILATIONS = [2, 4, 8, 16]
    cfg.MODEL.ERFNET.STAGE3_REPEATS = 2
    # Dropout2d probability at stride 4 and at stride 8.
    cfg.MODEL.ERFNET.DROPOUTS = [0.03, 0.3]

    # build_dilated_resnet_backbone reads MODEL.RESNETS.RES4_DILATION (2 with RES5_DILATION 4:
    # output stride 8), the key of Detectron2's DeepLab project.
    add_deeplab_config_once(cfg)


def check_backbone_config(cfg: CN) -> None:
    """Raise ValueError naming the first invalid key of the backbone in use
    (MODEL.BACKBONE.NAME)."""
    name = cfg.MODEL.BACKBONE.NAME
    if name == "build_dla_backbone":
        check_keys(cfg, "MODEL.DLA", [("CHANNELS", all_at_least(1, length=6)),
                                      ("LEVELS", all_at_least(1, length=6))])  # fmt: skip
    elif name == "build_hourglass_backbone":
        dims = len(cfg.MODEL.HOURGLASS.DIMS)
        same_length = Rule(lambda v: len(v) == dims >= 2,
                           "needs as many values as MODEL.HOURGLASS.DIMS, at least 2")  # fmt: skip
        check_keys(cfg, "MODEL.HOURGLASS", [("NUM_STACKS", at_least(1)),
                                            ("DIMS", all_at_least(1)),
                                            ("MODULES", same_length)])  # fmt: skip
    elif name == "build_erfnet_backbone":
        _check_erfnet(cfg)
    elif name == "build_dilated_resnet_backbone":
        res4 = cfg.MODEL.RESNETS.RES4_DILATION
        res5 = Rule(lambda v: v in ((4,) if res4 == 2 else (1, 2)),
                    "must be 4 with RES4_DILATION 2, else 1 or 2")  # fmt: skip
        depth = cfg.MODEL.RESNETS.DEPTH
        groups = Rule(lambda v: v == 1 or depth >= 50, "must be 1 for ResNet-18/34 (basic blocks)")
        check_keys(cfg, "MODEL.RESNETS", [("DEPTH", one_of(*RESNET_BLOCKS)),
                                          ("RES4_DILATION", one_of(1, 2)),
                                          ("RES5_DILATION", res5),
                                          ("NUM_GROUPS", groups)])  # fmt: skip


def _check_erfnet(cfg: CN) -> None:
    # Each ERFNet downsampler concatenates its input to a conv's output: widths must grow.
    in_channels = len(cfg.MODEL.PIXEL_MEAN)
    growing = Rule(
        lambda v: len(v) == 3 and in_channels < v[0] < v[1] < v[2],
        f"needs 3 strictly increasing widths, the first > {in_channels} (input channels)",
    )
    dropouts = Rule(
        lambda v: len(v) == 2 and all(0 <= p <= 1 for p in v), "needs 2 values in [0, 1]"
    )
    check_keys(
        cfg,
        "MODEL.ERFNET",
        [
            ("WIDTHS", growing),
            ("NUM_STAGE2_BLOCKS", at_least(0)),
            ("STAGE3_DILATIONS", all_at_least(1)),
            ("STAGE3_REPEATS", at_least(0)),
            ("DROPOUTS", dropouts),
        ],
    )


register_config_part("backbone", add_backbone_config, check_backbone_config)
# Moved out of MODEL.CENTERMASK (CHANGELOG.md): the nodes (YAML files) and their keys (overrides).
_MOVED = {"DLA": ("CHANNELS", "LEVELS", "DEFORMABLE", "NORM"),
          "HOURGLASS": ("NUM_STACKS", "DIMS", "MODULES", "NORM")}  # fmt: skip
register_renamed_keys(
    {
        f"MODEL.CENTERMASK.{node}{suffix}": f"MODEL.{node}{suffix}"
        for node, keys in _MOVED.items()
        for suffix in ("", *(f".{k}" for k in keys))
    }
)
