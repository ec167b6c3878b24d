"""Property-based tests of IRNet: pair labels, boundary -> affinity, the dense affinity and
transition matrices, the random walk, centroids, the losses and the whole label synthesis."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from d2_instseg.irnet.synthesis import (
    cluster_centroids,
    find_centroids_with_refinement,
    random_walk,
    synthesize_image_labels,
    transition_matrix,
)
from d2_instseg.modeling.irnet.losses import boundary_loss, displacement_loss
from d2_instseg.modeling.irnet.relations import (
    IGNORE_LABEL,
    boundary_to_affinity,
    pair_labels,
    partner_stack,
    search_directions,
    source_crop,
    sparse_affinity,
)

SEEDS = st.integers(0, 2**31 - 1)


@st.composite
def relation_labels(draw):
    """(N, H, W) labels in {0 (bg), 1..3 (classes), 255 (unsure)} big enough for radius r, often
    all one value; and r."""
    r = draw(st.integers(2, 4))
    n, h, w = draw(st.integers(1, 2)), draw(st.integers(r, 10)), draw(st.integers(2 * r - 1, 12))
    g = torch.Generator().manual_seed(draw(SEEDS))
    label = torch.tensor([0, 1, 2, 3, IGNORE_LABEL])[torch.randint(0, 5, (n, h, w), generator=g)]
    if draw(st.booleans()):
        label = torch.full((n, h, w), draw(st.sampled_from([0, 2, IGNORE_LABEL])))
    return label, r


@settings(max_examples=100)
@given(relation_labels())
def test_pair_labels_partition_the_confident_pairs(case):
    """bg_pos, fg_pos and neg are disjoint, cover exactly the pairs of two confident pixels, and
    follow the labels: same background / same class / different labels."""
    label, r = case
    bg, fg, neg = pair_labels(label, r)
    src = source_crop(label, r).unsqueeze(1).expand_as(bg)
    dst = partner_stack(label, r)
    confident = (src != IGNORE_LABEL) & (dst != IGNORE_LABEL)
    assert bg.shape == (label.shape[0], len(search_directions(r))) + src.shape[-2:]
    assert torch.equal(bg.int() + fg.int() + neg.int(), confident.int())
    assert (src[bg] == 0).all() and (dst[bg] == 0).all()
    assert (src[fg] > 0).all() and torch.equal(src[fg], dst[fg])
    assert (src[neg] != dst[neg]).all()


@settings(max_examples=60)
@given(relation_labels(), SEEDS, st.floats(0.1, 20.0))
def test_losses_finite_nonnegative_and_zero_without_confident_pairs(case, seed, scale):
    """Random boundary maps and displacement fields (up to +-20 px) against any labels: both
    losses are finite and >= 0, and 0 when no pixel is confident."""
    label, r = case
    g = torch.Generator().manual_seed(seed)
    boundary = torch.rand(label.shape, generator=g)
    displacement = (torch.rand((label.shape[0], 2) + label.shape[1:], generator=g) * 2 - 1) * scale
    bg, fg, neg = pair_labels(label, r)
    lb = boundary_loss(boundary_to_affinity(boundary, r), bg, fg, neg)["loss_boundary"]
    ld = displacement_loss(displacement, bg, fg, r)["loss_displacement"]
    for loss in (lb, ld):
        assert torch.isfinite(loss) and loss >= 0
        if (label == IGNORE_LABEL).all():
            assert loss == 0


@st.composite
def boundary_maps(draw):
    """(h, w) class-boundary map in [0, 1] (sometimes 0, 1 or a wall), radius r."""
    r = draw(st.integers(2, 4))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    kind = draw(st.sampled_from(["random", "zero", "one", "wall"]))
    boundary = torch.rand(h, w, generator=torch.Generator().manual_seed(draw(SEEDS)))
    if kind == "zero":
        boundary.zero_()
    elif kind == "one":
        boundary.fill_(1.0)
    elif kind == "wall":
        boundary.zero_()
        boundary[:, w // 2] = 1.0
    return boundary, r


@settings(max_examples=100)
@given(boundary_maps())
def test_affinities_and_transition_matrix(case):
    """Pair affinity a_ij = 1 - max B on the path <= 1 - max(B_i, B_j) (the path holds both ends).
    The dense matrix is symmetric, in [0, 1], 1 on the diagonal, 0 for pixels r or more apart.
    The transition matrix is column-stochastic (entries >= 0, columns summing to 1)."""
    boundary, r = case
    h, w = boundary.shape
    padded = torch.nn.functional.pad(boundary[None], (r - 1, r - 1, 0, r - 1), value=0.5)
    aff = boundary_to_affinity(padded, r)
    ends = torch.maximum(source_crop(padded, r).unsqueeze(1), partner_stack(padded, r))
    assert (aff <= 1 - ends + 1e-6).all() and (aff >= 0).all()
    sparse = sparse_affinity(boundary, r)
    dense = sparse.to_dense()
    assert dense.shape == (h * w, h * w) and torch.equal(dense, dense.t())
    assert ((dense >= 0) & (dense <= 1)).all() and (dense.diagonal() == 1).all()
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    far = (ys[:, None] - ys[None]) ** 2 + (xs[:, None] - xs[None]) ** 2 >= r * r
    assert (dense[far] == 0).all()
    trans = transition_matrix(sparse, beta=10.0).to_dense()
    assert (trans >= 0).all()
    torch.testing.assert_close(trans.sum(0), torch.ones(h * w))


@settings(max_examples=60)
@given(boundary_maps(), st.integers(1, 3), SEEDS, st.integers(0, 4))
def test_random_walk_stays_within_the_seed_range(case, m, seed, exp_times):
    """Each output is a convex combination of the seeds x (1 - B) (T is column-stochastic), so
    it lies between their minimum and maximum; a constant seed map with B = 0 stays constant."""
    boundary, r = case
    h, w = boundary.shape
    scores = torch.rand(m, h, w, generator=torch.Generator().manual_seed(seed))
    rw = random_walk(scores, boundary, radius=r, beta=10.0, exp_times=exp_times)
    assert rw.shape == (m, h, w)
    seeds = (scores * (1 - boundary)).flatten(1)
    assert (rw.flatten(1) >= seeds.min(1, keepdim=True).values - 1e-5).all()
    assert (rw.flatten(1) <= seeds.max(1, keepdim=True).values + 1e-5).all()
    flat = random_walk(torch.full((1, h, w), 0.7), torch.zeros(h, w), radius=r, beta=10.0,
                       exp_times=exp_times)  # fmt: skip
    torch.testing.assert_close(flat, torch.full((1, h, w), 0.7))


@settings(max_examples=60)
@given(st.integers(1, 12), st.integers(1, 12), SEEDS, st.floats(0.0, 6.0), st.integers(0, 20))
def test_centroids_inside_the_map_and_clusters_consecutive(h, w, seed, scale, iterations):
    """Any displacement field: every pixel's final position is an integer pixel of the map, and the
    cluster ids are 0..K-1, all used."""
    g = torch.Generator().manual_seed(seed)
    displacement = (torch.rand(2, h, w, generator=g) * 2 - 1) * scale
    centroids = find_centroids_with_refinement(displacement, iterations)
    assert centroids.shape == (2, h, w) and centroids.dtype == torch.int64
    assert (centroids[0] >= 0).all() and (centroids[0] < h).all()
    assert (centroids[1] >= 0).all() and (centroids[1] < w).all()
    clusters = cluster_centroids(centroids, displacement, 2.5)
    assert clusters.shape == (h, w)
    assert torch.equal(clusters.unique(), torch.arange(int(clusters.max()) + 1))


@settings(max_examples=40)
@given(
    st.integers(4, 12), st.integers(4, 12), st.lists(st.integers(0, 4), max_size=3, unique=True),
    SEEDS, st.floats(0.0, 4.0),
)  # fmt: skip
def test_label_synthesis_outputs(h4, w4, classes, seed, disp_scale):
    """Random stride-4 CAMs, boundaries and displacement fields: the semantic map has the image
    size, labels 0 or c + 1 of a present class c; instances are disjoint (H, W) bool masks of a
    present class with a score in [0, 1]; no class -> all background and no instance."""
    height, width = 4 * h4 - 2, 4 * w4 - 1  # the stride-4 grid of (height, width) is (h4, w4)
    g = torch.Generator().manual_seed(seed)
    cams = torch.rand(len(classes), h4, w4, generator=g)
    semantic, instances = synthesize_image_labels(
        cams, classes, torch.rand(h4, w4, generator=g),
        (torch.rand(2, h4, w4, generator=g) * 2 - 1) * disp_scale, (height, width),
        radius=3, beta=10.0, exp_times=3, centroid_iterations=10, cluster_thresh=2.5,
        sem_bg_thresh=0.25, ins_bg_thresh=0.25, min_area_frac=0.01,
    )  # fmt: skip
    assert semantic.shape == (height, width) and semantic.dtype == np.uint8
    assert set(np.unique(semantic).tolist()) <= {0} | {c + 1 for c in classes}
    covered = np.zeros((height, width), dtype=int)
    for inst in instances:
        assert inst["mask"].shape == (height, width) and inst["mask"].dtype == bool
        assert inst["category"] in classes and 0 <= inst["score"] <= 1
        covered += inst["mask"]
    assert covered.max(initial=0) <= 1
    if not classes:
        assert (semantic == 0).all() and instances == []
