"""Lovasz hinge: a convex surrogate of the Jaccard (IoU) loss of a binary mask.

Berman, Rannen Triki and Blaschko, "The Lovasz-Softmax loss: a tractable surrogate for the
optimization of the intersection-over-union measure in neural networks", CVPR 2018.

Shape shorthand:
    P: number of pixels (elements) of one mask, flattened
    K: number of masks scored at once (rows); optional

The hinge errors ``1 - logit * sign`` (sign = +1 on foreground, -1 on background) are sorted in
decreasing order and weighted by the gradient of the Lovasz extension of the Jaccard loss
(:func:`lovasz_grad`), which is piecewise linear in the sorted errors.
"""

import torch
import torch.nn.functional as F

__all__ = ["lovasz_grad", "lovasz_hinge"]


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss with respect to sorted errors.

    Args:
        gt_sorted: (..., P) 0/1 labels (any dtype, bool included) ordered by decreasing error.

    Returns:
        (..., P) float weights ``J(1..i) - J(1..i-1)``, where ``J(1..i)`` is the Jaccard loss when
        the ``i`` largest errors are counted as mistakes. They sum to 1 along the last axis when
        the row has a foreground pixel or a background pixel (i.e. always, for P >= 1).
    """
    # bool labels cannot be subtracted in PyTorch >= 1.2: work in float.
    gt = gt_sorted.float()
    gts = gt.sum(dim=-1, keepdim=True)
    intersection = gts - gt.cumsum(dim=-1)
    union = gts + (1.0 - gt).cumsum(dim=-1)
    jaccard = 1.0 - intersection / union
    if gt.shape[-1] > 1:
        jaccard = torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=-1)
    return jaccard


def lovasz_hinge(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Lovasz hinge loss of one binary mask (or of K masks, one per row).

    Args:
        logits: (P,) real-valued scores, > 0 meaning foreground; or (K, P) for K masks.
        labels: same shape as ``logits``, 0/1 ground truth (bool, int or float).

    Returns:
        A scalar for 1-D input, or (K,) losses (one per row) for 2-D input. An empty mask
        (P == 0) gives 0, still connected to ``logits`` so that ``backward()`` works.

    Examples worked out by hand (see tests/layers/test_lovasz.py): a perfect prediction with
    margin >= 1 gives 0; logits 0 everywhere give 1 (every hinge error is 1 and the weights sum
    to 1); an all-background mask gives ``relu(1 + max logit)``.
    """
    if logits.shape != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} differ")
    if logits.dim() not in (1, 2):
        raise ValueError(f"lovasz_hinge expects (P,) or (K, P) inputs, got {tuple(logits.shape)}")
    if logits.shape[-1] == 0:
        return logits.sum(dim=-1) * 0.0
    labels = labels.to(logits.dtype)
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, dim=-1, descending=True)
    # The weights depend on the labels only: no gradient flows through them.
    grad = lovasz_grad(labels.gather(-1, perm))
    return (F.relu(errors_sorted) * grad).sum(dim=-1)
