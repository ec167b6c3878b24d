"""Inter-pixel relations of IRNet: pair indexing within a radius, path offsets, class-boundary ->
affinity and pair labels from confident CAM labels (the confident labels themselves are made by the
workflow's ``d2_instseg.irnet.relation_labels``).

Shape shorthand (coordinates are always (y, x), i.e. (row, column)):
    N: batch size;  H, W: size of a (stride-4) map;  r: radius (int, >= 2)
    D: number of search directions for radius r;  L: longest path (pixels) of a direction
    h, w: size of the *source* region of a map: h = H - (r - 1), w = W - 2 (r - 1).
          A source pixel (y, x) of that region is the map pixel (y, x + r - 1), and its partner in
          direction (dy, dx) is the map pixel (y + dy, x + r - 1 + dx), which is always in the map.

Directions form a half-disk (dy >= 0, and dx > 0 when dy == 0), so each unordered pair of pixels at
distance < r appears exactly once.
"""

from functools import lru_cache
from typing import List, Sequence, Tuple

import numpy as np
import torch

IGNORE_LABEL = 255


@lru_cache(maxsize=None)
def search_directions(radius: int) -> Tuple[Tuple[int, int], ...]:
    """Half-disk of pair directions (dy, dx) for a radius: (0, x) for x = 1..r-1, then (y, x) for
    y = 1..r-1, x = -(r-1)..r-1 with y^2 + x^2 < r^2 (IRNet's search space)."""
    if radius < 2:
        raise ValueError(f"IRNet pair radius must be >= 2, got {radius}")
    dirs = [(0, x) for x in range(1, radius)]
    dirs += [
        (y, x)
        for y in range(1, radius)
        for x in range(-radius + 1, radius)
        if y * y + x * x < radius * radius
    ]
    return tuple(dirs)


@lru_cache(maxsize=None)
def path_offsets(radius: int) -> Tuple[Tuple[Tuple[int, int], ...], ...]:
    """For each direction (dy, dx) of :func:`search_directions`, the path Pi(i -> j): the pixels
    (oy, ox) (relative to the source) of the segment's bounding box whose distance to the line
    through it is < 1, both ends included. The test is the authors' exact integer one,
    (dy * ox - dx * oy)^2 < dy^2 + dx^2, so pixels at distance exactly 1 (e.g. (1, 3) and (2, 1)
    for direction (3, 4)) are left out, as in their code; a float distance would keep some."""
    paths = []
    for dy, dx in search_directions(radius):
        ys, xs = np.meshgrid(
            np.arange(min(0, dy), max(0, dy) + 1),
            np.arange(min(0, dx), max(0, dx) + 1),
            indexing="ij",
        )
        keep = (dy * xs - dx * ys) ** 2 < dy * dy + dx * dx
        paths.append(tuple(zip(ys[keep].tolist(), xs[keep].tolist())))
    return tuple(paths)


def source_size(height: int, width: int, radius: int) -> Tuple[int, int]:
    """(h, w) of the source region of an (H, W) map."""
    h, w = height - (radius - 1), width - 2 * (radius - 1)
    if h <= 0 or w <= 0:
        raise ValueError(f"A {height}x{width} map is too small for pair radius {radius}")
    return h, w


