"""What each meta-architecture exports (:func:`export_spec`): the traceable network (one tensor in,
a tuple of tensors out), the name and meaning of each output, what the input is, and the keyword
arguments of the inference function that runs around the network.

- The package's meta-architectures (``CenterMaskPoint``, ``SpatialEmbeddings``,
  ``CPNetSegmentor``) provide ``inference_network`` (traced), ``inference_params`` and the shared
  ``inference`` function.
- Detectron2's ``SemanticSegmentor`` (FCN-8s, UNet): backbone + sem-seg head, then
  :func:`semantic_inference`, Detectron2's own pre- and post-processing
  (``sem_seg_postprocess``).
- Detectron2's ``GeneralizedRCNN`` (Mask R-CNN, the reference): Detectron2's ``TracingAdapter``
  over ``model.inference(..., do_postprocess=False)``, as Detectron2's export tool does; the graph
  normalises and pads the image itself, and :func:`rcnn_inference` rebuilds the ``Instances`` with
  the adapter's output schema and runs Detectron2's ``detector_postprocess``.
"""

import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
from detectron2.export import TracingAdapter
from detectron2.export.flatten import InstancesSchema, ListSchema
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.utils.registry import _convert_target_to_string, locate
from torch import nn

from ..modeling.preprocess import preprocess_image

__all__ = ["ExportSpec", "export_spec", "inference_function", "rcnn_inference"]

# What each output of each network is ("what each output is", written into the sidecar).
OUTPUTS = {
    "CenterMaskPoint": {
        "scores": "(N, K) sigmoid score of each image's top-K heatmap peaks, descending "
        "(K = MODEL.CENTERMASK.TOPK_TEST; no threshold applied)",
        "classes": "(N, K) int64 class of each peak",
        "centers": "(N, K, 2) int64 (x, y) of each peak on the stride-R feature map",
        "offset": "(N, K, 2) sub-pixel (dx, dy) of each center, feature pixels",
        "size": "(N, K, 2) box (w, h) at each peak, feature pixels",
        "shape": "(N, K, S, S) local shape logits spanning each box (row 0 = top)",
        "saliency": "(N, C_s, H / R, W / R) global saliency logits (C_s = 1 or the classes)",
    },
    "SpatialEmbeddings": {
        "embedding": "(N, 2, H, W) pixel embeddings (x, y) = pixel / PIXELS_PER_UNIT + "
        "tanh(offset), embedding units",
        "sigma": "(N, S, H, W) raw sigma s: phi = exp(-sum_d (e_d - c_d)^2 exp(10 s_d))",
        "seed": "(N, C, H, W) seed probability of each class",
    },
    "CPNetSegmentor": {"logits": "(B, K, ch, cw) class logits of each crop-sized window"},
    "SemanticSegmentor": {
        "logits": "(N, K, H', W') class logits, H' >= H and W' >= W (cropped to the image by "
        "sem_seg_postprocess)"
    },
}
RCNN_OUTPUTS = {
    "pred_boxes": "(R, 4) XYXY boxes, input pixels",
    "pred_classes": "(R,) int64 classes",
    "pred_masks": "(R, 1, M, M) mask probabilities over each box (pasted by detector_postprocess)",
    "scores": "(R,) scores",
    "image_size": "(2,) the input's (h, w)",
}


@dataclass
class ExportSpec:
    """What :func:`export_model` traces and writes."""

    network: nn.Module  # one input tensor -> tuple of tensors in ``output_names`` order
    output_names: List[str]
    outputs: Dict[str, str]  # output name -> what it is
    input: Dict  # what the input tensor is (sidecar "input")
    params: Dict  # keyword arguments of the inference function (tensors allowed)
    sample: torch.Tensor  # a tracing input
    dynamic_axes: Dict[int, str]  # input dimension -> name, for ONNX


