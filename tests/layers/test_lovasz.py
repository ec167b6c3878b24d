"""lovasz_hinge / lovasz_grad against values worked out by hand (see each docstring)."""

import pytest
import torch

from d2_instseg.layers import lovasz_grad, lovasz_hinge


def test_perfect_prediction_is_zero():
    """logits (2, -3, 1.5), labels (1, 0, 1): hinge errors 1 - logit*sign = (-1, -2, -0.5), all
    negative, so relu(errors) = 0 and the loss is 0."""
    loss = lovasz_hinge(torch.tensor([2.0, -3.0, 1.5]), torch.tensor([1, 0, 1]))
    assert loss.item() == pytest.approx(0.0)


def test_all_wrong_with_ties():
    """logits (-1, 1), labels (1, 0): both errors are 2 (a tie). Order (fg, bg): gts=1,
    intersection (0, 0), union (1, 2), jaccard (1, 1), weights (1, 0) -> 2*1 = 2. Order (bg, fg):
    intersection (1, 0), union (2, 2), jaccard (0.5, 1), weights (0.5, 0.5) -> 2. Either way 2."""
    assert lovasz_hinge(torch.tensor([-1.0, 1.0]), torch.tensor([1, 0])).item() == pytest.approx(2)
    assert lovasz_hinge(torch.tensor([1.0, -1.0]), torch.tensor([0, 1])).item() == pytest.approx(2)


def test_zero_logits_give_one():
    """All logits 0: every error is 1; the weights telescope to jaccard(all) = 1 - 0/union = 1."""
    loss = lovasz_hinge(torch.zeros(5), torch.tensor([1, 0, 0, 1, 1]))
    assert loss.item() == pytest.approx(1.0)


def test_empty_foreground():
    """labels all 0, logits (0.5, -2, 0.2): errors 1 + logit = (1.5, -1, 1.2). gts = 0 so the
    intersection is 0 and jaccard is 1 at every prefix: weights (1, 0, 0) on the sorted errors
    (1.5, 1.2, -1) -> loss = relu(1 + max logit) = 1.5."""
    loss = lovasz_hinge(torch.tensor([0.5, -2.0, 0.2]), torch.tensor([0, 0, 0]))
    assert loss.item() == pytest.approx(1.5)


def test_mixed_case_value_and_gradient():
    """logits (0.5, -0.5, 0.2, -1), labels (1, 0, 0, 1): errors (0.5, 0.5, 1.2, 2). Sorted
    (2:fg, 1.2:bg, 0.5:fg, 0.5:bg): gts=2, intersection (1, 1, 0, 0), union (2, 3, 3, 4), jaccard
    (1/2, 2/3, 1, 1), weights (1/2, 1/6, 1/3, 0): loss = 1 + 0.2 + 1/6 = 1.366667 (the other tie
    order gives weights (1/2, 1/6, 1/12, 1/4) and the same loss). d loss / d logit_3 =
    -sign * weight = -1/2; d loss / d logit_2 = +1 * 1/6."""
    logits = torch.tensor([0.5, -0.5, 0.2, -1.0], requires_grad=True)
    loss = lovasz_hinge(logits, torch.tensor([True, False, False, True]))
    loss.backward()
    assert loss.item() == pytest.approx(1.0 + 0.2 + 1.0 / 6.0)
    assert logits.grad[3].item() == pytest.approx(-0.5)
    assert logits.grad[2].item() == pytest.approx(1.0 / 6.0)


def test_bool_labels_and_rows():
    """(K, P) input scores each row alone: the perfect row of the first test (0) and the
    empty-foreground row of the fourth (1.5); bool labels behave like 0/1."""
    logits = torch.tensor([[2.0, -3.0, 1.5], [0.5, -2.0, 0.2]])
    labels = torch.tensor([[True, False, True], [False, False, False]])
    assert torch.allclose(lovasz_hinge(logits, labels), torch.tensor([0.0, 1.5]))


def test_empty_input_and_grad_helper():
    """P = 0 gives 0 (with a graph); lovasz_grad of sorted labels (1, 0) is (1, 0): intersection
    (0, 0), union (1, 2), jaccard (1, 1)."""
    logits = torch.zeros(0, requires_grad=True)
    loss = lovasz_hinge(logits, torch.zeros(0))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(lovasz_grad(torch.tensor([True, False])), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError):
        lovasz_hinge(torch.zeros(3), torch.zeros(4))
