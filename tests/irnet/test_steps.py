"""IRNet's workflow pieces on their own: pseudo_coco on a hand-made case, the relation-label report
on hand-made label files, and the ir_label step run alone on CAM files a test wrote (no earlier
step ran)."""

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.data import DatasetCatalog
from PIL import Image

from d2_instseg.engine import sync_num_classes
from d2_instseg.irnet.files import save_cams
from d2_instseg.irnet.pipeline import IRNetPipeline
from d2_instseg.irnet.pseudo_coco import coco_results, encode_mask, pseudo_coco
from d2_instseg.irnet.reports import relation_label_report
from d2_instseg.irnet.steps import STEPS


def test_pseudo_coco_by_hand():
    """Two images; image 1 has a 2 x 3 class-1 instance (score 0.9) and a 1-pixel class-0 one with
    score 0 (left out at min_score 0); image 2 none. COCO ids: images 1, 2; category = class + 1;
    area 6, bbox [x, y, w, h] = [1, 2, 3, 2]."""
    mask = np.zeros((5, 6), bool)
    mask[2:4, 1:4] = True
    speck = np.zeros((5, 6), bool)
    speck[0, 0] = True
    found = [
        {"segmentation": encode_mask(mask), "category": 1, "score": 0.9},
        {"segmentation": encode_mask(speck), "category": 0, "score": 0.0},
    ]
    images = [{"file_name": f"/x/{n}.png", "height": 5, "width": 6} for n in ("a", "b")]
    coco = pseudo_coco(images, [found, []], ["cat", "dog"], min_score=0.0)
    assert [im["id"] for im in coco["images"]] == [1, 2]
    assert coco["categories"] == [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    (ann,) = coco["annotations"]
    assert (ann["image_id"], ann["category_id"], ann["area"]) == (1, 2, 6.0)
    assert ann["bbox"] == [1.0, 2.0, 3.0, 2.0] and ann["iscrowd"] == 0
    assert (mask_util.decode(ann["segmentation"]) == mask).all()
    results = coco_results(found, image_id=7, category_id=lambda c: 10 + c)
    assert [(r["image_id"], r["category_id"], r["score"]) for r in results] == [
        (7, 11, 0.9),
        (7, 10, 0.0),
    ]


def test_relation_label_report_by_hand(tmp_path):
    """A 2 x 4 label map [[0, 0, 1, 255], [0, 2, 2, 255]]: 3 background, 3 foreground, 2 unsure
    pixels; against ground truth [[0, 1, 1, 1], [0, 2, 2, 0]], 5 of the 6 confident ones are
    right."""
    label = np.array([[0, 0, 1, 255], [0, 2, 2, 255]], np.uint8)
    path = str(tmp_path / "l.png")
    Image.fromarray(label).save(path)

    class GT:
        def __contains__(self, name):
            return True

        def semantic(self, name):
            return np.array([[0, 1, 1, 1], [0, 2, 2, 0]], np.uint8)

    report = relation_label_report([path], ["img"], GT())
    assert report["bg_frac"] == pytest.approx(3 / 8) and report["fg_frac"] == pytest.approx(3 / 8)
    assert report["unsure_frac"] == pytest.approx(2 / 8)
    assert report["confident_pixel_acc"] == pytest.approx(100 * 5 / 6)


def test_ir_label_step_alone_on_ground_truth_cams(irnet_cfg, tmp_path):
    """The ir_label step runs with only its inputs present: CAM files written here from the ground
    truth of 6 shapes_tiny_train images (each present class's mask, 1 inside and 0 outside). With
    CAMs that exact, the confident pixels (those outside the CRF-smoothed class borders) must match
    the ground truth almost everywhere: >= 95% of them right, and most of the image confident."""
    cfg = irnet_cfg
    cfg.merge_from_list(
        ["DATASETS.TRAIN", ("shapes_tiny_train",), "DATALOADER.NUM_WORKERS", 0]
        + ["MODEL.IRNET.PIPELINE.GT_DATASET", "shapes_tiny_train"]
    )
    cfg.OUTPUT_DIR = str(tmp_path)
    sync_num_classes(cfg)
    cfg.freeze()
    pipeline = IRNetPipeline(cfg)
    pipeline._dicts = pipeline.dicts[:6]
    semantic = {
        d["file_name"]: np.asarray(Image.open(d["sem_seg_file_name"]))
        for d in DatasetCatalog.get("shapes_sem_seg_tiny_train")
    }
    for d in pipeline.dicts:
        gt = semantic[d["file_name"]]
        keys = torch.tensor(d["image_labels"])
        high_res = torch.stack([torch.as_tensor(gt == c + 1).float() for c in d["image_labels"]])
        save_cams(pipeline.cam_path(d), {"keys": keys, "cam": high_res, "high_res": high_res})
    report = STEPS["ir_label"](pipeline)
    assert report["confident_pixel_acc"] >= 95.0 and report["unsure_frac"] < 0.5
    for d in pipeline.dicts:
        label = np.asarray(Image.open(pipeline.relation_path(d)))
        assert label.shape == (d["height"], d["width"])
        assert set(np.unique(label)) <= {0, 255} | {c + 1 for c in d["image_labels"]}


def test_ir_label_step_moves_its_thresholds_to_the_cams(irnet_cfg, tmp_path):
    """CAM.FG_FRACTION 0.25 on CAM files written here (6 shapes_tiny_train images, each present
    class a smooth ramp over the image): the operating point is the score a quarter of all pixels
    exceed (numpy's 0.75 quantile of the per-pixel max, to the histogram's bin), and the step uses
    the paper's 0.30 / 0.05 raised to ln(t*) / ln(0.15)."""
    cfg = irnet_cfg
    cfg.merge_from_list(
        ["DATASETS.TRAIN", ("shapes_tiny_train",), "DATALOADER.NUM_WORKERS", 0]
        + ["MODEL.IRNET.PIPELINE.GT_DATASET", "shapes_tiny_train"]
        + ["MODEL.IRNET.CAM.FG_FRACTION", 0.25]
    )
    cfg.OUTPUT_DIR = str(tmp_path)
    sync_num_classes(cfg)
    cfg.freeze()
    pipeline = IRNetPipeline(cfg)
    pipeline._dicts = pipeline.dicts[:6]
    maxima = []
    for i, d in enumerate(pipeline.dicts):
        h, w = d["height"], d["width"]
        ramp = torch.linspace(0, 1, h * w).reshape(h, w) ** (1 + i)  # flatter for larger i
        high_res = torch.stack([ramp.roll(k * 7, 1) for k in range(len(d["image_labels"]))])
        keys = torch.tensor(d["image_labels"])
        save_cams(pipeline.cam_path(d), {"keys": keys, "cam": high_res, "high_res": high_res})
        maxima.append(high_res.max(0)[0].flatten() if len(high_res) else torch.zeros(h * w))
    point = float(np.quantile(torch.cat(maxima).numpy(), 0.75))
    exponent = np.log(point) / np.log(0.15)
    report = STEPS["ir_label"](pipeline)
    assert pipeline.calibration()["operating_point"] == pytest.approx(point, abs=1e-3)
    assert report["fg_thresh"] == pytest.approx(0.30**exponent, rel=2e-3)
    assert report["bg_thresh"] == pytest.approx(0.05**exponent, rel=5e-3)
