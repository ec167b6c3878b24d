"""Property-based tests of Spatial Embeddings: the loss on random masks and predictions, the
Gaussian phi, the clustering on random outputs, and the returned masks and boxes."""

import pytest
import torch
from detectron2.structures import Instances
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from d2_instseg.modeling.spatial_embed.cluster import (
    cluster_instances,
    cluster_pixels,
    pixel_boxes,
)
from d2_instseg.modeling.spatial_embed.embedding import coordinate_map, gaussian_phi
from d2_instseg.modeling.spatial_embed.inference import cluster_image, resize_instances
from d2_instseg.modeling.spatial_embed.loss import spatial_embed_image_loss

SEEDS = st.integers(0, 2**31 - 1)

pytestmark = pytest.mark.usefixtures("one_thread")
PIXELS_PER_UNIT = 16.0


@st.composite
def masks_and_classes(draw, height: int, width: int, num_classes: int, max_count: int = 5):
    """(K, H, W) bool rectangles (1 px to the whole image, often on a border; some may be empty
    after being cut to the image) and their (K,) classes."""
    k = draw(st.integers(0, max_count))
    masks = torch.zeros(k, height, width, dtype=torch.bool)
    for i in range(k):
        y0, x0 = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
        y1, x1 = y0 + draw(st.integers(0, height)), x0 + draw(st.integers(0, width))
        masks[i, y0:y1, x0:x1] = True
    classes = draw(st.lists(st.integers(0, num_classes - 1), min_size=k, max_size=k))
    return masks, torch.tensor(classes, dtype=torch.long)


@st.composite
def loss_cases(draw):
    h, w, c, s = draw(st.integers(1, 24)), draw(st.integers(1, 24)), draw(st.integers(1, 3)), 2
    masks, classes = draw(masks_and_classes(h, w, c))
    g = torch.Generator().manual_seed(draw(SEEDS))
    coords = coordinate_map(h, w, PIXELS_PER_UNIT)
    embedding = coords + torch.tanh(torch.randn(2, h, w, generator=g))
    sigma = torch.randn(draw(st.sampled_from([1, s])), h, w, generator=g)
    seed = torch.rand(c, h, w, generator=g)
    return embedding, sigma, seed, coords, masks, classes


@settings(max_examples=100)
@given(loss_cases(), st.booleans())
def test_loss_terms_finite_nonnegative_and_seed_only_without_instances(case, to_center):
    """Any masks (none, empty, 1 px, on borders, overlapping) and predictions: the three terms are
    finite and >= 0. Without a non-empty mask every pixel is background for every seed map, so
    instance = variance = 0 and seed = sum_c sum_i seed_c,i^2 / N."""
    embedding, sigma, seed, coords, masks, classes = case
    terms = spatial_embed_image_loss(
        embedding, sigma, seed, coords, masks, classes, to_center=to_center
    )
    for name, value in terms.items():
        assert torch.isfinite(value) and value >= 0, name
    if not masks.any():
        assert terms["instance"] == 0 and terms["variance"] == 0
        torch.testing.assert_close(terms["seed"], (seed**2).sum() / seed[0].numel())


@settings(max_examples=60)
@given(st.integers(1, 6), st.integers(1, 50), st.sampled_from([1, 2]), SEEDS, st.floats(0.1, 20.0))
def test_gaussian_phi_is_a_probability_and_one_at_the_center(k, n, s, seed, scale):
    """phi in [0, 1], exactly 1 where the embedding equals the center, for raw sigma up to +-20
    (exp(10 s) alone overflows above s = 8.87, and inf * 0 at the center used to give NaN)."""
    g = torch.Generator().manual_seed(seed)
    embedding = torch.rand(2, n, generator=g)
    centers = embedding[:, torch.randint(0, n, (k,), generator=g)].t()
    phi = gaussian_phi(embedding, centers, (torch.rand(k, s, generator=g) * 2 - 1) * scale)
    assert phi.shape == (k, n) and ((phi >= 0) & (phi <= 1)).all()
    assert (phi.max(dim=1).values == 1).all()


@st.composite
def cluster_cases(draw):
    """Outputs shaped like a trained model's: the embeddings of random rectangles point at the
    rectangle's center (plus noise), random sigma and seeds, random thresholds."""
    h, w, c = draw(st.integers(2, 20)), draw(st.integers(2, 20)), draw(st.integers(1, 2))
    masks, _ = draw(masks_and_classes(h, w, 1, max_count=4))
    g = torch.Generator().manual_seed(draw(SEEDS))
    embedding = coordinate_map(h, w, PIXELS_PER_UNIT) + 0.05 * torch.randn(2, h, w, generator=g)
    for m in masks:
        if m.any():
            embedding[:, m] = embedding[:, m].mean(dim=1, keepdim=True)
    sigma = torch.rand(draw(st.sampled_from([1, 2])), h, w, generator=g) * 0.8
    seeds = torch.rand(c, h, w, generator=g)
    thresholds = {
        "seed_threshold": draw(st.floats(0.0, 1.0)),
        "fg_threshold": draw(st.floats(0.0, 1.0)),
        "min_pixels": draw(st.integers(0, 10)),
        "min_unclustered": draw(st.floats(0.0, 0.9)),
    }
    return embedding, sigma, seeds, thresholds


