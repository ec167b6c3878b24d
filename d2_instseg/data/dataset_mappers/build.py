"""Dataset mappers chosen by name (``cfg.INPUT.DATASET_MAPPER_NAME``), so each method can bring its
own."""

from detectron2.data import DatasetMapper
from detectron2.utils.registry import Registry

MAPPER_REGISTRY = Registry("D2_INSTSEG_MAPPER")
MAPPER_REGISTRY.__doc__ = """
Dataset mappers of d2_instseg. A registered class is called as ``cls(cfg, is_train)`` (make it
``@configurable`` with ``from_config(cls, cfg, is_train=True)``) and maps a dataset dict to a model
input.
"""


def build_mapper(cfg, is_train: bool):
    """The mapper named by ``cfg.INPUT.DATASET_MAPPER_NAME``; "" means Detectron2's
    ``DatasetMapper``."""
    name = cfg.INPUT.DATASET_MAPPER_NAME
    if not name:
        return DatasetMapper(cfg, is_train)
    if name not in MAPPER_REGISTRY:
        raise KeyError(
            f"INPUT.DATASET_MAPPER_NAME={name!r} is not a registered mapper; "
            f"registered: {sorted(k for k, _ in MAPPER_REGISTRY)}"
        )
    return MAPPER_REGISTRY.get(name)(cfg, is_train)
