"""Pixel embeddings of Spatial Embeddings: the coordinate map, the head's output split, and the
Gaussian ``phi`` shared by the loss and the clustering.

Shape shorthand:
    H, W: height and width of the (padded) network input, in pixels
    N:    number of pixels scored (H * W, or the foreground pixels at inference)
    K:    number of instances (centers)
    S:    number of sigma channels (1: circular margin, 2: elliptical margin, x then y)
    C:    number of thing classes (one seed map each)

Channel order is (x, y) everywhere in this package, as in the reference implementation.

The reference code slices a fixed buffer ``x = linspace(0, 2, 2048)``, ``y = linspace(0, 1, 1024)``
(pitch 1/1023.5 and 1/1023, about 1024 pixels per unit), which breaks for inputs larger than
1024x2048 and depends on the crop. Here one embedding unit is ``pixels_per_unit`` pixels in both
directions (isotropic for any aspect ratio), pixel (i, j) sits at ``(j, i) / pixels_per_unit`` and
the map starts at the top-left corner of the network input. Padding is added at the bottom and
the right only (``ImageList``), so it never moves the coordinates of real pixels. With the default
1023 px per unit, y is exactly the reference's and x differs by 0.05%; tanh offsets reach at most
+-1 unit (+-1023 px) and sigma bias 1 at init gives a margin of about 5 px.
"""

from typing import Tuple

import torch

# phi uses exp(SIGMA_SCALE * s) as 1 / (2 sigma^2), s being the raw sigma output (paper, code).
SIGMA_SCALE = 10.0
# Cap of SIGMA_SCALE * s: exp overflows float32 above 88.7, and inf * 0 (a pixel exactly on the
# center, e.g. a seed pixel in the clustering) is NaN. exp(80) is a margin of ~1e-17 units, far
# narrower than one pixel, so phi is unchanged wherever it was finite.
MAX_LOG_BANDWIDTH = 80.0


def coordinate_map(
    height: int, width: int, pixels_per_unit: float, *, device=None, dtype=torch.float32
) -> torch.Tensor:
    """(2, H, W) map whose channel 0 is x = column / pixels_per_unit and channel 1 is
    y = row / pixels_per_unit."""
    ys = torch.arange(height, device=device, dtype=dtype) / pixels_per_unit
    xs = torch.arange(width, device=device, dtype=dtype) / pixels_per_unit
    return torch.stack(
        [xs.view(1, width).expand(height, width), ys.view(height, 1).expand(height, width)]
    )


def split_outputs(
    outputs: torch.Tensor, coords: torch.Tensor, n_sigma: int
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw head output -> (embedding, sigma, seed).

    Args:
        outputs: (B, 2 + S + C, H, W) raw decoder output, channels (off_x, off_y, sigma.., seeds..).
        coords: (2, H, W) coordinate map (:func:`coordinate_map`).
        n_sigma: S.

    Returns:
        embedding (B, 2, H, W) = coords + tanh(offset); sigma (B, S, H, W) raw (no activation);
        seed (B, C, H, W) = sigmoid(seed logits).
    """
    embedding = coords.unsqueeze(0) + torch.tanh(outputs[:, :2])
    sigma = outputs[:, 2 : 2 + n_sigma]
    seed = torch.sigmoid(outputs[:, 2 + n_sigma :])
    return embedding, sigma, seed


def gaussian_phi(
    embedding: torch.Tensor, centers: torch.Tensor, sigma: torch.Tensor
) -> torch.Tensor:
    """phi_k(e_i) = exp(-sum_d (e_{i,d} - C_{k,d})^2 * exp(10 * s_{k,d})).

    Args:
        embedding: (2, N) pixel embeddings e_i (x, y).
        centers: (K, 2) instance centers C_k.
        sigma: (K, S) raw sigma s_k of each instance (S = 1 broadcasts over x and y).

    Returns:
        (K, N) probabilities that pixel i belongs to instance k (finite for any sigma: the
        exponent 10 s is capped at ``MAX_LOG_BANDWIDTH``).
    """
    log_bandwidth = (SIGMA_SCALE * sigma).clamp(max=MAX_LOG_BANDWIDTH)
    bandwidth = torch.exp(log_bandwidth).unsqueeze(-1)  # (K, S, 1)
    sq_dist = (embedding.unsqueeze(0) - centers.unsqueeze(-1)) ** 2  # (K, 2, N)
    return torch.exp(-(sq_dist * bandwidth).sum(dim=1))
