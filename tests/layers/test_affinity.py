"""Ideal affinity map and affinity loss of CPNet, against values worked out by hand."""

import math

import pytest
import torch

from d2_instseg.layers import affinity_loss, ideal_affinity_map

LN2, LN3 = math.log(2.0), math.log(3.0)


def test_ideal_affinity_map_by_hand_with_ignore():
    """Labels [[0, 1], [255, 255]] with C = 2 -> classes [0, 1, 2, 2] (ignore = own class 2):
    A[i, j] = 1 iff same class; the two ignore pixels are one group, unrelated to labelled ones."""
    labels = torch.tensor([[[0, 1], [255, 255]]])
    expected = torch.tensor(
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.float32
    )
    a = ideal_affinity_map(labels, num_classes=2)
    assert a.dtype == torch.float32 and a.shape == (1, 4, 4)
    assert torch.equal(a[0], expected)


def test_ideal_affinity_map_batch_and_custom_ignore():
    """Second image [[1, 1], [0, 9]] with ignore_label 9 -> classes [1, 1, 0, 3]."""
    labels = torch.tensor([[[0, 0], [0, 0]], [[1, 1], [0, 9]]])
    a = ideal_affinity_map(labels, num_classes=3, ignore_label=9)
    assert torch.equal(a[0], torch.ones(4, 4))
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]).float()
    assert torch.equal(a[1], expected)


def test_ideal_affinity_map_rejects_wrong_rank():
    with pytest.raises(ValueError):
        ideal_affinity_map(torch.zeros(4, 4, dtype=torch.long), num_classes=2)


# Labels [0, 0, 1, 1] (N = 4): A has two 2x2 blocks of ones.
A4 = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.float32)
P4 = torch.tensor(
    [
        [0.9, 0.8, 0.2, 0.1],
        [0.6, 0.5, 0.5, 0.4],
        [0.3, 0.2, 0.7, 0.6],
        [0.1, 0.1, 0.9, 0.8],
    ]
)


def hand_terms():
    """Per-entry and per-row values of P4 against A4, written out by hand.

    unary: -log P where A = 1, -log(1 - P) where A = 0, averaged over the 16 entries.
    recall_i = P[i, j*] for the single other same-class j*: .8, .6, .6, .9.
    precision_i = that value / row sum: .8/2.0, .6/2.0, .6/1.8, .9/1.9.
    specificity_i = mean of (1 - P) over the two other-class entries:
        (.8 + .9)/2, (.5 + .6)/2, (.7 + .8)/2, (.9 + .9)/2.
    """
    unary_entries = [
        [0.9, 0.8, 0.8, 0.9],
        [0.6, 0.5, 0.5, 0.6],
        [0.7, 0.8, 0.7, 0.6],
        [0.9, 0.9, 0.9, 0.8],
    ]  # probability given to the correct answer
    unary = -sum(math.log(p) for row in unary_entries for p in row) / 16
    recall = [0.8, 0.6, 0.6, 0.9]
    precision = [0.8 / 2.0, 0.6 / 2.0, 0.6 / 1.8, 0.9 / 1.9]
    spec = [0.85, 0.55, 0.75, 0.9]

    def mean_nll(values):
        return -sum(math.log(v) for v in values) / len(values)

    return unary, mean_nll(recall) + mean_nll(precision) + mean_nll(spec)


def test_affinity_loss_by_hand():
    unary, global_term = hand_terms()
    loss = affinity_loss(P4[None], A4[None])
    assert loss.item() == pytest.approx(unary + global_term, rel=1e-5)
    weighted = affinity_loss(P4[None], A4[None], unary_weight=2.0, global_weight=0.5)
    assert weighted.item() == pytest.approx(2.0 * unary + 0.5 * global_term, rel=1e-5)
    # A batch of two identical items has the same mean.
    batched = affinity_loss(P4[None].repeat(2, 1, 1), A4[None].repeat(2, 1, 1))
    assert batched.item() == pytest.approx(unary + global_term, rel=1e-5)


def test_affinity_loss_perfect_prior_keeps_precision_term():
    """P = A: unary 0, recall 1, specificity 1, but precision = sum(V) / sum(P) = 1 / 2 per row
    because the denominator counts the diagonal (authors' code): loss = -log(1/2) = ln 2."""
    loss = affinity_loss(A4[None], A4[None])
    assert loss.item() == pytest.approx(LN2, rel=1e-5)


def test_affinity_loss_singleton_row_costs_clamped_constant():
    """Labels [0, 0, 1], P = 0.5 everywhere. Row 2 has no other same-class position: sum(V) = 0 ->
    denominator 1 -> recall 0, and precision 0 / 1.5 = 0; each -log 0 is clamped to 100 (BCE).
    Rows 0, 1: recall .5, precision .5 / 1.5 = 1/3. Specificity is .5 on every row. So
    loss = ln2 + (2 ln2 + 100) / 3 + (2 ln3 + 100) / 3 + ln2."""
    a = ideal_affinity_map(torch.tensor([[[0, 0, 1]]]), num_classes=2)
    p = torch.full((1, 3, 3), 0.5, requires_grad=True)
    loss = affinity_loss(p, a)
    expected = LN2 + (2 * LN2 + 100) / 3 + (2 * LN3 + 100) / 3 + LN2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert torch.isfinite(p.grad).all()


def test_affinity_loss_float32_under_autocast_and_shape_check():
    p = P4[None].to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = affinity_loss(p, A4[None])
    assert loss.dtype == torch.float32
    with pytest.raises(ValueError):
        affinity_loss(P4[None], A4[None, :3])
