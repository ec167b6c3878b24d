"""The JSON sidecar written beside an exported file (``model.onnx`` -> ``model.onnx.json``): what an
application needs to run it (format, input and its normalisation, what each output is, the
inference function's arguments, class names, the config it was exported from)."""

import json
import os
from typing import Dict

import torch

__all__ = ["SIDECAR_VERSION", "decode_params", "encode_params", "read_sidecar", "sidecar_path"]

SIDECAR_VERSION = 1
_TENSOR = "__tensor__"


def sidecar_path(path: str) -> str:
    """The sidecar of an exported file: the file name + ".json"."""
    return path + ".json"


def encode_params(params: Dict) -> Dict:
    """Inference arguments as JSON data: tensors as ``{"__tensor__": nested lists}``, tuples as
    lists."""

    def encode(value):
        if isinstance(value, torch.Tensor):
            return {_TENSOR: value.detach().cpu().tolist()}
        if isinstance(value, (tuple, list)):
            return [encode(v) for v in value]
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        return value

    return {k: encode(v) for k, v in params.items()}


def decode_params(params: Dict, device: str = "cpu") -> Dict:
    """Inverse of :func:`encode_params`, tensors on ``device`` (float32)."""

    def decode(value):
        if isinstance(value, dict) and set(value) == {_TENSOR}:
            return torch.tensor(value[_TENSOR], dtype=torch.float32, device=device)
        if isinstance(value, dict):
            return {k: decode(v) for k, v in value.items()}
        return value

    return {k: decode(v) for k, v in params.items()}


def write_sidecar(path: str, meta: Dict) -> str:
    """Write ``meta`` as the sidecar of ``path``; returns the sidecar's path."""
    target = sidecar_path(path)
    with open(target + ".tmp", "w") as f:
        json.dump({"d2_instseg_export": SIDECAR_VERSION, **meta}, f, indent=2)
    os.replace(target + ".tmp", target)
    return target


def read_sidecar(path: str) -> Dict:
    """The sidecar of the exported file ``path``; a clear error when the file or its sidecar is
    missing or the sidecar is not one of ours."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Exported model not found: {path}")
    target = sidecar_path(path)
    if not os.path.isfile(target):
        raise FileNotFoundError(
            f"{path} has no sidecar {target}: export it with tools/export_model.py, which writes "
            "both"
        )
    try:
        with open(target) as f:
            meta = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"The sidecar {target} is not valid JSON: {e}") from e
    if not isinstance(meta, dict) or meta.get("d2_instseg_export") != SIDECAR_VERSION:
        raise ValueError(
            f"{target} is not a d2_instseg export sidecar of version {SIDECAR_VERSION}"
        )
    return meta
