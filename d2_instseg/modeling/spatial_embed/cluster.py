"""Inference clustering of Spatial Embeddings (the released ``Cluster.cluster``, per class).

Shape shorthand:
    H, W: image size
    M:    number of foreground pixels of one class (seed > fg threshold)
    Q:    number of seed candidates of one class (foreground pixels with seed >= seed threshold)
    P:    number of foreground pixels near one seed's embedding (the pixels one step scores)
    S:    number of sigma channels (1 or 2)
    C:    number of thing classes (seed maps)
    R:    number of instances found

For each class c, on the pixels whose seed exceeds ``fg_threshold``:
  1. take the unclustered pixel with the highest seed; stop if it is below ``seed_threshold``;
  2. mark it clustered; its embedding is the center and its own sigma the bandwidth: phi_i =
     exp(-sum_d (e_i,d - e_seed,d)^2 exp(10 s_seed,d)); the proposal is {phi > 0.5} among the
     foreground;
  3. keep the proposal as an instance (score = the seed value) if it has more than ``min_pixels``
     pixels and more than ``min_unclustered`` of them are still unclustered;
  4. mark the proposal (kept or not) clustered; repeat while more than ``min_pixels`` pixels are
     unclustered.
A kept mask is the whole proposal, so masks of one class may overlap where a proposal covers
pixels claimed earlier (as in the reference).

The steps are sequential (each depends on what the earlier ones clustered), so their cost is what
grows with the number of instances. The reference scores all M pixels at every step (O(M R)); here
a step costs O(P): phi > 0.5 needs every term (e_d - c_d)^2 exp(10 s_d) < ln 2, i.e. the pixel's
embedding inside a box of half-width sqrt(ln 2 / exp(10 s_d)) around the center, so the foreground
is bucketed once on a grid in embedding space (and stored in bucket order), and a step scores only
the buckets its box touches: one contiguous run of pixels per grid row of the box. The seed
candidates are sorted once, so finding the next seed skips clustered ones instead of taking a
maximum over the image. The instances are the reference loop's (up to ties between seed values).
"""

import math
from typing import List, Optional, Tuple

import torch

from .embedding import MAX_LOG_BANDWIDTH, SIGMA_SCALE, gaussian_phi

# The candidate box is widened by this factor so that float rounding at its edge (phi > 0.5 against
# the box test) can never drop a pixel of a proposal: such a pixel is well inside the box.
BOX_SLACK = 1.01
LN2_SQRT = math.sqrt(math.log(2.0))
# Seed candidates examined at once when skipping the clustered ones (doubles while none is found).
SKIP_CHUNK = 64


def seed_box_half_widths(sig: torch.Tensor) -> torch.Tensor:
    """(S, Q) raw sigma of seed candidates -> (Q, 2) half-widths (x, y) of the box holding every
    pixel with phi > 0.5: sqrt(ln 2 / exp(10 s)), widened by ``BOX_SLACK``."""
    log_bandwidth = (SIGMA_SCALE * sig).clamp(max=MAX_LOG_BANDWIDTH)
    half = BOX_SLACK * LN2_SQRT * torch.exp(-0.5 * log_bandwidth)  # (S, Q)
    return half.t().expand(-1, 2)


class EmbeddingGrid:
    """Foreground embeddings bucketed on a square grid, row-major, for "which pixels lie in this
    box" in O(pixels returned + rows of the box).

    Args:
        emb: (2, M) embeddings (x, y).
        cell: bucket side, in embedding units.

    Attributes:
        order: (M,) the pixels sorted by bucket (stable): position k of the grid is pixel order[k].
    """

    def __init__(self, emb: torch.Tensor, cell: float):
        self.origin = emb.amin(dim=1)  # (2,)
        self.cell = cell
        ij = ((emb.t() - self.origin) / cell).floor().long()  # (M, 2) column, row
        self.cols, rows = (int(v) + 1 for v in ij.amax(dim=0).tolist())
        keys = ij[:, 1] * self.cols + ij[:, 0]
        self.order = keys.argsort(stable=True)
        counts = torch.bincount(keys, minlength=rows * self.cols)
        # Bucket b holds grid positions [offsets[b], offsets[b + 1]); a host list: a step reads a
        # few entries, and Python ints cost nothing to read.
        self.offsets = [0] + counts.cumsum(0).tolist()
        self.upper = torch.tensor([self.cols - 1, rows - 1], device=emb.device)

    def boxes(self, centers: torch.Tensor, half_widths: torch.Tensor) -> List[List[int]]:
        """(Q, 2) centers, (Q, 2) half-widths -> Q bucket boxes [col0, row0, col1, row1]
        (inclusive, clipped to the grid)."""

        def bucket(points):
            ij = ((points - self.origin) / self.cell).floor().clamp(min=0)
            return torch.minimum(ij, self.upper).long()

        return torch.cat([bucket(centers - half_widths), bucket(centers + half_widths)], 1).tolist()

    def query(self, box: List[int]) -> torch.Tensor:
        """Grid positions (P,) of every pixel in the buckets of one box: a superset of the pixels
        whose embedding lies in the box, one contiguous run per grid row."""
        col0, row0, col1, row1 = box
        runs = []
        for row in range(row0 * self.cols, (row1 + 1) * self.cols, self.cols):
            start, end = self.offsets[row + col0], self.offsets[row + col1 + 1]
            if end > start:
                runs.append(torch.arange(start, end, device=self.upper.device))
        return torch.cat(runs) if runs else self.upper.new_zeros(0)


