"""CenterMask (point representation; Wang et al., CVPR 2020): CenterNet heads plus a local shape and
a global saliency map assembled into instance masks. Registers ``CenterMaskPoint`` on import."""

from .config import add_centermask_config
from .head import CenterMaskHead
from .meta_arch import CenterMaskPoint

__all__ = [
    "CenterMaskHead",
    "CenterMaskPoint",
    "add_centermask_config",
]
