"""IRNet's losses: the class-boundary loss on pair affinities and the displacement-field losses.

Shape shorthand (see ``relations.py``): N batch, D directions, (h, w) source region of the stride-4
map. Pair masks ``bg_pos``, ``fg_pos``, ``neg`` are (N, D, h, w) bool. Every mean is
``sum / (count + 1e-5)`` as in the authors' code, so an empty pair set contributes 0, not NaN.
"""

from typing import Dict

import torch

from .relations import direction_tensor, partner_stack, source_crop

_EPS = 1e-5


def _masked_mean(values: torch.Tensor, mask: torch.Tensor, denom_scale: float = 1.0):
    """sum(values over the mask) / (denom_scale * |mask| + 1e-5); a (N, D, h, w) mask also applies
    to per-coordinate values (N, 2, D, h, w)."""
    mask = mask.to(values.dtype)
    if values.dim() == mask.dim() + 1:
        mask = mask.unsqueeze(1)
    return (values * mask).sum() / (denom_scale * mask.sum() + _EPS)


def boundary_loss(
    affinity: torch.Tensor, bg_pos: torch.Tensor, fg_pos: torch.Tensor, neg: torch.Tensor
) -> Dict[str, torch.Tensor]:
    """Inter-pixel affinity loss of the class-boundary branch (IRNet eq. 4).

    affinity: (N, D, h, w), a_ij = 1 - max B on the path. Positive pairs: -log(a + 1e-5), averaged
    separately over background and foreground pairs and then halved each (balancing); negative
    pairs: -log(1 + 1e-5 - a). Returns ``loss_boundary`` = (L_pos + L_neg) / 2 and its two parts.
    """
    pos = -torch.log(affinity + _EPS)
    negative = -torch.log(1.0 + _EPS - affinity)
    loss_pos = 0.5 * _masked_mean(pos, bg_pos) + 0.5 * _masked_mean(pos, fg_pos)
    loss_neg = _masked_mean(negative, neg)
    return {
        "loss_boundary": (loss_pos + loss_neg) / 2,
        "boundary_pos": loss_pos.detach(),
        "boundary_neg": loss_neg.detach(),
    }


def pair_displacement_difference(displacement: torch.Tensor, radius: int) -> torch.Tensor:
    """delta_hat_ij = D_i - D_j for every pair.
    displacement: (N, 2, H, W) (dy, dx) -> (N, 2, D, h, w)."""
    n, _, height, width = displacement.shape
    partners = partner_stack(displacement.reshape(n * 2, height, width), radius)
    partners = partners.reshape(n, 2, *partners.shape[1:])
    return source_crop(displacement, radius).unsqueeze(2) - partners


def displacement_loss(
    displacement: torch.Tensor, bg_pos: torch.Tensor, fg_pos: torch.Tensor, radius: int
) -> Dict[str, torch.Tensor]:
    """Displacement-field losses (IRNet eqs. 6, 7).

    displacement: (N, 2, H, W) in stride-4 pixels, (dy, dx), D_i ~ centroid - x_i. For a foreground
    pair in the same class, D_i - D_j should equal delta_ij = x_j - x_i:
    L_fg = sum |delta_hat - delta|_1 / (2 |P_fg|). For background pairs D_i - D_j should be 0:
    L_bg = sum |delta_hat|_1 / (2 |P_bg|) (the 2 averages the two coordinates).
    Returns ``loss_displacement`` = (L_fg + L_bg) / 2 and its two parts.
    """
    diff = pair_displacement_difference(displacement, radius)
    delta = direction_tensor(radius, device=displacement.device).t()  # (2, D)
    fg = (diff - delta.view(1, 2, -1, 1, 1)).abs()
    loss_fg = _masked_mean(fg, fg_pos, denom_scale=2.0)
    loss_bg = _masked_mean(diff.abs(), bg_pos, denom_scale=2.0)
    return {
        "loss_displacement": (loss_fg + loss_bg) / 2,
        "displacement_fg": loss_fg.detach(),
        "displacement_bg": loss_bg.detach(),
    }
