"""The preparation steps Detectron2's builtin semantic datasets need after download (what
``tools/prepare_datasets.py`` runs): ADE20K's ``annotations_detectron2`` and Cityscapes'
``*_gtFine_labelTrainIds.png``."""

import glob
import os
from typing import List

import numpy as np
from PIL import Image
from tqdm import tqdm


def prepare_ade20k(root: str) -> List[str]:
    """``root/ADEChallengeData2016/annotations/<split>/*.png`` (0 = other, 1..150) ->
    ``annotations_detectron2/<split>/*.png`` (0..149, 255 = other), as Detectron2's
    ``datasets/prepare_ade20k_sem_seg.py`` writes them. Returns the files written."""
    base = os.path.join(root, "ADEChallengeData2016")
    sources = sorted(glob.glob(os.path.join(base, "annotations", "*", "*.png")))
    if not sources:
        raise FileNotFoundError(f"No ADE20K label PNGs under {base}/annotations/<split>/")
    written = []
    for src in tqdm(sources, desc="ADE20K annotations_detectron2"):
        split = os.path.basename(os.path.dirname(src))
        dst = os.path.join(base, "annotations_detectron2", split, os.path.basename(src))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        label = np.asarray(Image.open(src), dtype=np.uint8)
        Image.fromarray(label - np.uint8(1)).save(dst)  # uint8: 0 wraps to 255
        written.append(dst)
    return written


def prepare_cityscapes(root: str) -> List[str]:
    """``root/cityscapes/gtFine/*/*/*_gtFine_polygons.json`` -> ``*_gtFine_labelTrainIds.png`` with
    cityscapesscripts' own ``json2labelImg`` (what its ``createTrainIdLabelImgs`` does). Returns
    the files written."""
    from cityscapesscripts.preparation.json2labelImg import json2labelImg

    base = os.path.join(root, "cityscapes")
    sources = sorted(glob.glob(os.path.join(base, "gtFine", "*", "*", "*_gtFine_polygons.json")))
    if not sources:
        raise FileNotFoundError(f"No Cityscapes polygon files under {base}/gtFine/<split>/<city>/")
    written = []
    for src in tqdm(sources, desc="Cityscapes labelTrainIds"):
        dst = src.replace("_polygons.json", "_labelTrainIds.png")
        json2labelImg(src, dst, "trainIds")
        written.append(dst)
    return written
