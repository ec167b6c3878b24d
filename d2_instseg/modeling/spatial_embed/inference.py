"""Spatial Embeddings' inference path around the network: Detectron2 inputs -> normalised padded
batch -> ``network`` -> clustering per image -> instances at the output size. The one
implementation, run by the eager model (``network`` = :meth:`SpatialEmbeddings.inference_network`)
and by exported ones (TorchScript, ONNX Runtime: ``network`` runs the exported graph).

Shape shorthand: B images; H, W padded input; h, w one image before padding; S sigma channels;
C classes; R instances of one image.
"""

from typing import Callable, Dict, List

import torch
import torch.nn.functional as F
from detectron2.structures import BitMasks, Boxes, Instances

from ..preprocess import preprocess_image
from .cluster import cluster_pixels, pixel_boxes, pixel_masks

__all__ = ["cluster_image", "resize_instances", "spatial_embed_inference"]


def cluster_image(
    embedding: torch.Tensor,
    sigma: torch.Tensor,
    seed: torch.Tensor,
    *,
    max_detections: int,
    **cluster_args,
) -> Instances:
    """(2, h, w), (S, h, w), (C, h, w) -> Instances at (h, w) (pred_masks, pred_classes, scores,
    pred_boxes from the masks), at most ``max_detections`` (the highest scores).
    ``cluster_args``: the thresholds of :func:`cluster_pixels`."""
    pixels, classes, scores = cluster_pixels(
        embedding, sigma, seed, max_detections=max_detections, **cluster_args
    )
    height, width = seed.shape[-2:]
    result = Instances((height, width))
    result.pred_masks = pixel_masks(pixels, height, width, seed.device)
    result.pred_classes = classes
    result.scores = scores
    result.pred_boxes = Boxes(pixel_boxes(pixels, width, seed.device))
    return result


def resize_instances(instances: Instances, height: int, width: int) -> Instances:
    """Masks resized (bilinear, > 0.5) to the requested output size, boxes from the resized masks;
    at the same size, unchanged."""
    if instances.image_size == (height, width):
        return instances
    masks = F.interpolate(
        instances.pred_masks.unsqueeze(1).float(),
        size=(height, width),
        mode="bilinear",
        align_corners=False,
    )
    result = Instances((height, width))
    result.pred_masks = masks.squeeze(1) > 0.5
    result.pred_classes = instances.pred_classes
    result.scores = instances.scores
    result.pred_boxes = BitMasks(result.pred_masks).get_bounding_boxes()
    return result


def spatial_embed_inference(
    network: Callable[[torch.Tensor], Dict[str, torch.Tensor]],
    batched_inputs: List[Dict],
    *,
    pixel_mean: torch.Tensor,
    pixel_std: torch.Tensor,
    size_divisibility: int,
    max_detections: int,
    **cluster_args,
) -> List[Dict]:
    """
    Args:
        network: (B, 3, H, W) normalised images -> "embedding" (B, 2, H, W), "sigma" (B, S, H, W),
            "seed" (B, C, H, W) (:meth:`SpatialEmbeddings.inference_network`).
        batched_inputs: Detectron2 inputs, "image" (3, h, w) and optional "height" / "width".
        pixel_mean, pixel_std: (3, 1, 1) normalisation.
        size_divisibility: the batch is padded (bottom / right) to a multiple of it.
        max_detections: at most this many instances per image.
        cluster_args: seed_threshold, fg_threshold, min_pixels, min_unclustered
            (:func:`cluster_instances`).
    Returns:
        one {"instances": Instances} per input at its "height" x "width": pred_masks (R, height,
        width) bool, pred_classes, scores (the seed value of each seed pixel), pred_boxes.
    """
    images = preprocess_image(batched_inputs, pixel_mean, pixel_std, size_divisibility)
    out = network(images.tensor)
    results = []
    for b, (x, (h, w)) in enumerate(zip(batched_inputs, images.image_sizes)):
        maps = [out[name][b, :, :h, :w] for name in ("embedding", "sigma", "seed")]
        instances = cluster_image(*maps, max_detections=max_detections, **cluster_args)
        height, width = x.get("height", h), x.get("width", w)
        results.append({"instances": resize_instances(instances, height, width)})
    return results
