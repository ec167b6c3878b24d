"""Pixel-wise cross-entropy of semantic heads that stays finite when every pixel is ignored.

Shape shorthand: B batch, K classes, H x W label map.
"""

import torch
import torch.nn.functional as F

__all__ = ["cross_entropy_ignore"]


def cross_entropy_ignore(
    logits: torch.Tensor, targets: torch.Tensor, ignore_value: int
) -> torch.Tensor:
    """Mean cross-entropy over the pixels whose label is not ``ignore_value``.

    Equal to ``F.cross_entropy(logits, targets, ignore_index=ignore_value)`` when at least one pixel
    is labelled; when none is (a crop of padding only, an all-ignore label map) it is 0, still
    connected to ``logits``, where PyTorch's mean returns 0 / 0 = NaN.

    Args:
        logits: (B, K, H, W) class scores.
        targets: (B, H, W) int64 labels in [0, K) or ``ignore_value``.
        ignore_value: label excluded from the loss.
    Returns:
        scalar.
    """
    total = F.cross_entropy(logits, targets, ignore_index=ignore_value, reduction="sum")
    return total / (targets != ignore_value).sum().clamp(min=1)
