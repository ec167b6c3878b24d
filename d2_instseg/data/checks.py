"""Dataset checks: problems in a COCO file or an image are reported by file and annotation id, and
either stop the run (policy ``"error"``) or are skipped with a log line (policy ``"skip"``).

The policy is ``cfg.DATASETS.INVALID_ANNOTATIONS``.
"""

import json
import logging
import os
import tempfile
from typing import Dict, List, Tuple

logger = logging.getLogger(__name__)
POLICIES = ("error", "skip")


def _check_policy(policy: str) -> None:
    if policy not in POLICIES:
        raise ValueError(f"DATASETS.INVALID_ANNOTATIONS must be one of {POLICIES}, got {policy!r}")


def _annotation_problem(ann: Dict, image: Dict, category_ids) -> str:
    """A description of what is wrong with one COCO annotation, or "" if nothing is."""
    if ann.get("category_id") not in category_ids:
        return f"category_id {ann.get('category_id')!r} is not in the file's categories"
    segm = ann.get("segmentation", None)
    if segm is not None:
        if isinstance(segm, list):
            if not segm:
                return "empty segmentation"
            short = [p for p in segm if not isinstance(p, list) or len(p) < 6 or len(p) % 2]
            if short:
                return f"polygon with fewer than 3 points: {short[0]!r}"
        elif not (isinstance(segm, dict) and "counts" in segm and "size" in segm):
            return f"segmentation is neither polygons nor RLE: {type(segm).__name__}"
    bbox = ann.get("bbox", None)
    if bbox is not None:
        if len(bbox) != 4:
            return f"bbox {bbox!r} does not have 4 numbers"
        x, y, w, h = bbox
        if (
            w < 0
            or h < 0
            or x >= image["width"]
            or y >= image["height"]
            or x + w <= 0
            or y + h <= 0
        ):
            return (
                f"bbox {bbox!r} lies outside the {image['width']}x{image['height']} image or "
                "has a negative size"
            )
    return ""


def find_coco_problems(coco: Dict, json_file: str, image_root: str) -> Tuple[List[str], set, set]:
    """Returns (messages, ids of bad images, ids of bad annotations)."""
    category_ids = {c["id"] for c in coco.get("categories", [])}
    images = {im["id"]: im for im in coco.get("images", [])}
    messages, bad_images, bad_anns = [], set(), set()
    for im in images.values():
        path = os.path.join(image_root, im["file_name"])
        if not os.path.isfile(path):
            messages.append(f"{json_file}: image id {im['id']}: file {path} does not exist")
            bad_images.add(im["id"])
    for ann in coco.get("annotations", []):
        image = images.get(ann.get("image_id"))
        if image is None:
            problem = f"image_id {ann.get('image_id')!r} is not in the file's images"
        else:
            problem = _annotation_problem(ann, image, category_ids)
        if problem:
            name = image["file_name"] if image else "?"
            messages.append(f"{json_file}: annotation id {ann.get('id')} (image {name}): {problem}")
            bad_anns.add(ann.get("id"))
    return messages, bad_images, bad_anns


def checked_coco_json(json_file: str, image_root: str, policy: str) -> str:
    """Check a COCO instances file; return the path of a file safe to load.

    With ``policy="error"`` the first problems are raised as one ValueError; with ``"skip"`` they
    are logged and a filtered copy (bad images and annotations removed) is written to the temp
    folder.
    """
    _check_policy(policy)
    with open(json_file) as f:
        coco = json.load(f)
    messages, bad_images, bad_anns = find_coco_problems(coco, json_file, image_root)
    if not messages:
        return json_file
    if policy == "error":
        shown = "\n  ".join(messages[:10])
        more = f"\n  ... and {len(messages) - 10} more" if len(messages) > 10 else ""
        raise ValueError(
            f"{len(messages)} problem(s) in {json_file}:\n  {shown}{more}\n"
            "Fix the file, or set DATASETS.INVALID_ANNOTATIONS skip to train without them."
        )
    for m in messages:
        logger.warning("Skipping: " + m)
    coco["images"] = [im for im in coco["images"] if im["id"] not in bad_images]
    coco["annotations"] = [
        a
        for a in coco["annotations"]
        if a.get("id") not in bad_anns and a["image_id"] not in bad_images
    ]
    folder = os.path.join(tempfile.gettempdir(), "d2_instseg_checked")
    os.makedirs(folder, exist_ok=True)
    out = os.path.join(folder, f"{abs(hash(os.path.abspath(json_file)))}.json")
    with open(out, "w") as f:
        json.dump(coco, f)
    return out


class CheckedMapper:
    """Wraps a dataset mapper: an image that cannot be read (missing, truncated, not an image) is
    reported with its file name and image id, then raised (``"error"``) or skipped (``"skip"``:
    the mapper returns None and Detectron2's loader takes another sample)."""

    def __init__(self, mapper, policy: str):
        _check_policy(policy)
        self.mapper, self.policy = mapper, policy

    def __call__(self, dataset_dict):
        try:
            return self.mapper(dataset_dict)
        except OSError as e:
            message = (
                f"Cannot read image {dataset_dict.get('file_name')!r} "
                f"(image_id {dataset_dict.get('image_id')}): {e}"
            )
            if self.policy == "skip":
                logger.warning("Skipping: " + message)
                return None
            raise ValueError(message) from e
