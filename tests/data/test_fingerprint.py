"""The dataset fingerprint on a hand-made COCO file whose statistics are known by construction."""

import json

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from d2_instseg.data import register_user_dataset
from d2_instseg.data.fingerprint import compute_fingerprint, fingerprint


def _rle(mask, compressed=True):
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    if compressed:
        rle["counts"] = rle["counts"].decode("ascii")
        return rle
    flat = mask.astype(np.uint8).flatten(order="F")  # uncompressed: run lengths, starting with 0s
    runs, value, count = [], 0, 0
    for v in flat:
        if v == value:
            count += 1
        else:
            runs.append(count)
            value, count = v, 1
    runs.append(count)
    return {"size": list(mask.shape), "counts": runs}


def _coco(tmp_path):
    """Image 1 (100 x 200): A, a 10x10 polygon at x 0..10, and B, a 20x20 RLE at x 10..30 (they
    touch); image 2 (50 x 80): C, a 30x30 uncompressed RLE, and a crowd region (ignored); image 3
    (60 x 60): no instance. Sizes sqrt(area) 10, 20, 30."""
    b = np.zeros((100, 200), bool)
    b[0:20, 10:30] = True
    c = np.zeros((50, 80), bool)
    c[10:40, 40:70] = True
    crowd = np.zeros((50, 80), bool)
    crowd[0:5, 0:5] = True
    anns = [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 7,
            "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]],
            "bbox": [0, 0, 10, 10],
            "area": 100,
            "iscrowd": 0,
        },
        {
            "id": 2,
            "image_id": 1,
            "category_id": 9,
            "segmentation": _rle(b),
            "bbox": [10, 0, 20, 20],
            "area": 400,
            "iscrowd": 0,
        },
        {
            "id": 3,
            "image_id": 2,
            "category_id": 9,
            "segmentation": _rle(c, compressed=False),
            "bbox": [40, 10, 30, 30],
            "area": 900,
            "iscrowd": 0,
        },
        {
            "id": 4,
            "image_id": 2,
            "category_id": 7,
            "segmentation": _rle(crowd),
            "bbox": [0, 0, 5, 5],
            "area": 25,
            "iscrowd": 1,
        },
    ]
    coco = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": 100, "width": 200},
            {"id": 2, "file_name": "b.png", "height": 50, "width": 80},
            {"id": 3, "file_name": "c.png", "height": 60, "width": 60},
        ],
        "annotations": anns,
        "categories": [{"id": 7, "name": "cell"}, {"id": 9, "name": "part"}],
    }
    (tmp_path / "images").mkdir()
    for im in coco["images"]:  # the loader checks the files exist (their pixels are not read)
        cv2.imwrite(
            str(tmp_path / "images" / im["file_name"]),
            np.zeros((im["height"], im["width"]), np.uint8),
        )
    path = tmp_path / "train.json"
    path.write_text(json.dumps(coco))
    return path


@pytest.fixture
def hand_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("D2_INSTSEG_CACHE", str(tmp_path / "cache"))
    path = _coco(tmp_path)
    name = register_user_dataset(f"fp_hand:{path}:{tmp_path / 'images'}")
    yield name, path
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def test_fingerprint_of_known_sizes(hand_dataset):
    name, path = hand_dataset
    fp = fingerprint(name)
    assert fp["num_images"] == 3 and fp["num_instances"] == 3 and fp["num_classes"] == 2
    assert fp["thing_classes"] == ["cell", "part"]
    # sizes 10, 20, 30: linear percentiles p5 = 10 + 0.1 x 10 = 11, p95 = 20 + 0.9 x 10 = 29
    assert fp["instance_size"] == pytest.approx(
        {"p5": 11, "p25": 15, "p50": 20, "p75": 25, "p95": 29, "min": 10, "max": 30}
    )
    assert fp["instance_size_per_class"]["cell"]["p50"] == pytest.approx(10)
    assert fp["instance_size_per_class"]["part"]["p50"] == pytest.approx(25)  # 20 and 30
    assert fp["image_short_side"]["p50"] == 60 and fp["image_long_side"]["max"] == 200
    assert fp["instances_per_image"] == {"mean": 1.0, "p95": pytest.approx(1.9), "max": 2}
    assert fp["class_frequency"] == {
        "cell": {"instances": 1, "images": 1},
        "part": {"instances": 2, "images": 2},
    }
    assert fp["touching_share"] == pytest.approx(2 / 3, abs=1e-4)  # A and B touch, C is alone
    assert fp["empty_image_share"] == pytest.approx(1 / 3, abs=1e-4)
    assert fp["mask_format"] == "polygon+rle"
    # 100 + 400 + 900 instance pixels (the crowd region left out) of 200 x 100 + 80 x 50 + 60 x 60
    assert fp["foreground_share"] == pytest.approx(1400 / 27600, abs=1e-4)


def test_fingerprint_is_cached_next_to_the_json_and_recomputed_when_it_changes(hand_dataset):
    name, path = hand_dataset
    first = fingerprint(name)
    cache = path.parent / "train.json.fingerprint.json"
    assert json.loads(cache.read_text())["fingerprint"] == first
    # a planted figure in the cache is what a second call returns: it was read, not recomputed
    stored = json.loads(cache.read_text())
    stored["fingerprint"]["num_images"] = 99
    cache.write_text(json.dumps(stored))
    assert fingerprint(name)["num_images"] == 99
    # the JSON changes (one image fewer): its checksum no longer matches, so it is recomputed
    coco = json.loads(path.read_text())
    coco["images"] = coco["images"][:2]
    path.write_text(json.dumps(coco))
    assert fingerprint(name)["num_images"] == 2


def test_fingerprint_of_unregistered_name_says_how_to_register():
    with pytest.raises(KeyError, match="--dataset nope:"):
        fingerprint("nope")


def test_fingerprint_of_image_labels_only():
    """Weak supervision: three images labelled with classes {0}, {0, 2} and {1, 2} (one repeated
    label counts once) and no instance annotation: 5 / 3 classes per image, at most 2."""
    dicts = [
        {"height": 40, "width": 50, "image_labels": [0]},
        {"height": 40, "width": 50, "image_labels": [0, 2, 2]},
        {"height": 40, "width": 50, "image_labels": [1, 2]},
    ]
    fp = compute_fingerprint(dicts, ["a", "b", "c"])
    assert fp["has_image_labels"] and fp["num_instances"] == 0
    assert fp["image_labels_per_image"] == {"mean": pytest.approx(5 / 3, abs=1e-3), "max": 2}
    assert fp["instance_size"] == {} and fp["instances_per_image"]["max"] == 0
