"""``ExportedModel``: an exported file (TorchScript, ONNX or a ``torch.export`` program) run behind
the same inference function as the eager model, callable like a Detectron2 model on a list of input
dicts."""

import os
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import nn

from .pt2 import Pt2Network
from .sidecar import decode_params, read_sidecar
from .spec import inference_function

__all__ = ["BACKENDS", "ExportedModel", "OnnxNetwork", "TorchScriptNetwork"]

# TEST.BACKEND -> the export format it runs
BACKENDS = {"torchscript": "torchscript", "onnxruntime": "onnx", "inductor": "pt2"}


class TorchScriptNetwork:
    """A traced network file: tensor -> dict of its named outputs."""

    def __init__(self, path: str, output_names: List[str], device: str = "cpu"):
        self.module = torch.jit.load(path, map_location=device).eval()
        self.output_names = output_names

    def __call__(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        with torch.no_grad():
            return dict(zip(self.output_names, self.module(x)))


def _providers(device: str) -> List[str]:
    """ONNX Runtime execution providers for ``device``: CUDA's first when asked for and
    present, CPU always."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxNetwork:
    """An ONNX file in an ONNX Runtime session (all graph optimisations, PyTorch's intra-op thread
    count): tensor -> dict of its named outputs, as tensors on ``device``."""

    def __init__(self, path: str, output_names: List[str], device: str = "cpu"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = ort.InferenceSession(path, options, providers=_providers(device))
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = output_names
        self.device = device

    def __call__(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        outputs = self.session.run(self.output_names, {self.input_name: array})
        return {n: torch.from_numpy(o).to(self.device) for n, o in zip(self.output_names, outputs)}


class ExportedModel(nn.Module):
    """An exported model (``tools/export_model.py``) as a Detectron2 model in eval mode:
    ``model(batched_inputs)`` returns what the eager model returns, through the same inference
    function (the meta-architecture's ``inference``) around the exported network.

    Args:
        path: the exported file; its sidecar ``path + ".json"`` must be beside it.
        backend: "torchscript", "onnxruntime" or "inductor" (a .pt2 program compiled by
            inductor; default: the file's format's).
        device: where inputs and outputs live ("cuda" uses ONNX Runtime's CUDA provider when
            installed).
        eager: run a .pt2 program without compiling it (int8 calibration: only its inputs count).
    """

    def __init__(
        self, path: str, backend: Optional[str] = None, device: str = "cpu", eager: bool = False
    ):
        super().__init__()
        self.sidecar = read_sidecar(path)
        fmt = self.sidecar["format"]
        backend = backend or {v: k for k, v in BACKENDS.items()}[fmt]
        if backend not in BACKENDS:
            raise ValueError(f"TEST.BACKEND must be one of {sorted(BACKENDS)}, got {backend!r}")
        if BACKENDS[backend] != fmt:
            raise ValueError(
                f"{os.path.basename(path)} is a {fmt} export; TEST.BACKEND {backend!r} runs "
                f"{BACKENDS[backend]} files"
            )
        names = self.sidecar["output_names"]
        if fmt == "pt2":
            self.network = Pt2Network(path, names, device, compile_graph=not eager)
        else:
            runner = TorchScriptNetwork if fmt == "torchscript" else OnnxNetwork
            self.network = runner(path, names, device)
        self.meta_architecture = self.sidecar["meta_architecture"]
        self.inference = inference_function(self.meta_architecture)
        self.params = decode_params(self.sidecar["inference_params"], device)
        self.path, self.backend = path, backend
        self.eval()

    def forward(self, batched_inputs: List[Dict]) -> List[Dict]:
        with torch.no_grad():
            return self.inference(self.network, batched_inputs, **self.params)
