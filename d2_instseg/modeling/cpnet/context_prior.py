"""Context Prior layer of CPNet: a learned N x N prior map splitting context into intra / inter.

Shape shorthand:
    B: batch size; C: channels of the aggregated feature X~; h, w: feature size (prior size);
    N = h * w positions, row-major (position i = y * w + x).

The prior map ``P`` (B, N, N) is predicted by a 1x1 convolution with N output channels (+ norm,
sigmoid): channel j at position i becomes ``P[b, i, j]``, the probability that position j has the
same class as position i. Because the convolution has N = h * w output channels, the layer only
works on features of exactly the size it was built for (the training crop / 8).
"""

from typing import Tuple

import torch
from detectron2.layers import Conv2d, get_norm
from torch import nn


def prior_context(prior: torch.Tensor, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Intra-class and inter-class context of the paper, normalised by N (not a softmax).

    ``intra = P X / N`` and ``inter = (1 - P) X / N`` with X the (B, N, C) view of ``x``. Hence
    ``N * (intra + inter) = 1 X``: at every position the two sum to the mean of ``x`` over all
    positions, and for ``P = I`` (each position only related to itself) ``N * intra = X``.

    Args:
        prior: (B, N, N) prior map, row i for position i.
        x: (B, C, h, w) aggregated feature with h * w = N.

    Returns:
        (intra, inter), each (B, C, h, w).
    """
    b, c, h, w = x.shape
    n = h * w
    if prior.shape != (b, n, n):
        raise ValueError(f"prior must be (B, N, N) = {(b, n, n)} for x {tuple(x.shape)}")
    x_flat = x.flatten(2).transpose(1, 2)  # (B, N, C)
    intra = torch.bmm(prior, x_flat) / n
    inter = torch.bmm(1.0 - prior, x_flat) / n

    def to_map(t: torch.Tensor) -> torch.Tensor:
        return t.transpose(1, 2).reshape(b, c, h, w)

    return to_map(intra), to_map(inter)


class ContextPriorLayer(nn.Module):
    """Prior map P = sigmoid(norm(conv1x1(X~))) and the intra / inter contexts of X~."""

    def __init__(self, channels: int, prior_size: Tuple[int, int], norm: str = "BN"):
        """
        Args:
            channels: C of the aggregated feature X~.
            prior_size: (h, w) of the feature the layer will see; N = h * w output channels.
            norm: Detectron2 norm name applied before the sigmoid ("" for none).
        """
        super().__init__()
        self.prior_size = tuple(int(s) for s in prior_size)
        n = self.prior_size[0] * self.prior_size[1]
        self.prior_conv = Conv2d(channels, n, 1, bias=not norm, norm=get_norm(norm, n))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Args:
            x: (B, C, h, w) with (h, w) == prior_size.

        Returns:
            prior (B, N, N) in [0, 1]; intra and inter context (B, C, h, w).
        """
        if tuple(x.shape[-2:]) != self.prior_size:
            raise ValueError(
                f"CPNet's context prior layer was built for a {self.prior_size} feature map "
                f"(MODEL.CPNET.PRIOR_SIZE) but got {tuple(x.shape[-2:])}: the prior has N = h*w "
                "channels, so inputs must have the training crop size (INPUT.CROP.SIZE); use "
                "CPNetSegmentor, which pads training crops and slides / resizes at inference"
            )
        logits = self.prior_conv(x)  # (B, N, h, w): channel j at position i
        prior = torch.sigmoid(logits).flatten(2).transpose(1, 2)  # (B, N_i, N_j)
        intra, inter = prior_context(prior, x)
        return prior, intra, inter
