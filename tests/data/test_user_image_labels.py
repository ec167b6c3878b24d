"""Image-level labels of user COCO datasets (``--dataset NAME:JSON:IMAGES``), IRNet's supervision:
an image's own ``image_labels`` field, else the classes of its annotations."""

import json

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from d2_instseg.data import register_user_dataset
from d2_instseg.irnet.quality import GroundTruth


def _shapes_coco():
    DatasetCatalog.get("shapes_tiny_val")  # make sure the files exist
    meta = MetadataCatalog.get("shapes_tiny_val")
    with open(meta.json_file) as f:
        return json.load(f), meta.image_root


def _register(tmp_path, name, coco, image_root):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(coco))
    return register_user_dataset(f"{name}:{path}:{image_root}")


def test_image_labels_from_the_images_field_without_annotations(tmp_path):
    """Categories 7 (square) and 2 (circle) become contiguous ids 1 and 0 (sorted by id); an image
    listed with no labels is a background image."""
    coco, root = _shapes_coco()
    images = coco["images"][:3]
    images[0]["image_labels"] = [7]
    images[1]["image_labels"] = [7, 2, 7]
    images[2]["image_labels"] = []
    weak = {
        "images": images,
        "annotations": [],
        "categories": [{"id": 7, "name": "square"}, {"id": 2, "name": "circle"}],
    }
    name = _register(tmp_path, "weak_user", weak, root)
    dicts = DatasetCatalog.get(name)
    assert [d["image_labels"] for d in dicts] == [[1], [0, 1], []]
    assert MetadataCatalog.get(name).thing_classes == ["circle", "square"]
    with pytest.raises(ValueError, match="no masks to report against"):
        GroundTruth(name, str(tmp_path))


def test_image_labels_from_annotations(tmp_path):
    """Without the field, an image's labels are its (non-crowd) annotations' classes."""
    coco, root = _shapes_coco()
    coco["images"] = coco["images"][:4]
    ids = {im["id"] for im in coco["images"]}
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
    expected = {
        im["id"]: sorted(
            {
                sorted(c["id"] for c in coco["categories"]).index(a["category_id"])
                for a in coco["annotations"]
                if a["image_id"] == im["id"] and not a.get("iscrowd", 0)
            }
        )
        for im in coco["images"]
    }
    name = _register(tmp_path, "full_user", coco, root)
    dicts = DatasetCatalog.get(name)
    assert {d["image_id"]: d["image_labels"] for d in dicts} == expected
    assert any(len(v) > 1 for v in expected.values())
    assert GroundTruth(name, str(tmp_path)).dataset_name == name  # masks: a quality report


def test_unknown_label_is_named(tmp_path):
    coco, root = _shapes_coco()
    image = coco["images"][0]
    image["image_labels"] = [5]
    weak = {"images": [image], "annotations": [], "categories": [{"id": 1, "name": "circle"}]}
    name = _register(tmp_path, "bad_user", weak, root)
    with pytest.raises(ValueError, match=r"bad_user\.json: image id .*image_labels \[5\]"):
        DatasetCatalog.get(name)
