"""Ideal affinity map and affinity loss of the Context Prior layer.

Yu, Wang, Gao, Yu, Shen and Sang, "Context Prior for Scene Segmentation", CVPR 2020 (CPNet).

Shape shorthand:
    B: batch size
    h, w: height and width of the feature map the prior is predicted on (stride 8 in CPNet)
    N: number of positions, N = h * w (row-major: position i = y * w + x)
    C: number of classes (without the ignore label)

A prior map ``P`` is (B, N, N): row ``i`` holds the N probabilities predicted at position ``i``
that each position ``j`` belongs to the same class as ``i``. The ideal affinity map ``A`` is its
0/1 target, ``A[b, i, j] = 1`` iff positions ``i`` and ``j`` carry the same label. The ignore
label is treated as one more class (as in the authors' code): ignore pixels have affinity 1 with
each other and 0 with every labelled pixel; they are not masked out of the loss.
"""

import torch
import torch.nn.functional as F

__all__ = ["affinity_loss", "ideal_affinity_map"]


def ideal_affinity_map(
    labels: torch.Tensor, num_classes: int, ignore_label: int = 255
) -> torch.Tensor:
    """Ideal affinity map ``A = L L^T`` of a label map already at the prior's size.

    Args:
        labels: (B, h, w) integer labels in ``[0, num_classes)`` or ``ignore_label``. Down-sample
            a full-resolution label map with nearest-neighbour interpolation first (CPNet does).
        num_classes: C, the number of real classes.
        ignore_label: label value treated as an extra class ``C``.

    Returns:
        (B, N, N) float32 tensor of 0/1 with N = h * w; symmetric, with ones on the diagonal.
    """
    if labels.dim() != 3:
        raise ValueError(f"labels must be (B, h, w), got shape {tuple(labels.shape)}")
    flat = labels.flatten(1).long()
    flat = torch.where(flat == ignore_label, torch.full_like(flat, num_classes), flat)
    one_hot = F.one_hot(flat, num_classes + 1).float()  # (B, N, C + 1): L
    return torch.bmm(one_hot, one_hot.transpose(1, 2))


def _bce_with_one(ratio: torch.Tensor) -> torch.Tensor:
    """Mean of ``-log(ratio)``: binary cross-entropy against a target of 1. As in PyTorch's BCE the
    log is clamped at -100, so a ratio of exactly 0 costs 100 (and has no gradient)."""
    return F.binary_cross_entropy(ratio.clamp(0.0, 1.0), torch.ones_like(ratio))


def affinity_loss(
    prior: torch.Tensor,
    ideal: torch.Tensor,
    unary_weight: float = 1.0,
    global_weight: float = 1.0,
) -> torch.Tensor:
    """Affinity loss of CPNet: unary BCE plus the global precision / recall / specificity terms.

    With ``P = prior``, ``A = ideal`` and ``V = A`` with its diagonal set to 0 (a position is not
    counted as its own intra-class neighbour), for each row ``i`` (sums over ``j``)::

        recall_i      = sum(P * V) / sum(V)              (intra-class recall, T^r)
        precision_i   = sum(P * V) / sum(P)              (intra-class precision, T^p; sum(P)
                                                          includes the diagonal)
        specificity_i = sum((1 - P)(1 - A)) / sum(1 - A)  (inter-class specificity, T^s)

    a zero denominator is replaced by 1 (the ratio is then 0). The loss is::

        mean_{b,i,j} BCE(P, A) + mean_{b,i} (-log recall_i - log precision_i - log specificity_i)

    i.e. ``lambda_u * L_u + lambda_g * L_g`` of the paper with the defaults lambda_u = lambda_g = 1
    (``unary_weight``, ``global_weight``).
    Each ``-log`` is a BCE against 1, clamped at 100 like PyTorch's BCE: a row whose ratio is
    exactly 0 (a position alone in its class has ``sum(V) = 0``, so ``recall_i = 0``) adds a
    constant 100 / (B * N) with no gradient, as in the authors' code.

    Args:
        prior: (B, N, N) probabilities in [0, 1] (after the sigmoid), row i predicted at position i.
        ideal: (B, N, N) 0/1 ideal affinity map (:func:`ideal_affinity_map`).
        unary_weight: lambda_u, weight of the unary BCE term.
        global_weight: lambda_g, weight of the sum of the three global terms.

    Returns:
        Scalar float32 loss (computed in float32 even under autocast, where BCE is unsafe).
    """
    if prior.shape != ideal.shape or prior.dim() != 3 or prior.shape[1] != prior.shape[2]:
        raise ValueError(
            f"prior and ideal must both be (B, N, N); got {tuple(prior.shape)} and "
            f"{tuple(ideal.shape)}"
        )
    prior = prior.float()
    ideal = ideal.float()
    unary = F.binary_cross_entropy(prior, ideal)

    # sum_j P * V without materialising V: the diagonal of A is always 1.
    diag = prior.diagonal(dim1=1, dim2=2)  # (B, N)
    intra_hits = (prior * ideal).sum(-1) - diag
    num_intra = ideal.sum(-1) - 1.0
    num_pred = prior.sum(-1)
    num_inter = (1.0 - ideal).sum(-1)
    inter_hits = ((1.0 - prior) * (1.0 - ideal)).sum(-1)

    def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        return num / torch.where(den > 0, den, torch.ones_like(den))

    recall = ratio(intra_hits, num_intra)
    precision = ratio(intra_hits, num_pred)
    specificity = ratio(inter_hits, num_inter)
    global_term = _bce_with_one(recall) + _bce_with_one(precision) + _bce_with_one(specificity)
    return unary_weight * unary + global_weight * global_term
