"""Importing this package registers every backbone, head and meta-architecture of d2_instseg."""
from . import backbone  # noqa: F401
from . import centermask  # noqa: F401
from . import spatial_embed  # noqa: F401
from . import cpnet, fcn  # noqa: F401
from .. import irnet  # noqa: F401  (IRNet lives in d2_instseg/irnet)
