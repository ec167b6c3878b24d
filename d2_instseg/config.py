"""Every config key of d2_instseg: :func:`add_d2_instseg_config` adds them,
:func:`check_d2_instseg_config` checks them.

Each folder declares the keys it reads in its own ``config.py`` (an adder and a check), registered
in :mod:`d2_instseg.utils.config_registry`; this module imports them all, in layer order. Our keys
live under our own nodes (``MODEL.CENTERMASK``, ``MODEL.SPATIAL_EMBED``, ``MODEL.CPNET``,
``MODEL.FCN``, ``MODEL.UNET``, ``MODEL.IRNET``, ``MODEL.DLA``, ``MODEL.HOURGLASS``,
``MODEL.ERFNET``) plus a few package-wide ones (``INPUT.DATASET_MAPPER_NAME``,
``DATASETS.INVALID_ANNOTATIONS``, ``INPUT.RANDOM_SCALE``, ``SOLVER.OPTIMIZER``,
``TEST.FUSE_CONV_BN``, ``TEST.CHANNELS_LAST``) and Detectron2's DeepLab keys; nothing mutates
Detectron2's global defaults. Keys that moved are listed in CHANGELOG.md; a config using an old name
fails naming the new one.
"""

# One import per part (sorted); they register in the order d2_instseg/__init__.py imports the
# layers (data, modeling, engine, workflows), which puts MODEL.IRNET before MODEL.IRNET.PIPELINE.
from .data import config as _data  # noqa: F401  (mapper name, bad annotations, random scale)
from .engine import config as _engine  # noqa: F401  (optimizer, poly schedule, inference)
from .irnet import config as _irnet_pipeline  # noqa: F401  (MODEL.IRNET.PIPELINE)
from .modeling.backbone import config as _backbone  # noqa: F401  (DLA, Hourglass, ERFNet)
from .modeling.centermask import config as _centermask  # noqa: F401
from .modeling.cpnet import config as _cpnet  # noqa: F401
from .modeling.fcn import config as _fcn  # noqa: F401  (FCN, UNet)
from .modeling.irnet import config as _irnet  # noqa: F401
from .modeling.spatial_embed import config as _spatial_embed  # noqa: F401
from .utils.config_registry import add_d2_instseg_config, check_d2_instseg_config

__all__ = ["add_d2_instseg_config", "check_d2_instseg_config"]