@settings(max_examples=100)
@given(cluster_cases())
def test_clustering_invariants(case):
    """Each instance has more than MIN_PIXELS pixels, all foreground (seed > FG_THRESHOLD) of its
    class; its score is the seed of a pixel of the mask, in [SEED_THRESHOLD, 1], and scores do not
    increase within a class; more than MIN_UNCLUSTERED of each mask is new (outside the earlier
    masks of its class: masks of one class may overlap, as in the reference, but never mostly).
    Seeds all <= FG_THRESHOLD: no instance."""
    embedding, sigma, seeds, th = case
    masks, classes, scores = cluster_instances(embedding, sigma, seeds, **th)
    h, w = seeds.shape[-2:]
    assert masks.shape == (len(scores), h, w) and masks.dtype == torch.bool
    assert len(classes) == len(scores)
    for c in range(seeds.shape[0]):
        mine = (classes == c).nonzero().squeeze(1)
        assert (scores[mine][1:] <= scores[mine][:-1]).all()
        claimed = torch.zeros(h, w, dtype=torch.bool)
        for i in mine:
            mask = masks[i]
            size = int(mask.sum())
            assert size > th["min_pixels"]
            assert (seeds[c][mask] > th["fg_threshold"]).all()
            assert th["seed_threshold"] <= scores[i] <= 1 and (seeds[c][mask] == scores[i]).any()
            assert int((mask & ~claimed).sum()) > th["min_unclustered"] * size
            claimed |= mask
    quiet = seeds.clamp(max=th["fg_threshold"])
    assert len(cluster_instances(embedding, sigma, quiet, **th)[2]) == 0


@settings(max_examples=60)
@given(st.integers(1, 16), st.integers(1, 16), st.integers(1, 40), st.integers(1, 40), SEEDS)
def test_returned_masks_have_the_output_size_and_boxes_contain_them(h, w, height, width, seed):
    """Masks resized to the requested (height, width); each box is the tight box of its mask
    (every mask pixel (y, x) has x0 <= x < x1, y0 <= y < y1, touching all four sides); an empty
    mask gets an all-zero box. At the same size the instances are returned as they are."""
    assume((h, w) != (height, width))
    g = torch.Generator().manual_seed(seed)
    r = Instances((h, w))
    r.pred_masks = torch.rand(3, h, w, generator=g) < torch.rand(3, 1, 1, generator=g)
    r.pred_classes = torch.zeros(3, dtype=torch.long)
    r.scores = torch.ones(3)
    out = resize_instances(r, height, width)
    assert out.image_size == (height, width) and out.pred_masks.shape == (3, height, width)
    for mask, box in zip(out.pred_masks, out.pred_boxes.tensor):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        if len(xs) == 0:
            assert (box == 0).all()
            continue
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def _reference_clustering(embedding, sigma, seed, seed_threshold, fg_threshold, min_pixels, mu):
    """The clustering of one class as the paper's code writes it: every step scores all M
    foreground pixels (O(M) per step). Returns (R, H, W) masks and (R,) scores."""
    fg = seed.flatten() > fg_threshold
    emb, sig, val = embedding.flatten(1)[:, fg], sigma.flatten(1)[:, fg], seed.flatten()[fg]
    free = torch.ones_like(val, dtype=torch.bool)
    masks, scores = [], []
    while int(free.sum()) > min_pixels:
        score, i = (val * free).max(dim=0)
        if float(score) < seed_threshold:
            break
        free[i] = False
        bandwidth = torch.exp((10 * sig[:, i]).clamp(max=80)).view(-1, 1)
        proposal = torch.exp(-(((emb - emb[:, i : i + 1]) ** 2) * bandwidth).sum(0)) > 0.5
        size = int(proposal.sum())
        if size > min_pixels and int((proposal & free).sum()) > mu * size:
            mask = torch.zeros_like(fg)
            mask[fg] = proposal
            masks.append(mask.view(seed.shape))
            scores.append(float(score))
        free &= ~proposal
    return masks, scores


