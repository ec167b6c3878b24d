"""Backbones registered in Detectron2's BACKBONE_REGISTRY (their keys: ``config.py``)."""

from . import (
    config,  # noqa: F401  (MODEL.DLA, MODEL.HOURGLASS, MODEL.ERFNET)
    dilated_resnet,  # noqa: F401  (CPNet: ResNet with res4/res5 dilation, OS8)
    dla,  # noqa: F401  (CenterMask: DLA-34 + IDA-up)
    erfnet,  # noqa: F401  (Spatial Embeddings: ERFNet encoder)
    hourglass,  # noqa: F401  (CenterMask: Hourglass-104)
)
