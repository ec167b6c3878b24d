"""A training schedule that fits a time budget: iterations from an iteration time measured on
this machine, the base config's step and warm-up fractions kept."""

import logging
import time
from typing import List, Sequence, Tuple

from .stats import Derived

logger = logging.getLogger(__name__)


def measure_iteration_time(
    cfg, model=None, loader=None, lr_factor=None, iterations: int = 4, warmup: int = 2
) -> float:
    """Seconds per training iteration of ``cfg`` (median of ``iterations`` after ``warmup``),
    measured with ``model``, ``loader`` and ``lr_factor`` (a step's own; by default the Trainer's
    model and data loader) and the Trainer's optimizer."""
    from detectron2.engine import HookBase

    from ..engine import Trainer
    from ..engine.train_loop import train_for

    times: List[float] = []

    class _Clock(HookBase):
        def before_step(self):
            self._start = time.perf_counter()

        def after_step(self):
            times.append(time.perf_counter() - self._start)

    cfg = cfg.clone()
    cfg.defrost()
    cfg.SOLVER.MAX_ITER = warmup + iterations
    model = model if model is not None else Trainer.build_model(cfg)
    loader = loader if loader is not None else Trainer.build_train_loader(cfg)
    train_for(cfg, model, loader, lr_factor_func=lr_factor, extra_hooks=[_Clock()])
    timed = sorted(times[warmup:])
    return timed[len(timed) // 2]


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
