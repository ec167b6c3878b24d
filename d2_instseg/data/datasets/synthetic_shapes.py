"""A deterministic synthetic "shapes" dataset: circles, squares and triangles on cluttered backgrounds.

Each split is written once under ``<root>/shapes/<split folder>/``:

- ``images/NNNNN.png``: RGB image (H, W, 3) uint8; sizes vary and are not square in general.
- ``sem_seg/NNNNN.png``: uint8 label map (H, W); 0 = background, 1..3 = circle, square, triangle.
- ``instances.json``: COCO instances; masks are the *visible* part of each shape (later shapes occlude
  earlier ones), stored as compressed RLE; ``bbox`` is XYWH of the visible part.
- ``image_labels.json``: ``{file_name: [category ids present]}``, for weak supervision.
- ``.complete``: written last; a split folder without it is regenerated from scratch.

Everything is a pure function of :class:`ShapesSpec`: image ``i`` draws from ``numpy`` generator
``default_rng([seed, i])``, so a split is byte-identical wherever and in whatever order it is made.
"""
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from typing import Dict, List, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_util
from tqdm import tqdm

CATEGORIES = [
    {"id": 1, "name": "circle", "supercategory": "shape"},
    {"id": 2, "name": "square", "supercategory": "shape"},
    {"id": 3, "name": "triangle", "supercategory": "shape"},
]
# Below this fraction of its own full area, a covered shape is rejected when the occluder is placed,
# so that every drawn shape has a usable visible part and an annotation.
_MIN_VISIBLE_FRACTION = 0.4


@dataclasses.dataclass(frozen=True)
class ShapesSpec:
    """Parameters of one split. Sizes are in pixels."""

    num_images: int = 400
    seed: int = 0
    min_side: int = 96  # each of H and W is drawn independently in [min_side, max_side]
    max_side: int = 160
    min_shapes: int = 1
    max_shapes: int = 4
    min_shape_frac: float = 0.15  # shape "radius" as a fraction of min(H, W)
    max_shape_frac: float = 0.32
    # Classes an image draws its shapes from: a random subset of 1..max_classes of the 3 (3: any
    # shape anywhere), so that image-level labels stay informative when images hold many shapes.
    max_classes: int = 3
    # Probability that a shape is placed against an earlier one (centre one summed radius away,
    # in a random direction) instead of uniformly: touching instances, as in crowded scenes.
    cluster_prob: float = 0.0

    def __post_init__(self):
        if self.num_images <= 0:
            raise ValueError(f"ShapesSpec.num_images must be > 0, got {self.num_images}")
        if not 16 <= self.min_side <= self.max_side:
            raise ValueError(f"ShapesSpec needs 16 <= min_side <= max_side, got {self}")
        if not 1 <= self.min_shapes <= self.max_shapes:
            raise ValueError(f"ShapesSpec needs 1 <= min_shapes <= max_shapes, got {self}")
        if not 0 < self.min_shape_frac <= self.max_shape_frac < 0.5:
            raise ValueError(f"ShapesSpec needs 0 < min_shape_frac <= max_shape_frac < 0.5: {self}")
        if not 1 <= self.max_classes <= len(CATEGORIES):
            raise ValueError(f"ShapesSpec needs 1 <= max_classes <= {len(CATEGORIES)}: {self}")
        if not 0 <= self.cluster_prob <= 1:
            raise ValueError(f"ShapesSpec needs 0 <= cluster_prob <= 1: {self}")

    def folder_name(self, split: str) -> str:
        digest = hashlib.sha1(repr(dataclasses.astuple(self)).encode()).hexdigest()[:8]
        return f"{split}_n{self.num_images}_{digest}"


# --------------------------------------------------------------------------------------------------
# Drawing


