"""Step 2 of IRNet: confident foreground / background labels from an image's CAMs, refined by a
dense CRF, as the relation labels IRNet trains on (0 = confident background, c + 1 = class c,
255 = unsure)."""

from typing import Sequence, Tuple

import numpy as np

from ..modeling.irnet.relations import IGNORE_LABEL


def crf_inference_label(
    image: np.ndarray,
    labels: np.ndarray,
    num_labels: int,
    *,
    iterations: int,
    gt_prob: float,
    gaussian: Tuple[float, float],
    bilateral: Tuple[float, float, float],
) -> np.ndarray:
    """Dense-CRF refinement of a hard label map (pydensecrf).

    image: (H, W, 3) uint8 RGB; labels: (H, W) int in [0, num_labels). gaussian = (sxy, compat),
    bilateral = (sxy, srgb, compat). Returns the refined (H, W) int64 labels.
    """
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_labels

    height, width = labels.shape
    crf = dcrf.DenseCRF2D(width, height, num_labels)
    unary = unary_from_labels(labels, num_labels, gt_prob=gt_prob, zero_unsure=False)
    crf.setUnaryEnergy(unary)
    crf.addPairwiseGaussian(sxy=gaussian[0], compat=gaussian[1])
    crf.addPairwiseBilateral(
        sxy=bilateral[0],
        srgb=bilateral[1],
        rgbim=np.array(image, dtype=np.uint8, order="C"),  # a writable copy: pydensecrf needs one
        compat=bilateral[2],
    )
    q = crf.inference(iterations)
    return np.argmax(np.array(q).reshape(num_labels, height, width), axis=0)


def confident_relation_label(
    image: np.ndarray,
    high_res_cams: np.ndarray,
    classes: Sequence[int],
    *,
    fg_thresh: float,
    bg_thresh: float,
    crf_kwargs: dict,
) -> np.ndarray:
    """IRNet's relation label map of one image from its CAMs.

    image: (H, W, 3) uint8 RGB; high_res_cams: (K, H, W) normalised CAMs of the K classes present
    (contiguous ids ``classes``). Background scores fg_thresh (low threshold -> confident
    foreground) and bg_thresh (confident background) are each prepended, argmax'ed and CRF-refined.
    Returns (H, W) uint8: 0 = confident background, c + 1 = confident class c, 255 = unsure.
    """
    keys = np.array([0] + [c + 1 for c in classes], dtype=np.int64)

    def refined(thresh: float) -> np.ndarray:
        bg = np.full((1,) + high_res_cams.shape[1:], thresh, dtype=np.float32)
        scores = np.concatenate([bg, high_res_cams.astype(np.float32)], axis=0)
        pred = crf_inference_label(image, np.argmax(scores, axis=0), len(keys), **crf_kwargs)
        return keys[pred]

    fg_conf, bg_conf = refined(fg_thresh), refined(bg_thresh)
    label = fg_conf.astype(np.uint8)
    label[fg_conf == 0] = IGNORE_LABEL
    label[(fg_conf == 0) & (bg_conf == 0)] = 0
    return label
