"""IRNet losses against hand computations."""

import math

import torch

from d2_instseg.modeling.irnet.losses import boundary_loss, displacement_loss


def _masks(*bits):
    return [torch.tensor(b, dtype=torch.bool).view(1, 4, 1, 1) for b in bits]


def test_boundary_loss_hand_values():
    """a = [0.7, 0.5, 0.5, 0.1]; bg-pos = pair 0, fg-pos = pair 1, neg = pairs 2 and 3.
    L_pos = (-ln 0.7)/2 + (-ln 0.5)/2 = (0.356675 + 0.693147)/2 = 0.524911
    L_neg = (-ln 0.5 - ln 0.9)/2 = (0.693147 + 0.105361)/2 = 0.399254
    L_B = (L_pos + L_neg)/2 = 0.462082 (the 1e-5 terms move it by < 1e-4)."""
    aff = torch.tensor([0.7, 0.5, 0.5, 0.1]).view(1, 4, 1, 1)
    bg, fg, neg = _masks([1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1])
    out = boundary_loss(aff, bg, fg, neg)
    assert math.isclose(out["boundary_pos"].item(), 0.524911, abs_tol=1e-4)
    assert math.isclose(out["boundary_neg"].item(), 0.399254, abs_tol=1e-4)
    assert math.isclose(out["loss_boundary"].item(), 0.462082, abs_tol=1e-4)


def test_boundary_loss_empty_sets_are_zero_not_nan():
    """No pairs at all: every mean is 0 / (0 + 1e-5) = 0."""
    aff = torch.full((1, 4, 1, 1), 0.5)
    empty = torch.zeros(1, 4, 1, 1, dtype=torch.bool)
    assert boundary_loss(aff, empty, empty, empty)["loss_boundary"].item() == 0.0


def test_displacement_loss_hand_values():
    """r=2, 2x3 map, source (0,1) with D=(0,0).
    Partners and delta_hat = D_i - D_j vs delta = x_j - x_i:
    (0,1) -> (0,2), D=(0,-1):  delta_hat=(0,1)   delta=(0,1)   |err|_1 = 0
    (1,-1) -> (1,0), D=(-1,1): delta_hat=(1,-1)  delta=(1,-1)  0
    (1,0) -> (1,1), D=(0,0):   delta_hat=(0,0)   delta=(1,0)   1
    (1,1) -> (1,2), D=(2,0):   delta_hat=(-2,0)                |delta_hat|_1 = 2 (background pair)
    fg-pos = first three: L_fg = (0+0+1)/(2*3) = 1/6; bg-pos = last: L_bg = 2/(2*1) = 1;
    total = (1/6 + 1)/2 = 7/12."""
    disp = torch.zeros(1, 2, 2, 3)
    disp[0, :, 0, 2] = torch.tensor([0.0, -1.0])
    disp[0, :, 1, 0] = torch.tensor([-1.0, 1.0])
    disp[0, :, 1, 2] = torch.tensor([2.0, 0.0])
    bg, fg = _masks([0, 0, 0, 1], [1, 1, 1, 0])
    out = displacement_loss(disp, bg, fg, 2)
    assert math.isclose(out["displacement_fg"].item(), 1 / 6, abs_tol=1e-5)
    assert math.isclose(out["displacement_bg"].item(), 1.0, abs_tol=1e-5)
    assert math.isclose(out["loss_displacement"].item(), 7 / 12, abs_tol=1e-5)


def test_displacement_loss_zero_for_exact_centroid_field():
    """D_i = c - x_i for every pixel of one instance: every fg pair has D_i - D_j = x_j - x_i."""
    ys, xs = torch.meshgrid(torch.arange(6.0), torch.arange(9.0), indexing="ij")
    disp = torch.stack([3.0 - ys, 4.0 - xs])[None]
    fg = torch.ones(1, 12, 4, 5, dtype=torch.bool)
    out = displacement_loss(disp, torch.zeros_like(fg), fg, 3)
    assert out["loss_displacement"].item() < 1e-6
