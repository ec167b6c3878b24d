import os

from detectron2.data import DatasetCatalog, MetadataCatalog

import d2_instseg  # noqa: F401
from d2_instseg.data import ShapesSpec, register_shapes
from d2_instseg.data.datasets.shapes import shapes_root


def test_builtin_names_and_metadata():
    names = DatasetCatalog.list()
    for split in ("train", "val", "tiny_train", "tiny_val"):
        assert f"shapes_{split}" in names and f"shapes_sem_seg_{split}" in names
    inst = MetadataCatalog.get("shapes_val")
    assert inst.evaluator_type == "coco"
    assert inst.thing_classes == ["circle", "square", "triangle"]
    assert inst.thing_dataset_id_to_contiguous_id == {1: 0, 2: 1, 3: 2}
    sem = MetadataCatalog.get("shapes_sem_seg_val")
    assert sem.evaluator_type == "sem_seg"
    assert sem.stuff_classes == ["background", "circle", "square", "triangle"]
    assert sem.ignore_label == 255


def test_dicts_carry_image_labels_and_files():
    inst = DatasetCatalog.get("shapes_tiny_val")
    sem = DatasetCatalog.get("shapes_sem_seg_tiny_val")
    assert len(inst) == len(sem) == 24
    for d, s in zip(inst, sem):
        assert d["image_labels"] == sorted({a["category_id"] for a in d["annotations"]})
        assert s["image_labels"] == d["image_labels"] and s["file_name"] == d["file_name"]
        assert os.path.isfile(s["sem_seg_file_name"])
        assert all(a["segmentation"]["size"] == [d["height"], d["width"]] for a in d["annotations"])


def test_respects_detectron2_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    assert shapes_root() == str(tmp_path / "shapes")
    register_shapes("envtest", ShapesSpec(num_images=3, seed=4))
    try:
        assert len(DatasetCatalog.get("shapes_envtest")) == 3
        assert len(os.listdir(tmp_path / "shapes")) == 1
    finally:
        for name in ("shapes_envtest", "shapes_sem_seg_envtest"):
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
