"""Property-based tests of the shared layers: CenterNet gaussians and focal loss, Lovasz hinge,
CPNet's ideal affinity map and affinity loss. Random tensors come from a hypothesis-drawn seed."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from d2_instseg.layers import (
    affinity_loss,
    centernet_focal_loss,
    draw_gaussians,
    ideal_affinity_map,
    lovasz_hinge,
)

SEEDS = st.integers(0, 2**31 - 1)

pytestmark = pytest.mark.usefixtures("one_thread")


@st.composite
def gaussian_objects(draw):
    """(N, C, H, W) and K objects: image, class, integer center inside the map, radius 0..5."""
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    k = draw(st.integers(0, 6))
    objects = [
        (
            draw(st.integers(0, n - 1)),
            draw(st.integers(0, c - 1)),
            draw(st.integers(0, w - 1)),
            draw(st.integers(0, h - 1)),
            draw(st.integers(0, 5)),
        )
        for _ in range(k)
    ]
    return (n, c, h, w), torch.tensor(objects, dtype=torch.long).view(-1, 5)


@settings(max_examples=100)
@given(gaussian_objects())
def test_gaussian_peaks_are_one_at_centers_and_zero_outside_windows(case):
    """Values in [0, 1]; exactly 1 at each object's center and nowhere else (a neighbour at
    distance >= 1 gets exp(-1 / (2 sigma^2)) < 1); 0 outside the (2r + 1)^2 windows of the
    objects of that image and class; no object -> all zero."""
    shape, obj = case
    b, c, cx, cy, r = obj.unbind(1)
    heat = draw_gaussians(shape, b, c, torch.stack([cx, cy], 1), r)
    assert heat.shape == shape
    assert ((heat >= 0) & (heat <= 1)).all()
    ones = torch.zeros(shape, dtype=torch.bool)
    ones[b, c, cy, cx] = True
    assert torch.equal(heat == 1, ones)
    n, nc, h, w = shape
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    window = ((ys - cy.view(-1, 1, 1)).abs() <= r.view(-1, 1, 1)) & (
        (xs - cx.view(-1, 1, 1)).abs() <= r.view(-1, 1, 1)
    )  # (K, H, W)
    covered = torch.zeros(shape, dtype=torch.bool)
    for k in range(len(obj)):
        covered[b[k], c[k]] |= window[k]
    assert (heat[~covered] == 0).all()


@settings(max_examples=80)
@given(gaussian_objects(), SEEDS, st.floats(0.1, 30.0))
def test_focal_loss_finite_nonnegative_and_near_zero_when_perfect(case, seed, scale):
    """For any logits (up to +-30, saturating the sigmoid) the loss is finite and >= 0; logits
    +20 at the centers and -20 elsewhere (p clamped to [1e-4, 1 - 1e-4]) cost < 1e-6."""
    shape, obj = case
    b, c, cx, cy, r = obj.unbind(1)
    heat = draw_gaussians(shape, b, c, torch.stack([cx, cy], 1), r)
    g = torch.Generator().manual_seed(seed)
    logits = (torch.rand(shape, generator=g) * 2 - 1) * scale
    loss = centernet_focal_loss(logits, heat)
    assert torch.isfinite(loss) and loss >= 0
    perfect = torch.where(heat == 1, torch.tensor(20.0), torch.tensor(-20.0))
    assert centernet_focal_loss(perfect, heat) < 1e-6


@settings(max_examples=100)
@given(st.integers(1, 4), st.integers(1, 60), SEEDS, st.floats(0.0, 10.0), st.floats(1.0, 5.0))
def test_lovasz_hinge_bounds_and_zero_at_perfect_margin(rows, pixels, seed, scale, margin):
    """The Lovasz weights are >= 0 and sum to 1, so each row's loss lies between the smallest and
    the largest hinge error relu(1 - logit * sign) (hence >= 0); a prediction with margin >= 1 on
    the right side of every pixel costs exactly 0; a (K, P) call equals K single-row calls."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.rand(rows, pixels, generator=g) * 2 - 1) * scale
    labels = torch.rand(rows, pixels, generator=g) < 0.5
    loss = lovasz_hinge(logits, labels)
    errors = torch.relu(1 - logits * (2 * labels.float() - 1))
    assert loss.shape == (rows,)
    assert (loss >= errors.min(1).values - 1e-5).all()
    assert (loss <= errors.max(1).values + 1e-5).all()
    for i in range(rows):
        torch.testing.assert_close(lovasz_hinge(logits[i], labels[i]), loss[i])
    perfect = margin * (2 * labels.float() - 1)
    assert torch.equal(lovasz_hinge(perfect, labels), torch.zeros(rows))


@st.composite
def label_maps(draw):
    """(B, h, w) labels in {0..C-1, 255}, sometimes all one value (all background / all ignore)."""
    b, h, w, c = (draw(st.integers(1, 2)), draw(st.integers(1, 8)), draw(st.integers(1, 8)),
                  draw(st.integers(1, 4)))  # fmt: skip
    values = st.sampled_from(list(range(c)) + [255])
    if draw(st.booleans()):
        flat = [draw(values)] * (b * h * w)
    else:
        flat = draw(st.lists(values, min_size=b * h * w, max_size=b * h * w))
    return torch.tensor(flat).view(b, h, w), c


@settings(max_examples=100)
@given(label_maps())
def test_ideal_affinity_map_is_symmetric_binary_same_label_indicator(case):
    """A[b, i, j] = 1 exactly when positions i and j carry the same label (ignore included):
    symmetric, binary, ones on the diagonal."""
    labels, num_classes = case
    ideal = ideal_affinity_map(labels, num_classes, 255)
    flat = labels.flatten(1)
    n = flat.shape[1]
    assert ideal.shape == (labels.shape[0], n, n)
    assert torch.equal(ideal, ideal.transpose(1, 2))
    assert ((ideal == 0) | (ideal == 1)).all()
    assert torch.equal(ideal, (flat[:, :, None] == flat[:, None, :]).float())
    assert (ideal.diagonal(dim1=1, dim2=2) == 1).all()


@settings(max_examples=80)
@given(label_maps(), SEEDS, st.booleans())
def test_affinity_loss_finite_and_nonnegative(case, seed, saturated):
    """Any prior in [0, 1] (also exactly 0 / 1 everywhere) against any ideal map (all background,
    all ignore, one position per class) gives a finite loss >= 0."""
    labels, num_classes = case
    ideal = ideal_affinity_map(labels, num_classes, 255)
    prior = torch.rand(ideal.shape, generator=torch.Generator().manual_seed(seed))
    if saturated:
        prior = prior.round()
    loss = affinity_loss(prior, ideal)
    assert torch.isfinite(loss) and loss >= 0
