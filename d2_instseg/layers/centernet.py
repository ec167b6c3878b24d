"""CenterNet building blocks: the gaussian radius rule, gaussian heatmap drawing and the modified
focal loss (Zhou et al., "Objects as Points", 2019), as used by CenterMask (Wang et al., CVPR 2020).

Shape shorthand:
    N: images, C: classes, H x W: heatmap (output-stride pixels), K: objects (all images together).
Coordinates are (x, y) pairs unless a name says ``hw``; heatmap pixel (y, x) is
``heatmap[..., y, x]``.
"""

from typing import Sequence, Tuple, Union

import torch

__all__ = [
    "gaussian_radius",
    "integer_gaussian_radius",
    "draw_gaussians",
    "centernet_focal_loss",
]


def gaussian_radius(
    box_hw: Union[Sequence[float], torch.Tensor], min_overlap: float = 0.7
) -> Union[float, torch.Tensor]:
    """CenterNet's gaussian radius rule, kept with its known error so that targets match CenterNet
    and CenterMask (CornerNet fixed the quadratic roots, CenterNet did not; see METHODS.md 2.2).

    With m = ``min_overlap``, the three candidate radii are::

        r1 = (b1 + sqrt(b1^2 - 4 c1)) / 2,          b1 = h + w,        c1 = w h (1 - m) / (1 + m)
        r2 = (b2 + sqrt(b2^2 - 16 c2)) / 2,         b2 = 2 (h + w),    c2 = (1 - m) w h
        r3 = (b3 + sqrt(b3^2 - 16 m c3)) / 2,       b3 = -2 m (h + w), c3 = (m - 1) w h

    and the radius is min(r1, r2, r3). CenterNet then uses ``max(0, int(radius))`` of it on the
    ceil-ed box size (see :func:`draw_gaussians`' callers).

    Args:
        box_hw: one (h, w) pair, or a tensor of shape (..., 2) holding (h, w) pairs.
        min_overlap: m, the IoU a box around a point within the radius keeps with the true box.
    Returns:
        a float for one pair, else a tensor of shape (...) with the radius of each pair.
    """
    if not isinstance(box_hw, torch.Tensor):
        h, w = float(box_hw[0]), float(box_hw[1])
        return float(gaussian_radius(torch.tensor([[h, w]], dtype=torch.float64), min_overlap)[0])
    h, w = box_hw[..., 0], box_hw[..., 1]
    m = min_overlap
    b1 = h + w
    c1 = w * h * (1 - m) / (1 + m)
    r1 = (b1 + torch.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - m) * w * h
    r2 = (b2 + torch.sqrt(b2**2 - 4 * 4 * c2)) / 2
    a3 = 4 * m
    b3 = -2 * m * (h + w)
    c3 = (m - 1) * w * h
    r3 = (b3 + torch.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def draw_gaussians(
    heatmap_shape: Tuple[int, int, int, int],
    batch_idx: torch.Tensor,
    classes: torch.Tensor,
    centers: torch.Tensor,
    radii: torch.Tensor,
) -> torch.Tensor:
    """Draw every object's gaussian peak at once (CenterNet's ``draw_umich_gaussian``, vectorised).

    Object k gets ``exp(-((x - cx)^2 + (y - cy)^2) / (2 sigma^2))`` with ``sigma = (2 r + 1) / 6``
    on the (2r+1) x (2r+1) window around its integer center, zero outside it; overlapping peaks of
    one class and image are merged by element-wise maximum. (CenterNet also zeroes values below
    float64 eps, which never happens: the window's corner, exp(-36 r^2 / (2r+1)^2), is > e^-9.)

    Args:
        heatmap_shape: (N, C, H, W) of the heatmap to return.
        batch_idx: (K,) long, image of each object.
        classes: (K,) long, class of each object in [0, C).
        centers: (K, 2) long, integer center (x, y) of each object, inside the map.
        radii: (K,) long, gaussian radius r >= 0 of each object.
    Returns:
        heatmap: (N, C, H, W) float in [0, 1], exactly 1 at every center.
    """
    n, c, h, w = heatmap_shape
    device = centers.device
    heatmap = torch.zeros(n * c, h * w, device=device)
    if centers.numel() == 0:
        return heatmap.view(n, c, h, w)
    xs = torch.arange(w, device=device, dtype=torch.float32)
    ys = torch.arange(h, device=device, dtype=torch.float32)
    dx = xs[None, None, :] - centers[:, 0, None, None].float()  # (K, 1, W)
    dy = ys[None, :, None] - centers[:, 1, None, None].float()  # (K, H, 1)
    r = radii.float()[:, None, None]
    sigma = (2 * r + 1) / 6
    peaks = torch.exp(-(dx**2 + dy**2) / (2 * sigma**2))  # (K, H, W)
    inside = (dx.abs() <= r) & (dy.abs() <= r)
    peaks = torch.where(inside, peaks, torch.zeros_like(peaks))
    index = (batch_idx * c + classes)[:, None].expand(-1, h * w)
    heatmap.scatter_reduce_(0, index, peaks.view(-1, h * w), "amax")
    return heatmap.view(n, c, h, w)


def centernet_focal_loss(logits: torch.Tensor, gt_heatmap: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss (alpha = 2, beta = 4), exact ``_neg_loss``.

    With p = clamp(sigmoid(logits), 1e-4, 1 - 1e-4), y = gt_heatmap and N_pos = #{y == 1}::

        loss = -( sum_{y=1} (1 - p)^2 log(p) + sum_{y<1} (1 - y)^4 p^2 log(1 - p) ) / N_pos

    and only the negative sum (not divided) when N_pos = 0.

    Args:
        logits: (N, C, H, W) raw heatmap logits.
        gt_heatmap: (N, C, H, W) target heatmap in [0, 1], 1 exactly at object centers.
    Returns:
        scalar loss.
    """
    p = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    gt = gt_heatmap.float()
    pos = gt.eq(1).float()
    neg = 1 - pos
    pos_loss = (torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = (torch.log(1 - p) * p**2 * (1 - gt) ** 4 * neg).sum()
    num_pos = pos.sum()
    if num_pos == 0:
        return -neg_loss
    return -(pos_loss + neg_loss) / num_pos


def integer_gaussian_radius(box_hw: torch.Tensor, min_overlap: float = 0.7) -> torch.Tensor:
    """CenterNet's integer radius of each box: ``max(0, int(gaussian_radius((ceil(h), ceil(w)))))``.

    Args:
        box_hw: (K, 2) box (h, w) in heatmap pixels.
    Returns:
        (K,) long radii.
    """
    radius = gaussian_radius(torch.ceil(box_hw.double()), min_overlap)
    # int() truncates toward zero; radii are >= 0 for h, w >= 0 so floor == trunc after the clamp.
    return torch.trunc(radius).clamp(min=0).long()
