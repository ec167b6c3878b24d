"""phi and the Spatial Embeddings loss on constructed embeddings, answers worked out by hand."""

import math

import pytest
import torch
from detectron2.structures import BitMasks, Instances

from d2_instseg.modeling.spatial_embed import (
    SpatialEmbedLoss,
    coordinate_map,
    gaussian_phi,
    spatial_embed_image_loss,
)


def test_coordinate_map_pitch():
    """Pixel (row i, column j) sits at (x, y) = (j, i) / pixels_per_unit (2x3 map, 2 px/unit)."""
    xy = coordinate_map(2, 3, 2.0)
    assert torch.equal(xy[0], torch.tensor([[0.0, 0.5, 1.0], [0.0, 0.5, 1.0]]))
    assert torch.equal(xy[1], torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]))


def test_phi_circular_and_elliptical():
    """e - C = (0.5, 0.5). Circular s = ln(2)/10: exp(10 s) = 2, sum = 0.25*2 + 0.25*2 = 1 -> e^-1.
    Elliptical s = (ln 2, ln 4)/10: 0.25*2 + 0.25*4 = 1.5 -> e^-1.5. At the center phi = 1."""
    emb = torch.tensor([[0.5, 0.0], [0.5, 0.0]])  # (2, N=2): pixel 0 at (0.5, 0.5), pixel 1 at 0
    center = torch.zeros(1, 2)
    circ = gaussian_phi(emb, center, torch.tensor([[math.log(2) / 10]]))
    ell = gaussian_phi(emb, center, torch.tensor([[math.log(2) / 10, math.log(4) / 10]]))
    assert circ[0].tolist() == pytest.approx([math.exp(-1), 1.0])
    assert ell[0].tolist() == pytest.approx([math.exp(-1.5), 1.0])


def _row_image():
    """A 1x4 image, 1 px per unit, so pixel x = 0, 1, 2, 3 (y = 0); instance = pixels {0, 1}."""
    coords = coordinate_map(1, 4, 1.0)
    masks = torch.tensor([[[True, True, False, False]]])
    return coords, masks


def test_loss_known_values():
    """Zero offsets (e = coords), sigma 0 (exp(0) = 1), centroid C = (0.5, 0):
    phi = exp(-(x - 0.5)^2) = (e^-1/4, e^-1/4, e^-9/4, e^-25/4). Lovasz on 2 phi - 1: fg errors
    2 - 2 e^-1/4 = 0.4424 (twice), bg errors 2 phi = 0.2108, 0.0039; sorted (fg, fg, bg, bg),
    gts = 2: intersection (1, 0, 0, 0), union (2, 2, 3, 4), weights (1/2, 1/2, 0, 0) ->
    inst = 2 - 2 e^-1/4. var = 0. Seed 0.5 on pixels 0..2 and 0 on pixel 3: bg 0.5^2 = 0.25,
    fg 10 * 2 * (0.5 - e^-1/4)^2, divided by N = 4."""
    coords, masks = _row_image()
    seed = torch.tensor([[[0.5, 0.5, 0.5, 0.0]]])
    terms = spatial_embed_image_loss(
        coords.clone(), torch.zeros(1, 1, 4), seed, coords, masks, torch.tensor([0])
    )
    q = math.exp(-0.25)
    assert terms["instance"].item() == pytest.approx(2 - 2 * q, rel=1e-5)
    assert terms["variance"].item() == pytest.approx(0.0)
    assert terms["seed"].item() == pytest.approx((0.25 + 20 * (0.5 - q) ** 2) / 4, rel=1e-5)


def test_loss_mean_embedding_center_and_variance():
    """to_center=False: embeddings x = (0.2, 1.0, 2, 3) -> C = mean over the instance = (0.6, 0);
    sigma (0, 0.2) on the instance has mean 0.1 (exp(10 * 0.1) = e) and variance
    ((0.1)^2 + (0.1)^2) / 2 = 0.01. phi(pixel 0) = phi(pixel 1) = exp(-0.16 e); phi(pixel 2) =
    exp(-1.96 e) ~ 0.005 gives bg error 2 phi < fg error, so the weights are (1/2, 1/2, 0, 0) and
    inst = 2 - 2 exp(-0.16 e). With to_center=True the center is (0.5, 0) instead:
    inst = (2 - 2 phi0) / 2 + (2 - 2 phi1) / 2 = 2 - exp(-0.09 e) - exp(-0.25 e)."""
    coords, masks = _row_image()
    emb = torch.tensor([[[0.2, 1.0, 2.0, 3.0]], [[0.0, 0.0, 0.0, 0.0]]])
    sigma = torch.tensor([[[0.0, 0.2, 0.0, 0.0]]])
    seed = torch.zeros(1, 1, 4)
    kwargs = dict(inst_masks=masks, inst_classes=torch.tensor([0]))
    mean_emb = spatial_embed_image_loss(emb, sigma, seed, coords, to_center=False, **kwargs)
    centroid = spatial_embed_image_loss(emb, sigma, seed, coords, to_center=True, **kwargs)
    e = math.e
    assert mean_emb["variance"].item() == pytest.approx(0.01, rel=1e-5)
    assert mean_emb["instance"].item() == pytest.approx(2 - 2 * math.exp(-0.16 * e), rel=1e-5)
    expected = 2 - math.exp(-0.09 * e) - math.exp(-0.25 * e)
    assert centroid["instance"].item() == pytest.approx(expected, rel=1e-5)


