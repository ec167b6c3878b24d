"""Tiled inference: an image of any size segmented tile by tile, at its own resolution, with
memory bounded by the tile (and by the masks' run-length codes), not by the image.

Tiles of ``tile`` x ``tile`` pixels overlap by at least ``overlap`` pixels. Along each axis the
tiles' *cores* partition the image: a core ends half-way through the overlap with the next tile.
An instance is kept by the tile whose core holds its box centre: when no object is larger than the
overlap, that tile holds the object whole (its centre is at least overlap / 2 from the tile's
inner edges). Two tiles may see a centre on either side of a core boundary (the same object, a
pixel apart): candidates are therefore taken from a core widened by ``overlap / 4`` and the
duplicates removed, the copy whose centre lies deepest inside its own core winning over any other
of the same class that shares more than half of the smaller mask. Semantic scores are copied from
each tile's core.

Shape shorthand: (H, W) the image; (h, w) one tile; N instances of a tile.
"""

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.structures import Boxes, Instances

from ..layers import window_starts

__all__ = ["Tiling", "crop_to_rle", "tile_cores", "tiled_inference"]

# A duplicate shares more than this fraction of the smaller of the two masks.
DUPLICATE_OVERLAP = 0.5


@dataclass(frozen=True)
class Tiling:
    """Tile side and the minimum overlap between neighbouring tiles, in image pixels."""

    tile: int
    overlap: int

    def __post_init__(self):
        if self.tile <= 0 or not 0 <= self.overlap < self.tile:
            raise ValueError(
                f"Tiling needs TILE > 0 and 0 <= OVERLAP < TILE, got TILE {self.tile}, "
                f"OVERLAP {self.overlap}"
            )


def tile_cores(length: int, tile: int, overlap: int) -> List[Tuple[int, int, float, float]]:
    """The tiles along one axis of ``length`` pixels: ``(start, end, core_start, core_end)`` per
    tile, the cores partitioning ``[0, length)`` (each boundary half-way through the overlap of two
    neighbouring tiles)."""
    starts = window_starts(length, tile, tile - overlap)
    ends = [min(s + tile, length) for s in starts]
    bounds = [0.0] + [(e + s) / 2 for e, s in zip(ends[:-1], starts[1:])] + [float(length)]
    return [(s, e, bounds[i], bounds[i + 1]) for i, (s, e) in enumerate(zip(starts, ends))]


def crop_to_rle(crop: np.ndarray, y0: int, x0: int, height: int, width: int) -> Dict:
    """A (h, w) bool mask placed at (y0, x0) in a (height, width) image -> its compressed COCO RLE,
    without ever making the (height, width) mask (only a (height, w) column band)."""
    h, w = crop.shape
    band = np.zeros((height, w), dtype=bool)
    band[y0 : y0 + h] = crop
    flat = band.ravel(order="F")  # COCO RLE runs down the columns
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]]))
    if flat[0]:
        runs = np.concatenate([[0], runs])  # RLE counts start with a run of zeros
    runs[0] += x0 * height
    after = (width - x0 - w) * height
    if after:
        if flat[-1]:
            runs = np.concatenate([runs, [after]])
        else:
            runs[-1] += after
    return mask_util.frPyObjects({"size": [height, width], "counts": runs.tolist()}, height, width)


@dataclass
class _Candidate:
    """One instance of one tile, in image coordinates: its mask cropped to its box."""

    tile: int
    depth: float  # distance of the box centre inside the tile's core (negative: outside)
    box: np.ndarray  # (4,) x0, y0, x1, y1 of the mask, pixels (x1, y1 exclusive)
    crop: np.ndarray  # (y1 - y0, x1 - x0) bool
    score: float
    label: int


def _overlap_fraction(a: _Candidate, b: _Candidate) -> float:
    """Shared pixels of two cropped masks over the smaller mask's area."""
    x0, y0 = np.maximum(a.box[:2], b.box[:2])
    x1, y1 = np.minimum(a.box[2:], b.box[2:])
    if x1 <= x0 or y1 <= y0:
        return 0.0
    pa = a.crop[y0 - a.box[1] : y1 - a.box[1], x0 - a.box[0] : x1 - a.box[0]]
    pb = b.crop[y0 - b.box[1] : y1 - b.box[1], x0 - b.box[0] : x1 - b.box[0]]
    smaller = min(a.crop.sum(), b.crop.sum())
    return float((pa & pb).sum()) / max(float(smaller), 1.0)