def draw_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """One of three background kinds, float32 (H, W, 3) in [0, 255]."""
    kind = rng.integers(3)
    base = rng.uniform(20, 235, size=3)
    if kind == 0:  # flat colour + strong pixel noise
        img = np.broadcast_to(base, (h, w, 3)) + rng.normal(0, 18, size=(h, w, 3))
    elif kind == 1:  # linear gradient between two colours at a random angle
        other = rng.uniform(20, 235, size=3)
        angle = rng.uniform(0, 2 * np.pi)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        t = xs * np.cos(angle) + ys * np.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
        img = base * (1 - t[..., None]) + other * t[..., None]
    else:  # texture: smoothed noise blobs plus stripes
        coarse = rng.normal(0, 1, size=(max(h // 8, 2), max(w // 8, 2), 3)).astype(np.float32)
        blobs = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        period = rng.uniform(6, 20)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        stripes = np.sin((xs + ys * rng.uniform(-1, 1)) * 2 * np.pi / period)
        img = base + 25 * blobs + 15 * stripes[..., None]
    return np.asarray(img, dtype=np.float32)


def _shape_mask(rng, cat_id: int, h: int, w: int, spec: ShapesSpec, near=None) -> np.ndarray:
    """Full (unoccluded) bool mask (H, W) of one randomly placed, sized and rotated shape; with
    ``near`` = (cy, cx, r) of an earlier shape, its centre is r + its own radius from that one."""
    r = rng.uniform(spec.min_shape_frac, spec.max_shape_frac) * min(h, w)
    if near is None:
        cx, cy = rng.uniform(r * 0.5, w - r * 0.5), rng.uniform(r * 0.5, h - r * 0.5)
    else:
        angle = rng.uniform(0, 2 * np.pi)
        cy = float(np.clip(near[0] + (near[2] + r) * np.sin(angle), r * 0.5, h - r * 0.5))
        cx = float(np.clip(near[1] + (near[2] + r) * np.cos(angle), r * 0.5, w - r * 0.5))
    theta = rng.uniform(0, 2 * np.pi)
    canvas = np.zeros((h, w), np.uint8)
    if cat_id == 1:
        cv2.circle(canvas, (int(round(cx)), int(round(cy))), int(round(r)), 1, thickness=-1)
    else:
        n = 4 if cat_id == 2 else 3
        angles = theta + 2 * np.pi * np.arange(n) / n
        pts = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1)
        cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], 1)
    return canvas.astype(bool), (cy, cx, r)


