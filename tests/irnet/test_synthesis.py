"""Centroids, grouping, transition matrix, random walk, instance detection against hand values."""

import torch

from d2_instseg.irnet.synthesis import (
    cluster_centroids,
    detect_instances,
    find_centroids_with_refinement,
    propagate,
    random_walk,
    transition_matrix,
)


def _two_instances_field(gain: float):
    """10x12 map: instance A = rows 0..7 x cols 0..5 (centroid (4, 2)), instance B = rows 0..7 x
    cols 6..11 (centroid (4, 9)), background rows 8..9 with D = 0. D = gain * (c - x)."""
    ys, xs = torch.meshgrid(torch.arange(10.0), torch.arange(12.0), indexing="ij")
    cy = torch.full_like(ys, 4.0)
    cx = torch.where(xs < 6, torch.tensor(2.0), torch.tensor(9.0))
    disp = gain * torch.stack([cy - ys, cx - xs])
    disp[:, 8:] = 0.0
    return disp


def test_centroid_refinement_converges_to_known_centroids():
    """With D = 0.5 (c - x) a pixel halves its distance to c at every step (the field is linear
    inside an instance, so bilinear sampling is exact): after 40 steps the error is 2^-40 * 8."""
    cent = find_centroids_with_refinement(_two_instances_field(0.5), iterations=40)
    assert (cent[0, :8] == 4).all()
    assert (cent[1, :8, :6] == 2).all() and (cent[1, :8, 6:] == 9).all()
    # background (D = 0) stays put
    ys, xs = torch.meshgrid(torch.arange(10), torch.arange(12), indexing="ij")
    assert (cent[0, 8:] == ys[8:]).all() and (cent[1, 8:] == xs[8:]).all()


def test_cluster_centroids_groups_known_instances():
    """Weak regions (|D| < 2.5 with D = c - x): a disk of radius 2.5 around each centroid (cols 0..4
    and 7..11, rows 2..6), and the background rows 8..9: three components, three clusters."""
    disp = _two_instances_field(1.0)
    cent = find_centroids_with_refinement(disp, iterations=5)
    clusters = cluster_centroids(cent, disp, 2.5)
    a, b, bg = clusters[0, 0].item(), clusters[0, 11].item(), clusters[9, 0].item()
    assert len({a, b, bg}) == 3 and set(clusters.unique().tolist()) == {0, 1, 2}
    assert (clusters[:8, :6] == a).all() and (clusters[:8, 6:] == b).all()
    assert (clusters[8:] == bg).all()


def test_transition_matrix_hand_computed():
    """A = [[1,.5,0],[.5,1,.5],[0,.5,1]], beta=1: column sums 1.5, 2, 1.5 ->
    T = [[2/3,1/4,0],[1/3,1/2,1/3],[0,1/4,2/3]];
    two steps from the identity: T^2 = [[19/36, 7/24, 1/12], [7/18, 5/12, 7/18],
    [1/12, 7/24, 19/36]] (columns sum to 1)."""
    f64 = torch.float64
    aff = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 0.5], [0.0, 0.5, 1.0]], dtype=f64).to_sparse()
    t1 = torch.tensor([[2 / 3, 1 / 4, 0], [1 / 3, 1 / 2, 1 / 3], [0, 1 / 4, 2 / 3]], dtype=f64)
    t2 = torch.tensor(
        [[19 / 36, 7 / 24, 1 / 12], [7 / 18, 5 / 12, 7 / 18], [1 / 12, 7 / 24, 19 / 36]],
        dtype=torch.float64,
    )
    trans = transition_matrix(aff, 1.0)
    assert trans.is_sparse
    torch.testing.assert_close(trans.to_dense(), t1)
    torch.testing.assert_close(propagate(torch.eye(3, dtype=f64), trans, 2), t2)
    # beta = 2: A^2 entries .25, column sums 1.25, 1.5, 1.25
    t_beta = torch.tensor([[0.8, 1 / 6, 0], [0.2, 2 / 3, 0.2], [0, 1 / 6, 0.8]], dtype=f64)
    torch.testing.assert_close(transition_matrix(aff, 2.0).to_dense(), t_beta)


