"""Dataset fingerprint: the size statistics the size-aware configuration (``d2_instseg.autoconfig``,
``tools/configure.py``) derives every pixel-valued setting from, measured on a registered dataset's
dicts (the idea of nnU-Net's dataset fingerprint, for Detectron2 datasets).

    fp = fingerprint("shapes_train")          # computed once, then read from the cache
    fp["instance_size"]["p50"]                # median sqrt(mask area), px at the stored resolution

What is measured (sizes in pixels of the images as stored):

- ``image_height`` / ``image_width`` / ``image_short_side`` / ``image_long_side``: percentiles
  (``p5 p25 p50 p75 p95``, plus ``min`` and ``max``);
- ``instance_size``: sqrt of each non-crowd instance's mask area (box area where there is no
  mask), percentiles, overall and per class (``instance_size_per_class``);
- ``instances_per_image``: ``mean``, ``p95``, ``max``; ``class_frequency`` (instances and images
  per class); ``touching_share``: the fraction of instances whose mask touches another instance's
  (8-neighbourhood, overlaps included); ``empty_image_share``; ``mask_format``
  (``polygon`` / ``rle`` / ``bitmask`` / ``none`` or a mix, ``"polygon+rle"``);
  ``foreground_share``: the share of all pixels inside an instance (the union of an image's masks;
  a box where there is no mask), 0 for data without instance annotations;
  ``has_image_labels`` (records carry ``image_labels``, for weak supervision) and
  ``image_labels_per_image`` (``mean``, ``max``: classes present per labelled image, a lower bound
  of the instances per image of data that has image labels only).

The result is cached next to the dataset's JSON (``<json>.fingerprint.json``, keyed by the JSON's
SHA-1) or, for datasets without one (or a read-only folder), in ``$D2_INSTSEG_CACHE``
(default ``~/.cache/d2_instseg``) keyed by a checksum of the dicts' files and annotation counts.
"""

import hashlib
import json
import logging
import os
from typing import Dict, Iterable, List, Optional, Sequence

import cv2
import numpy as np
import pycocotools.mask as mask_util
from detectron2.data import DatasetCatalog, MetadataCatalog
from tqdm import tqdm

from ..utils.cache import cache_dir

VERSION = 3  # bump when what is measured changes: older caches are recomputed
PERCENTILES = (5, 25, 50, 75, 95)
_KERNEL = np.ones((3, 3), np.uint8)
logger = logging.getLogger(__name__)


def percentiles(values: Sequence[float]) -> Dict[str, float]:
    """``{"p5": .., "p25": .., "p50": .., "p75": .., "p95": .., "min": .., "max": ..}`` of a list
    (linear interpolation, NumPy's default); an empty list gives an empty dict."""
    if len(values) == 0:
        return {}
    v = np.asarray(values, dtype=np.float64)
    out = {f"p{p}": round(float(np.percentile(v, p)), 3) for p in PERCENTILES}
    out.update(min=round(float(v.min()), 3), max=round(float(v.max()), 3))
    return out


def _mask_format(segmentation) -> str:
    if segmentation is None:
        return "none"
    if isinstance(segmentation, list):
        return "polygon"
    if isinstance(segmentation, dict):
        return "rle"
    if isinstance(segmentation, np.ndarray):
        return "bitmask"
    raise ValueError(f"unknown segmentation type {type(segmentation).__name__}")


def _decode(segmentation, fmt: str, height: int, width: int) -> np.ndarray:
    """One instance's mask, uint8 (H, W)."""
    if fmt == "bitmask":
        return np.asarray(segmentation, dtype=np.uint8)
    if fmt == "polygon":
        rle = mask_util.merge(mask_util.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], list):  # uncompressed RLE
        rle = mask_util.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_util.decode(rle)


def _touching(masks: List[np.ndarray]) -> List[bool]:
    """For each mask (uint8 (H, W)), whether its 8-neighbourhood meets another mask. Each test runs
    in the mask's box grown by one pixel, so the cost is the instances' area, not N x image."""
    if len(masks) < 2:
        return [False] * len(masks)
    count = np.sum(masks, axis=0, dtype=np.int32)
    out = []
    for m in masks:
        ys, xs = np.nonzero(m)
        if len(ys) == 0:
            out.append(False)
            continue
        y0, y1 = max(ys.min() - 1, 0), ys.max() + 2
        x0, x1 = max(xs.min() - 1, 0), xs.max() + 2
        own = m[y0:y1, x0:x1]
        grown = cv2.dilate(own, _KERNEL)
        others = count[y0:y1, x0:x1] - own
        out.append(bool(((grown > 0) & (others > 0)).any()))
    return out


