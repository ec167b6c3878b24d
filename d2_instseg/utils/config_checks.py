"""Table-driven validation of config values, shared by every method's ``check_*_config``.

A method lists ``(key, Rule)`` rows relative to its config node; :func:`check_keys` raises a
ValueError naming the full key (``MODEL.CENTERMASK.SHAPE_SIZE=0: must be >= 1``) of the first row
whose rule fails. A rule that cannot even be evaluated on the value (a string where a number is
expected, a scalar where a list is) counts as failed.
"""

from typing import Any, Callable, NamedTuple, Sequence, Tuple

from detectron2.config import CfgNode

__all__ = [
    "ABSOLUTE_CROP",
    "POSITIVE_RANGE",
    "Rule",
    "all_at_least",
    "at_least",
    "check_backbone_features",
    "check_keys",
    "check_sem_seg_head",
    "get_key",
    "set_key",
    "closed_interval",
    "greater_than",
    "multiple_of",
    "open_interval",
    "one_of",
]


class Rule(NamedTuple):
    """A condition on one config value and the reason printed when it does not hold."""

    ok: Callable[[Any], bool]
    why: str


def at_least(low: float) -> Rule:
    return Rule(lambda v: v >= low, f"must be >= {low}")


def greater_than(low: float) -> Rule:
    return Rule(lambda v: v > low, f"must be > {low}")


def closed_interval(low: float, high: float) -> Rule:
    return Rule(lambda v: low <= v <= high, f"must be in [{low}, {high}]")


def open_interval(low: float, high: float) -> Rule:
    return Rule(lambda v: low < v < high, f"must be in ({low}, {high})")


def multiple_of(factor: int) -> Rule:
    return Rule(lambda v: v >= factor and v % factor == 0, f"must be a multiple of {factor} (> 0)")


def one_of(*choices) -> Rule:
    return Rule(lambda v: v in choices, f"must be one of {list(choices)}")


def all_at_least(low: float, length: int = 0) -> Rule:
    """A list whose values are all >= ``low``, with exactly ``length`` values (any number >= 1 when
    ``length`` is 0)."""
    count = f"{length} value{'s' * (length != 1)}" if length else "one or more values"
    return Rule(
        lambda v: (len(v) == length if length else len(v) >= 1) and min(v) >= low,
        f"needs {count}, each >= {low}",
    )


# INPUT.CROP read as a fixed input size (a mapper's crop, CPNet's prior size).
ABSOLUTE_CROP = Rule(
    lambda crop: crop.ENABLED and crop.TYPE == "absolute",
    "needs ENABLED True and TYPE 'absolute' (INPUT.CROP.SIZE is used as a fixed size)",
)

# A (min, max) pair with 0 < min <= max (scale ranges, resize ranges).
POSITIVE_RANGE = Rule(
    lambda v: len(v) == 2 and 0 < v[0] <= v[1], "needs (min, max) with 0 < min <= max"
)


_MISSING = object()


def get_key(cfg: CfgNode, key: str, default: Any = _MISSING) -> Any:
    """The value of dotted ``key`` ("MODEL.CPNET.TEST.MODE") in ``cfg``; ``default`` if a part of it
    is missing (KeyError naming the key when no default is given)."""
    node = cfg
    for part in key.split("."):
        if not isinstance(node, CfgNode) or part not in node:
            if default is _MISSING:
                raise KeyError(f"Config key {key!r} does not exist")
            return default
        node = node[part]
    return node


def set_key(cfg: CfgNode, key: str, value: Any) -> None:
    """Set dotted ``key`` (its parent nodes must exist)."""
    parent, _, leaf = key.rpartition(".")
    (get_key(cfg, parent) if parent else cfg)[leaf] = value


def check_keys(cfg: CfgNode, prefix: str, rows: Sequence[Tuple[str, Rule]]) -> None:
    """Raise ValueError ``"<prefix>.<key>=<value>: <why>"`` for the first row whose rule fails.

    Args:
        cfg: the full config.
        prefix: dotted path of the node the keys are relative to, e.g. "MODEL.CENTERMASK".
        rows: (key relative to ``prefix``, possibly dotted; rule) pairs, checked in order.
    """
    node = get_key(cfg, prefix)
    for key, rule in rows:
        value = get_key(node, key)
        try:
            ok = bool(rule.ok(value))
        except (TypeError, ValueError, IndexError):
            ok = False
        if not ok:
            raise ValueError(f"{prefix}.{key}={value!r}: {rule.why}")


def check_backbone_features(key: str, names, available, hint: str = "") -> None:
    """Raise ValueError ``"<key>=<names>: [missing] not among the backbone outputs [...]"`` when a
    feature named by config ``key`` (one name or a list) is not in ``available`` (the backbone's
    ``output_shape()``); ``hint`` is appended (e.g. which key sets the backbone's outputs)."""
    wanted = [names] if isinstance(names, str) else list(names)
    missing = [n for n in wanted if n not in available]
    if missing:
        raise ValueError(
            f"{key}={names!r}: {missing} not among the backbone outputs {sorted(available)}"
            + (f"; {hint}" if hint else "")
        )


def check_sem_seg_head(cfg: CfgNode, *, own_loss_weight: bool = False) -> None:
    """Detectron2's MODEL.SEM_SEG_HEAD keys as d2_instseg's semantic heads read them (LOSS_WEIGHT
    unless the head has its own)."""
    num_classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    rows = [
        ("NUM_CLASSES", at_least(1)),
        (
            "IGNORE_VALUE",
            Rule(lambda v: not 0 <= v < num_classes, "must not be a class id (0..NUM_CLASSES-1)"),
        ),
    ]
    if not own_loss_weight:
        rows.append(("LOSS_WEIGHT", at_least(0)))
    check_keys(cfg, "MODEL.SEM_SEG_HEAD", rows)