def distinct_colour(rng, background: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A colour at least 90 (RGB L2) away from the mean background under ``mask``."""
    under = background[mask].mean(axis=0)
    colour = rng.uniform(0, 255, size=3)
    for _ in range(20):
        if np.linalg.norm(colour - under) >= 90:
            break
        colour = rng.uniform(0, 255, size=3)
    else:
        colour = np.where(under > 127, 0.0, 255.0)
    return colour


def draw_image(spec: ShapesSpec, index: int) -> Tuple[np.ndarray, List[Tuple[int, np.ndarray]]]:
    """Draw image ``index`` of a split.

    Returns:
        image: uint8 (H, W, 3) RGB.
        instances: list of (category_id, visible bool mask (H, W)) in drawing order; every visible
            mask is non-empty and masks are pairwise disjoint.
    """
    rng = np.random.default_rng([spec.seed, index])
    h = int(rng.integers(spec.min_side, spec.max_side + 1))
    w = int(rng.integers(spec.min_side, spec.max_side + 1))
    background = draw_background(rng, h, w)
    image = background.copy()
    classes = np.arange(1, len(CATEGORIES) + 1)
    if spec.max_classes < len(CATEGORIES):
        classes = rng.choice(classes, int(rng.integers(1, spec.max_classes + 1)), replace=False)
    cats: List[int] = []
    full_area: List[int] = []
    placed: List[Tuple[float, float, float]] = []
    owner = np.zeros((h, w), np.int32)  # 1 + index of the shape that shows at each pixel, 0: none
    for _ in range(int(rng.integers(spec.min_shapes, spec.max_shapes + 1))):
        for _attempt in range(10):
            subset = spec.max_classes < len(CATEGORIES)
            cat = int(rng.choice(classes)) if subset else int(rng.integers(1, 4))
            near = None
            if spec.cluster_prob > 0 and placed and rng.uniform() < spec.cluster_prob:
                near = placed[int(rng.integers(len(placed)))]
            mask, where = _shape_mask(rng, cat, h, w, spec, near)
            # pixels each earlier shape would keep: its visible area minus what the new one covers
            covered = np.bincount(owner[mask], minlength=len(cats) + 1)[1:]
            visible_now = np.bincount(owner.ravel(), minlength=len(cats) + 1)[1:]
            remaining = visible_now - covered
            if mask.sum() >= 16 and all(
                r >= _MIN_VISIBLE_FRACTION * f for r, f in zip(remaining, full_area)
            ):
                break
        else:
            continue  # no placement keeps the earlier shapes visible enough: draw fewer shapes
        image[mask] = distinct_colour(rng, background, mask)
        cats.append(cat)
        full_area.append(int(mask.sum()))
        placed.append(where)
        owner[mask] = len(cats)
    visible = [owner == k + 1 for k in range(len(cats))]
    image += rng.normal(0, 4, size=image.shape)  # sensor noise over shapes too
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return image, list(zip(cats, visible))


# --------------------------------------------------------------------------------------------------
# Writing


def _annotation(ann_id: int, image_id: int, cat: int, mask: np.ndarray) -> Dict:
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    x, y, bw, bh = (float(v) for v in mask_util.toBbox(rle))
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": cat,
        "segmentation": rle,
        "area": float(mask.sum()),
        "bbox": [x, y, bw, bh],
        "iscrowd": 0,
    }


def write_split(out_dir: str, spec: ShapesSpec, desc: str = "shapes") -> None:
    """Generate a split into ``out_dir`` (atomically: a temporary folder renamed at the end)."""
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp_" + os.path.basename(out_dir), dir=parent)
    try:
        os.makedirs(os.path.join(tmp, "images"))
        os.makedirs(os.path.join(tmp, "sem_seg"))
        images, annotations, image_labels = [], [], {}
        for i in tqdm(range(spec.num_images), desc=f"Generating {desc}", unit="img"):
            image, instances = draw_image(spec, i)
            name = f"{i:05d}.png"
            h, w = image.shape[:2]
            cv2.imwrite(os.path.join(tmp, "images", name), image[:, :, ::-1])
            sem = np.zeros((h, w), np.uint8)
            for cat, mask in instances:
                sem[mask] = cat
                annotations.append(_annotation(len(annotations) + 1, i + 1, cat, mask))
            cv2.imwrite(os.path.join(tmp, "sem_seg", name), sem)
            images.append({"id": i + 1, "file_name": name, "height": h, "width": w})
            image_labels[name] = sorted({cat for cat, _ in instances})
        coco = {
            "info": {"description": "d2_instseg synthetic shapes", "spec": dataclasses.asdict(spec)},
            "images": images,
            "annotations": annotations,
            "categories": CATEGORIES,
        }
        with open(os.path.join(tmp, "instances.json"), "w") as f:
            json.dump(coco, f)
        with open(os.path.join(tmp, "image_labels.json"), "w") as f:
            json.dump(image_labels, f)
        open(os.path.join(tmp, ".complete"), "w").close()
        if os.path.exists(os.path.join(out_dir, ".complete")):
            return  # another process finished the same split first
        if os.path.exists(out_dir):  # an incomplete earlier attempt
            shutil.rmtree(out_dir, ignore_errors=True)
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if not os.path.exists(os.path.join(out_dir, ".complete")):
                raise
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def ensure_split(out_dir: str, spec: ShapesSpec, desc: str = "shapes") -> str:
    """Generate the split unless a complete copy is already in ``out_dir``; returns ``out_dir``."""
    if not os.path.exists(os.path.join(out_dir, ".complete")):
        write_split(out_dir, spec, desc)
    return out_dir
