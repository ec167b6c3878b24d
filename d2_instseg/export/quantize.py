"""int8 static post-training quantisation of an exported file: an ONNX file with ONNX Runtime's
quantiser (:func:`quantize_int8`: QDQ format), a pt2 program with PyTorch's PT2E x86 path
(:func:`quantize_int8_pt2`). Both: per-channel weights (int8) and per-tensor activations (uint8:
the u8 x s8 products that AVX-512 VNNI and AVX2 run fastest), the activation ranges calibrated
(min-max) on the network's own inputs for N images, the output layers kept float32."""

import os
from typing import Dict, Iterable, List

import numpy as np
import torch

from ..utils.graph import walk_back
from .pt2 import quantize_program
from .runtime import ExportedModel
from .sidecar import read_sidecar, write_sidecar

__all__ = [
    "int8_path",
    "network_inputs",
    "quantize_int8",
    "quantize_int8_on_batches",
    "quantize_int8_pt2",
]


def network_inputs(model: ExportedModel, batched_inputs: Iterable[List[Dict]]) -> List[np.ndarray]:
    """The arrays the exported network receives when ``model`` runs on each batch of Detectron2
    inputs (after the same resizing, normalisation and padding, or crop windows, as at test time):
    the calibration data of :func:`quantize_int8`."""
    recorded = []
    network = model.network

    def record(x: torch.Tensor):
        recorded.append(np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32))
        return network(x)

    model.network = record
    try:
        for batch in batched_inputs:
            model(batch)
    finally:
        model.network = network
    return recorded


