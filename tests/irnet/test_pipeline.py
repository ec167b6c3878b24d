"""The whole IRNet pipeline on shapes_tiny_train with a few iterations per step (plumbing, resume,
outputs Detectron2 / pycocotools can read). Label quality is measured by the shapes run in
docs/irnet.md, not here: a few iterations cannot learn CAMs."""

import contextlib
import io
import json
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image
from pycocotools.coco import COCO

from d2_instseg.engine import sync_num_classes
from d2_instseg.irnet import steps as steps_module
from d2_instseg.irnet.files import stem
from d2_instseg.irnet.pipeline import IRNetPipeline, parse_steps
from d2_instseg.irnet.steps import STEPS
from d2_instseg.modeling.irnet import multiscale_cams

TINY = [
    "DATASETS.TRAIN", ("shapes_tiny_train",),
    "DATASETS.TEST", ("shapes_tiny_val",),
    "DATALOADER.NUM_WORKERS", 0,
    "MODEL.IRNET.PIPELINE.GT_DATASET", "shapes_tiny_train",
    "MODEL.IRNET.CAM.EPOCHS", 0.25,  # 1 iteration of 16 images
    "MODEL.IRNET.CAM.SCALES", (1.0,),
    "MODEL.IRNET.IRN.EPOCHS", 0.25,
    "MODEL.IRNET.SYNTHESIS.EXP_TIMES", 3,
    "MODEL.IRNET.SYNTHESIS.CENTROID_ITERS", 20,
    # every instance goes to the training JSON so that Mask R-CNN has data after 1 CAM iteration
    "MODEL.IRNET.SYNTHESIS.TRAIN_MIN_SCORE", -1.0,
    "MODEL.IRNET.PIPELINE.MASK_RCNN_OPTS",
    ["SOLVER.MAX_ITER", "1", "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "0"],
]  # fmt: skip


SEM = "shapes_sem_seg_tiny_train"  # the same images' semantic labels (0 = background, c + 1)


def _miou(pred, gt) -> float:
    """Mean over the labels present in a prediction or the ground truth of |P & G| / |P | G| (%),
    the pixels of all images pooled."""
    ious = []
    for label in range(4):
        inter = sum(int(((pred[k] == label) & (gt[k] == label)).sum()) for k in gt)
        union = sum(int(((pred[k] == label) | (gt[k] == label)).sum()) for k in gt)
        if union:
            ious.append(inter / union)
    return 100.0 * sum(ious) / len(ious)


def test_parse_steps():
    assert parse_steps("all") == list(STEPS)
    assert parse_steps("synthesize, cam") == ["cam", "synthesize"]


def test_pipeline_end_to_end_tiny(irnet_cfg, tmp_path, monkeypatch):
    cfg = irnet_cfg
    cfg.merge_from_list(TINY)
    cfg.OUTPUT_DIR = str(tmp_path)
    sync_num_classes(cfg)
    cfg.freeze()
    pipeline = IRNetPipeline(cfg)

    # the cam step dies half-way through its CAMs (after training); "all" again continues it with
    # the trained model and the 10 CAM files it wrote, then runs every other step
    calls = []

    def failing_cams(*args, **kwargs):
        calls.append(1)
        if len(calls) > 10:
            raise RuntimeError("killed half-way")
        return multiscale_cams(*args, **kwargs)

    monkeypatch.setattr(steps_module, "multiscale_cams", failing_cams)
    with pytest.raises(RuntimeError, match="half-way"):
        pipeline.run(parse_steps("all"))
    assert not pipeline.is_done("cam") and len(os.listdir(tmp_path / "cam" / "cams")) == 10
    monkeypatch.undo()
    reports = pipeline.run(parse_steps("all"))
    assert list(reports) == list(STEPS)
    assert reports["cam"]["resumed"] and reports["cam"]["reused_model"]
    assert reports["cam"]["num_cams_reused"] == 10 and not reports["ir_label"]["resumed"]
    assert len(os.listdir(tmp_path / "cam" / "cams")) == 64
    assert all(os.path.isfile(tmp_path / "steps" / f"{s}.done") for s in STEPS)

    # pseudo labels: a COCO JSON pycocotools loads, one image entry per training image, RLE masks
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp_path / "pseudo" / "instances.json"))
    assert len(coco.getImgIds()) == 64
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["circle", "square", "triangle"]
    assert len(coco.getAnnIds()) == reports["synthesize"]["num_pseudo_instances"] > 0
    assert isinstance(coco.loadAnns(coco.getAnnIds()[0])[0]["segmentation"]["counts"], str)
    assert len(os.listdir(tmp_path / "pseudo" / "sem_seg")) == 64

    # registered like any Detectron2 dataset, with the training set's classes
    name = "shapes_tiny_train_irnet_pseudo"
    assert MetadataCatalog.get(name).thing_classes == ["circle", "square", "triangle"]
    assert len(DatasetCatalog.get(name)) > 0
    assert "sem_seg_file_name" in DatasetCatalog.get(name + "_sem_seg")[0]

    # reports: the quality figures are those of the files the steps wrote, recomputed here against
    # the shapes label PNGs; the Mask R-CNN's are its evaluation's (maskrcnn/results.json)
    labels = {stem(d["file_name"]): d["sem_seg_file_name"] for d in DatasetCatalog.get(SEM)}
    cam_pred, pseudo_pred, gt = {}, {}, {}
    for name, label_png in labels.items():
        gt[name] = np.asarray(Image.open(label_png))
        with np.load(tmp_path / "cam" / "cams" / f"{name}.npz") as pack:
            bg = np.full((1, *gt[name].shape), cfg.MODEL.IRNET.CAM.EVAL_THRESH, np.float32)
            scores = np.concatenate([bg, pack["high_res"]])
            cam_pred[name] = np.concatenate([[0], pack["keys"] + 1])[scores.argmax(0)]
        pseudo_pred[name] = np.asarray(Image.open(tmp_path / "pseudo" / "sem_seg" / f"{name}.png"))
    assert reports["cam"]["cam_miou"] == pytest.approx(_miou(cam_pred, gt), abs=1e-6)
    assert reports["synthesize"]["pseudo_sem_miou"] == pytest.approx(_miou(pseudo_pred, gt), 1e-6)
    with open(tmp_path / "maskrcnn" / "results.json") as f:
        segm = json.load(f)["segm"]
    assert reports["maskrcnn"]["shapes_tiny_val_segm_AP"] == pytest.approx(segm["AP"])
    assert reports["synthesize"]["num_gt_images"] == 64
    # pictures: 8 rows of pseudo labels next to ground truth, each row 256 px high
    overlays = Image.open(reports["synthesize"]["overlays"])
    assert overlays.size[1] == 8 * 256 and overlays.mode == "RGB"
    with open(tmp_path / "reports" / "synthesize.json") as f:
        assert json.load(f)["num_images"] == 64
    assert "synthesize" in (tmp_path / "reports" / "summary.txt").read_text()

    # resume: "all" again runs nothing; running one step again clears the markers of the later ones
    assert pipeline.run(parse_steps("all")) == {}
    pipeline.run(parse_steps("synthesize"), resume=False)
    assert pipeline.is_done("synthesize") and not pipeline.is_done("maskrcnn")
