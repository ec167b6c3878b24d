"""CAM classifier scores (irnet.quality.multilabel_scores), hand-computed; the overlay grid."""

import numpy as np
import pytest

from d2_instseg.irnet.quality import multilabel_scores


def test_multilabel_scores_hand_computed():
    """4 images, 3 classes.
    class 0: logits 0.9, 0.8, 0.3, 0.1 with labels 1, 0, 1, 0: positives at ranks 1 and 3,
      AP = (1/1 + 2/3) / 2 = 5/6; all logits > 0, so 2 of 4 decisions right.
    class 1: no positive (left out of the mean AP); logits -1, -2, 0.5, -0.5: 3 of 4 right.
    class 2: every image positive: AP = 1; logits -1, 2, 0.5, -3: 2 of 4 right.
    mAP = (5/6 + 1) / 2 = 91.67%; accuracy 7 / 12 = 58.33%;
    constant answers: class 0 prior 1/2 -> 1/2, class 1 -> 1, class 2 -> 1: mean 5/6 = 83.33%."""
    logits = np.array([[0.9, -1.0, -1.0], [0.8, -2.0, 2.0], [0.3, 0.5, 0.5], [0.1, -0.5, -3.0]])
    labels = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]])
    scores = multilabel_scores(logits, labels)
    assert scores["cls_mAP"] == pytest.approx(100 * 11 / 12)
    assert scores["cls_acc"] == pytest.approx(100 * 7 / 12)
    assert scores["cls_acc_constant"] == pytest.approx(100 * 5 / 6)


def test_multilabel_scores_perfect_and_shape_error():
    labels = np.array([[1, 0], [0, 1], [1, 1]])
    scores = multilabel_scores(np.where(labels > 0, 3.0, -3.0), labels)
    assert scores["cls_mAP"] == 100.0 and scores["cls_acc"] == 100.0
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(3, 3\)"):
        multilabel_scores(np.zeros((3, 2)), np.zeros((3, 3)))


def test_overlay_grid_rows_and_drawn_mask(tmp_path):
    """A 100x200 grey image with one 40x40 square instance, drawn next to itself as ground truth at
    height 50: a (50, 200, 3) grid; pixels inside the square change, a far corner does not. The
    ground truth also names a semantic label PNG (as VOC's dicts do) whose far corner is class 1,
    and the metadata has no ``stuff_classes``: only instances are drawn, so that corner stays grey
    (drawing the label map needed ``stuff_classes`` and crashed the IRNet synthesize step)."""
    import cv2
    import pycocotools.mask as mask_util
    from detectron2.data import MetadataCatalog
    from detectron2.structures import BoxMode

    from d2_instseg.irnet.visualize import overlay_grid

    image_path = str(tmp_path / "img.png")
    cv2.imwrite(image_path, np.full((100, 200, 3), 128, np.uint8))
    mask = np.zeros((100, 200), np.uint8)
    mask[30:70, 80:120] = 1
    rle = mask_util.encode(np.asfortranarray(mask))
    ann = {"bbox": [80, 30, 40, 40], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0,
           "segmentation": rle}  # fmt: skip
    d = {"file_name": image_path, "height": 100, "width": 200, "annotations": [ann]}
    label = np.zeros((100, 200), np.uint8)
    label[:10, :10] = 1
    cv2.imwrite(str(tmp_path / "label.png"), label)
    gt = dict(d, sem_seg_file_name=str(tmp_path / "label.png"))
    meta = MetadataCatalog.get("overlay_grid_test").set(thing_classes=["square"])
    out = str(tmp_path / "grid.png")
    grid = overlay_grid([(d, gt)], meta, out, height=50)
    assert grid.shape == (50, 200, 3) and cv2.imread(out).shape == (50, 200, 3)
    for left in (0, 100):  # pseudo tile, then ground-truth tile (each 50 x 100)
        assert np.abs(grid[25, left + 50].astype(int) - 128).max() > 10  # inside the square
        assert np.abs(grid[2, left + 2].astype(int) - 128).max() <= 2  # far corner
    with pytest.raises(ValueError, match="grid.png"):
        overlay_grid([], meta, out)
