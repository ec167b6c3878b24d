"""Clustering on constructed seed / embedding / sigma maps whose instances are known."""

import math

import torch

from d2_instseg.modeling.spatial_embed import cluster_instances, coordinate_map

H, W = 20, 30


def _box(r0, r1, c0, c1):
    m = torch.zeros(H, W, dtype=torch.bool)
    m[r0:r1, c0:c1] = True
    return m


def _maps():
    """1 px per unit; every instance pixel is embedded at its instance's centroid; sigma 0 gives
    exp(10 s) = 1, so a proposal is {d^2 < ln 2} (d < 0.83 px) around the seed's embedding.
    Class 0: A (80 px, seed 0.95) and B (80 px, seed 0.97) touch along a column; C (9 px, seed
    0.99) is below MIN_PIXELS = 20; F (30 px, seed 0.93) is embedded 2 px from B's centroid with
    sigma -0.2 (exp(-2): radius sqrt(ln 2 * e^2) = 2.26 px), so its proposal is B's 80 px plus
    its own 30: only 30/110 unclustered -> rejected. Class 1: D (96 px, seed 0.92)."""
    coords = coordinate_map(H, W, 1.0)
    emb, sigma, seeds = coords.clone(), torch.zeros(1, H, W), torch.zeros(2, H, W)
    boxes = {"A": _box(2, 10, 2, 12), "B": _box(2, 10, 12, 22), "C": _box(14, 17, 2, 5)}
    boxes["D"] = _box(12, 20, 15, 27)
    boxes["F"] = _box(11, 14, 5, 15)
    for name, (cls, score) in {
        "A": (0, 0.95),
        "B": (0, 0.97),
        "C": (0, 0.99),
        "D": (1, 0.92),
        "F": (0, 0.93),
    }.items():
        m = boxes[name]
        emb[:, m] = coords[:, m].mean(dim=1, keepdim=True)
        seeds[cls][m] = score
    b_center = coords[:, boxes["B"]].mean(dim=1, keepdim=True)
    emb[:, boxes["F"]] = b_center + torch.tensor([[2.0], [0.0]])
    sigma[0][boxes["F"]] = -0.2
    return emb, sigma, seeds, boxes


def test_touching_small_and_claimed_instances():
    emb, sigma, seeds, boxes = _maps()
    masks, classes, scores = cluster_instances(
        emb, sigma, seeds, seed_threshold=0.9, fg_threshold=0.5, min_pixels=20
    )
    assert classes.tolist() == [0, 0, 1]
    assert torch.allclose(scores, torch.tensor([0.97, 0.95, 0.92]))
    for mask, name in zip(masks, ["B", "A", "D"]):
        assert torch.equal(mask, boxes[name]), name


def test_seed_threshold_and_empty_foreground():
    """Seeds below SEED_THRESHOLD give no instance although they are foreground; no foreground at
    all gives (0, H, W) masks."""
    emb, sigma, seeds, _ = _maps()
    masks, classes, scores = cluster_instances(
        emb, sigma, seeds * 0.9, seed_threshold=0.9, fg_threshold=0.5, min_pixels=20
    )
    assert masks.shape == (0, H, W) and classes.numel() == 0 and scores.numel() == 0
    masks, _, _ = cluster_instances(
        emb, sigma, torch.zeros(2, H, W), seed_threshold=0.9, fg_threshold=0.5, min_pixels=20
    )
    assert masks.shape == (0, H, W) and masks.dtype == torch.bool


def test_elliptical_bandwidth():
    """Two sigma channels: x bandwidth exp(10 * 0) = 1, y bandwidth exp(10 * ln(1/9) / 10) = 1/9,
    so the proposal is x^2 + y^2 / 9 < ln 2: |dx| <= 0.83 (only the seed column) and
    |dy| <= 2.49 (2 rows each side). On a 20x30 map whose embeddings are the coordinates, the
    seed at (row 10, col 15) gives the 5 pixels of column 15, rows 8..12."""
    coords = coordinate_map(H, W, 1.0)
    sigma = torch.stack([torch.zeros(H, W), torch.full((H, W), math.log(1 / 9) / 10)])
    seed = torch.full((1, H, W), 0.6)
    seed[0, 10, 15] = 0.95
    masks, _, scores = cluster_instances(
        coords, sigma, seed, seed_threshold=0.9, fg_threshold=0.5, min_pixels=4
    )
    expected = torch.zeros(H, W, dtype=torch.bool)
    expected[8:13, 15] = True
    assert masks.shape == (1, H, W) and torch.equal(masks[0], expected)
    assert scores.tolist() == [0.949999988079071]