@st.composite
def crowded_cases(draw):
    """Up to 40 square instances on a grid, each pixel embedded near its instance's center (noise
    drawn per pixel), sigma per pixel, distinct seed values (no ties), one or two sigma channels
    and classes; some instances' margins reach their neighbours."""
    h, w = draw(st.integers(8, 48)), draw(st.integers(8, 48))
    g = torch.Generator().manual_seed(draw(SEEDS))
    cell = draw(st.integers(3, 8))
    ppu = draw(st.sampled_from([4.0, 16.0, 64.0]))
    coords = coordinate_map(h, w, ppu)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    owner = (ys // cell) * ((w + cell - 1) // cell) + xs // cell
    centers = torch.zeros(2, h, w)
    for k in owner.unique():
        m = owner == k
        centers[:, m] = coords[:, m].mean(dim=1, keepdim=True)
    noise = draw(st.floats(0.0, 0.5)) * cell / ppu
    embedding = centers + noise * torch.randn(2, h, w, generator=g)
    margin = cell / ppu * (0.2 + 1.5 * torch.rand(draw(st.sampled_from([1, 2])), h, w, generator=g))
    sigma = torch.log(1 / (2 * margin**2)) / 10
    c = draw(st.integers(1, 2))
    seeds = torch.randperm(c * h * w, generator=g).float().view(c, h, w) / (c * h * w)
    thresholds = {
        "seed_threshold": draw(st.floats(0.3, 0.95)),
        "fg_threshold": draw(st.floats(0.0, 0.5)),
        "min_pixels": draw(st.integers(0, 6)),
        "min_unclustered": draw(st.floats(0.0, 0.9)),
    }
    return embedding, sigma, seeds, thresholds


@settings(max_examples=150, deadline=None)
@given(crowded_cases())
def test_clustering_equals_the_reference_loop(case):
    """The bucketed clustering (a step reads only the pixels near its seed's embedding) finds the
    same instances, in the same order, with the same masks and scores, as the loop that scores
    every foreground pixel at every step."""
    embedding, sigma, seeds, th = case
    masks, classes, scores = cluster_instances(embedding, sigma, seeds, **th)
    expected_masks, expected_classes, expected_scores = [], [], []
    for c in range(len(seeds)):
        m, s = _reference_clustering(
            embedding,
            sigma,
            seeds[c],
            th["seed_threshold"],
            th["fg_threshold"],
            th["min_pixels"],
            th["min_unclustered"],
        )
        expected_masks += m
        expected_scores += s
        expected_classes += [c] * len(s)
    assert classes.tolist() == expected_classes
    assert scores.tolist() == pytest.approx(expected_scores)
    for mask, expected in zip(masks, expected_masks):
        assert torch.equal(mask, expected)


def test_max_detections_keeps_the_best_and_class_order():
    """A 1 x 11 image with three 3-pixel instances embedded at their middle pixels (1, 5, 9),
    margin 0.0005 px: seeds 0.95 (class 0), 0.97 (class 0) and 0.99 (class 1) at the middles, 0.6
    beside them. Two detections allowed: the 0.97 of class 0 and the 0.99 of class 1, grouped by
    class, pixels 4-6 and 8-10."""
    emb = torch.zeros(2, 1, 11)
    seeds = torch.zeros(2, 1, 11)
    for c, middle, score in [(0, 1, 0.95), (0, 5, 0.97), (1, 9, 0.99)]:
        emb[0, 0, middle - 1 : middle + 2] = float(middle)
        seeds[c, 0, middle - 1 : middle + 2] = 0.6
        seeds[c, 0, middle] = score
    pixels, classes, scores = cluster_pixels(
        emb,
        torch.full((1, 1, 11), 2.0),
        seeds,
        seed_threshold=0.9,
        fg_threshold=0.5,
        min_pixels=2,
        max_detections=2,
    )
    assert classes.tolist() == [0, 1]
    assert scores.tolist() == pytest.approx([0.97, 0.99])
    assert [sorted(p.tolist()) for p in pixels] == [[4, 5, 6], [8, 9, 10]]


def test_pixel_boxes_by_hand():
    """On a 10-wide image, pixels 12, 15 and 33 are (row, col) (1, 2), (1, 5), (3, 3): box
    (2, 1, 6, 4); pixel 0 alone: (0, 0, 1, 1). The boxes cluster_image returns are these."""
    boxes = pixel_boxes([torch.tensor([12, 15, 33]), torch.tensor([0])], 10, "cpu")
    assert boxes.tolist() == [[2.0, 1.0, 6.0, 4.0], [0.0, 0.0, 1.0, 1.0]]
    coords = coordinate_map(4, 10, 1.0)
    emb = coords.clone()
    emb[:, 1:4, 2:6] = torch.tensor([3.5, 2.0]).view(2, 1, 1)
    seed = torch.zeros(1, 4, 10)
    seed[0, 1:4, 2:6] = 0.95
    out = cluster_image(
        emb,
        torch.zeros(1, 4, 10),
        seed,
        max_detections=10,
        seed_threshold=0.9,
        fg_threshold=0.5,
        min_pixels=4,
    )
    assert out.pred_boxes.tensor.tolist() == [[2.0, 1.0, 6.0, 4.0]]
    assert int(out.pred_masks.sum()) == 12
