"""The input side of every d2_instseg meta-architecture: Detectron2's list of dicts -> normalised
images, padded into an ``ImageList``."""

from typing import Dict, List

import torch
from detectron2.structures import ImageList


def normalize_images(
    batched_inputs: List[Dict], pixel_mean: torch.Tensor, pixel_std: torch.Tensor
) -> List[torch.Tensor]:
    """``(x["image"] - pixel_mean) / pixel_std`` for each input, on the buffers' device.

    batched_inputs: dicts with "image" (C, H_i, W_i); pixel_mean, pixel_std: (C, 1, 1).
    Returns (C, H_i, W_i) float tensors.
    """
    return [(x["image"].to(pixel_mean.device) - pixel_mean) / pixel_std for x in batched_inputs]


def preprocess_image(
    batched_inputs: List[Dict],
    pixel_mean: torch.Tensor,
    pixel_std: torch.Tensor,
    size_divisibility: int,
) -> ImageList:
    """Normalised images padded (bottom / right, with 0 = the mean colour) to a common size that is
    a multiple of ``size_divisibility``: an ImageList of (N, C, H, W), real sizes in image_sizes."""
    images = normalize_images(batched_inputs, pixel_mean, pixel_std)
    return ImageList.from_tensors(images, size_divisibility)
