"""CPNet (Context Prior for Scene Segmentation, Yu et al., CVPR 2020) as Detectron2 modules.

Registers ``CPNetHead`` (SEM_SEG_HEADS_REGISTRY), ``CPNetSegmentor`` (META_ARCH_REGISTRY) and the
config keys: :func:`add_cpnet_config` (its mapper, ``SemSegScaleCropMapper``, is in
``d2_instseg.data``).
"""

from .aggregation import AggregationModule
from .config import add_cpnet_config
from .context_prior import ContextPriorLayer, prior_context
from .head import CPNetHead
from .segmentor import CPNetSegmentor

__all__ = [
    "AggregationModule",
    "CPNetHead",
    "CPNetSegmentor",
    "ContextPriorLayer",
    "add_cpnet_config",
    "prior_context",
]
