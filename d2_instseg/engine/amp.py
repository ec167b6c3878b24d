"""Mixed precision training on the CPU: ``SOLVER.AMP.ENABLED`` trains in bfloat16 autocast there.

Detectron2's ``AMPTrainer`` is CUDA-only (float16 with a gradient scaler; it asserts CUDA at its
first step). On the CPU autocast's type is bfloat16, which has float32's exponent range, so no
gradient scaling is needed: the forward pass runs under ``torch.autocast("cpu", bfloat16)``
(convolutions and matrix products in bfloat16, losses in float32 by autocast's own lists), the
backward pass and the optimizer step as in ``SimpleTrainer``. On CPUs with AVX-512 BF16 or AMX,
oneDNN's bfloat16 convolutions are about twice as fast (the figures: README "Speed").
"""

import logging
import time

import torch
from detectron2.engine import AMPTrainer, SimpleTrainer

logger = logging.getLogger(__name__)


class CPUAMPTrainer(SimpleTrainer):
    """``SimpleTrainer`` whose forward pass runs under CPU autocast in bfloat16."""

    def run_step(self):
        assert self.model.training, "[CPUAMPTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss_dict = self.model(data)
        if isinstance(loss_dict, torch.Tensor):
            loss_dict = {"total_loss": loss_dict}
        losses = sum(loss.float() for loss in loss_dict.values())
        self.optimizer.zero_grad()
        losses.backward()
        self.after_backward()
        self._write_metrics(loss_dict, data_time)
        self.optimizer.step()


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU runs bfloat16 natively (AVX-512 BF16 or AMX, as oneDNN sees it): elsewhere
    oneDNN emulates it and mixed precision trains slower than float32."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def build_step_trainer(cfg, model, data_loader, optimizer) -> SimpleTrainer:
    """The loop that runs one training step: ``SimpleTrainer`` (float32), or with
    ``SOLVER.AMP.ENABLED`` Detectron2's ``AMPTrainer`` on CUDA (float16, gradient scaler) and
    :class:`CPUAMPTrainer` on the CPU (bfloat16)."""
    if not cfg.SOLVER.AMP.ENABLED:
        return SimpleTrainer(model, data_loader, optimizer)
    if torch.device(cfg.MODEL.DEVICE).type == "cuda":
        return AMPTrainer(model, data_loader, optimizer)
    if not cpu_has_native_bfloat16():
        logger.warning(
            "SOLVER.AMP.ENABLED on a CPU without native bfloat16 (AVX-512 BF16 or AMX): oneDNN "
            "emulates it, and training is likely slower than in float32 (set it False)"
        )
    return CPUAMPTrainer(model, data_loader, optimizer)
