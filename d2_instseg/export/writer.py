"""``export_model``: trace a prepared model (eval mode, BatchNorms folded) to TorchScript or export
it to ONNX, and write the JSON sidecar beside it."""

import copy
import os
from typing import List, Optional, Tuple

import torch
from detectron2.data import MetadataCatalog
from detectron2.export import TracingAdapter

from .pt2 import export_program, plain_convolutions
from .sidecar import encode_params, write_sidecar
from .spec import export_spec

__all__ = ["FORMATS", "ONNX_OPSET", "class_names", "export_model"]

FORMATS = {"torchscript": "model.ts", "onnx": "model.onnx", "pt2": "model.pt2"}
# ONNX opset: 16 is the first with the aligned ROIAlign Detectron2's R-CNNs and CenterMask's mask
# assembly need (at Detectron2's default 11 R-CNN boxes come out hundreds of pixels off), 19 the
# first with DeformConv (DLA-34's deformable IDA-up convs; ONNX Runtime has a CPU kernel for it).
ONNX_OPSET = 19


def _deform_conv2d_symbolic(
    g, x, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
    offset_groups, use_mask,
):  # fmt: skip
    """``torchvision::deform_conv2d`` as ONNX's DeformConv (same offset layout: (dy, dx) pairs per
    kernel position; the mask multiplies each sample)."""
    from torch.onnx import symbolic_helper as sh

    const = lambda v: sh._maybe_get_const(v, "i")  # noqa: E731
    kernel = sh._get_tensor_sizes(weight)[-2:]
    return g.op(
        "DeformConv",
        x,
        weight,
        offset,
        bias,
        mask,
        dilations_i=[const(dil_h), const(dil_w)],
        group_i=const(groups),
        offset_group_i=const(offset_groups),
        kernel_shape_i=kernel,
        pads_i=[const(pad_h), const(pad_w)] * 2,
        strides_i=[const(stride_h), const(stride_w)],
    )


torch.onnx.register_custom_op_symbolic("torchvision::deform_conv2d", _deform_conv2d_symbolic, 19)


def class_names(cfg) -> List[str]:
    """The class names of the config's first test (else training) dataset, [] if none."""
    for names in (cfg.DATASETS.TEST, cfg.DATASETS.TRAIN):
        if len(names):
            meta = MetadataCatalog.get(names[0])
            return list(meta.get("thing_classes", None) or meta.get("stuff_classes", None) or [])
    return []


def export_model(
    model: torch.nn.Module,
    cfg,
    output_dir: str,
    fmt: str,
    *,
    size: Optional[Tuple[int, int]] = None,
) -> str:
    """Export ``model`` (eval mode, prepared as ``d2_instseg.Predictor`` prepares it) built from
    ``cfg``.

    Args:
        fmt: "torchscript" (``torch.jit.trace``), "onnx" (opset :data:`ONNX_OPSET`, dynamic
            batch, height and width where the network allows) or "pt2" (``torch.export``, run by
            inductor: dynamic batch, height and width; CenterMask, Spatial Embeddings and CPNet).
        size: (h, w) of the tracing input (:func:`export_spec`'s default when None); the file
            runs at other sizes too.
    Returns:
        the exported file's path (``output_dir/`` + :data:`FORMATS` ``[fmt]``); its sidecar is
        that path + ".json".
    """
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}; one of {sorted(FORMATS)}")
    spec = export_spec(model, cfg, size)
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, FORMATS[fmt])
    with torch.no_grad():
        if fmt == "torchscript":
            traced = torch.jit.trace(spec.network, (spec.sample,), check_trace=False, strict=False)
            traced.save(path)
        elif fmt == "pt2":
            if isinstance(spec.network, TracingAdapter):
                raise ValueError(
                    f"{cfg.MODEL.META_ARCHITECTURE} does not export to pt2 (its R-CNN heads are "
                    "data-dependent): use --format onnx or torchscript"
                )
            divisibility = spec.input["size_divisibility"]
            network = plain_convolutions(copy.deepcopy(spec.network))
            try:
                program = export_program(network, spec.sample, divisibility, 2 in spec.dynamic_axes)
            except torch._dynamo.exc.UserError as e:
                # FCN-8s and UNet crop their skip connections by sizes that one graph cannot
                # express for every input size their padding allows
                raise ValueError(
                    f"{cfg.MODEL.META_ARCHITECTURE} does not export to pt2 for every input size "
                    f"it takes ({str(e).splitlines()[0]}): use --format onnx or torchscript"
                ) from e
            torch.export.save(program, path)
        else:
            torch.onnx.export(
                spec.network,
                (spec.sample,),
                path,
                opset_version=ONNX_OPSET,
                dynamo=False,
                input_names=[spec.input["name"]],
                output_names=spec.output_names,
                dynamic_axes={spec.input["name"]: spec.dynamic_axes},
            )
    write_sidecar(
        path,
        {
            "format": fmt,
            "file": os.path.basename(path),
            "opset": ONNX_OPSET if fmt == "onnx" else None,
            "meta_architecture": cfg.MODEL.META_ARCHITECTURE,
            "input": {
                **spec.input,
                "dynamic_axes": {str(k): v for k, v in spec.dynamic_axes.items()},
            },
            "traced_at": list(spec.sample.shape),
            "test_resize": {
                "min_size": cfg.INPUT.MIN_SIZE_TEST,
                "max_size": cfg.INPUT.MAX_SIZE_TEST,
            },
            "output_names": spec.output_names,
            "outputs": spec.outputs,
            "inference_params": encode_params(spec.params),
            "class_names": class_names(cfg),
            "weights": cfg.MODEL.WEIGHTS,
            "torch": torch.__version__,
            "quantization": None,
            "config": cfg.dump(),
        },
    )
    return path
