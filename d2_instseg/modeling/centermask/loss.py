"""CenterMask losses besides the heatmap focal loss (``d2_instseg.layers.centernet_focal_loss``).

Shape shorthand:
    N: images, H x W: feature map, K: objects of the batch, R_m: side of the assembled mask grid,
    C_s: saliency channels.
"""

import torch
import torch.nn.functional as F

__all__ = ["reg_l1_loss", "mask_bce_loss", "saliency_bce_loss"]


def reg_l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's ``RegL1Loss``: L1 between the 2-vector predicted at each object's integer center
    and its target, summed and divided by (2 K + 1e-4), i.e. the mean per coordinate (0 when K = 0).

    Args:
        pred: (K, 2) prediction at the centers (offset or size, ``CenterMaskHead.at_points``).
        target: (K, 2) targets.
    Returns:
        scalar.
    """
    return F.l1_loss(pred, target, reduction="sum") / (target.numel() + 1e-4)


def mask_bce_loss(mask_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_mask = 1/K sum_k BCE(M_k, T_k), each BCE the mean over the mask grid (0 when K = 0).

    Args:
        mask_probs: (K, R_m, R_m) assembled masks M_k, probabilities in [0, 1].
        target: (K, R_m, R_m) targets T_k in [0, 1], on the same box grid.
    Returns:
        scalar.
    """
    # BCE on probabilities is not autocast-safe: compute it in float32 with autocast off.
    with torch.autocast(mask_probs.device.type, enabled=False):
        bce = F.binary_cross_entropy(mask_probs.float(), target.float(), reduction="none")
    return bce.flatten(1).mean(1).sum() / max(len(target), 1)


def saliency_bce_loss(saliency_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Direct supervision of the global saliency map: BCE with logits averaged over every pixel.

    Args:
        saliency_logits: (N, C_s, H, W).
        target: (N, C_s, H, W) in [0, 1].
    Returns:
        scalar.
    """
    return F.binary_cross_entropy_with_logits(saliency_logits, target)
