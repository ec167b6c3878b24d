"""Miniature copies of COCO 2017, Cityscapes (fine), ADE20K (SceneParsing) and PASCAL VOC 2012 in
the exact on-disk layouts that Detectron2's builtin registrations (``$DETECTRON2_DATASETS``),
cityscapesscripts and :mod:`d2_instseg.data.voc` read: a handful of small images with instance and
semantic ground truth that agree with each other in every format.

Used by the tests of the paper configs (``tests/configs``) and by ``tools/make_miniature_datasets.py``
(a first run of a paper config on a new machine before the real data is there).

Every image shows non-overlapping star-shaped polygons (the objects) on horizontal bands (the
"stuff"), each class with its own colour plus noise. Polygons are rasterised with PIL's
``ImageDraw.polygon``, the call cityscapesscripts' ``json2labelImg`` uses, so the label images equal
what cityscapesscripts makes from the ``polygons.json`` files.

Layouts written under ``root`` (what Detectron2's datasets/README.md and the datasets' own
documentation describe):

- ``coco/{train2017,val2017}/*.jpg``, ``coco/annotations/instances_{train,val}2017.json``: the 80
  thing categories with their COCO ids, polygon annotations and one crowd region (uncompressed RLE,
  ``iscrowd`` 1) per split;
- ``cityscapes/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` and
  ``cityscapes/gtFine/<split>/<city>/..._gtFine_{polygons.json,labelIds,instanceIds,
  labelTrainIds,color}.png``, 256 x 128 (Cityscapes' 2:1 at 1/8 scale), real label names;
- ``ADEChallengeData2016/images/{training,validation}/ADE_*.jpg`` with ``annotations/`` (0 =
  other, 1..150) and ``annotations_detectron2/`` (what Detectron2's ``prepare_ade20k_sem_seg.py``
  makes: 0..149, 255 = other);
- ``VOC2012/JPEGImages``, ``SegmentationClass`` and ``SegmentationObject`` (palette PNGs, 255 on
  object boundaries), ``SegmentationClassAug`` (grey PNGs, SBD style, no boundary), ``Annotations``
  (XML boxes) and ``ImageSets/{Segmentation,Main}``; ``train_aug`` holds ``train`` plus images that
  have only ``SegmentationClassAug``.
"""
import json
import os
import xml.etree.ElementTree as ET
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from .voc import VOC_CLASSES

FAMILIES = ("coco", "cityscapes", "ade20k", "voc2012")

Polygon = List[Tuple[float, float]]


# ---------------------------------------------------------------------------- shared drawing


def _star_polygon(rng: np.random.Generator, cx: float, cy: float, radius: float) -> Polygon:
    """A star-shaped polygon of 5-9 vertices around (cx, cy) with radii in [0.6, 1] x radius."""
    n = int(rng.integers(5, 10))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(0.6, 1.0, n)
    return [
        (round(float(cx + r * np.cos(a)), 1), round(float(cy + r * np.sin(a)), 1))
        for a, r in zip(angles, radii)
    ]


