"""tools/predict.py: COCO results that pycocotools loads, label images (PNG / TIFF) that give back
the saved masks, resuming, a broken file named without losing the others, semantic maps."""

import json
import os
import sys

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
import tifffile
from detectron2.data import DatasetCatalog
from pycocotools.coco import COCO

from d2_instseg.data.image_files import read_image_file

from ..conftest import REPO, TRAINED_CENTERMASK

sys.path.insert(0, os.path.join(REPO, "tools"))
import predict  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three shapes_tiny_val images (and their file names)."""
    folder = tmp_path_factory.mktemp("images")
    for d in DatasetCatalog.get("shapes_tiny_val")[:3]:
        cv2.imwrite(str(folder / os.path.basename(d["file_name"])), cv2.imread(d["file_name"]))
    return folder


def centermask_argv(folder, out, weights, *extra):
    opts = [str(v) if not isinstance(v, tuple) else str(list(v)) for v in TRAINED_CENTERMASK[1:]]
    return [
        *("--config-file", f"{REPO}/{TRAINED_CENTERMASK[0]}", "--input", str(folder)),
        *("--output", str(out), *extra, *opts, "MODEL.WEIGHTS", weights),
    ]


def test_coco_and_label_images_round_trip(folder, tmp_path, trained_centermask):
    out = tmp_path / "out"
    assert predict.main(centermask_argv(folder, out, trained_centermask[2], "--format", "all")) == 0
    coco = COCO(str(out / "images.json"))
    results = coco.loadRes(str(out / "predictions.json"))
    assert len(coco.getImgIds()) == 3
    # category ids are the dataset's (shapes: 1..3), names from its metadata
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {"square", "circle", "triangle"}
    anns = results.loadAnns(results.getAnnIds())
    assert anns and {a["category_id"] for a in anns} <= {1, 2, 3}
    for image in coco.loadImgs(coco.getImgIds()):
        stem = os.path.splitext(os.path.basename(image["file_name"]))[0]
        labels = cv2.imread(str(out / "instances" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert labels.dtype == np.uint16 and labels.shape == (image["height"], image["width"])
        assert np.array_equal(tifffile.imread(out / "instances" / f"{stem}.tif"), labels)
        classes = cv2.imread(str(out / "classes" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        mine = sorted(
            results.loadAnns(results.getAnnIds(imgIds=image["id"])), key=lambda a: -a["score"]
        )
        taken = np.zeros(labels.shape, bool)
        for k, ann in enumerate(mine, start=1):
            # label k is the k-th best instance, over the pixels no better one took
            mask = mask_util.decode(ann["segmentation"]).astype(bool)
            assert np.array_equal(labels == k, mask & ~taken), (stem, k)
            assert (classes[labels == k] == ann["category_id"]).all()  # shapes: id = class + 1
            taken |= mask
        assert (labels[~taken] == 0).all() and (classes[~taken] == 0).all()


def test_resume_skips_done_images_and_names_a_broken_file(folder, tmp_path, trained_centermask):
    out = tmp_path / "out"
    argv = centermask_argv(folder, out, trained_centermask[2], "--format", "coco")
    assert predict.main(argv) == 0
    parts = sorted((out / "parts").iterdir())
    first = {p.name: p.stat().st_mtime_ns for p in parts}
    os.remove(parts[0])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "zz.png").write_bytes(b"not a png")
    argv = centermask_argv(folder, out, trained_centermask[2], "--format", "coco")
    argv[argv.index("--input") + 1 : argv.index("--input") + 2] = [
        str(folder),
        str(broken / "zz.png"),
    ]
    assert predict.main(argv) == 1  # the broken file fails, named; the others are kept
    again = {p.name: p.stat().st_mtime_ns for p in (out / "parts").iterdir()}
    assert sorted(again) == sorted(first)  # no part for the broken file
    assert [n for n in first if again[n] != first[n]] == [parts[0].name]  # only it was redone
    with open(out / "images.json") as f:
        assert len(json.load(f)["images"]) == 3


def test_semantic_maps(folder, tmp_path):
    out = tmp_path / "out"
    argv = [
        *("--config-file", f"{REPO}/configs/shapes/fcn8s.yaml", "--input", str(folder)),
        *("--output", str(out), "--format", "png", "MODEL.WEIGHTS", ""),
    ]
    assert predict.main(argv) == 0
    maps = sorted((out / "semantic").iterdir())
    assert len(maps) == 3
    labels = cv2.imread(str(maps[0]), cv2.IMREAD_UNCHANGED)
    assert labels.dtype == np.uint8 and labels.max() < 4  # background + 3 shapes


def test_read_image_file_keeps_16_bit_tiff_and_orders_bgr(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint16)
    rgb[..., 0] = 60000  # red
    tifffile.imwrite(tmp_path / "a.tif", rgb)
    bgr = read_image_file(str(tmp_path / "a.tif"))
    assert bgr.dtype == np.uint16 and (bgr[..., 2] == 60000).all() and (bgr[..., 0] == 0).all()
    (tmp_path / "b.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(ValueError, match="b.tif"):
        read_image_file(str(tmp_path / "b.tif"))
