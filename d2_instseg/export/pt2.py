"""The ``pt2`` export: the network as a ``torch.export`` program (``model.pt2``), dynamic in height
and width, run by inductor (``TEST.BACKEND`` "inductor"); and its int8 version by PyTorch's PT2E
static quantisation for x86 (torchao's ``X86InductorQuantizer``: int8 convolutions on oneDNN, which
use AVX-512 VNNI where the CPU has it). Unlike ONNX Runtime's quantiser this path also quantises
around DLA-34's deformable convolutions (they stay float, their neighbours run int8), which is what
makes CenterMask fast in int8 (README "Deploying").
"""

from typing import Callable, Dict, Iterable, List

import torch
from detectron2.layers import Conv2d
from torch import nn
from torch.export import Dim

from ..utils.graph import walk_back

__all__ = [
    "Pt2Network",
    "export_program",
    "plain_convolutions",
    "quantize_program",
]


class _Apply(nn.Module):
    """A function activation (``F.relu`` ...) as a module."""

    def __init__(self, fn: Callable):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _activation_module(activation) -> nn.Module:
    if isinstance(activation, nn.Module):
        return activation
    if activation in (torch.relu, torch.relu_, nn.functional.relu, nn.functional.relu_):
        return nn.ReLU()
    return _Apply(activation)


def plain_convolutions(module: nn.Module) -> nn.Module:
    """Replace, in place, every Detectron2 ``Conv2d`` without a norm (BatchNorms folded first) by a
    ``torch.nn.Conv2d`` sharing its weights, followed by its activation as a module. The x86
    quantiser finds the convolutions it quantises (and the conv + ReLU / conv + add patterns it
    fuses) by the exact module type that made them, so Detectron2's subclass would stay float.
    Returns ``module``."""
    for name, child in list(module.named_children()):
        if isinstance(child, Conv2d):
            if child.norm is not None:
                raise ValueError(
                    f"{name}: a Detectron2 Conv2d with a norm ({type(child.norm).__name__}); fold "
                    "BatchNorms first (TEST.FUSE_CONV_BN)"
                )
            conv = nn.Conv2d(
                child.in_channels,
                child.out_channels,
                child.kernel_size,
                child.stride,
                child.padding,
                child.dilation,
                child.groups,
                child.bias is not None,
                child.padding_mode,
            )
            conv.weight, conv.bias = child.weight, child.bias
            if child.activation is not None:
                conv = nn.Sequential(conv, _activation_module(child.activation))
            setattr(module, name, conv)
        else:
            plain_convolutions(child)
    return module