def compute_fingerprint(
    dicts: Iterable[Dict], thing_classes: Optional[Sequence[str]] = None, desc: str = "dataset"
) -> Dict:
    """The fingerprint (see the module docstring) of Detectron2 dataset dicts.

    ``dicts`` carry ``height``, ``width`` and (optionally) ``annotations`` with ``category_id``
    (contiguous), ``bbox`` (XYWH_ABS; other modes are converted), ``segmentation`` and
    ``iscrowd``; crowd regions are left out of every instance statistic.
    """
    from detectron2.structures import BoxMode

    dicts = list(dicts)
    heights, widths, sizes, per_image = [], [], [], []
    per_class: Dict[int, List[float]] = {}
    images_with: Dict[int, int] = {}
    formats, touching = set(), []
    empty, labelled, label_counts = 0, 0, []
    fg_pixels, all_pixels = 0.0, 0
    for record in tqdm(dicts, desc=f"Fingerprint of {desc}", unit="img"):
        h, w = int(record["height"]), int(record["width"])
        heights.append(h)
        widths.append(w)
        if "image_labels" in record:
            labelled += 1
            label_counts.append(len(set(record["image_labels"])))
        anns = [a for a in record.get("annotations", []) if not a.get("iscrowd", 0)]
        per_image.append(len(anns))
        empty += not anns
        masks = []
        for ann in anns:
            fmt = _mask_format(ann.get("segmentation"))
            formats.add(fmt)
            if fmt == "none":
                x0, y0, x1, y1 = BoxMode.convert(ann["bbox"], ann["bbox_mode"], BoxMode.XYXY_ABS)
                area = max(x1 - x0, 0.0) * max(y1 - y0, 0.0)
                fg_pixels += area
            else:
                masks.append(_decode(ann["segmentation"], fmt, h, w))
                area = float(masks[-1].sum())
            size = float(np.sqrt(area))
            sizes.append(size)
            per_class.setdefault(int(ann["category_id"]), []).append(size)
        for cat in {int(a["category_id"]) for a in anns}:
            images_with[cat] = images_with.get(cat, 0) + 1
        touching += _touching(masks)
        all_pixels += h * w
        if masks:
            fg_pixels += float(np.logical_or.reduce(masks).sum())
    names = list(thing_classes) if thing_classes else [str(c) for c in sorted(per_class)]

    def name(cat: int) -> str:
        return names[cat] if cat < len(names) else str(cat)

    short = [min(h, w) for h, w in zip(heights, widths)]
    long = [max(h, w) for h, w in zip(heights, widths)]
    n = max(len(dicts), 1)
    return {
        "version": VERSION,
        "num_images": len(dicts),
        "num_instances": len(sizes),
        "num_classes": len(names),
        "thing_classes": names,
        "mask_format": "+".join(sorted(formats)) if formats else "none",
        "has_image_labels": labelled == len(dicts) and len(dicts) > 0,
        "image_labels_per_image": {
            "mean": round(float(np.mean(label_counts)) if label_counts else 0.0, 3),
            "max": int(max(label_counts, default=0)),
        },
        "image_height": percentiles(heights),
        "image_width": percentiles(widths),
        "image_short_side": percentiles(short),
        "image_long_side": percentiles(long),
        "instance_size": percentiles(sizes),
        "instance_size_per_class": {name(c): percentiles(v) for c, v in sorted(per_class.items())},
        "instances_per_image": {
            "mean": round(float(np.mean(per_image)) if per_image else 0.0, 3),
            "p95": round(float(np.percentile(per_image, 95)) if per_image else 0.0, 3),
            "max": int(max(per_image, default=0)),
        },
        "class_frequency": {
            name(c): {"instances": len(v), "images": images_with.get(c, 0)}
            for c, v in sorted(per_class.items())
        },
        "touching_share": round(sum(touching) / len(touching), 4) if touching else 0.0,
        "empty_image_share": round(empty / n, 4),
        "foreground_share": round(fg_pixels / max(all_pixels, 1), 4),
    }


def _sha1_of_file(path: str) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha1_of_dicts(dicts: List[Dict]) -> str:
    summary = [(d.get("file_name"), d.get("height"), len(d.get("annotations", []))) for d in dicts]
    return hashlib.sha1(json.dumps(summary).encode()).hexdigest()


def _read_cache(path: str, checksum: str) -> Optional[Dict]:
    try:
        with open(path) as f:
            cached = json.load(f)
    except (OSError, ValueError):
        return None
    fp = cached.get("fingerprint", {})
    if cached.get("checksum") != checksum or fp.get("version") != VERSION:
        return None
    return fp


def _write_cache(paths: Sequence[str], checksum: str, fp: Dict) -> Optional[str]:
    """Write to the first writable path (atomically); returns it, or None."""
    for path in paths:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            tmp = f"{path}.tmp{os.getpid()}"
            with open(tmp, "w") as f:
                json.dump({"checksum": checksum, "fingerprint": fp}, f, indent=1)
            os.replace(tmp, path)
            return path
        except OSError as e:
            logger.info(f"Cannot cache the fingerprint at {path} ({e})")
    return None


def fingerprint(dataset_name: str, cache: bool = True) -> Dict:
    """The fingerprint of a registered dataset (see the module docstring), from the cache when
    the dataset has not changed since it was computed."""
    if dataset_name not in DatasetCatalog.list():
        raise KeyError(
            f"Dataset {dataset_name!r} is not registered; register it first (e.g. "
            f"--dataset {dataset_name}:path/to/instances.json:path/to/images)"
        )
    meta = MetadataCatalog.get(dataset_name)
    json_file = meta.get("json_file")
    dicts, paths = None, []
    if json_file and os.path.isfile(json_file):
        checksum = _sha1_of_file(json_file)
        paths.append(f"{json_file}.fingerprint.json")
    else:
        dicts = DatasetCatalog.get(dataset_name)
        checksum = _sha1_of_dicts(dicts)
    paths.append(os.path.join(cache_dir(), "fingerprints", f"{dataset_name}-{checksum[:12]}.json"))
    if cache:
        for path in paths:
            found = _read_cache(path, checksum)
            if found is not None:
                logger.info(f"Fingerprint of {dataset_name} read from {path}")
                return found
    if dicts is None:
        dicts = DatasetCatalog.get(dataset_name)
    fp = compute_fingerprint(dicts, meta.get("thing_classes"), desc=dataset_name)
    fp["dataset"] = dataset_name
    if cache:
        where = _write_cache(paths, checksum, fp)
        if where:
            logger.info(f"Fingerprint of {dataset_name} cached at {where}")
    return fp
