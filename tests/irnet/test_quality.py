"""The CAM classifier's held-out scores (d2_instseg.irnet.quality.multilabel_scores), hand-computed."""
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