def test_walk_has_no_subnormal_scores_and_keeps_the_walk():
    """A 40-node chain (self-affinity 1, neighbours 1e-10), seeds = the identity: after t = 32 steps
    the score at distance d is about C(32, d) 1e-10^d, below float64's smallest normal (2.2e-308)
    from d = 31 on: plain float64 steps leave subnormal scores there (that the CPU computes 10-30x
    slower). The walk must have none, and equal the float64 32nd power of T
    (torch.linalg.matrix_power) within 1e-12, relatively 1e-9 on entries above 1e-140 (what is
    zeroed is below 1.5e-154 per step)."""
    n = 40
    off = 1e-10 * torch.ones(n - 1, dtype=torch.float64)
    aff = torch.eye(n, dtype=torch.float64) + torch.diag(off, 1) + torch.diag(off, -1)
    walked = propagate(
        torch.eye(n, dtype=torch.float64), transition_matrix(aff.to_sparse(), 1.0), 32
    )
    tiny = torch.finfo(torch.float64).tiny
    assert not ((walked > 0) & (walked < tiny)).any()
    ref = torch.linalg.matrix_power(aff / aff.sum(dim=0, keepdim=True), 32)
    err = (walked - ref).abs()
    assert err.max() < 1e-12
    assert (err / ref)[ref > 1e-140].max() < 1e-9
    assert ((ref > 0) & (ref < tiny)).any()  # the case does reach the subnormal range


def test_random_walk_hand_computed():
    """1x3 map, B = [0, .5, 0], r=2 gives the A above; seeds x = [1, 0, 0] times (1 - B);
    one squaring: rw = x T^2 = first row of T^2 = [19/36, 7/24, 1/12]. A second map of seeds
    [0, 1, 0] is damped by (1 - B) = 0.5 first: 0.5 * [7/18, 5/12, 7/18]."""
    boundary = torch.tensor([[0.0, 0.5, 0.0]], dtype=torch.float64)
    seeds = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]], dtype=torch.float64)
    rw = random_walk(seeds, boundary, radius=2, beta=1.0, exp_times=1)
    expected = torch.tensor(
        [[[19 / 36, 7 / 24, 1 / 12]], [[7 / 36, 5 / 24, 7 / 36]]], dtype=torch.float64
    )
    torch.testing.assert_close(rw, expected)


def test_random_walk_does_not_cross_a_wall():
    """A full-height wall (B = 1) splits an 6x9 map: scores seeded left stay left, whatever t."""
    boundary = torch.zeros(6, 9)
    boundary[:, 4] = 1.0
    seeds = torch.zeros(1, 6, 9)
    seeds[0, 2, 1] = 1.0
    rw = random_walk(seeds, boundary, radius=3, beta=10.0, exp_times=8)
    assert rw[0, :, 4:].abs().max() < 1e-6
    assert rw[0, :, :4].min() > 0  # and spreads over the whole left part


def test_detect_instances_segments_classes_and_small_score_zero():
    """C=1 class (id 2), K=2 clusters on a 10x10 image; bg plane 0.25.
    channel 0: two blobs (0.9 on 3x3 at top-left, 0.6 on 3x3 at bottom-left) -> 2 instances;
    channel 1: a 4x4 blob at 0.8 -> 1 instance; one isolated pixel at 0.7 in channel 1: area 1 < 2
    (2% of 100) -> score 0, kept."""
    scores = torch.zeros(2, 10, 10)
    scores[0, 0:3, 0:3] = 0.9
    scores[0, 7:10, 0:3] = 0.6
    scores[1, 0:4, 6:10] = 0.8
    scores[1, 9, 9] = 0.7
    inst = detect_instances(scores, [2], 2, bg_thresh=0.25, min_area_frac=0.02)
    assert len(inst) == 4 and all(d["category"] == 2 for d in inst)
    found = sorted((int(d["mask"].sum()), round(d["score"], 3)) for d in inst)
    assert found == [(1, 0.0), (9, 0.6), (9, 0.9), (16, 0.8)]


def test_detect_instances_splits_regions_touching_at_a_corner():
    """Two 2x2 squares of the same channel sharing only the corner between (1, 1) and (2, 2): the
    authors' synthesis labels 4-connected components, so they are two instances (8-connectivity
    would merge them into one of 8 pixels)."""
    scores = torch.zeros(1, 6, 6)
    scores[0, 0:2, 0:2] = 0.9
    scores[0, 2:4, 2:4] = 0.8
    inst = detect_instances(scores, [0], 1, bg_thresh=0.25, min_area_frac=0.0)
    found = sorted((int(d["mask"].sum()), round(d["score"], 3)) for d in inst)
    assert found == [(4, 0.8), (4, 0.9)]
