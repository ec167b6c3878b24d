"""Bad datasets fail clearly (file and annotation id named) or are skipped with a log line."""

import copy
import json

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, DatasetMapper, MetadataCatalog

from d2_instseg.data import register_user_dataset
from d2_instseg.data.checks import CheckedMapper, checked_coco_json

from ..conftest import shapes_cfg


@pytest.fixture
def coco_dir(tmp_path):
    """Two 20x30 images with one valid polygon annotation each."""
    (tmp_path / "images").mkdir()
    images = []
    for i in (1, 2):
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), np.full((20, 30, 3), 50 * i, np.uint8))
        images.append({"id": i, "file_name": f"{i}.png", "height": 20, "width": 30})
    anns = [
        {
            "id": 10 + i,
            "image_id": i,
            "category_id": 1,
            "bbox": [2, 2, 10, 8],
            "iscrowd": 0,
            "area": 80,
            "segmentation": [[2, 2, 12, 2, 12, 10, 2, 10]],
        }
        for i in (1, 2)
    ]
    coco = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "box"}]}
    return tmp_path, coco


def _write(tmp_path, coco):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(coco))
    return str(path)


BREAKAGES = {
    "unknown category": (
        lambda c: c["annotations"][1].update(category_id=7),
        "annotation id 12",
        "category_id 7 is not in the file's categories",
    ),
    "2-point polygon": (
        lambda c: c["annotations"][1].update(segmentation=[[1, 1, 5, 5]]),
        "annotation id 12",
        "fewer than 3 points",
    ),
    "empty segmentation": (
        lambda c: c["annotations"][1].update(segmentation=[]),
        "annotation id 12",
        "empty segmentation",
    ),
    "box outside": (
        lambda c: c["annotations"][1].update(bbox=[40, 5, 10, 10]),
        "annotation id 12",
        "outside the 30x20 image",
    ),
    "missing image": (
        lambda c: c["images"][1].update(file_name="gone.png"),
        "image id 2",
        "gone.png does not exist",
    ),
}


@pytest.mark.parametrize("kind", sorted(BREAKAGES))
def test_error_policy_names_file_and_annotation(coco_dir, kind):
    tmp_path, coco = coco_dir
    breaks, where, what = BREAKAGES[kind]
    broken = copy.deepcopy(coco)
    breaks(broken)
    path = _write(tmp_path, broken)
    with pytest.raises(ValueError) as e:
        checked_coco_json(path, str(tmp_path / "images"), "error")
    assert path in str(e.value) and where in str(e.value) and what in str(e.value)


@pytest.mark.parametrize("kind", sorted(BREAKAGES))
def test_skip_policy_drops_only_the_bad_part(coco_dir, kind):
    tmp_path, coco = coco_dir
    broken = copy.deepcopy(coco)
    BREAKAGES[kind][0](broken)
    name = f"checks_{kind.replace(' ', '_')}"
    register_user_dataset(f"{name}:{_write(tmp_path, broken)}:{tmp_path / 'images'}", "skip")
    try:
        dicts = DatasetCatalog.get(name)
        kept = {(d["image_id"], len(d["annotations"])) for d in dicts}
        assert (1, 1) in kept  # the good image and its annotation survive
        assert (2, 1) not in kept  # the broken part does not
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_valid_file_is_used_as_is(coco_dir):
    tmp_path, coco = coco_dir
    path = _write(tmp_path, coco)
    assert checked_coco_json(path, str(tmp_path / "images"), "error") == path


def test_unknown_policy_names_the_key(coco_dir):
    tmp_path, coco = coco_dir
    with pytest.raises(ValueError, match="DATASETS.INVALID_ANNOTATIONS"):
        checked_coco_json(_write(tmp_path, coco), str(tmp_path / "images"), "ignore")


def test_unreadable_image_named_or_skipped(tmp_path):
    bad = tmp_path / "truncated.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    record = {"file_name": str(bad), "image_id": 5, "height": 10, "width": 10, "annotations": []}
    mapper = DatasetMapper(shapes_cfg("configs/shapes/mask_rcnn_R18_FPN.yaml"), is_train=True)
    with pytest.raises(ValueError, match=r"truncated.png.*image_id 5"):
        CheckedMapper(mapper, "error")(dict(record))
    assert CheckedMapper(mapper, "skip")(dict(record)) is None