def shifted_stack(x: torch.Tensor, radius: int, offsets: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """x: (N, H, W) -> (N, len(offsets), h, w): for each offset (oy, ox), the map value at the
    source pixel moved by that offset (tensor slicing, no per-pixel loops)."""
    h, w = source_size(x.shape[-2], x.shape[-1], radius)
    c = radius - 1
    return torch.stack([x[:, oy : oy + h, c + ox : c + ox + w] for oy, ox in offsets], dim=1)


def partner_stack(x: torch.Tensor, radius: int) -> torch.Tensor:
    """x: (N, H, W) -> (N, D, h, w): the value at each source pixel's partner, per direction."""
    return shifted_stack(x, radius, search_directions(radius))


def source_crop(x: torch.Tensor, radius: int) -> torch.Tensor:
    """x: (N, ..., H, W) -> (N, ..., h, w): the value at each source pixel."""
    h, w = source_size(x.shape[-2], x.shape[-1], radius)
    return x[..., :h, radius - 1 : radius - 1 + w]


def boundary_to_affinity(boundary: torch.Tensor, radius: int) -> torch.Tensor:
    """Affinity of every pair from the class-boundary map (IRNet eq. 3):
    a_ij = 1 - max_{k in Pi_ij} B_k.

    boundary: (N, H, W) in [0, 1]. Returns (N, D, h, w). The max over each path is taken position by
    position over the padded path table (L steps, each a gather of D shifted maps).
    """
    paths = path_offsets(radius)
    unique = sorted({o for p in paths for o in p})
    where = {o: i for i, o in enumerate(unique)}
    longest = max(len(p) for p in paths)
    # Short paths are padded with their own first pixel, which leaves the max unchanged.
    table = torch.tensor(
        [[where[p[min(i, len(p) - 1)]] for i in range(longest)] for p in paths],
        device=boundary.device,
    )
    shifted = shifted_stack(boundary, radius, unique)  # (N, U, h, w)
    path_max = shifted[:, table[:, 0]]
    for i in range(1, longest):
        path_max = torch.maximum(path_max, shifted[:, table[:, i]])
    return 1.0 - path_max


def pair_labels(label: torch.Tensor, radius: int) -> Tuple[torch.Tensor, ...]:
    """Class-level pair labels from a relation label map.

    label: (N, H, W) int, 0 = confident background, c >= 1 = confident class, 255 = unsure.
    Returns (bg_pos, fg_pos, neg), each (N, D, h, w) bool: both pixels confident and the same label
    (background / a class), or both confident with different labels.
    """
    src = source_crop(label, radius).unsqueeze(1)
    dst = partner_stack(label, radius)
    valid = (src != IGNORE_LABEL) & (dst != IGNORE_LABEL)
    same = valid & (src == dst)
    return same & (src == 0), same & (src > 0), valid & (src != dst)


def direction_tensor(radius: int, device=None) -> torch.Tensor:
    """(D, 2) float tensor of the directions (dy, dx) = x_j - x_i of every pair."""
    return torch.tensor(search_directions(radius), dtype=torch.float32, device=device)


def sparse_affinity(boundary: torch.Tensor, radius: int) -> torch.Tensor:
    """Symmetric affinity matrix of all pixels of one map, with self-loops of value 1, as a sparse
    tensor: each pixel has at most 2 D + 1 entries, so it takes O(H W D) memory where a dense
    matrix takes O((H W)^2) (6.4 GB in float32 for a 200 x 200 grid).

    boundary: (H, W) in [0, 1]. Returns a coalesced sparse COO (H*W, H*W) tensor; pixels farther
    apart than the radius have no entry (0). The map is padded with 1 (a wall) so every pixel of it
    is a source; pairs whose partner falls in the padding are dropped.
    """
    height, width = boundary.shape
    c = radius - 1
    padded = torch.nn.functional.pad(boundary[None], (c, c, 0, c), value=1.0)
    aff = boundary_to_affinity(padded, radius)[0]  # (D, H, W): the source region is the map
    dirs = torch.tensor(search_directions(radius), device=boundary.device)
    ys = torch.arange(height, device=boundary.device).view(1, -1, 1)
    xs = torch.arange(width, device=boundary.device).view(1, 1, -1)
    ty, tx = ys + dirs[:, 0].view(-1, 1, 1), xs + dirs[:, 1].view(-1, 1, 1)
    inside = (ty < height) & (tx >= 0) & (tx < width)
    src = (ys * width + xs).expand_as(inside)[inside]
    dst = (ty * width + tx)[inside]
    n = height * width
    diagonal = torch.arange(n, device=boundary.device)
    indices = torch.stack([torch.cat([src, dst, diagonal]), torch.cat([dst, src, diagonal])])
    values = torch.cat([aff[inside], aff[inside], torch.ones_like(diagonal, dtype=aff.dtype)])
    return torch.sparse_coo_tensor(indices, values, (n, n), check_invariants=False).coalesce()


def strided_size(height: int, width: int, stride: int = 4) -> Tuple[int, int]:
    """Size of the stride-s grid of an (H, W) image: ((H - 1) // s + 1, (W - 1) // s + 1)."""
    return (height - 1) // stride + 1, (width - 1) // stride + 1


__all__: List[str] = [
    "IGNORE_LABEL",
    "boundary_to_affinity",
    "direction_tensor",
    "pair_labels",
    "partner_stack",
    "path_offsets",
    "search_directions",
    "shifted_stack",
    "source_crop",
    "source_size",
    "sparse_affinity",
    "strided_size",
]
