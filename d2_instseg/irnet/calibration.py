"""IRNet's score thresholds moved to the CAMs at hand (``MODEL.IRNET.CAM.FG_FRACTION``).

The paper's thresholds (confident foreground 0.30, confident background 0.05, pseudo-label
background 0.25) are CAM scores, set for the CAMs of an ImageNet-initialised ResNet-50 on PASCAL
VOC, whose foreground / background operating point is the authors' CAM evaluation threshold 0.15
(``CAM.EVAL_THRESH``). Flatter CAMs (a network trained from scratch on small images, whose
receptive field covers the whole image) separate objects from background at a higher score, and
the paper's thresholds then call most of the image foreground.

The operating point of the CAMs at hand is read from their own scores and the data's expected
share of foreground pixels f (from the dataset fingerprint, no masks needed): t* is the score that
a share f of all pixels exceeds. The monotone map s -> s^p with p = ln(0.15) / ln(t*) carries t*
to 0.15 and keeps 0 and 1 (the CAMs are max-normalised), and each paper threshold theta becomes
the score that the map carries to theta: theta^(1/p). At t* = 0.15 (CAMs like the paper's) p = 1
and every threshold is the paper's.

Shapes: histograms are (bins,) counts of per-pixel scores in [0, 1].
"""

import math
from typing import Dict

import numpy as np
import torch

HISTOGRAM_BINS = 1000  # resolution 0.001 of the scores in [0, 1], finer than any threshold's


def foreground_score_histogram(cams: torch.Tensor, num_pixels: int) -> np.ndarray:
    """(bins,) counts of one image's per-pixel foreground score: the max over the present classes'
    normalised CAMs ``cams`` (K, H, W); an image with no class present (K = 0) adds ``num_pixels``
    zeros, so it counts as background, as it does in the fingerprint's share."""
    if len(cams) == 0:
        hist = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
        hist[0] = num_pixels
        return hist
    score = cams.max(dim=0)[0].clamp(0.0, 1.0).flatten().cpu()
    index = (score * HISTOGRAM_BINS).long().clamp(max=HISTOGRAM_BINS - 1)
    return torch.bincount(index, minlength=HISTOGRAM_BINS).numpy().astype(np.int64)


def score_exceeded_by(histogram: np.ndarray, fraction: float) -> float:
    """The score t that a share ``fraction`` of the histogram's pixels exceeds (interpolated
    linearly inside the bin where the share is reached)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"MODEL.IRNET.CAM.FG_FRACTION must be in (0, 1), got {fraction}")
    total = float(histogram.sum())
    if total <= 0:
        raise ValueError("No CAM scores to calibrate the thresholds on (no pixels)")
    above = total - np.cumsum(histogram)  # above[i]: pixels in bins > i
    target = fraction * total
    i = int(np.argmax(above <= target))  # the first bin after which at most the target is left
    before = above[i] + histogram[i]  # pixels at or above bin i's lower edge
    inside = (before - target) / histogram[i] if histogram[i] else 1.0
    return (i + inside) / HISTOGRAM_BINS


def calibrated_thresholds(
    operating_point: float, reference: float, thresholds: Dict[str, float]
) -> Dict[str, float]:
    """The ``thresholds`` (set for CAMs whose operating point is ``reference``) for CAMs whose
    operating point is ``operating_point``: theta -> theta^(ln t* / ln reference), the scores that
    the power map carrying t* to ``reference`` sends to theta. Both points must be in (0, 1)."""
    for name, value in (("operating point", operating_point), ("reference", reference)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"The CAM {name} must be in (0, 1), got {value}")
    exponent = math.log(operating_point) / math.log(reference)
    return {key: theta**exponent for key, theta in thresholds.items()}
