"""Imports run one way (docs/architecture.md): every ``import`` of the package's modules, those
inside functions included, goes to the same layer or a lower one; ``data`` and ``modeling`` do not
import each other, and no method folder of ``modeling`` imports another."""

import ast
import os

import pytest

from .conftest import REPO

PACKAGE = os.path.join(REPO, "d2_instseg")
# layer -> rank; an import may go to a layer of lower or equal rank, except between the two
# layers of rank 2 (data and modeling are independent of each other).
RANKS = {
    "utils": 0,
    "layers": 1,
    "data": 2,
    "modeling": 2,
    "evaluation": 3,
    "export": 3,
    "engine": 4,
    "irnet": 5,
    "serve": 5,
    "autoconfig": 5,
    "": 6,  # d2_instseg/__init__.py and d2_instseg/config.py: the facade
}
# modeling/ files that every method folder may use
MODELING_SHARED = {"preprocess", "__init__", "backbone"}


def _modules():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, REPO)[: -len(".py")].split(os.sep)
                yield path, rel


def _imports(path, parts):
    """The d2_instseg module paths (lists of names) ``path`` imports, relative ones resolved."""
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "d2_instseg":
                    yield node.lineno, alias.name.split(".")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "d2_instseg":
                target = node.module.split(".")
            else:
                continue
            if not node.module:  # "from . import x": each name is a module of the package
                for alias in node.names:
                    yield node.lineno, target + [alias.name]
            else:
                yield node.lineno, target


def _layer(parts):
    """The layer of a module path ["d2_instseg", "modeling", "cpnet", "head"]."""
    if len(parts) == 1 or parts[1] in ("__init__", "config"):
        return ""
    return parts[1]


def _method(parts):
    """The method folder of a modeling module ("cpnet"), or None for modeling/*.py files."""
    if len(parts) > 3 and parts[1] == "modeling":
        return parts[2]
    return None


def violations():
    found = []
    for path, parts in _modules():
        layer = _layer(parts)
        for line, target in _imports(path, parts):
            where = f"{'/'.join(parts)}.py:{line} imports {'.'.join(target)}"
            other = _layer(target)
            if RANKS[other] > RANKS[layer] or (RANKS[other] == RANKS[layer] and other != layer):
                found.append(f"{where} ({layer or 'facade'} -> {other or 'facade'})")
            mine, theirs = _method(parts), _method(target)
            if (
                layer == other == "modeling"
                and mine is not None
                and theirs is not None
                and mine != theirs
                and theirs not in MODELING_SHARED
            ):
                found.append(f"{where} (method folder {mine} -> {theirs})")
    return found


def test_imports_run_one_way():
    assert violations() == []


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from ..engine import Trainer", "data -> engine"),  # upward
        ("from ..modeling import backbone", "data -> modeling"),  # sibling layers
        ("from ..irnet.steps import STEPS", "data -> irnet"),
    ],
)
def test_the_check_sees_upward_and_sideways_imports(tmp_path, monkeypatch, source, expected):
    """The checker itself, on a tree holding one planted module d2_instseg/data/_planted.py whose
    function imports upward or sideways: the import is reported with the two layers named."""
    fake = tmp_path / "d2_instseg" / "data"
    fake.mkdir(parents=True)
    (fake / "_planted.py").write_text(f"def f():\n    {source}\n")
    monkeypatch.setitem(globals(), "PACKAGE", str(tmp_path / "d2_instseg"))
    monkeypatch.setitem(globals(), "REPO", str(tmp_path))
    assert any(expected in v for v in violations()), violations()
