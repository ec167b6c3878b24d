"""CenterNet building blocks against hand-worked values (formulas of CenterNet's ``image.py`` and
``losses.py:_neg_loss``, see METHODS.md section 2.2)."""

import math

import pytest
import torch

from d2_instseg.layers import (
    centernet_focal_loss,
    draw_gaussians,
    gaussian_radius,
    integer_gaussian_radius,
)


def test_gaussian_radius_square_box_by_hand():
    """h = w = 10, m = 0.7:
    r1 = (20 + sqrt(400 - 4 * 100 * 0.3 / 1.7)) / 2 = (20 + 18.1497) / 2 = 19.0749
    r2 = (40 + sqrt(1600 - 16 * 30)) / 2 = (40 + 33.4664) / 2 = 36.7332
    r3 = (-28 + sqrt(784 + 4 * 2.8 * 30)) / 2 = (-28 + 33.4664) / 2 = 2.7332   (CenterNet's root)
    radius = min = 2.7332. (The correct root of r3's quadratic would be 5.4664 / 5.6 = 0.976.)"""
    assert gaussian_radius((10, 10)) == pytest.approx(2.7332, abs=1e-4)


def test_gaussian_radius_vectorised_matches_hand_values():
    """(h, w) = (4, 20): r3 = (-33.6 + sqrt(1128.96 + 4 * 2.8 * 24)) / 2 = (-33.6 + 37.3866) / 2
    = 1.8933; r1 = (24 + sqrt(576 - 56.47)) / 2 = 23.40; r2 = (48 + sqrt(2304 - 384)) / 2 = 45.91.
    The tensor path gives one radius per row, the same as the scalar path."""
    radii = gaussian_radius(torch.tensor([[10.0, 10.0], [4.0, 20.0]]))
    assert radii.shape == (2,)
    assert radii.tolist() == pytest.approx([2.7332, 1.8933], abs=1e-4)
    assert gaussian_radius((4, 20)) == pytest.approx(1.8933, abs=1e-4)


def test_gaussian_radius_min_overlap():
    """h = w = 10, m = 0.5: r3 = (-20 + sqrt(400 + 4 * 2 * 50)) / 2 = (-20 + 28.2843) / 2 = 4.1421;
    r1 = (20 + sqrt(400 - 4 * 100 * 0.5 / 1.5)) / 2 = 17.0711; r2 = (40 + sqrt(1600 - 800)) / 2 =
    34.14."""
    assert gaussian_radius((10, 10), min_overlap=0.5) == pytest.approx(4.1421, abs=1e-4)


def test_integer_radius_ceils_then_truncates():
    """(h, w) = (10.2, 9.5) -> ceil (11, 10): r3 = (-29.4 + sqrt(864.36 + 4 * 2.8 * 33)) / 2
    = (-29.4 + 35.1278) / 2 = 2.864 -> int 2. A 1 x 1 box: r3 = (-2.8 + sqrt(7.84 + 3.36)) / 2 =
    0.273 -> 0. A 0-size box gives 0."""
    r = integer_gaussian_radius(torch.tensor([[10.2, 9.5], [1.0, 1.0], [0.0, 0.0]]))
    assert r.dtype == torch.long
    assert r.tolist() == [2, 0, 0]


def test_draw_gaussians_values_by_hand():
    """r = 1: sigma = 3 / 6 = 0.5, value exp(-(dx^2 + dy^2) / 0.5): 1 at the center, exp(-2) =
    0.135335 at the 4 neighbours, exp(-4) = 0.018316 at the diagonals, 0 outside the 3 x 3 window. r
    = 0: a single 1. Objects of other images / classes land in their own (image, class) planes."""
    hm = draw_gaussians(
        (2, 2, 6, 7),
        batch_idx=torch.tensor([0, 1]),
        classes=torch.tensor([1, 0]),
        centers=torch.tensor([[3, 2], [5, 4]]),  # (x, y)
        radii=torch.tensor([1, 0]),
    )
    e2, e4 = math.exp(-2), math.exp(-4)
    expected = torch.zeros(2, 2, 6, 7)
    expected[0, 1, 1:4, 2:5] = torch.tensor([[e4, e2, e4], [e2, 1.0, e2], [e4, e2, e4]])
    expected[1, 0, 4, 5] = 1.0
    torch.testing.assert_close(hm, expected, atol=1e-6, rtol=0)


