"""Backbones registered in Detectron2's BACKBONE_REGISTRY."""
from . import dla  # noqa: F401  (CenterMask: DLA-34 + IDA-up)
from . import erfnet  # noqa: F401  (Spatial Embeddings: ERFNet encoder)
from . import dilated_resnet  # noqa: F401  (CPNet: ResNet with res4/res5 dilation, OS8)
from . import hourglass  # noqa: F401  (CenterMask: Hourglass-104)
