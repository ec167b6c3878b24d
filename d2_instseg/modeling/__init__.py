"""Importing this package registers every backbone, head and meta-architecture of d2_instseg (one
folder per method, plus the shared backbones)."""

from . import (  # noqa: F401
    backbone,  # noqa: F401
    centermask,  # noqa: F401
    cpnet,
    fcn,
    irnet,  # noqa: F401
    spatial_embed,  # noqa: F401
)