def test_draw_gaussians_overlap_takes_max_and_clips_at_border():
    """Two r = 1 peaks of one class at x = 0 and x = 1 (y = 0): pixel (0, 0) = max(1, exp(-2)) = 1,
    pixel (0, 1) = 1, pixel (0, 2) = max(0, exp(-2)) = exp(-2); row 1: exp(-2)/exp(-4) maxima
    -> [exp(-2), exp(-2), exp(-4)]. Nothing wraps around the left border."""
    hm = draw_gaussians(
        (1, 1, 3, 4),
        batch_idx=torch.tensor([0, 0]),
        classes=torch.tensor([0, 0]),
        centers=torch.tensor([[0, 0], [1, 0]]),
        radii=torch.tensor([1, 1]),
    )
    e2, e4 = math.exp(-2), math.exp(-4)
    expected = torch.tensor([[1.0, 1.0, e2, 0.0], [e2, e2, e4, 0.0], [0.0, 0.0, 0.0, 0.0]]).view(
        1, 1, 3, 4
    )
    torch.testing.assert_close(hm, expected, atol=1e-6, rtol=0)


def test_draw_gaussians_no_objects():
    hm = draw_gaussians(
        (2, 3, 4, 5),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0, 2, dtype=torch.long),
        torch.zeros(0, dtype=torch.long),
    )
    assert hm.shape == (2, 3, 4, 5) and hm.abs().sum() == 0


def test_focal_loss_by_hand():
    """gt = [1, 0.5], logits = [0, 0] -> p = 0.5 at both:
    positive: -(1 - 0.5)^2 log 0.5 = 0.25 * 0.693147 = 0.173287;
    negative: -(1 - 0.5)^4 * 0.5^2 * log(1 - 0.5) = 0.0625 * 0.25 * 0.693147 = 0.010830;
    one positive -> loss = 0.184117."""
    logits = torch.zeros(1, 1, 1, 2)
    gt = torch.tensor([1.0, 0.5]).view(1, 1, 1, 2)
    assert centernet_focal_loss(logits, gt).item() == pytest.approx(0.184117, abs=1e-5)


def test_focal_loss_normalised_by_number_of_peaks():
    """Two positives with p = sigmoid(ln 3) = 0.75: each -(0.25)^2 log 0.75 = 0.0625 * 0.287682
    = 0.017980; one negative with gt 0, p = 0.5: -0.25 log 0.5 = 0.173287. Sum 0.209248 / 2 =
    0.104624."""
    logits = torch.tensor([math.log(3), math.log(3), 0.0]).view(1, 1, 1, 3)
    gt = torch.tensor([1.0, 1.0, 0.0]).view(1, 1, 1, 3)
    assert centernet_focal_loss(logits, gt).item() == pytest.approx(0.104624, abs=1e-5)


def test_focal_loss_without_peaks_is_the_negative_sum():
    """gt all 0, logits [0, ln 3] -> p = [0.5, 0.75]: -0.25 log 0.5 - 0.5625 log 0.25
    = 0.173287 + 0.779791 = 0.953078, not divided (no positives)."""
    logits = torch.tensor([0.0, math.log(3)]).view(1, 1, 2, 1)
    gt = torch.zeros(1, 1, 2, 1)
    assert centernet_focal_loss(logits, gt).item() == pytest.approx(0.953078, abs=1e-5)


def test_focal_loss_clamps_probabilities():
    """A confident wrong negative (logit 30, gt 0): p is clamped to 1 - 1e-4, so the loss is
    -(1 - 1e-4)^2 log(1e-4) = 0.9998 * 9.210340 = 9.208498, finite; a confident right positive
    (logit 30, gt 1) adds -(1e-4)^2 log(1 - 1e-4) ~ 1e-12. One positive -> 9.2085."""
    logits = torch.tensor([30.0, 30.0]).view(1, 1, 1, 2)
    gt = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2)
    loss = centernet_focal_loss(logits, gt)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(9.208498, abs=1e-3)


def test_focal_loss_gradient_by_hand():
    """All logits 0 (p = 1/2), one positive, the rest y = 0 except one y = 1/2; N_pos = 1.
    Positive: d/dx[-(1-p)^2 ln p] = p(1-p) [(1-p)^2 / -p + 2(1-p) ln p] = 1/4 (-1/2 + ln 1/2)
    = -0.298287. Negative with y = 0: d/dx[-p^2 ln(1-p)] = 1/4 (1/2 + ln 2) = +0.298287; with
    y = 1/2 the same times (1 - y)^4 = 1/16: +0.018643."""
    logits = torch.zeros(2, 3, 4, 4, requires_grad=True)
    gt = torch.zeros(2, 3, 4, 4)
    gt[0, 1, 2, 2] = 1.0
    gt[1, 0, 0, 3] = 0.5
    centernet_focal_loss(logits, gt).backward()
    grad = logits.grad
    assert grad[0, 1, 2, 2].item() == pytest.approx(-0.298287, abs=1e-6)
    assert grad[1, 0, 0, 3].item() == pytest.approx(0.298287 / 16, abs=1e-6)
    others = torch.ones_like(gt, dtype=torch.bool)
    others[0, 1, 2, 2] = others[1, 0, 0, 3] = False
    assert torch.allclose(grad[others], torch.full_like(grad[others], 0.298287), atol=1e-6)
