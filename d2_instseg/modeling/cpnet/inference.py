"""CPNet's inference path around the network, which accepts only crop-sized inputs: each image at
each test scale (and flipped) is covered by crop-sized windows ("slide") or resized to the crop
("resize"), the window logits are averaged, and the softmax scores averaged over scales and flips
are returned at the image's output size. The one implementation, run by the eager model
(``network`` = :meth:`CPNetSegmentor.inference_network`) and by exported ones (TorchScript, ONNX
Runtime: ``network`` runs the exported graph at the crop size).

Shape shorthand: K classes; H, W one (scaled) image; (ch, cw) crop size; (sh, sw) sliding stride;
B windows.
"""

from typing import Callable, Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.modeling.postprocessing import sem_seg_postprocess

from ...layers import window_starts
from ..preprocess import normalize_images

__all__ = ["cpnet_inference", "slide"]

Network = Callable[[torch.Tensor], Dict[str, torch.Tensor]]


def slide(
    network: Network, image: torch.Tensor, crop_size: Tuple[int, int], stride: Tuple[int, int]
) -> torch.Tensor:
    """(3, H, W) normalised image -> (K, H, W) logits averaged over crop-sized windows every
    ``stride`` (the image is zero-padded up to the crop when smaller); all windows go through
    ``network`` ((B, 3, ch, cw) -> "logits" (B, K, ch, cw)) as one batch."""
    (ch, cw), (sh, sw) = crop_size, stride
    h, w = image.shape[-2:]
    padded = F.pad(image, (0, max(cw - w, 0), 0, max(ch - h, 0)), value=0.0)
    ph, pw = padded.shape[-2:]
    boxes = [(y, x) for y in window_starts(ph, ch, sh) for x in window_starts(pw, cw, sw)]
    windows = torch.stack([padded[:, y : y + ch, x : x + cw] for y, x in boxes])
    logits = network(windows)["logits"]
    total = logits.new_zeros((logits.shape[1], ph, pw))
    count = logits.new_zeros((1, ph, pw))
    for (y, x), window_logits in zip(boxes, logits):
        total[:, y : y + ch, x : x + cw] += window_logits
        count[:, y : y + ch, x : x + cw] += 1
    return (total / count)[:, :h, :w]


def _logits(network: Network, image: torch.Tensor, crop_size, test_mode, stride) -> torch.Tensor:
    """(3, H, W) normalised image of any size -> (K, H, W) logits ("slide" or "resize")."""
    if test_mode == "slide":
        return slide(network, image, crop_size, stride)
    resized = F.interpolate(image[None], crop_size, mode="bilinear", align_corners=False)
    logits = network(resized)["logits"]
    return F.interpolate(logits, image.shape[-2:], mode="bilinear", align_corners=False)[0]


def cpnet_inference(
    network: Network,
    batched_inputs: List[Dict],
    *,
    pixel_mean: torch.Tensor,
    pixel_std: torch.Tensor,
    crop_size: Sequence[int],
    test_mode: str,
    slide_stride: Sequence[int],
    test_scales: Sequence[float],
    test_flip: bool,
) -> List[Dict]:
    """
    Args:
        network: (B, 3, ch, cw) normalised crops -> "logits" (B, K, ch, cw).
        batched_inputs: Detectron2 inputs, "image" (3, h, w) and optional "height" / "width".
        pixel_mean, pixel_std: (3, 1, 1) normalisation.
        crop_size: (ch, cw), the only input size of the network.
        test_mode: "slide" or "resize".
        slide_stride: (sh, sw) between windows in "slide" mode.
        test_scales: scales of the image; the scores are averaged.
        test_flip: also average the prediction of the horizontally flipped image.
    Returns:
        one {"sem_seg": (K, height, width) softmax scores} per input.
    """
    crop_size, slide_stride = tuple(crop_size), tuple(slide_stride)
    results = []
    for x, image in zip(batched_inputs, normalize_images(batched_inputs, pixel_mean, pixel_std)):
        size = tuple(image.shape[-2:])
        scores, count = 0.0, 0
        for scale in test_scales:
            scaled = image
            if scale != 1.0:
                scaled_size = tuple(max(round(s * scale), 1) for s in size)
                scaled = F.interpolate(
                    image[None], scaled_size, mode="bilinear", align_corners=False
                )[0]
            for flip in (False, True) if test_flip else (False,):
                logits = _logits(
                    network, scaled.flip(-1) if flip else scaled, crop_size, test_mode, slide_stride
                )
                logits = logits.flip(-1) if flip else logits
                logits = F.interpolate(logits[None], size, mode="bilinear", align_corners=False)
                scores = scores + logits[0].softmax(0)
                count += 1
        height, width = x.get("height", size[0]), x.get("width", size[1])
        results.append({"sem_seg": sem_seg_postprocess(scores / count, size, height, width)})
    return results
