"""Pseudo instance labels as a COCO instances file (what Detectron2's ``load_coco_json`` reads) and
as COCO results (what pycocotools scores against ground truth)."""

from typing import Dict, List, Sequence

import numpy as np
import pycocotools.mask as mask_util


def encode_mask(mask: np.ndarray) -> Dict:
    """(H, W) bool mask -> COCO RLE with ``counts`` as str (JSON-serialisable)."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def pseudo_coco(
    images: Sequence[Dict],
    instances: Sequence[Sequence[Dict]],
    classes: Sequence[str],
    min_score: float,
) -> Dict:
    """The COCO instances dict of pseudo labels.

    Args:
        images: per image ``file_name``, ``height``, ``width`` (ids are given 1, 2, ... in order).
        instances: per image, its pseudo instances: ``segmentation`` (COCO RLE, see
            :func:`encode_mask`), ``category`` (contiguous class id), ``score``; the ones with
            score <= ``min_score`` are left out.
        classes: the class names; category c is COCO id c + 1.
    Returns:
        {"images", "annotations" (RLE segmentation, area, XYWH bbox, iscrowd 0), "categories"}.
    """
    coco_images: List[Dict] = []
    annotations: List[Dict] = []
    for image_id, (image, found) in enumerate(zip(images, instances), start=1):
        coco_images.append(
            {"id": image_id, **{k: image[k] for k in ("file_name", "height", "width")}}
        )
        for inst in found:
            if inst["score"] <= min_score:
                continue
            rle = inst["segmentation"]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(inst["category"]) + 1,
                    "segmentation": rle,
                    "area": float(mask_util.area(rle)),
                    "bbox": mask_util.toBbox(rle).tolist(),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(classes)]
    return {"images": coco_images, "annotations": annotations, "categories": categories}


def coco_results(instances: Sequence[Dict], image_id: int, category_id) -> List[Dict]:
    """One image's pseudo instances as COCO results for scoring against a ground truth whose image
    id is ``image_id`` and whose category ids are ``category_id(contiguous id)``."""
    return [
        {
            "image_id": image_id,
            "category_id": category_id(int(inst["category"])),
            "segmentation": inst["segmentation"],
            "score": float(inst["score"]),
        }
        for inst in instances
    ]
