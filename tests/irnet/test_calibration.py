"""IRNet's score thresholds moved to the CAMs at hand (d2_instseg/irnet/calibration.py), against
hand-computed values and numpy's quantile."""

import math

import numpy as np
import pytest
import torch

from d2_instseg.irnet.calibration import (
    HISTOGRAM_BINS,
    calibrated_thresholds,
    foreground_score_histogram,
    score_exceeded_by,
)

PAPER = {"fg": 0.30, "bg": 0.05, "sem": 0.25}


def test_histogram_takes_the_max_over_classes_and_counts_empty_images_as_background():
    """Two classes on a 1 x 3 image: per-pixel max (0.2, 0.9, 1.0) -> bins 200, 900, 999 (1.0 is
    the last bin's upper edge). No class present: all 5 pixels in bin 0."""
    cams = torch.tensor([[[0.2, 0.5, 1.0]], [[0.1, 0.9, 0.3]]])
    hist = foreground_score_histogram(cams, num_pixels=3)
    assert hist.sum() == 3 and hist[200] == hist[900] == hist[HISTOGRAM_BINS - 1] == 1
    empty = foreground_score_histogram(torch.zeros(0, 1, 5), num_pixels=5)
    assert empty[0] == 5 and empty.sum() == 5


def test_score_exceeded_by_hand():
    """One pixel per bin (uniform scores): a share f is above 1 - f. 80 pixels at 0.10 and 20 at
    0.90: 20% are above the top of the 0.10 bin, 0.101; half are above 0.100 + 0.001 * 50 / 80
    (50 of the bin's 80 pixels below it)."""
    uniform = np.ones(HISTOGRAM_BINS, np.int64)
    assert score_exceeded_by(uniform, 0.25) == pytest.approx(0.75)
    assert score_exceeded_by(uniform, 0.6) == pytest.approx(0.4)
    two = np.zeros(HISTOGRAM_BINS, np.int64)
    two[100], two[900] = 80, 20
    assert score_exceeded_by(two, 0.2) == pytest.approx(0.101)
    assert score_exceeded_by(two, 0.5) == pytest.approx(0.1 + 0.001 * 50 / 80)
    with pytest.raises(ValueError, match="FG_FRACTION"):
        score_exceeded_by(uniform, 1.0)


def test_score_exceeded_by_agrees_with_numpy_quantile():
    """Scores drawn from a Beta(2, 5) (flat, low CAMs): the histogram's answer is numpy's
    (1 - f) quantile to the bin width."""
    torch.manual_seed(0)
    scores = torch.distributions.Beta(2.0, 5.0).sample((1, 200, 300))
    hist = foreground_score_histogram(scores, scores.numel())
    for f in (0.05, 0.23, 0.5):
        expected = float(np.quantile(scores.numpy(), 1.0 - f))
        assert score_exceeded_by(hist, f) == pytest.approx(expected, abs=1.0 / HISTOGRAM_BINS)


def test_calibrated_thresholds_by_hand():
    """CAMs whose operating point is the paper's 0.15 keep the paper's thresholds (the rule fed
    the paper's CAM statistic returns the paper's values). At 0.15^(1/2) = 0.387 the exponent is
    1/2: 0.30 -> 0.5477, 0.05 -> 0.2236, 0.25 -> 0.5, and 0.15 itself -> 0.387."""
    assert calibrated_thresholds(0.15, 0.15, PAPER) == pytest.approx(PAPER)
    out = calibrated_thresholds(math.sqrt(0.15), 0.15, dict(PAPER, ref=0.15))
    assert out == pytest.approx(
        {"fg": 0.5477226, "bg": 0.2236068, "sem": 0.5, "ref": math.sqrt(0.15)}
    )
    # a sharper CAM (operating point below the paper's) lowers every threshold, order kept
    low = calibrated_thresholds(0.05, 0.15, PAPER)
    assert low["bg"] < low["sem"] < low["fg"] < PAPER["fg"]
    with pytest.raises(ValueError, match="operating point"):
        calibrated_thresholds(1.0, 0.15, PAPER)
