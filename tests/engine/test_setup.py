import argparse
import json
import os
import subprocess
import sys

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from d2_instseg.data import register_user_dataset
from d2_instseg.engine import (
    check_dataset_classes,
    check_datasets_present,
    setup_cfg,
    sync_num_classes,
)
from d2_instseg.engine import setup as engine_setup

from ..conftest import REPO, shapes_cfg


def _tiny_coco(tmp_path, keep_categories=(1, 3)):
    """A COCO file made from shapes_tiny_val with two categories (ids 1 and 3)."""
    DatasetCatalog.get("shapes_tiny_val")  # make sure the files exist
    meta = MetadataCatalog.get("shapes_tiny_val")
    with open(meta.json_file) as f:
        coco = json.load(f)
    coco["images"] = coco["images"][:6]
    ids = {im["id"] for im in coco["images"]}
    coco["annotations"] = [
        a
        for a in coco["annotations"]
        if a["image_id"] in ids and a["category_id"] in keep_categories
    ]
    coco["categories"] = [c for c in coco["categories"] if c["id"] in keep_categories]
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(coco))
    return str(path), meta.image_root


def test_user_dataset_registration_and_class_sync(tmp_path):
    json_file, images = _tiny_coco(tmp_path)
    name = register_user_dataset(f"mine_reg:{json_file}:{images}")
    assert MetadataCatalog.get(name).thing_classes == ["circle", "triangle"]
    assert MetadataCatalog.get(name).evaluator_type == "coco"
    assert len(DatasetCatalog.get(name)) == 6
    cfg = shapes_cfg("configs/shapes/mask_rcnn_R18_FPN.yaml", "DATASETS.TRAIN", f"('{name}',)")
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 3
    sync_num_classes(cfg)
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 2


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nocolon", "NAME:path"),
        ("a:missing.json:.", "does not exist"),
        ("a:{json}:/no/dir", "image folder"),
    ],
)
def test_bad_dataset_argument_names_the_problem(tmp_path, spec, message):
    json_file, _ = _tiny_coco(tmp_path)
    with pytest.raises(ValueError, match=message):
        register_user_dataset(spec.format(json=json_file))


def test_train_net_with_user_dataset(tmp_path):
    """`--dataset` from the command line: 2 iterations on a 2-class user file, then its
    evaluation."""
    json_file, images = _tiny_coco(tmp_path)
    cmd = [
        sys.executable,
        "tools/train_net.py",
        "--config-file",
        "configs/shapes/mask_rcnn_R18_FPN.yaml",
        "--dataset",
        f"mine:{json_file}:{images}",
        "DATASETS.TRAIN",
        "('mine',)",
        "DATASETS.TEST",
        "('mine',)",
        "SOLVER.IMS_PER_BATCH",
        "2",
        "SOLVER.MAX_ITER",
        "2",
        "SOLVER.STEPS",
        "()",
        "DATALOADER.NUM_WORKERS",
        "0",
        "OUTPUT_DIR",
        str(tmp_path / "out"),
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "out" / "results.json") as f:
        results = json.load(f)
    assert "AP" in results["segm"]
    with open(tmp_path / "out" / "config.yaml") as f:
        assert "NUM_CLASSES: 2" in f.read()


def test_missing_dataset_message_names_the_file_its_preparation_and_shapes(tmp_path):
    cfg = shapes_cfg(
        "configs/shapes/mask_rcnn_R18_FPN.yaml", "DATASETS.TRAIN", "('coco_2017_train',)"
    )
    with pytest.raises(FileNotFoundError) as error:
        check_datasets_present(cfg)
    message = str(error.value)
    assert "$DETECTRON2_DATASETS" in message and "coco_2017_train: MISSING" in message
    assert "coco/annotations/instances_train2017.json" in message and "cocodataset.org" in message
    assert "configs/shapes" in message and "shapes_val" not in message  # generated: never missing


def test_setup_cfg_falls_back_to_cpu_and_checks_config_path():
    args = argparse.Namespace(
        config_file=os.path.join(REPO, "configs/shapes/mask_rcnn_R18_FPN.yaml"),
        opts=["MODEL.DEVICE", "cuda"],
        dataset=[],
    )
    cfg = setup_cfg(args, run_default_setup=False)
    assert cfg.MODEL.DEVICE in ("cpu", "cuda")
    if not __import__("torch").cuda.is_available():
        assert cfg.MODEL.DEVICE == "cpu"
    args.config_file = "nope.yaml"
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        setup_cfg(args, run_default_setup=False)


def _dataset_with_classes(name: str, **fields) -> str:
    """A metadata-only dataset (the class checks read nothing else)."""
    meta = MetadataCatalog.get(name)
    if not meta.as_dict().keys() & fields.keys():
        meta.set(**fields)
    return name


CLASS_LIST_CASES = {
    "thing_classes differ": (
        _dataset_with_classes("classes_train_abc", thing_classes=["a", "b", "c"]),
        _dataset_with_classes("classes_test_acb", thing_classes=["a", "c", "b"]),
        "thing_classes",
    ),
    "stuff_classes differ": (
        _dataset_with_classes("classes_train_stuff2", stuff_classes=["bg", "x"]),
        _dataset_with_classes("classes_test_stuff3", stuff_classes=["bg", "x", "y"]),
        "stuff_classes",
    ),
}


@pytest.mark.parametrize("case", sorted(CLASS_LIST_CASES))
def test_train_and_test_class_lists_must_match(case):
    """Same class count in another order is as wrong as another count: class id k would be one
    class in training and another in evaluation."""
    train, test, field = CLASS_LIST_CASES[case]
    cfg = shapes_cfg(
        "configs/shapes/mask_rcnn_R18_FPN.yaml",
        "DATASETS.TRAIN", f"('{train}',)", "DATASETS.TEST", f"('{test}',)",
    )  # fmt: skip
    with pytest.raises(ValueError, match=f"{train}.*{test}.*{field}"):
        check_dataset_classes(cfg)


def test_setup_cfg_checks_class_lists_and_only_warns_in_eval_only(monkeypatch):
    """Through setup_cfg: training raises; --eval-only only warns, once, about the test set whose
    class count differs from the NUM_CLASSES keys (synced to the training set's 3 classes, which
    the 3-class test set matches and the 2-class one does not)."""
    train, test, _ = CLASS_LIST_CASES["thing_classes differ"]
    other = _dataset_with_classes("classes_test_two", thing_classes=["a", "b"])
    args = argparse.Namespace(
        config_file=os.path.join(REPO, "configs/shapes/mask_rcnn_R18_FPN.yaml"),
        opts=["DATASETS.TRAIN", f"('{train}',)", "DATASETS.TEST", f"('{test}', '{other}')"],
        dataset=[],
        eval_only=False,
    )
    with pytest.raises(ValueError, match=f"{train}.*{test}"):
        setup_cfg(args, run_default_setup=False)
    warnings = []
    monkeypatch.setattr(engine_setup.logger, "warning", warnings.append)
    args.eval_only = True
    cfg = setup_cfg(args, run_default_setup=False)
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 3
    (warning,) = [w for w in warnings if "test set" in w]
    assert other in warning and "MODEL.ROI_HEADS.NUM_CLASSES" in warning
