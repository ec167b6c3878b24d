"""A training schedule that fits a time budget: iterations from iteration times measured on this
machine (``d2_instseg.engine.measure_iteration_time``), the base config's step and warm-up
fractions kept, and a budget shared by trainings that run one after another."""

from typing import List, Sequence, Tuple

from .stats import Derived


def split_budget(seconds: float, steps: Sequence[Tuple[int, float]]) -> List[int]:
    """Iterations of trainings that run one after another in ``seconds``, each given as
    (its base iterations, seconds per iteration): every base schedule is scaled by the same
    factor, so each training keeps its base share of the time (at least 1 iteration each).

    E.g. (100 it x 1 s, 50 it x 2 s) in 100 s: factor 0.5 -> [50, 25]."""
    base = sum(n * t for n, t in steps)
    if base <= 0:
        raise ValueError(f"split_budget: the base schedules take no time: {list(steps)}")
    return [max(1, int(n * seconds / base)) for n, _ in steps]


def schedule_keys(cfg, iterations: int, why: str) -> List[Derived]:
    """SOLVER.MAX_ITER = ``iterations``, with STEPS, WARMUP_ITERS and CHECKPOINT_PERIOD at the
    same fractions of it as in ``cfg`` (the base config)."""
    base = max(cfg.SOLVER.MAX_ITER, 1)
    frac = iterations / base
    steps = tuple(max(1, int(round(s * frac))) for s in cfg.SOLVER.STEPS if s < base)
    out = [
        Derived("SOLVER.MAX_ITER", iterations, why),
        Derived(
            "SOLVER.WARMUP_ITERS",
            int(round(cfg.SOLVER.WARMUP_ITERS * frac)),
            f"the base's {cfg.SOLVER.WARMUP_ITERS} of {base}, same fraction",
        ),
        Derived(
            "SOLVER.CHECKPOINT_PERIOD",
            max(1, int(round(min(cfg.SOLVER.CHECKPOINT_PERIOD, base) * frac))),
            "the base's fraction",
        ),
    ]
    if steps:
        out.append(
            Derived("SOLVER.STEPS", steps, f"the base's {tuple(cfg.SOLVER.STEPS)}, same fractions")
        )
    return out
