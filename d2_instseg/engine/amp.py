"""Mixed precision on the CPU: ``SOLVER.AMP.ENABLED`` trains in bfloat16 autocast there, and
``TEST.AMP.ENABLED`` runs the network part of inference in it (bfloat16 on the CPU, float16 on
CUDA).

Detectron2's ``AMPTrainer`` is CUDA-only (float16 with a gradient scaler; it asserts CUDA at its
first step). On the CPU autocast's type is bfloat16, which has float32's exponent range, so no
gradient scaling is needed: the forward pass runs under ``torch.autocast("cpu", bfloat16)``
(convolutions and matrix products in bfloat16, losses in float32 by autocast's own lists), the
backward pass and the optimizer step as in ``SimpleTrainer``. On CPUs with AVX-512 BF16 or AMX,
oneDNN's bfloat16 convolutions are about twice as fast (the figures: README "Speed").
"""

import functools
import logging
import threading
import time
from typing import Callable, List

import torch
from detectron2.engine import AMPTrainer, SimpleTrainer
from torch import nn
from torch.utils._pytree import tree_leaves, tree_map

from ..utils.graph import walk_back

logger = logging.getLogger(__name__)


class CPUAMPTrainer(SimpleTrainer):
    """``SimpleTrainer`` whose forward pass runs under CPU autocast in bfloat16."""

    def run_step(self):
        assert self.model.training, "[CPUAMPTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        with torch.autocast("cpu", dtype=autocast_dtype("cpu")):
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


def autocast_dtype(device_type: str) -> torch.dtype:
    """Autocast's type on ``device_type``: bfloat16 on the CPU (float32's exponent range, fast on
    AVX-512 BF16 / AMX), float16 on CUDA."""
    return torch.bfloat16 if device_type == "cpu" else torch.float16


def _warn_if_emulated(device_type: str, key: str) -> None:
    if device_type == "cpu" and not cpu_has_native_bfloat16():
        logger.warning(
            f"{key} on a CPU without native bfloat16 (AVX-512 BF16 or AMX): oneDNN emulates it, "
            "and it is likely slower than float32 (set it False)"
        )


def _float32(tree):
    """Every floating-point tensor in ``tree`` (lists, tuples, dicts) as float32."""
    return tree_map(
        lambda t: t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t, tree
    )


def autocast_call(fn: Callable, device_type: str) -> Callable:
    """``fn`` run under autocast on ``device_type``, its floating-point tensor outputs (in any
    nesting of lists, tuples and dicts) cast back to float32, so that what follows (decoding,
    thresholds, clustering, pasting) runs in float32 as it does after an exported network."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with torch.autocast(device_type, dtype=autocast_dtype(device_type)):
            return _float32(fn(*args, **kwargs))

    return run


def float32_call(fn: Callable, device_type: str) -> Callable:
    """``fn`` run in float32 inside an autocast region: autocast off, its tensor inputs cast up."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with torch.autocast(device_type, enabled=False):
            return fn(*_float32(args), **_float32(kwargs))

    return run


