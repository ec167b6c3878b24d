"""CenterMask's inference path around the network: Detectron2 inputs -> normalised padded batch ->
``network`` -> decoded, assembled and pasted detections. The one implementation, run by the eager
model (``network`` = :meth:`CenterMaskPoint.inference_network`) and by exported ones (TorchScript,
ONNX Runtime: ``network`` runs the exported graph)."""

from typing import Callable, Dict, List

import torch

from ..preprocess import preprocess_image
from .postprocess import centermask_postprocess, decode_detections

__all__ = ["centermask_inference"]


def centermask_inference(
    network: Callable[[torch.Tensor], Dict[str, torch.Tensor]],
    batched_inputs: List[Dict],
    *,
    pixel_mean: torch.Tensor,
    pixel_std: torch.Tensor,
    size_divisibility: int,
    stride: int,
    score_thresh: float,
    mask_thresh: float,
    shape_size: int,
    saliency_class_specific: bool,
) -> List[Dict]:
    """
    Args:
        network: (N, 3, H, W) normalised images -> the dict of
            :meth:`CenterMaskPoint.inference_network`.
        batched_inputs: Detectron2 inputs, "image" (3, h, w) and optional "height" / "width".
        pixel_mean, pixel_std: (3, 1, 1) normalisation.
        size_divisibility: the batch is padded to a multiple of it.
        stride, score_thresh, shape_size, saliency_class_specific: see
            :func:`decode_detections`.
        mask_thresh: threshold of the pasted mask probabilities.
    Returns:
        one {"instances": Instances} per input, at its "height" x "width" (pred_boxes, scores,
        pred_classes, pred_masks bool).
    """
    images = preprocess_image(batched_inputs, pixel_mean, pixel_std, size_divisibility)
    results = decode_detections(
        network(images.tensor),
        images.image_sizes,
        stride=stride,
        score_thresh=score_thresh,
        shape_size=shape_size,
        saliency_class_specific=saliency_class_specific,
    )
    return [
        {
            "instances": centermask_postprocess(
                r, x.get("height", size[0]), x.get("width", size[1]), mask_thresh
            )
        }
        for r, x, size in zip(results, batched_inputs, images.image_sizes)
    ]