def _tile_candidates(
    instances: Instances, tile: int, origin: Tuple[int, int], core: Sequence[float], margin: float
) -> List[_Candidate]:
    """The instances of one tile whose box centre lies in its core widened by ``margin``.

    ``core``: (x0, y0, x1, y1) in image coordinates; ``origin``: the tile's (y, x)."""
    masks = instances.pred_masks.cpu().numpy().astype(bool)  # (N, h, w)
    rows, cols = masks.any(2), masks.any(1)  # (N, h), (N, w)
    present = rows.any(1)
    y0, x0 = rows.argmax(1), cols.argmax(1)
    y1 = rows.shape[1] - rows[:, ::-1].argmax(1)
    x1 = cols.shape[1] - cols[:, ::-1].argmax(1)
    cx, cy = (x0 + x1) / 2 + origin[1], (y0 + y1) / 2 + origin[0]
    depth = np.minimum.reduce([cx - core[0], cy - core[1], core[2] - cx, core[3] - cy])
    scores = instances.scores.cpu().numpy()
    labels = instances.pred_classes.cpu().numpy()
    return [
        _Candidate(
            tile,
            float(depth[i]),
            np.array([x0[i] + origin[1], y0[i] + origin[0], x1[i] + origin[1], y1[i] + origin[0]]),
            # a copy: a view would keep the tile's whole (N, h, w) masks alive until the end
            masks[i, y0[i] : y1[i], x0[i] : x1[i]].copy(),
            float(scores[i]),
            int(labels[i]),
        )
        for i in np.flatnonzero(present & (depth >= -margin))
    ]


def _deduplicate(candidates: List[_Candidate]) -> List[_Candidate]:
    """Greedy, deepest centre first: drop a candidate that shares more than DUPLICATE_OVERLAP of
    the smaller mask with a kept one of the same class from another tile."""
    kept: List[_Candidate] = []
    boxes = np.zeros((0, 4))
    for cand in sorted(candidates, key=lambda c: -c.depth):
        hits = np.flatnonzero(
            (boxes[:, 0] < cand.box[2])
            & (boxes[:, 2] > cand.box[0])
            & (boxes[:, 1] < cand.box[3])
            & (boxes[:, 3] > cand.box[1])
        )
        if any(
            kept[j].tile != cand.tile
            and kept[j].label == cand.label
            and _overlap_fraction(kept[j], cand) > DUPLICATE_OVERLAP
            for j in hits
        ):
            continue
        kept.append(cand)
        boxes = np.vstack([boxes, cand.box[None]])
    return kept


def tiled_inference(
    run: Callable[[np.ndarray], Dict], image: np.ndarray, tiling: Tiling
) -> Dict[str, object]:
    """Segment ``image`` (H, W, C) tile by tile.

    Args:
        run: one (h, w, C) tile -> the model's output dict at the tile's size ("instances" with
            ``pred_masks`` (N, h, w), ``scores``, ``pred_classes``; and / or "sem_seg" (K, h, w)).
        tiling: tile side and minimum overlap (the largest object's extent, in pixels).
    Returns:
        "instances": ``Instances`` of size (H, W) with ``pred_boxes`` (tight boxes of the masks),
        ``scores``, ``pred_classes`` and ``pred_masks_rle`` (a list of compressed COCO RLE dicts:
        (H, W) masks would not be bounded by the tile); "sem_seg": (K, H, W) scores, each pixel
        from the tile whose core holds it.
    """
    height, width = image.shape[:2]
    ys = tile_cores(height, tiling.tile, tiling.overlap)
    xs = tile_cores(width, tiling.tile, tiling.overlap)
    margin = tiling.overlap / 4
    candidates: List[_Candidate] = []
    sem_seg, has_instances = None, False
    for index, ((y0, y1, cy0, cy1), (x0, x1, cx0, cx1)) in enumerate(
        (y, x) for y in ys for x in xs
    ):
        output = run(image[y0:y1, x0:x1])
        if "instances" in output:
            has_instances = True
            core = (cx0, cy0, cx1, cy1)
            candidates += _tile_candidates(output["instances"], index, (y0, x0), core, margin)
        if "sem_seg" in output:
            scores = output["sem_seg"]
            if sem_seg is None:
                sem_seg = scores.new_zeros((scores.shape[0], height, width))
            ry0, ry1, rx0, rx1 = (int(np.ceil(v)) for v in (cy0, cy1, cx0, cx1))
            sem_seg[:, ry0:ry1, rx0:rx1] = scores[:, ry0 - y0 : ry1 - y0, rx0 - x0 : rx1 - x0]
    result: Dict[str, object] = {}
    if sem_seg is not None:
        result["sem_seg"] = sem_seg
    if has_instances:
        kept = sorted(_deduplicate(candidates), key=lambda c: -c.score)
        instances = Instances((height, width))
        instances.pred_boxes = Boxes(torch.tensor(np.array([c.box for c in kept]).reshape(-1, 4)))
        instances.scores = torch.tensor([c.score for c in kept], dtype=torch.float32)
        instances.pred_classes = torch.tensor([c.label for c in kept], dtype=torch.int64)
        instances.pred_masks_rle = [
            crop_to_rle(c.crop, int(c.box[1]), int(c.box[0]), height, width) for c in kept
        ]
        result["instances"] = instances
    return result
