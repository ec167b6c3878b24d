"""tools/tiling_eval.py's mosaics: ground truth moved to its cell, pasted cells with the edges a
mosaic of separate images has, a shared background without them, and a run of the tool."""

import json
import os
import sys

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest

from ..conftest import REPO, TRAINED_CENTERMASK

sys.path.insert(0, os.path.join(REPO, "tools"))
import tiling_eval  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def square_rle(h, w, y0, x0, side):
    mask = np.zeros((h, w), np.uint8)
    mask[y0 : y0 + side, x0 : x0 + side] = 1
    rle = mask_util.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


@pytest.fixture
def dicts(tmp_path):
    """Two flat images of 100 x 120 (grey 50 and grey 200), each with one 20 px square of class 0
    at (y, x) = (10, 30) and (60, 70)."""
    out = []
    for k, (grey, y0, x0) in enumerate([(50, 10, 30), (200, 60, 70)]):
        path = str(tmp_path / f"{k}.png")
        cv2.imwrite(path, np.full((100, 120, 3), grey, np.uint8))
        ann = {"bbox": [x0, y0, 20, 20], "bbox_mode": 1, "category_id": 0, "iscrowd": 0}
        ann["segmentation"] = square_rle(100, 120, y0, x0, 20)
        out.append({"file_name": path, "height": 100, "width": 120, "annotations": [ann]})
    return out


def boxes(annotations):
    return sorted(tuple(a["bbox"]) for a in annotations)


def test_ground_truth_moves_to_its_cell(dicts):
    # 256 / 128 = 2 cells per side: images 0, 1, 0, 1 at (0, 0), (0, 128), (128, 0), (128, 128)
    _, cells, annotations = tiling_eval.build_mosaic(dicts, 256, 128, "BGR")
    expected = [(30, 10), (128 + 70, 60), (30, 128 + 10), (128 + 70, 128 + 60)]
    assert boxes(annotations) == sorted((x, y, 20.0, 20.0) for x, y in expected)
    assert [(y, x) for y, x, _ in cells] == [(0, 0), (0, 128), (128, 0), (128, 128)]
    shared_annotations = tiling_eval.build_mosaic(dicts, 256, 128, "BGR", np.random.default_rng(0))
    assert boxes(shared_annotations[2]) == boxes(annotations)


def test_pasted_cells_have_edges_the_shared_background_has_not(dicts):
    mosaic, cells, _ = tiling_eval.build_mosaic(dicts, 256, 128, "BGR")
    # pasted: grey 50 up to x = 119, its mean (50) padding to 127, then grey 200 from x = 128
    assert (mosaic[50, 100:128] == 50).all() and (mosaic[50, 128:140] == 200).all()
    for seed in range(3):  # the generator's three background kinds come up among these seeds
        mosaic, cells, annotations = tiling_eval.build_mosaic(
            dicts, 256, 128, "BGR", np.random.default_rng(seed)
        )
        for *_, image in cells:  # a cell is the mosaic's own pixels
            assert np.shares_memory(image, mosaic) and image.shape == (128, 128, 3)
        grey = mosaic.astype(np.float64).mean(2)
        background = np.ones((256, 256), bool)
        for a in annotations:
            background &= ~mask_util.decode(a["segmentation"]).astype(bool)
        # no seam: across the cell edge (columns 127 | 128) neighbouring pixels differ no more
        # than inside a cell (columns 63 | 64); the pasted mosaic jumps by 150 there
        rows = background[:, 127] & background[:, 128] & background[:, 63] & background[:, 64]
        across = np.abs(grey[rows, 128] - grey[rows, 127]).mean()
        inside = np.abs(grey[rows, 64] - grey[rows, 63]).mean()
        assert across < 1.5 * inside + 2, (seed, across, inside)
        # each painted square stands out from the background around it, as the generator's shapes
        for a in annotations:
            mask = mask_util.decode(a["segmentation"]).astype(np.uint8)
            ring = cv2.dilate(mask, np.ones((5, 5), np.uint8)).astype(bool) & background
            colour = mosaic[mask.astype(bool)].astype(np.float64).mean(0)
            around = mosaic[ring].astype(np.float64).mean(0)
            assert np.linalg.norm(colour - around) > 45, (seed, a["bbox"])


def test_the_tool_scores_both_runs(trained_centermask, tmp_path):
    _, _, weights = trained_centermask
    output = tmp_path / "report.json"
    config, *opts = TRAINED_CENTERMASK  # the architecture the weights were trained with
    argv = ["--config-file", f"{REPO}/{config}", "--size", "256", "--tile", "160"]
    argv += ["--overlap", "48", "--background", "shared", "--output", str(output), "--"]
    argv += [str(v) for v in opts] + ["MODEL.WEIGHTS", weights]
    assert tiling_eval.main(argv) == 0
    report = json.loads(output.read_text())
    assert report["background"] == "shared" and report["objects"] > 0
    for run in ("one_by_one", "tiled"):  # a trained model finds shapes either way
        assert report[run]["detections"] > 0 and 0 < report[run]["AP50"] <= 100