def grid_cell(emb: torch.Tensor, half_widths: torch.Tensor) -> float:
    """Bucket side: the median candidate box half-width (a typical step then reads about 3 x 3
    buckets), but no smaller than makes as many buckets as pixels (tiny margins would otherwise
    make a huge, empty grid)."""
    extent = (emb.amax(dim=1) - emb.amin(dim=1)).clamp(min=1e-6)
    smallest = float((extent.prod() / emb.shape[1]).sqrt())
    return max(float(half_widths.median()), smallest)


def next_seed(candidates: torch.Tensor, unclustered: torch.Tensor, start: int) -> int:
    """First position >= start in ``candidates`` (grid positions, best seed first) still
    unclustered; len(candidates) if none."""
    chunk = SKIP_CHUNK
    while start < len(candidates):
        found = unclustered[candidates[start : start + chunk]].nonzero()
        if len(found):
            return start + int(found[0])
        start += chunk
        chunk *= 2
    return len(candidates)


def cluster_class(
    embedding: torch.Tensor,
    sigma: torch.Tensor,
    seed: torch.Tensor,
    *,
    seed_threshold: float,
    fg_threshold: float,
    min_pixels: int,
    min_unclustered: float = 0.5,
) -> Tuple[List[torch.Tensor], torch.Tensor]:
    """Instances of one class.

    Args:
        embedding: (2, H, W) pixel embeddings (x, y).
        sigma: (S, H, W) raw sigma.
        seed: (H, W) seed probabilities of the class.
        seed_threshold: minimum seed value of an instance's seed pixel.
        fg_threshold: pixels with seed > fg_threshold are the class's foreground.
        min_pixels: a proposal must have more than this many pixels.
        min_unclustered: fraction of a proposal that must still be unclustered to keep it.

    Returns:
        pixels: R tensors (P_r,) int64, the flat positions (row * W + col) of each instance's
        pixels (:func:`pixel_masks` and :func:`pixel_boxes` turn them into masks and boxes), and
        scores (R,) (the seed values of the seed pixels).
    """
    fg_index = (seed.flatten() > fg_threshold).nonzero().squeeze(1)  # (M,)
    remaining = len(fg_index)  # unclustered foreground pixels
    if remaining <= min_pixels:
        return [], seed.new_zeros(0)
    emb = embedding.flatten(1)[:, fg_index]  # (2, M)
    sig = sigma.flatten(1)[:, fg_index]  # (S, M)
    seed_fg = seed.flatten()[fg_index]  # (M,)
    is_candidate = seed_fg >= seed_threshold
    if not bool(is_candidate.any()):
        return [], seed.new_zeros(0)
    half_widths = seed_box_half_widths(sig[:, is_candidate])
    grid = EmbeddingGrid(emb, grid_cell(emb, half_widths))
    # Everything from here on is in grid order (a step's pixels are contiguous runs).
    emb, sig, seed_fg = emb[:, grid.order], sig[:, grid.order], seed_fg[grid.order]
    pixels = fg_index[grid.order]
    candidates = (seed_fg >= seed_threshold).nonzero().squeeze(1)  # (Q,) grid positions
    candidates = candidates[seed_fg[candidates].argsort(descending=True, stable=True)]
    boxes = grid.boxes(emb[:, candidates].t(), seed_box_half_widths(sig[:, candidates]))
    unclustered = torch.ones_like(seed_fg, dtype=torch.bool)
    instances, scores = [], []
    position = -1
    while remaining > min_pixels:
        position = next_seed(candidates, unclustered, position + 1)
        if position == len(candidates):
            break
        i = candidates[position : position + 1]  # (1,), a view: no host sync
        unclustered[i] = False
        near = grid.query(boxes[position])  # (P,)
        # index_select: on CPU, emb[:, near] takes ~300x longer for the same gather (torch 2.14).
        phi = gaussian_phi(emb.index_select(1, near), emb[:, i].t(), sig[:, i].t())[0]
        proposal = near[phi > 0.5]
        new = int(unclustered[proposal].sum())
        if len(proposal) > min_pixels and new > min_unclustered * len(proposal):
            instances.append(pixels[proposal])
            scores.append(seed_fg[i])
        unclustered[proposal] = False
        remaining -= new + 1
    return instances, torch.cat(scores) if scores else seed.new_zeros(0)