WEIGHTED_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def output_layers(run: Callable[[], object], model: nn.Module) -> List[nn.Module]:
    """The weighted layers of ``model`` that make the outputs of ``run()``: from each output tensor
    back through the autograd graph along first inputs (activations, reshapes, up-sampling) to
    the first node a layer of :data:`WEIGHTED_LAYERS` made: the int8 export's walk
    (``d2_instseg.export.quantize.output_layers``; both ``d2_instseg.utils.graph.walk_back``), on
    the eager graph. ``run`` is called once with gradients on; no activation is kept for a backward
    pass."""
    made = {}

    def record(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.grad_fn is not None:
            made[output.grad_fn] = module

    layers = [m for m in model.modules() if isinstance(m, WEIGHTED_LAYERS)]
    handles = [m.register_forward_hook(record) for m in layers]
    try:
        with (
            torch.enable_grad(),
            torch.autograd.graph.saved_tensors_hooks(lambda t: None, lambda t: None),
        ):
            outputs = run()
    finally:
        for handle in handles:
            handle.remove()
    found = []
    for tensor in tree_leaves(outputs):
        node = walk_back(
            tensor.grad_fn if isinstance(tensor, torch.Tensor) else None,
            lambda fn: fn in made,
            lambda fn: next((f for f, _ in fn.next_functions if f is not None), None),
        )
        if node is not None:
            found.append(made[node])
    return list(dict.fromkeys(found))


class _MixedPrecisionNetwork:
    """A network run under autocast, its outputs as float32, with the layers that make them in
    float32 (found on the first call, :func:`output_layers`): their outputs are ranked,
    thresholded and compared for peaks, where bfloat16's 8 significant bits make ties (measured on
    shapes_val: CenterMask lost 1.2 mask AP with them in bfloat16, see README "Deploying")."""

    def __init__(self, network: Callable, model: nn.Module, device_type: str):
        functools.update_wrapper(self, network)
        self.run, self.model, self.device_type = (
            autocast_call(network, device_type),
            model,
            device_type,
        )
        self.lock, self.float32_layers = threading.Lock(), None

    def __call__(self, *args, **kwargs):
        with self.lock:  # a Predictor may be called from several threads
            if self.float32_layers is None:
                found = output_layers(functools.partial(self.run, *args, **kwargs), self.model)
                for layer in found:
                    layer.forward = float32_call(layer.forward, self.device_type)
                self.float32_layers = found
        return self.run(*args, **kwargs)


# The dense parts of Detectron2's models that inference autocasts: (attribute path, method, whether
# the layers making its outputs stay float32). The convolutions and matrix products, none of the box
# decoding, NMS or mask pasting between them (the mask head's ``layers``, not its ``forward``, which
# also turns the logits into probabilities); the box predictor, whose class scores are ranked and
# thresholded, stays float32, as do the layers output_layers finds making the mask logits and a
# semantic head's class logits (UNet's predictor; FCN-8s's sum of three score paths is too far for
# its walk and stays bfloat16: 0.03 mIoU on shapes_val, README "Deploying").
DETECTRON2_DENSE_PARTS = (
    ("backbone", "forward", False),
    ("sem_seg_head", "forward", True),
    ("proposal_generator.rpn_head", "forward", False),
    ("roi_heads.box_head", "forward", False),
    ("roi_heads.mask_head", "layers", True),
)


def autocast_network(model: torch.nn.Module, device_type: str) -> torch.nn.Module:
    """Run the network part of ``model``'s inference in mixed precision (``TEST.AMP.ENABLED``), in
    place: ``inference_network`` for the models of d2_instseg (the dense part the exports trace;
    post-processing and the layers that make its outputs stay float32:
    :class:`_MixedPrecisionNetwork`), else :data:`DETECTRON2_DENSE_PARTS`. For a model that only
    infers (the Predictor's, ``--eval-only``'s): a training forward that calls the same parts would
    run them in mixed precision too. Returns ``model``."""
    _warn_if_emulated(device_type, "TEST.AMP.ENABLED")
    if hasattr(model, "inference_network"):
        model.inference_network = _MixedPrecisionNetwork(
            model.inference_network, model, device_type
        )
        return model
    for path, method, float32_outputs in DETECTRON2_DENSE_PARTS:
        part = functools.reduce(lambda obj, name: getattr(obj, name, None), path.split("."), model)
        if part is None:
            continue
        call = getattr(part, method)
        if float32_outputs:
            setattr(part, method, _MixedPrecisionNetwork(call, part, device_type))
        else:
            setattr(part, method, autocast_call(call, device_type))
    return model


def build_step_trainer(cfg, model, data_loader, optimizer) -> SimpleTrainer:
    """The loop that runs one training step: ``SimpleTrainer`` (float32), or with
    ``SOLVER.AMP.ENABLED`` Detectron2's ``AMPTrainer`` on CUDA (float16, gradient scaler) and
    :class:`CPUAMPTrainer` on the CPU (bfloat16)."""
    if not cfg.SOLVER.AMP.ENABLED:
        return SimpleTrainer(model, data_loader, optimizer)
    if torch.device(cfg.MODEL.DEVICE).type == "cuda":
        return AMPTrainer(model, data_loader, optimizer)
    _warn_if_emulated("cpu", "SOLVER.AMP.ENABLED")
    return CPUAMPTrainer(model, data_loader, optimizer)