def _object_polygons(rng: np.random.Generator, height: int, width: int, count: int, top: float):
    """``count`` polygons in distinct cells of a grid over rows [top * height, height): they never
    overlap, so each polygon is exactly its object's visible mask."""
    rows, cols = 2, max(2, (count + 1) // 2 + 1)
    y0 = top * height
    cell_h, cell_w = (height - y0) / rows, width / cols
    cells = rng.permutation(rows * cols)[:count]
    polygons = []
    for cell in cells:
        r, c = divmod(int(cell), cols)
        radius = 0.45 * min(cell_h, cell_w) * rng.uniform(0.7, 1.0)
        cx = (c + 0.5) * cell_w + rng.uniform(-0.05, 0.05) * cell_w
        cy = y0 + (r + 0.5) * cell_h + rng.uniform(-0.05, 0.05) * cell_h
        polygons.append(_star_polygon(rng, cx, cy, radius))
    return polygons


def _band(width: int, y0: float, y1: float) -> Polygon:
    return [(0.0, y0), (width - 1.0, y0), (width - 1.0, y1), (0.0, y1)]


def _raster(polygon: Polygon, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of ``polygon`` as PIL (and cityscapesscripts) draw it."""
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon(polygon, fill=1)
    return np.asarray(canvas, dtype=bool)


def _colour(index: int) -> np.ndarray:
    """A fixed, distinct RGB colour per class index."""
    rng = np.random.default_rng(1000 + index)
    return rng.integers(30, 226, 3)


def _paint(image: np.ndarray, mask: np.ndarray, index: int, rng: np.random.Generator) -> None:
    noise = rng.normal(0, 12, (int(mask.sum()), 3))
    image[mask] = np.clip(_colour(index) + noise, 0, 255).astype(np.uint8)


def _size(rng: np.random.Generator) -> Tuple[int, int]:
    """(height, width) of a non-square image with sides in [96, 160]."""
    return int(rng.integers(96, 161)), int(rng.integers(96, 161))


def _save_jpeg(image: np.ndarray, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(image).save(path, quality=95)


def _save_png(array: np.ndarray, path: str, mode: str = None, palette: Sequence[int] = None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    if palette is not None:
        img.putpalette(list(palette))
    img.save(path)


def _flat(polygon: Polygon) -> List[float]:
    return [v for point in polygon for v in point]


# ---------------------------------------------------------------------------- COCO


def write_coco(root: str, num_train: int, num_val: int, seed: int) -> str:
    """``root/coco`` as Detectron2's ``coco_2017_{train,val}`` read it."""
    import pycocotools.mask as mask_util
    from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

    things = [c for c in COCO_CATEGORIES if c["isthing"]]
    folder = os.path.join(root, "coco")
    rng = np.random.default_rng(seed)
    for split, count in (("train2017", num_train), ("val2017", num_val)):
        images, annotations = [], []
        for i in range(count):
            image_id = (0 if split == "train2017" else 100000) + i + 1
            height, width = _size(rng)
            image = np.full((height, width, 3), 128, np.uint8)
            _paint(image, np.ones((height, width), bool), 200, rng)
            file_name = f"{image_id:012d}.jpg"
            images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
            for polygon in _object_polygons(rng, height, width, int(rng.integers(2, 5)), 0.0):
                category = things[int(rng.integers(len(things)))]
                _paint(image, _raster(polygon, height, width), category["id"], rng)
                rle = mask_util.frPyObjects([_flat(polygon)], height, width)[0]
                xs, ys = zip(*polygon)
                annotations.append(
                    {
                        "id": len(annotations) + 1 + 10 * image_id,
                        "image_id": image_id,
                        "category_id": category["id"],
                        "segmentation": [_flat(polygon)],
                        "area": float(mask_util.area(rle)),
                        "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
                        "iscrowd": 0,
                    }
                )
            if i == 0:  # a crowd region in the image's top-left corner: uncompressed RLE
                crowd = np.zeros((height, width), np.uint8)
                crowd[: height // 6, : width // 6] = 1
                ann_id = len(annotations) + 1 + 10 * image_id
                annotations.append(_coco_crowd(crowd, image_id, ann_id))
            _save_jpeg(image, os.path.join(folder, split, file_name))
        coco = {
            "info": {"description": "d2_instseg miniature COCO", "version": "1.0"},
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": [
                {"id": c["id"], "name": c["name"], "supercategory": "thing"} for c in things
            ],
        }
        os.makedirs(os.path.join(folder, "annotations"), exist_ok=True)
        with open(os.path.join(folder, "annotations", f"instances_{split}.json"), "w") as f:
            json.dump(coco, f)
    return folder


def _coco_crowd(mask: np.ndarray, image_id: int, ann_id: int) -> Dict:
    """A crowd annotation with COCO's uncompressed RLE: run lengths of the column-major mask,
    starting with a run of 0s."""
    flat = mask.flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    ys, xs = np.nonzero(mask)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,  # person: COCO's crowds are mostly people
        "segmentation": {"counts": counts, "size": list(mask.shape)},
        "area": float(mask.sum()),
        "bbox": [float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1), float(np.ptp(ys) + 1)],
        "iscrowd": 1,
    }


# ---------------------------------------------------------------------------- Cityscapes

_CITYSCAPES_THINGS = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
# stuff bands from the top: (label, fraction of the height where the band ends)
_CITYSCAPES_BANDS = (
    ("sky", 0.2), ("building", 0.45), ("vegetation", 0.55), ("sidewalk", 0.65), ("road", 0.95),
    ("ego vehicle", 1.0),
)  # fmt: skip


