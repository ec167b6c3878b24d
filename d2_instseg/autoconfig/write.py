"""Write derived keys as a short Detectron2 YAML that inherits a base config, every key with its
reason as a comment."""

import os
from typing import Dict, List, Sequence

from .stats import Derived


def _yaml_value(value) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        items = ", ".join(_yaml_value(v) for v in value)
        # a tuple of strings in Python syntax, as Detectron2's DATASETS ("()" when empty)
        if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
            return f"({items},)" if len(value) == 1 else f"({items})"
        return f"[{items}]"
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def _tree(derived: Sequence[Derived]) -> Dict:
    tree: Dict = {}
    for d in derived:
        node = tree
        *parents, leaf = d.key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = d  # a later value of the same key replaces an earlier one
    return tree


def _lines(tree: Dict, indent: int) -> List[str]:
    out = []
    for name, node in tree.items():
        pad = "  " * indent
        if isinstance(node, dict):
            out.append(f"{pad}{name}:")
            out += _lines(node, indent + 1)
        else:
            out.append(f"{pad}{name}: {_yaml_value(node.value)}  # {node.reason}")
    return out


def config_text(base: str, derived: Sequence[Derived], header: Sequence[str]) -> str:
    """The YAML text: ``header`` lines as comments, ``_BASE_: base``, then the keys."""
    lines = [f"# {h}" if h else "#" for h in header]
    lines.append(f'_BASE_: "{base}"')
    lines += _lines(_tree(derived), 0)
    return "\n".join(lines) + "\n"


def relative_base(base: str, output: str) -> str:
    """``base`` as Detectron2 resolves it from ``output``'s folder (URLs unchanged)."""
    if "://" in base:
        return base
    return os.path.relpath(os.path.abspath(base), os.path.dirname(os.path.abspath(output)))
