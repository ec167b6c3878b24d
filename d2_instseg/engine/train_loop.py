"""One plain training loop for everything that trains outside ``Trainer.train`` (the IRNet
workflow's steps, the benchmark's training rows, the tests' tiny runs): Detectron2's
``SimpleTrainer`` (or the mixed-precision loop ``SOLVER.AMP`` selects) with the Trainer's own
optimizer and LR-scheduler factories, so every loop honours the same SOLVER keys; and the time
of one of its iterations (``tools/configure.py``'s budgets)."""

import math
import os
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from detectron2.engine import HookBase, hooks
from detectron2.utils.events import CommonMetricPrinter, JSONWriter

from .amp import build_step_trainer
from .trainer import Trainer


def train_for(
    cfg,
    model,
    data_loader: Iterable,
    *,
    log_dir: Optional[str] = None,
    lr_factor_func: Optional[Callable[[str], float]] = None,
    extra_hooks: Sequence[HookBase] = (),
) -> Dict:
    """Train ``model`` in place for ``cfg.SOLVER.MAX_ITER`` batches of ``data_loader``.

    The optimizer is ``Trainer.build_optimizer(cfg, model, lr_factor_func)`` (SOLVER.OPTIMIZER,
    BASE_LR, MOMENTUM, WEIGHT_DECAY(_NORM), CLIP_GRADIENTS; ``lr_factor_func`` maps a parameter
    name to its learning-rate multiplier), the schedule ``Trainer.build_lr_scheduler``
    (SOLVER.LR_SCHEDULER_NAME, WARMUP_*, STEPS, POLY_LR_*). With ``log_dir``, Detectron2's ETA lines
    are printed and ``log_dir/metrics.json`` written every ``min(20, MAX_ITER // 5)`` iterations.

    Returns ``{"iterations", "train_time_s", "losses": {name: median of the last <= 20 values}}``
    and, under ``"history"``, the EventStorage histories (``time``, ``data_time``, losses).
    """
    max_iter = cfg.SOLVER.MAX_ITER
    optimizer = Trainer.build_optimizer(cfg, model, lr_factor_func=lr_factor_func)
    scheduler = Trainer.build_lr_scheduler(cfg, optimizer)
    trainer = build_step_trainer(cfg, model, data_loader, optimizer)
    hook_list = [hooks.IterationTimer(), hooks.LRScheduler(optimizer, scheduler), *extra_hooks]
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
        writers = [CommonMetricPrinter(max_iter), JSONWriter(os.path.join(log_dir, "metrics.json"))]
        hook_list.append(hooks.PeriodicWriter(writers, period=max(1, min(20, max_iter // 5))))
    trainer.register_hooks(hook_list)
    start = time.perf_counter()
    trainer.train(0, max_iter)
    history = trainer.storage.histories()
    window = min(20, max_iter)
    return {
        "iterations": max_iter,
        "train_time_s": time.perf_counter() - start,
        "losses": {k: float(v.median(window)) for k, v in history.items() if "loss" in k},
        "history": history,
    }


def iterations_for_epochs(epochs: float, num_images: int, batch_size: int) -> int:
    """ceil(epochs x images / batch), at least 1: the iterations of a schedule given in epochs."""
    return max(1, math.ceil(epochs * num_images / batch_size))


def measure_iteration_time(
    cfg, model=None, loader=None, lr_factor=None, iterations: int = 4, warmup: int = 2
) -> float:
    """Seconds per training iteration of ``cfg`` (median of ``iterations`` after ``warmup``),
    measured with ``model``, ``loader`` and ``lr_factor`` (a step's own; by default the Trainer's
    model and data loader) and the Trainer's optimizer."""
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
