"""d2_instseg: CenterMask (point), Spatial Embeddings, CPNet and IRNet as Detectron2 citizens.

``import d2_instseg`` registers every meta-architecture, backbone, head, dataset mapper and built-in
dataset of the package into Detectron2's registries and catalogs. ``add_d2_instseg_config(cfg)``
adds every config key the package defines; ``check_d2_instseg_config(cfg)`` checks them. The layers
and the direction of their imports: docs/architecture.md.
"""

from . import data, modeling  # noqa: F401  (registers datasets, mappers, models)
from .config import add_d2_instseg_config, check_d2_instseg_config
from .engine.predictor import Predictor

__version__ = "0.1.0"
__all__ = ["add_d2_instseg_config", "check_d2_instseg_config", "Predictor", "__version__"]