class _TupleNetwork(nn.Module):
    """``model.<method>(tensor) -> dict`` as ``tensor -> tuple`` in a fixed order of names (the
    model is a submodule, so its parameters are the traced module's)."""

    def __init__(self, model: nn.Module, names, method: str = "forward"):
        super().__init__()
        self.model, self.names, self.method = model, list(names), method

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        out = getattr(self.model, self.method)(x)
        return tuple(out[name] for name in self.names)


class _SemanticNetwork(nn.Module):
    """Detectron2 SemanticSegmentor's backbone + head: normalised batch -> "logits"."""

    def __init__(self, model):
        super().__init__()
        self.backbone, self.sem_seg_head = model.backbone, model.sem_seg_head

    def forward(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        logits, _ = self.sem_seg_head(self.backbone(images), None)
        return {"logits": logits}


def semantic_inference(
    network: Callable[[torch.Tensor], Dict[str, torch.Tensor]],
    batched_inputs: List[Dict],
    *,
    pixel_mean: torch.Tensor,
    pixel_std: torch.Tensor,
    size_divisibility: int,
) -> List[Dict]:
    """Detectron2 SemanticSegmentor's inference around ``network``: the normalised images padded to
    ``size_divisibility`` -> "logits" -> ``sem_seg_postprocess`` of each image to its "height" x
    "width": ``[{"sem_seg": (K, height, width) logits}]``."""
    images = preprocess_image(batched_inputs, pixel_mean, pixel_std, size_divisibility)
    logits = network(images.tensor)["logits"]
    return [
        {"sem_seg": sem_seg_postprocess(r, size, x.get("height", size[0]), x.get("width", size[1]))}
        for r, x, size in zip(logits, batched_inputs, images.image_sizes)
    ]


def _rcnn_forward(model, inputs):
    """The function Detectron2's export tool traces: masks stay as ROI mask probabilities."""
    return [{"instances": model.inference(inputs, do_postprocess=False)[0]}]


def schema_to_dict(schema) -> Dict:
    """A TracingAdapter output schema (nested dataclasses) as plain JSON-able data."""
    data = {"class": _convert_target_to_string(type(schema))}
    for field in dataclasses.fields(schema):
        value = getattr(schema, field.name)
        if field.name == "schemas":
            value = [schema_to_dict(s) for s in value]
        data[field.name] = value
    return data


def schema_from_dict(data: Dict):
    """Inverse of :func:`schema_to_dict`."""
    kwargs = {k: v for k, v in data.items() if k != "class"}
    if "schemas" in kwargs:
        kwargs["schemas"] = [schema_from_dict(s) for s in kwargs["schemas"]]
    return locate(data["class"])(**kwargs)


def _schema_names(schema) -> List[str]:
    """Names of the flattened outputs of Detectron2's ``[{"instances": Instances}]`` schema: the
    Instances' fields (sorted, as the schema flattens them) and "image_size"."""
    (per_image,) = schema.schemas  # ListSchema of one dict
    (instances,) = per_image.schemas  # DictSchema {"instances": InstancesSchema}
    if not isinstance(schema, ListSchema) or not isinstance(instances, InstancesSchema):
        raise ValueError(f"Unexpected output schema of the R-CNN: {schema}")
    return list(instances.keys) + ["image_size"]


def rcnn_inference(
    network: Callable[[torch.Tensor], Dict[str, torch.Tensor]],
    batched_inputs: List[Dict],
    *,
    schema: Dict,
) -> List[Dict]:
    """Detectron2 R-CNN inference with the traced ``model.inference(do_postprocess=False)``: each
    image (3, h, w) through ``network``, its outputs rebuilt into ``Instances`` by the
    TracingAdapter's ``schema`` (:func:`schema_to_dict`), then Detectron2's ``detector_postprocess``
    (boxes scaled, ROI masks pasted) to the input's "height" x "width"."""
    rebuild = schema_from_dict(schema)
    names = _schema_names(rebuild)
    results = []
    for x in batched_inputs:
        out = network(x["image"])
        (rebuilt,) = rebuild(tuple(out[name] for name in names))
        results += GeneralizedRCNN._postprocess(
            [rebuilt["instances"]], [x], [tuple(x["image"].shape[-2:])]
        )
    return results


def inference_function(meta_architecture: str) -> Callable:
    """The inference function run around the network of ``meta_architecture``."""
    special = {"SemanticSegmentor": semantic_inference, "GeneralizedRCNN": rcnn_inference}
    if meta_architecture in special:
        return special[meta_architecture]
    cls = META_ARCH_REGISTRY.get(meta_architecture)
    if not hasattr(cls, "inference_network"):
        raise ValueError(f"{meta_architecture} cannot be exported (no inference_network)")
    return cls.inference


def export_spec(model: nn.Module, cfg, size: Optional[Tuple[int, int]] = None) -> ExportSpec:
    """The :class:`ExportSpec` of a model in eval mode, with a tracing input of ``size`` (h, w)
    (default: the CPNet crop, else 512 x 512, rounded up to the size divisibility)."""
    name = cfg.MODEL.META_ARCHITECTURE
    h, w = size or (512, 512)
    fmt = {"channels": cfg.INPUT.FORMAT, "pixel_mean": list(cfg.MODEL.PIXEL_MEAN)}
    fmt["pixel_std"] = list(cfg.MODEL.PIXEL_STD)
    if isinstance(model, GeneralizedRCNN):
        sample = torch.rand(3, h, w, device=model.device) * 255
        adapter = TracingAdapter(model, [{"image": sample}], inference_func=_rcnn_forward).eval()
        with torch.no_grad():
            adapter(sample)  # records the output schema
        names = _schema_names(adapter.outputs_schema)
        return ExportSpec(
            network=adapter,
            output_names=names,
            outputs={n: RCNN_OUTPUTS.get(n, n) for n in names},
            input={
                "name": "image",
                "shape": "(3, H, W) float32 pixel values in [0, 255], channels in "
                f"{cfg.INPUT.FORMAT} order (normalised and padded inside the graph)",
                **fmt,
            },
            params={"schema": schema_to_dict(adapter.outputs_schema)},
            sample=sample,
            dynamic_axes={1: "height", 2: "width"},
        )
    if name == "SemanticSegmentor":
        network, method = _SemanticNetwork(model), "forward"
        params = {
            "pixel_mean": model.pixel_mean,
            "pixel_std": model.pixel_std,
            "size_divisibility": model.backbone.size_divisibility,
        }
    else:
        inference_function(name)  # raises for models that cannot be exported
        network, method = model, "inference_network"
        params = model.inference_params()
    fixed = params.get("crop_size")
    divisibility = max(params.get("size_divisibility", 1), 1)
    if fixed is not None:
        h, w = fixed
    h, w = (-(-s // divisibility) * divisibility for s in (h, w))
    sample = torch.randn(1, 3, h, w, device=model.pixel_mean.device)
    with torch.no_grad():
        names = sorted(getattr(network, method)(sample))
    dynamic = {0: "batch"} if fixed is not None else {0: "batch", 2: "height", 3: "width"}
    shape = f"(N, 3, {h}, {w})" if fixed is not None else "(N, 3, H, W)"
    return ExportSpec(
        network=_TupleNetwork(network, names, method),
        output_names=names,
        outputs={n: OUTPUTS[name][n] for n in names},
        input={
            "name": "images",
            "shape": f"{shape} float32 (pixel - pixel_mean) / pixel_std, channels in "
            f"{cfg.INPUT.FORMAT} order"
            + (
                ""
                if fixed is not None
                else f", padded bottom / right with 0 to a multiple of {divisibility}"
            ),
            "fixed_size": list(fixed) if fixed is not None else None,
            "size_divisibility": divisibility,
            **fmt,
        },
        params=params,
        sample=sample,
        dynamic_axes=dynamic,
    )
