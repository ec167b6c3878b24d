"""Export: every model of the package (and Detectron2's R-CNNs through Detectron2's own
``TracingAdapter``) as TorchScript or ONNX, CenterMask, Spatial Embeddings and CPNet also as a
``torch.export`` program (pt2, run by inductor), with a JSON sidecar that says what an application
needs (config, class names, input format and normalisation, what each output is);
:class:`ExportedModel` runs an exported file behind the same inference path as the eager model, so
``d2_instseg.Predictor`` serves it with ``TEST.BACKEND``; int8 static quantisation for the CPU
(ONNX Runtime's quantiser for ONNX, PyTorch's PT2E x86 path for pt2).

The network up to its dense outputs is the traced graph; what cannot live in a graph (CenterMask's
peak decoding and mask assembly, Spatial Embeddings' clustering, CPNet's sliding window) is the
meta-architecture's own ``inference`` function, called with the eager network or the exported one.
"""

from .quantize import quantize_int8
from .runtime import BACKENDS, ExportedModel
from .sidecar import read_sidecar, sidecar_path
from .spec import ExportSpec, export_spec
from .writer import FORMATS, export_model

__all__ = [
    "BACKENDS",
    "FORMATS",
    "ExportSpec",
    "ExportedModel",
    "export_model",
    "export_spec",
    "quantize_int8",
    "read_sidecar",
    "sidecar_path",
]
