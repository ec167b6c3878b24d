"""Property-based tests of the FCN / UNet baselines: skip alignment, output sizes and the loss on
random label maps."""

import functools

import pytest
import torch
from detectron2.modeling import build_model
from hypothesis import given, settings
from hypothesis import strategies as st

from d2_instseg.layers import resize_and_crop

from ...conftest import shapes_cfg

SEEDS = st.integers(0, 2**31 - 1)

pytestmark = pytest.mark.usefixtures("one_thread")


@settings(max_examples=100)
@given(st.integers(0, 12), st.integers(0, 12), st.integers(0, 12), st.integers(0, 12), SEEDS)
def test_resize_and_crop_without_resampling_crops_or_zero_pads_to_the_size(h, w, th, tw, seed):
    """(2, h, w) -> (2, H, W): the common top-left part is kept as is, the rest is 0."""
    x = torch.rand(2, h, w, generator=torch.Generator().manual_seed(seed)) + 1
    y = resize_and_crop(x, (th, tw), factor=1)
    assert y.shape == (2, th, tw)
    ch, cw = min(h, th), min(w, tw)
    assert torch.equal(y[:, :ch, :cw], x[:, :ch, :cw])
    y[:, :ch, :cw] = 0
    assert (y == 0).all()


@functools.lru_cache(maxsize=None)
def model(name: str):
    torch.manual_seed(0)
    return build_model(shapes_cfg(f"configs/shapes/{name}.yaml"))


@st.composite
def labelled_images(draw):
    """Odd and even sizes; labels from {0..3, 255}, sometimes all one value."""
    h, w = draw(st.integers(33, 80)), draw(st.integers(33, 80))
    g = torch.Generator().manual_seed(draw(SEEDS))
    label = torch.tensor([0, 1, 2, 3, 255])[torch.randint(0, 5, (h, w), generator=g)]
    if draw(st.booleans()):
        label = torch.full((h, w), draw(st.sampled_from([0, 2, 255])))
    return torch.rand(3, h, w, generator=g) * 255, label


@settings(max_examples=25)
@given(
    st.sampled_from(["fcn8s", "unet"]), labelled_images(), st.integers(8, 100), st.integers(8, 100)
)
def test_loss_and_scores_on_any_size(name, image_label, height, width):
    """Training: the loss is finite, >= 0, and 0 exactly when every pixel is ignored.
    Inference at another (height, width): scores of that size (Detectron2's sem_seg_postprocess
    crops the padded logits of the odd-sized input and resizes)."""
    image, label = image_label
    m = model(name).train()
    loss = m([{"image": image, "sem_seg": label}])["loss_sem_seg"]
    assert torch.isfinite(loss) and loss >= 0
    assert (loss == 0) == (label == 255).all()
    with torch.no_grad():
        (out,) = m.eval()([{"image": image, "height": height, "width": width}])
    assert out["sem_seg"].shape == (4, height, width)
