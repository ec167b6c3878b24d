"""int8 static post-training quantisation of an exported ONNX file with ONNX Runtime's quantiser:
QDQ format, per-channel weights (int8) and per-tensor activations (uint8: the u8 x s8 products that
AVX-512 VNNI and AVX2 run fastest), the activation ranges calibrated (min-max) on the network's own
inputs for N images."""

import os
from typing import Dict, Iterable, List

import numpy as np
import torch

from .runtime import ExportedModel
from .sidecar import read_sidecar, write_sidecar

__all__ = ["network_inputs", "quantize_int8"]


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


def quantize_int8(
    onnx_path: str, output_path: str, calibration: List[np.ndarray], *, per_channel: bool = True
) -> str:
    """Quantise ``onnx_path`` (an fp32 export with its sidecar) to ``output_path`` and write its
    sidecar (the source's, with a "quantization" entry).

    Args:
        calibration: network inputs (:func:`network_inputs`) whose activation ranges set the scales.
        per_channel: one weight scale per output channel (else per tensor).
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
    meta = read_sidecar(onnx_path)
    if meta["format"] != "onnx" or meta.get("quantization"):
        raise ValueError(f"{onnx_path} is not an fp32 ONNX export")
    input_name = meta["input"]["name"]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            item = next(self.items, None)
            return None if item is None else {input_name: item}

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
            calibrate_method=CalibrationMethod.MinMax,
        )
    finally:
        if os.path.exists(prepared):
            os.remove(prepared)
    meta = {k: v for k, v in meta.items() if k != "d2_instseg_export"}
    meta.update(
        file=os.path.basename(output_path),
        quantization={
            "type": "int8 static, QDQ, activations uint8 per tensor (min-max calibration), "
            f"weights int8 {'per channel' if per_channel else 'per tensor'}",
            "calibration_inputs": len(calibration),
            "source": os.path.basename(onnx_path),
        },
    )
    write_sidecar(output_path, meta)
    return output_path