def _dynamic_shapes(divisibility: int, dynamic: bool) -> Dict:
    """``torch.export`` dynamic shapes of the one input "x" (N, 3, H, W): N from 1 to 1024 (a
    batch of images, or CPNet's crop windows); H and W, when ``dynamic``, any multiple of
    ``divisibility`` (the padding the inference function applies) up to 8192 pixels, at least 64
    (DLA-34's coarsest level must be more than one pixel, else export specialises on size 1)."""
    shapes = {0: Dim("batch", min=1, max=1024)}
    if dynamic:
        d = max(int(divisibility), 1)
        low, high = -(-64 // d), 8192 // d
        shapes[2] = d * Dim("h_steps", min=low, max=high)
        shapes[3] = d * Dim("w_steps", min=low, max=high)
    return {"x": shapes}


class _Input(nn.Module):
    """``network(x)`` with the input named "x" (the name the dynamic shapes refer to)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor):
        return self.network(x)


def export_program(
    network: nn.Module, sample: torch.Tensor, divisibility: int, dynamic: bool = True
) -> torch.export.ExportedProgram:
    """``torch.export`` of ``network`` (tensor (N, 3, H, W) -> tuple of tensors) at a batch of
    two ``sample`` images (at one, export would fix N to 1), with H and W dynamic multiples of
    ``divisibility`` when ``dynamic``."""
    sample = sample[:1].expand(2, -1, -1, -1).clone()
    return torch.export.export(
        _Input(network),
        (sample.contiguous(memory_format=torch.channels_last),),
        dynamic_shapes=_dynamic_shapes(divisibility, dynamic),
        strict=False,
    )


# Operators with weights the quantiser turns to int8 (the layers making the outputs are among them).
WEIGHTED_OPS = (
    torch.ops.aten.conv2d.default,
    torch.ops.aten.conv_transpose2d.input,
    torch.ops.aten.linear.default,
)


def output_layers(module: torch.fx.GraphModule) -> List[torch.fx.Node]:
    """The nodes of the layers that make the graph's outputs: from each output back through its
    first input's producer to the first of :data:`WEIGHTED_OPS`
    (:func:`~d2_instseg.utils.graph.walk_back`, as the ONNX int8 path finds its output layers; 12
    steps: CenterMask's peak decoding puts a sigmoid, the peak mask and two top-k with their
    reshapes and index arithmetic between the heatmap layer and its outputs)."""
    (output,) = [n for n in module.graph.nodes if n.op == "output"]
    leaves: List[torch.fx.Node] = []
    torch.fx.node.map_arg(output.args[0], leaves.append)
    layers = {}
    for node in leaves:
        layer = walk_back(
            node,
            lambda n: n.op == "call_function" and n.target in WEIGHTED_OPS,
            lambda n: n.all_input_nodes[0] if n.all_input_nodes else None,
            steps=12,
        )
        if layer is not None:
            layers[layer.name] = layer
    return list(layers.values())


# Operators that only rearrange a tensor (a weight reshaped for a product is still a weight).
VIEW_OPS = (
    torch.ops.aten.permute.default,
    torch.ops.aten.reshape.default,
    torch.ops.aten.view.default,
    torch.ops.aten.contiguous.default,
)


def reshaped_weight_convolutions(module: torch.fx.GraphModule) -> List[torch.fx.Node]:
    """The convolutions whose weight is a parameter rearranged in the graph (the quantiser only
    finds those whose weight is the parameter itself): the 1x1 convolution of each DCNv2 over its
    gathered samples (:func:`~d2_instseg.layers.modulated_deform_conv2d`), a third of DLA-34's
    time in int8 when left float (measured, README "Deploying")."""
    found = []
    for node in module.graph.nodes:
        if node.op != "call_function" or node.target is not torch.ops.aten.conv2d.default:
            continue
        weight = node.args[1]
        if weight.op == "get_attr":
            continue
        source = walk_back(
            weight,
            lambda n: n.op == "get_attr",
            lambda n: n.args[0] if n.op == "call_function" and n.target in VIEW_OPS else None,
            steps=4,
        )
        if source is not None:
            found.append(node)
    return found


def _quantizer(fp32_output_layers: bool):
    """torchao's ``X86InductorQuantizer`` (its default static config: uint8 activations per
    tensor, int8 weights per channel), with element-wise products left float (CenterMask's peak
    selection multiplies by a boolean mask, which an observer cannot take: histc has no bool
    kernel; the other products feed scores that are ranked and thresholded) and, when
    ``fp32_output_layers``, the :func:`output_layers` too (annotated "not quantised" before the
    quantiser's own passes, which skip annotated nodes); the :func:`reshaped_weight_convolutions`
    are annotated as int8 convolutions before those passes."""
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    class Quantizer(xiq.X86InductorQuantizer):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            if fp32_output_layers:
                xiq._annotate_nodes_not_quantize(output_layers(model))
            for node in reshaped_weight_convolutions(model):
                if xiq.QUANT_ANNOTATION_KEY not in node.meta:
                    self._annotate_conv_node_helper(node, True, self.global_config)
            return super().annotate(model)

        def _annotate_mul_tensor(self, model, quantization_config, filter_fn=None):
            return None

    quantizer = Quantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    return quantizer


def quantize_program(
    program: torch.export.ExportedProgram,
    calibration: Iterable[torch.Tensor],
    divisibility: int,
    dynamic: bool = True,
    fp32_output_layers: bool = True,
) -> torch.export.ExportedProgram:
    """int8 static post-training quantisation of ``program`` (:func:`export_program` of a network
    whose convolutions are :func:`plain_convolutions`): observers inserted by the x86 quantiser,
    the activation ranges (min-max) recorded on the ``calibration`` inputs ((1, 3, H, W) network
    inputs), then the quantise / dequantise pairs that inductor fuses into int8 convolutions.
    ``fp32_output_layers`` keeps the convolutions that make the outputs (:func:`output_layers`:
    the heatmap, shape, saliency, seed and class-logit layers) float, as the ONNX int8 path
    does: their outputs are thresholded, ranked or arg-maxed, and they are a small part of the
    compute. Returns the quantised graph exported again (what ``torch.export.save`` writes)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    module = program.module()
    # torch.export keeps results that nothing reads, and the quantiser fails on a convolution
    # whose output goes nowhere (seen with DLA's unused projections, since removed): drop them
    module.graph.eliminate_dead_code()
    module.recompile()
    prepared = prepare_pt2e(module, _quantizer(fp32_output_layers))
    count = 0
    with torch.no_grad():
        for x in calibration:
            prepared(x.contiguous(memory_format=torch.channels_last))
            count += 1
    if not count:
        raise ValueError("int8 quantisation needs at least one calibration input")
    converted = convert_pt2e(prepared)
    sample = program.example_inputs[0][0]
    return export_program(converted, sample, divisibility, dynamic)


class Pt2Network:
    """A ``model.pt2`` program (fp32 or int8) compiled by inductor with its weights frozen into the
    compiled code (int8: the weights are pre-packed for oneDNN once): tensor -> dict of its named
    outputs. The first call of an input size compiles (tens of seconds on a CPU; a C++ compiler is
    needed); after the second size the code takes any size. ``compile_graph=False`` runs the
    program as it is (slow in int8: the quantise / dequantise steps run one by one)."""

    def __init__(
        self, path: str, output_names: List[str], device: str = "cpu", compile_graph: bool = True
    ):
        _register_quantized_ops()
        program = torch.export.load(path)
        # an exported program's module refuses .eval() / .train(): kept out of any nn.Module
        self.module = program.module().to(device)
        self.compiled = torch.compile(self.module) if compile_graph else self.module
        self.output_names = output_names
        self.device = device

    def __call__(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        import torch._inductor.config as inductor_config

        with torch.no_grad(), inductor_config.patch(freezing=True):
            outputs = self.compiled(x.contiguous(memory_format=torch.channels_last))
        return dict(zip(self.output_names, outputs))


def _register_quantized_ops() -> None:
    """Import torchao's quantise / dequantise operators, which an int8 program calls (loading
    one fails on unknown operators otherwise); a clear error when torchao is missing."""
    try:
        import torchao.quantization.pt2e  # noqa: F401
    except ImportError as e:  # pragma: no cover - torchao is a dependency of the package
        raise ImportError(
            "The inductor backend and --format pt2 --quantize int8 need torchao "
            "(pip install torchao)"
        ) from e
