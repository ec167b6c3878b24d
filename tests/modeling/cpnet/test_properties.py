"""Property-based tests of CPNet: sliding windows, the intra / inter context split, and the
segmentor's scores at any image size."""

import functools

import pytest
import torch
from detectron2.modeling import build_model
from hypothesis import given, settings
from hypothesis import strategies as st

from d2_instseg.layers import window_starts
from d2_instseg.modeling.cpnet import prior_context

from ...conftest import shapes_cfg

SEEDS = st.integers(0, 2**31 - 1)

pytestmark = pytest.mark.usefixtures("one_thread")


@settings(max_examples=200)
@given(st.integers(1, 500), st.integers(1, 200), st.data())
def test_windows_cover_the_image_and_stay_inside(length, window, data):
    """Starts begin at 0, never decrease, never pass max(length - window, 0), step at most the
    stride, and the last window reaches the end: every pixel is in some window."""
    stride = data.draw(st.integers(1, window))
    starts = window_starts(length, window, stride)
    assert starts[0] == 0 and starts[-1] + window >= length
    assert all(0 <= s <= max(length - window, 0) for s in starts)
    assert all(0 <= b - a <= stride for a, b in zip(starts, starts[1:]))


@settings(max_examples=60)
@given(
    st.integers(1, 2), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), SEEDS, st.booleans()
)
def test_intra_plus_inter_is_the_mean_feature(b, c, h, w, seed, identity):
    """For any prior in [0, 1]: intra + inter = P X / N + (1 - P) X / N = mean of X over the N
    positions, at every position; with P = I, N * intra = X."""
    g = torch.Generator().manual_seed(seed)
    n = h * w
    x = torch.randn(b, c, h, w, generator=g)
    prior = torch.eye(n).expand(b, n, n) if identity else torch.rand(b, n, n, generator=g)
    intra, inter = prior_context(prior, x)
    assert intra.shape == inter.shape == x.shape
    torch.testing.assert_close(intra + inter, x.mean(dim=(2, 3), keepdim=True).expand_as(x))
    if identity:
        torch.testing.assert_close(n * intra, x)


@functools.lru_cache(maxsize=None)
def tiny_segmentor(mode: str):
    """CPNet of configs/shapes/cpnet.yaml (128 crop) with 16-channel heads, in eval mode."""
    torch.manual_seed(0)
    cfg = shapes_cfg(
        "configs/shapes/cpnet.yaml",
        *("MODEL.CPNET.CHANNELS", "16", "MODEL.CPNET.AUX_CHANNELS", "8"),
        *("MODEL.CPNET.TEST.MODE", mode),
    )
    return build_model(cfg).eval()


@settings(max_examples=20)
@given(
    st.integers(16, 200), st.integers(16, 200), st.integers(8, 120), st.integers(8, 120),
    st.sampled_from(["slide", "resize"]),
)  # fmt: skip
@torch.no_grad()
def test_scores_have_the_requested_size_and_are_distributions(h, w, height, width, mode):
    """Images smaller and larger than the 128 crop, returned at another (height, width): scores of
    that size, >= 0, summing to 1 over the 4 classes at every pixel."""
    model = tiny_segmentor(mode)
    (out,) = model([{"image": torch.rand(3, h, w) * 255, "height": height, "width": width}])
    scores = out["sem_seg"]
    assert scores.shape == (4, height, width) and (scores >= 0).all()
    torch.testing.assert_close(scores.sum(0), torch.ones(height, width))