def pixel_masks(pixels: List[torch.Tensor], height: int, width: int, device) -> torch.Tensor:
    """R tensors (P_r,) of flat pixel positions -> (R, H, W) bool masks, written in one pass."""
    masks = torch.zeros((len(pixels), height * width), dtype=torch.bool, device=device)
    if pixels:
        masks[_owners(pixels), torch.cat(pixels)] = True
    return masks.view(-1, height, width)


def pixel_boxes(pixels: List[torch.Tensor], width: int, device) -> torch.Tensor:
    """R non-empty tensors (P_r,) of flat pixel positions -> (R, 4) boxes (x0, y0, x1, y1) with
    x1 = last column + 1, y1 = last row + 1 (as ``BitMasks.get_bounding_boxes``), in O(sum P_r)
    instead of a pass over R full masks."""
    boxes = torch.zeros((len(pixels), 4), device=device)
    if pixels:
        flat = torch.cat(pixels)
        xy = torch.stack([flat % width, flat // width], dim=1).float()  # (sum P, 2)
        owners = _owners(pixels).unsqueeze(1).expand(-1, 2)
        boxes[:, :2] = boxes[:, :2].fill_(math.inf).scatter_reduce(0, owners, xy, "amin")
        boxes[:, 2:] = boxes[:, 2:].fill_(-math.inf).scatter_reduce(0, owners, xy, "amax") + 1
    return boxes


def _owners(pixels: List[torch.Tensor]) -> torch.Tensor:
    """(sum P_r,) index r of the instance of each pixel of ``torch.cat(pixels)``."""
    device = pixels[0].device
    lengths = torch.tensor([len(p) for p in pixels], device=device)
    return torch.repeat_interleave(torch.arange(len(pixels), device=device), lengths)


def cluster_pixels(
    embedding: torch.Tensor,
    sigma: torch.Tensor,
    seeds: torch.Tensor,
    *,
    seed_threshold: float,
    fg_threshold: float,
    min_pixels: int,
    min_unclustered: float = 0.5,
    max_detections: Optional[int] = None,
) -> Tuple[List[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Instances of every class (:func:`cluster_class` on each seed map), as pixel lists.

    Args:
        embedding: (2, H, W); sigma: (S, H, W); seeds: (C, H, W) seed probabilities.
        seed_threshold, fg_threshold, min_pixels, min_unclustered: see :func:`cluster_class`.
        max_detections: keep at most this many instances (the highest scores; None: all).

    Returns:
        pixels (R tensors (P_r,) of flat positions), classes (R,) int64, scores (R,) float,
        grouped by class.
    """
    # A class whose highest seed is below seed_threshold has no instance: skip its foreground
    # gathering (one host sync for all classes; most classes are absent from most images).
    peaks = seeds.flatten(1).amax(dim=1).tolist() if seeds.numel() else [0.0] * len(seeds)
    pixels, classes, scores = [], [], [seeds.new_zeros(0)]
    for c, peak in enumerate(peaks):
        if peak < seed_threshold:
            continue
        class_pixels, class_scores = cluster_class(
            embedding,
            sigma,
            seeds[c],
            seed_threshold=seed_threshold,
            fg_threshold=fg_threshold,
            min_pixels=min_pixels,
            min_unclustered=min_unclustered,
        )
        pixels += class_pixels
        scores.append(class_scores)
        classes += [c] * len(class_pixels)
    scores = torch.cat(scores)
    classes = torch.tensor(classes, dtype=torch.int64, device=seeds.device)
    if max_detections is not None and len(scores) > max_detections:
        keep = scores.topk(max_detections).indices.sort().values  # still grouped by class
        pixels = [pixels[k] for k in keep.tolist()]
        classes, scores = classes[keep], scores[keep]
    return pixels, classes, scores


def cluster_instances(
    embedding: torch.Tensor, sigma: torch.Tensor, seeds: torch.Tensor, **cluster_args
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`cluster_pixels` with masks: (2, H, W), (S, H, W), (C, H, W) -> masks (R, H, W) bool,
    classes (R,) int64, scores (R,) float, grouped by class."""
    pixels, classes, scores = cluster_pixels(embedding, sigma, seeds, **cluster_args)
    height, width = seeds.shape[-2:]
    return pixel_masks(pixels, height, width, seeds.device), classes, scores