def write_cityscapes(root: str, num_train: int, num_val: int, seed: int) -> str:
    """``root/cityscapes`` as Detectron2's ``cityscapes_fine_{instance_seg,sem_seg}_{train,val}``
    and cityscapesscripts' evaluation read it (256 x 128 images)."""
    from cityscapesscripts.helpers.labels import name2label

    folder = os.path.join(root, "cityscapes")
    rng = np.random.default_rng(seed + 1)
    height, width = 128, 256
    for split, city, count in (("train", "aachen", num_train), ("val", "frankfurt", num_val)):
        for frame in range(count):
            stem = f"{city}_{frame:06d}_{19 + frame:06d}"
            tops = [0.0] + [end for _, end in _CITYSCAPES_BANDS[:-1]]
            objects = [
                (label, _band(width, top * height, end * height - 1))
                for (label, end), top in zip(_CITYSCAPES_BANDS, tops)
            ]
            labels = [str(rng.choice(_CITYSCAPES_THINGS)) for _ in range(4)]
            if frame == 1:
                labels[-1] = "cargroup"  # a group: class pixels, no instance id
            polygons = _object_polygons(rng, height, width, len(labels), 0.35)
            objects += list(zip(labels, polygons))
            image = np.zeros((height, width, 3), np.uint8)
            label_ids = np.zeros((height, width), np.uint8)  # 0 = unlabeled
            instance_ids = np.zeros((height, width), np.int32)
            instances_per_label: Dict[str, int] = {}
            for label, polygon in objects:
                mask = _raster(polygon, height, width)
                entry = name2label[label[: -len("group")] if label.endswith("group") else label]
                _paint(image, mask, entry.id, rng)
                label_ids[mask] = entry.id
                if entry.hasInstances and not label.endswith("group"):
                    k = instances_per_label.get(label, 0)
                    instances_per_label[label] = k + 1
                    instance_ids[mask] = entry.id * 1000 + k
                else:
                    instance_ids[mask] = entry.id
            train_ids = np.full((height, width), 255, np.uint8)
            colours = np.zeros((height, width, 4), np.uint8)
            for lid in np.unique(label_ids):
                entry = next(e for e in name2label.values() if e.id == lid)
                train_ids[label_ids == lid] = entry.trainId if entry.trainId >= 0 else 255
                colours[label_ids == lid] = (*entry.color, 255)
            gt = os.path.join(folder, "gtFine", split, city, stem + "_gtFine_")
            left = os.path.join(folder, "leftImg8bit", split, city, stem + "_leftImg8bit.png")
            _save_png(image, left)
            _save_png(label_ids, gt + "labelIds.png")
            # Cityscapes' instance PNGs are 32-bit; Pillow cannot write those, and every id here
            # (label id * 1000 + k <= 33999) fits 16 bits, which every reader accepts.
            _save_png(instance_ids.astype(np.uint16), gt + "instanceIds.png")
            _save_png(train_ids, gt + "labelTrainIds.png")
            _save_png(colours, gt + "color.png", mode="RGBA")
            with open(gt + "polygons.json", "w") as f:
                json.dump(
                    {
                        "imgHeight": height,
                        "imgWidth": width,
                        "objects": [
                            {"label": label, "polygon": [list(p) for p in polygon]}
                            for label, polygon in objects
                        ],
                    },
                    f,
                )
    return folder


# ---------------------------------------------------------------------------- ADE20K


def write_ade20k(root: str, num_train: int, num_val: int, seed: int) -> str:
    """``root/ADEChallengeData2016`` as Detectron2's ``ade20k_sem_seg_{train,val}`` read it."""
    folder = os.path.join(root, "ADEChallengeData2016")
    rng = np.random.default_rng(seed + 2)
    for split, prefix, count in (("training", "train", num_train), ("validation", "val", num_val)):
        for i in range(count):
            stem = f"ADE_{prefix}_{i + 1:08d}"
            height, width = _size(rng)
            image = np.zeros((height, width, 3), np.uint8)
            label = np.zeros((height, width), np.uint8)  # 0 = "other" (not one of the 150)
            # wall (1), floor (4), sky (3) bands; the last rows stay "other"
            for cls, (y0, y1) in zip((3, 1, 4), ((0, 0.3), (0.3, 0.6), (0.6, 0.9))):
                label[int(y0 * height) : int(y1 * height)] = cls
            for polygon in _object_polygons(rng, height, width, int(rng.integers(2, 5)), 0.3):
                label[_raster(polygon, height, width)] = int(rng.integers(5, 151))
            for cls in np.unique(label):
                _paint(image, label == cls, int(cls), rng)
            _save_jpeg(image, os.path.join(folder, "images", split, stem + ".jpg"))
            _save_png(label, os.path.join(folder, "annotations", split, stem + ".png"))
            # prepare_ade20k_sem_seg.py: label - 1 in uint8, so "other" (0) becomes 255 = ignore
            detectron2_png = os.path.join(folder, "annotations_detectron2", split, stem + ".png")
            _save_png(label - np.uint8(1), detectron2_png)
    return folder


# ---------------------------------------------------------------------------- PASCAL VOC 2012

def voc_palette() -> List[int]:
    """The 256-colour palette of VOC's PNGs (label bits spread over R, G, B from the high bit)."""
    palette = []
    for label in range(256):
        r = g = b = 0
        c = label
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


