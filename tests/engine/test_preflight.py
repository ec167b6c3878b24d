"""What is checked before training starts: MODEL.WEIGHTS reachable, every test set's evaluator
buildable (its packages importable), and the Cityscapes evaluators' NumPy 2 compatibility."""

import os
import sys

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from d2_instseg.engine import Trainer, WeightsUnavailableError, check_weights_reachable
from d2_instseg.engine.weights import cached_path, resolve_url, weights_status
from d2_instseg.evaluation.cityscapes import _in1d, cityscapes_numpy_compat

from ..conftest import shapes_cfg


def test_weights_status_local_cached_and_unreachable(tmp_path, monkeypatch):
    """ "" = random init; a local file must exist; a URL counts as present when iopath's cache
    (where Detectron2 would download it) has it, else the probe decides (here: a refusing proxy)."""
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    assert weights_status("")[0]
    assert not weights_status(str(tmp_path / "none.pth"))[0]
    (tmp_path / "w.pth").write_bytes(b"x")
    assert weights_status(str(tmp_path / "w.pth")) == (True, str(tmp_path / "w.pth"))
    assert resolve_url("detectron2://ImageNetPretrained/MSRA/R-18.pkl") == (
        "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-18.pkl"
    )
    ok, where = weights_status("detectron2://ImageNetPretrained/MSRA/R-18.pkl")
    assert not ok and "pickle" in where and "tools/convert_weights.py" in where
    name = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    cached = cached_path(resolve_url(name))
    assert cached == str(tmp_path / "cache" / "models/resnet18-f37072fd.pth")
    ok, where = weights_status(name)
    assert not ok and "cannot be fetched" in where
    with pytest.raises(WeightsUnavailableError, match=r'resnet18-f37072fd\.pth.*MODEL\.WEIGHTS ""'):
        check_weights_reachable(name)
    os.makedirs(os.path.dirname(cached))
    open(cached, "wb").close()
    assert weights_status(name) == (True, cached)


def _register_test_set(name: str, evaluator_type: str) -> str:
    if name not in DatasetCatalog.list():
        DatasetCatalog.register(name, lambda: DatasetCatalog.get("shapes_tiny_val"))
        MetadataCatalog.get(name).set(evaluator_type=evaluator_type, gt_dir="unused")
    return name


@pytest.mark.parametrize(
    "evaluator_type, hide, error",
    [("cityscapes_sem_seg", True, ImportError), ("no_such_type", False, NotImplementedError)],
)
def test_trainer_fails_at_build_when_an_evaluator_cannot_be_built(
    evaluator_type, hide, error, monkeypatch, tmp_path
):
    """The evaluators are built first: the error comes before the model, loader or any iteration
    (Detectron2 would build them at the first evaluation, e.g. after 8,000 iterations)."""
    name = _register_test_set(f"preflight_{evaluator_type}", evaluator_type)
    if hide:
        monkeypatch.setitem(sys.modules, "cityscapesscripts", None)  # import fails
    cfg = shapes_cfg("configs/shapes/fcn8s.yaml", "DATASETS.TEST", (name,))
    cfg.OUTPUT_DIR = str(tmp_path)
    built = []
    monkeypatch.setattr(Trainer, "build_model", classmethod(lambda cls, cfg: built.append(cfg)))
    with pytest.raises(error, match=name if not hide else "cityscapesscripts"):
        Trainer(cfg)
    assert built == []


def test_in1d_shim_matches_numpy1_semantics_and_is_restored():
    """np.in1d(a, b) was isin(a, b) flattened: [[1, 2], [3, 4]] in [2, 3] -> [F, T, T, F]."""
    a = np.array([[1, 2], [3, 4]])
    assert _in1d(a, [2, 3]).tolist() == [False, True, True, False]
    assert _in1d(a, [2, 3], invert=True).tolist() == [True, False, False, True]
    had = hasattr(np, "in1d")
    with cityscapes_numpy_compat():
        assert np.in1d(a, [4]).tolist() == [False, False, False, True]
    assert hasattr(np, "in1d") == had


def test_cityscapes_evaluators_score_perfect_predictions_100(tmp_path, monkeypatch):
    """The miniature Cityscapes val split, predictions copied from its own ground truth (instances
    from instanceIds, classes from labelTrainIds): instance AP = AP50 = 100 and class IoU = 100
    through cityscapesscripts' evaluation, which fails under NumPy 2.4 without the shim; nothing is
    written into the current directory (cityscapesscripts writes matches.json there)."""
    monkeypatch.chdir(tmp_path)
    import torch
    from cityscapesscripts.helpers.labels import id2label
    from detectron2.data.datasets.builtin_meta import _get_builtin_metadata
    from detectron2.data.datasets.cityscapes import (
        load_cityscapes_instances,
        load_cityscapes_semantic,
    )
    from detectron2.structures import Instances
    from PIL import Image

    from d2_instseg.data.datasets.miniature import write_cityscapes
    from d2_instseg.engine.trainer import build_evaluator_for_dataset

    folder = write_cityscapes(str(tmp_path), 2, 2, seed=0)
    image_dir = os.path.join(folder, "leftImg8bit", "val")
    gt_dir = os.path.join(folder, "gtFine", "val")
    meta = _get_builtin_metadata("cityscapes")
    for task, loader in (
        ("instance", load_cityscapes_instances),
        ("sem_seg", load_cityscapes_semantic),
    ):
        name = f"preflight_cityscapes_{task}"
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        DatasetCatalog.register(name, lambda f=loader: f(image_dir, gt_dir))
        MetadataCatalog.get(name).set(
            image_dir=image_dir, gt_dir=gt_dir, evaluator_type=f"cityscapes_{task}", **meta
        )
    instances = build_evaluator_for_dataset(None, "preflight_cityscapes_instance", str(tmp_path))
    semantic = build_evaluator_for_dataset(None, "preflight_cityscapes_sem_seg", str(tmp_path))
    instances.reset()
    semantic.reset()
    for d in DatasetCatalog.get("preflight_cityscapes_sem_seg"):
        ids = np.asarray(Image.open(d["sem_seg_file_name"].replace("labelTrainIds", "instanceIds")))
        keep = [v for v in np.unique(ids) if v >= 1000]
        pred = Instances((d["height"], d["width"]))
        pred.pred_masks = torch.as_tensor(np.stack([ids == v for v in keep]))
        pred.pred_classes = torch.tensor(
            [meta["thing_classes"].index(id2label[v // 1000].name) for v in keep]
        )
        pred.scores = torch.ones(len(keep))
        instances.process([d], [{"instances": pred}])
        train_ids = torch.as_tensor(np.asarray(Image.open(d["sem_seg_file_name"])).astype(np.int64))
        logits = torch.stack([(train_ids == c).float() for c in range(19)])
        semantic.process([d], [{"sem_seg": logits}])
    assert instances.evaluate()["segm"] == {"AP": 100.0, "AP50": 100.0}
    assert semantic.evaluate()["sem_seg"]["IoU"] == 100.0
    assert sorted(os.listdir(tmp_path)) == ["cityscapes"]