def test_perfect_embedding_gives_zero_loss():
    """Every instance pixel embedded at its centroid, background far away (+100 units), constant
    sigma, seed = 1 inside and 0 outside: phi = 1 inside and 0 outside, so the Lovasz errors are
    all 0, the variance is 0 and seed = phi.detach() -> every term is 0."""
    coords = coordinate_map(4, 4, 1.0)
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[0, :2, :2] = True
    masks[1, 2:, 1:] = True
    emb = coords.clone() + 100.0
    for k in range(2):
        emb[:, masks[k]] = coords[:, masks[k]].mean(dim=1, keepdim=True)
    seed = torch.zeros(2, 4, 4)
    seed[0][masks[0]] = 1.0
    seed[1][masks[1]] = 1.0
    terms = spatial_embed_image_loss(
        emb, torch.full((1, 4, 4), 0.3), seed, coords, masks, torch.tensor([0, 1])
    )
    for name, value in terms.items():
        assert value.item() == pytest.approx(0.0, abs=1e-6), name


def test_one_vs_all_seed_and_empty_image():
    """Two classes, the instance of the 1x4 row is class 1. Seed map 0 (class 0) = 0.3 everywhere is
    all background: 4 * 0.09 = 0.36. Seed map 1 = 0 on the background (0) and 1 inside, where
    phi = e^-1/4: 10 * 2 * (1 - e^-1/4)^2. Seed total / 4. Without instances only the background
    term remains: (4 * 0.09 + 2 * 1) / 4, and the other terms are 0 but keep a graph."""
    coords, masks = _row_image()
    seed = torch.tensor([[[0.3] * 4], [[1.0, 1.0, 0.0, 0.0]]])
    emb = coords.clone().requires_grad_(True)
    sigma = torch.zeros(1, 1, 4, requires_grad=True)
    terms = spatial_embed_image_loss(emb, sigma, seed, coords, masks, torch.tensor([1]))
    q = math.exp(-0.25)
    assert terms["seed"].item() == pytest.approx((0.36 + 20 * (1 - q) ** 2) / 4, rel=1e-5)
    empty = spatial_embed_image_loss(
        emb, sigma, seed, coords, masks[:0], torch.zeros(0, dtype=torch.int64)
    )
    assert empty["seed"].item() == pytest.approx((0.36 + 2.0) / 4)
    assert empty["instance"].item() == 0.0 and empty["variance"].item() == 0.0
    sum(empty.values()).backward()
    assert emb.grad is not None and sigma.grad is not None


def test_module_weights_and_batch_mean():
    """SpatialEmbedLoss = per-term weights times the mean over images. Image 1 is the known case of
    test_loss_known_values (inst 2 - 2 e^-1/4); image 2 has no instance and seed 0 (all terms 0).
    With w_inst = 1: loss_instance = (2 - 2 e^-1/4) / 2; the seed term scales with w_seed = 3."""
    coords, masks = _row_image()
    target = Instances((1, 4), gt_masks=BitMasks(masks), gt_classes=torch.tensor([0]))
    empty = Instances((1, 4), gt_masks=BitMasks(masks[:0]), gt_classes=torch.zeros(0).long())
    seed = torch.tensor([[[0.5, 0.5, 0.5, 0.0]]])
    loss = SpatialEmbedLoss(seed_weight=3.0)
    out = loss(
        [coords, coords],
        [torch.zeros(1, 1, 4)] * 2,
        [seed, torch.zeros(1, 1, 4)],
        [coords, coords],
        [target, empty],
    )
    q = math.exp(-0.25)
    assert out["loss_instance"].item() == pytest.approx((2 - 2 * q) / 2, rel=1e-5)
    assert out["loss_seed"].item() == pytest.approx(3 * (0.25 + 20 * (0.5 - q) ** 2) / 4 / 2)
