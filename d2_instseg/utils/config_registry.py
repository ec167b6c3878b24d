"""The parts of d2_instseg's config: each folder declares the keys it reads (an adder) and their
checks in its own ``config.py`` and registers them here; :func:`add_d2_instseg_config` and
:func:`check_d2_instseg_config` run every part.

The parts register when their modules are imported; ``d2_instseg/config.py`` imports all of them,
and ``import d2_instseg`` (which any ``d2_instseg.*`` import runs first) imports that. So any layer
can build or check a full config without importing the layers above it, as Detectron2's registries
let ``build_model`` live below the models it builds.
"""

from typing import Callable, Dict, List, NamedTuple, Optional

from detectron2.config import CfgNode


class ConfigPart(NamedTuple):
    name: str
    add: Callable[[CfgNode], None]
    check: Optional[Callable[[CfgNode], None]]


_PARTS: List[ConfigPart] = []
# old full key -> new full key, for configs written before a key moved (see CHANGELOG.md)
_RENAMED: Dict[str, str] = {}
# a key that exists once every part has been added (the parts' adders are not idempotent)
_ADDED_MARKER = "DATASET_MAPPER_NAME"


def register_config_part(
    name: str, add: Callable[[CfgNode], None], check: Optional[Callable[[CfgNode], None]] = None
) -> None:
    """Register the adder (and check) of one folder; registering a name again replaces it."""
    part = ConfigPart(name, add, check)
    for i, existing in enumerate(_PARTS):
        if existing.name == name:
            _PARTS[i] = part
            return
    _PARTS.append(part)


def register_renamed_keys(renamed: Dict[str, str]) -> None:
    """Old full key -> new one: merging a config with an old key fails naming the new key."""
    _RENAMED.update(renamed)


def config_parts() -> List[str]:
    return [p.name for p in _PARTS]


def add_d2_instseg_config(cfg: CfgNode) -> None:
    """Add every config key defined by d2_instseg to ``cfg`` (idempotent)."""
    if _ADDED_MARKER in cfg.INPUT:
        return
    for part in _PARTS:
        part.add(cfg)
    for old, new in _RENAMED.items():
        cfg.register_renamed_key(old, new, message="see d2_instseg's CHANGELOG.md")


def check_d2_instseg_config(cfg: CfgNode) -> None:
    """Raise ValueError naming the first invalid key of any part (each part checks its own keys,
    and the cross-key rules of a method only when that method is in use)."""
    for part in _PARTS:
        if part.check is not None:
            part.check(cfg)