# Ops whose weights the quantiser turns to int8 (the layers that make an output are among them).
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def output_layers(onnx_path: str) -> List[str]:
    """Names of the nodes that stay float32 with ``fp32_output_layers``: the layer that makes each
    graph output (walking back from the output through its first input, the first weighted node
    of :data:`WEIGHTED_OPS` met), and every node downstream of those layers (activations, peak
    max-pooling, top-k, reshapes: quantised there, a score would be compared in 8 bits)."""
    import onnx

    graph = onnx.load(onnx_path, load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    layers = []
    for output in graph.output:
        node = walk_back(
            producer.get(output.name),
            lambda n: n.op_type in WEIGHTED_OPS,
            lambda n: producer.get(n.input[0]) if n.input else None,
        )
        if node is not None:
            layers.append(node)
    # downstream: nodes in graph order (topological) reading a tensor made by a kept node
    tensors = {out for node in layers for out in node.output}
    found = {node.name for node in layers}
    for node in graph.node:
        if any(i in tensors for i in node.input):
            found.add(node.name)
            tensors.update(node.output)
    return sorted(found)


def int8_path(path: str) -> str:
    """Where the int8 version of the fp32 export ``path`` goes: ``model.onnx`` ->
    ``model.int8.onnx``, ``model.pt2`` -> ``model.int8.pt2``."""
    stem, ext = os.path.splitext(path)
    return stem + ".int8" + ext


def _fp32_sidecar(path: str, fmt: str) -> Dict:
    """The sidecar of ``path``, which must be an fp32 export in format ``fmt``."""
    meta = read_sidecar(path)
    if meta["format"] != fmt or meta.get("quantization"):
        raise ValueError(f"{path} is not an fp32 {fmt} export")
    return meta


def _write_int8_sidecar(meta: Dict, source: str, output_path: str, quantization: Dict) -> None:
    """The source's sidecar ``meta`` for its int8 version ``output_path``: the file's name and a
    "quantization" entry (``quantization`` with the source's name)."""
    meta = {k: v for k, v in meta.items() if k != "d2_instseg_export"}
    meta.update(
        file=os.path.basename(output_path),
        quantization={**quantization, "source": os.path.basename(source)},
    )
    write_sidecar(output_path, meta)


def quantize_int8(
    onnx_path: str,
    output_path: str,
    calibration: List[np.ndarray],
    *,
    per_channel: bool = True,
    fp32_output_layers: bool = True,
    calibration_method: str = "MinMax",
) -> str:
    """Quantise ``onnx_path`` (an fp32 export with its sidecar) to ``output_path`` and write its
    sidecar (the source's, with a "quantization" entry).

    Args:
        calibration: network inputs (:func:`network_inputs`) whose activation ranges set the scales.
        per_channel: one weight scale per output channel (else per tensor).
        fp32_output_layers: keep the layers that make the outputs and what follows them
            (:func:`output_layers`: the heatmap, shape, saliency, seed and class-logit layers) in
            float32, the usual practice for the last layers, whose outputs are thresholded, ranked
            or arg-maxed: an 8-bit logit turns near-equal scores into ties. They are a small part
            of the compute.
        calibration_method: a name of ONNX Runtime's ``CalibrationMethod``: "MinMax" (measured
            best on CenterMask, README); "Percentile" and "Entropy" need inputs of one size.
    Returns:
        ``output_path``.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ValueError("int8 quantisation needs at least one calibration input")
    meta = _fp32_sidecar(onnx_path, "onnx")
    input_name = meta["input"]["name"]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            item = next(self.items, None)
            return None if item is None else {input_name: item}

    excluded = output_layers(onnx_path) if fp32_output_layers else []
    prepared = output_path + ".prepared.onnx"
    try:
        # Shape inference and graph clean-up first, as ONNX Runtime's quantiser recommends.
        quant_pre_process(onnx_path, prepared, skip_symbolic_shape=True)
        quantize_static(
            prepared,
            output_path,
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, calibration_method),
            nodes_to_exclude=excluded,
        )
    finally:
        if os.path.exists(prepared):
            os.remove(prepared)
    _write_int8_sidecar(
        meta,
        onnx_path,
        output_path,
        {
            "type": "int8 static, QDQ, activations uint8 per tensor (min-max calibration), "
            f"weights int8 {'per channel' if per_channel else 'per tensor'}",
            "calibration_inputs": len(calibration),
            "float32_nodes": excluded,
        },
    )
    return output_path


def quantize_int8_pt2(pt2_path: str, output_path: str, calibration: List[np.ndarray]) -> str:
    """The ``pt2`` counterpart of :func:`quantize_int8`: PT2E x86 static quantisation
    (:func:`~d2_instseg.export.pt2.quantize_program`: uint8 activations per tensor, min-max
    calibrated, int8 weights per channel, the output layers float) of the program ``pt2_path``
    to ``output_path``, with its sidecar. Returns ``output_path``."""
    meta = _fp32_sidecar(pt2_path, "pt2")
    program = quantize_program(
        torch.export.load(pt2_path),
        [torch.from_numpy(x) for x in calibration],
        meta["input"]["size_divisibility"],
        dynamic=meta["input"]["fixed_size"] is None,
    )
    torch.export.save(program, output_path)
    _write_int8_sidecar(
        meta,
        pt2_path,
        output_path,
        {
            "type": "int8 static, PT2E x86 (torchao X86InductorQuantizer), activations uint8 per "
            "tensor (min-max calibration), weights int8 per channel",
            "calibration_inputs": len(calibration),
            "float32_nodes": "the output layers and element-wise products",
        },
    )
    return output_path


def quantize_int8_on_batches(
    path: str, output_path: str, batched_inputs: Iterable[List[Dict]], device: str = "cpu"
) -> List[np.ndarray]:
    """:func:`quantize_int8` (an ONNX export) or :func:`quantize_int8_pt2` (a pt2 one) calibrated
    on Detectron2 input batches: the fp32 export run on each (:func:`network_inputs`; a pt2
    program uncompiled) gives the calibration inputs. Returns those inputs."""
    fmt = read_sidecar(path)["format"]
    inputs = network_inputs(ExportedModel(path, device=device, eager=True), batched_inputs)
    if fmt == "pt2":
        quantize_int8_pt2(path, output_path, inputs)
    else:
        quantize_int8(path, output_path, inputs)
    return inputs