def _boundary(instances: np.ndarray) -> np.ndarray:
    """Pixels whose 3 x 3 neighbourhood holds another instance (or background) value: VOC's
    "void" band around each object, 2 px wide here."""
    padded = np.pad(instances, 1, mode="edge")
    h, w = instances.shape
    edge = np.zeros_like(instances, dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            edge |= padded[dy : dy + h, dx : dx + w] != instances
    return edge


def write_voc2012(root: str, num_train: int, num_val: int, seed: int) -> str:
    """``root/VOC2012`` as :mod:`d2_instseg.data.voc` (segmentation) and Detectron2's
    ``voc_2012_{train,val}`` (detection) read it. ``train_aug`` = ``train`` + ``num_train`` images
    with SBD-style labels only."""
    folder = os.path.join(root, "VOC2012")
    rng = np.random.default_rng(seed + 3)
    splits: Dict[str, List[str]] = {"train": [], "val": [], "aug_only": []}
    palette = voc_palette()
    for split, count in (("train", num_train), ("val", num_val), ("aug_only", num_train)):
        for i in range(count):
            year = {"train": 2007, "val": 2008, "aug_only": 2009}[split]
            name = f"{year}_{i + 1:06d}"
            splits[split].append(name)
            height, width = _size(rng)
            image = np.zeros((height, width, 3), np.uint8)
            _paint(image, np.ones((height, width), bool), 0, rng)
            classes = np.zeros((height, width), np.uint8)
            instances = np.zeros((height, width), np.uint8)
            boxes = []
            polygons = _object_polygons(rng, height, width, int(rng.integers(1, 4)), 0.0)
            for k, polygon in enumerate(polygons):
                cls = int(rng.integers(1, 21))
                mask = _raster(polygon, height, width)
                _paint(image, mask, cls, rng)
                classes[mask], instances[mask] = cls, k + 1
                ys, xs = np.nonzero(mask)
                boxes.append((cls, xs.min() + 1, ys.min() + 1, xs.max() + 1, ys.max() + 1))
            _save_jpeg(image, os.path.join(folder, "JPEGImages", name + ".jpg"))
            _save_png(classes, os.path.join(folder, "SegmentationClassAug", name + ".png"))
            xml = os.path.join(folder, "Annotations", name + ".xml")
            _write_voc_xml(xml, name, image.shape, boxes)
            if split == "aug_only":
                continue
            void = _boundary(instances)
            for sub, values in (("SegmentationClass", classes), ("SegmentationObject", instances)):
                path = os.path.join(folder, sub, name + ".png")
                _save_png(np.where(void, 255, values).astype(np.uint8), path, "P", palette)
    lists = {
        "Segmentation/train": splits["train"],
        "Segmentation/val": splits["val"],
        "Segmentation/trainval": splits["train"] + splits["val"],
        "Segmentation/train_aug": splits["train"] + splits["aug_only"],
        "Main/train": splits["train"] + splits["aug_only"],
        "Main/val": splits["val"],
        "Main/trainval": splits["train"] + splits["aug_only"] + splits["val"],
    }
    for key, names in lists.items():
        path = os.path.join(folder, "ImageSets", key + ".txt")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("".join(n + "\n" for n in names))
    return folder


def _write_voc_xml(path: str, name: str, shape, boxes) -> None:
    """A VOC detection annotation: size and one ``object`` (1-based pixel box) per instance."""
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = "VOC2012"
    ET.SubElement(ann, "filename").text = name + ".jpg"
    size = ET.SubElement(ann, "size")
    for tag, value in zip(("height", "width", "depth"), shape):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(ann, "segmented").text = "1"
    for cls, x0, y0, x1, y1 in boxes:
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = VOC_CLASSES[cls - 1]
        ET.SubElement(obj, "difficult").text = "0"
        box = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), (x0, y0, x1, y1)):
            ET.SubElement(box, tag).text = str(int(value))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ET.ElementTree(ann).write(path)


# ---------------------------------------------------------------------------- all of them

_WRITERS = {
    "coco": write_coco,
    "cityscapes": write_cityscapes,
    "ade20k": write_ade20k,
    "voc2012": write_voc2012,
}


def write_miniature_datasets(
    root: str,
    families: Sequence[str] = FAMILIES,
    *,
    num_train: int = 4,
    num_val: int = 2,
    seed: int = 0,
) -> Dict[str, str]:
    """Write the miniature datasets of ``families`` under ``root`` (use it as
    ``$DETECTRON2_DATASETS``); returns family -> folder written."""
    unknown = [f for f in families if f not in _WRITERS]
    if unknown:
        raise ValueError(f"Unknown dataset families {unknown}; choose from {FAMILIES}")
    if num_train < 2 or num_val < 2:
        raise ValueError(f"num_train and num_val must be >= 2, got {num_train} and {num_val}")
    return {f: _WRITERS[f](root, num_train, num_val, seed) for f in families}
