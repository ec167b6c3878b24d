"""cross_entropy_ignore: the mean CE over labelled pixels, 0 instead of NaN over none."""

import math

import torch
import torch.nn.functional as F

from d2_instseg.layers import cross_entropy_ignore


def test_hand_values_and_all_ignored():
    """Zero logits over K = 4 classes cost ln 4 = 1.386294 at every labelled pixel, whatever the
    share of ignored pixels; with every pixel ignored PyTorch's mean is 0 / 0 = NaN, ours is 0 and
    back-propagates zero gradients."""
    logits = torch.zeros(2, 4, 3, 5, requires_grad=True)
    labels = torch.full((2, 3, 5), 255)
    labels[0, 1, 2], labels[1, 0, 0] = 3, 0
    assert math.isclose(cross_entropy_ignore(logits, labels, 255).item(), math.log(4), rel_tol=1e-6)
    ignored = torch.full((2, 3, 5), 255)
    assert torch.isnan(F.cross_entropy(logits, ignored, ignore_index=255))
    loss = cross_entropy_ignore(logits, ignored, 255)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_equals_pytorch_mean_when_some_pixel_is_labelled():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, 9, generator=g)
    labels = torch.randint(0, 5, (3, 7, 9), generator=g)
    labels[torch.rand(3, 7, 9, generator=g) < 0.6] = 255
    expected = F.cross_entropy(logits, labels, ignore_index=255)
    torch.testing.assert_close(cross_entropy_ignore(logits, labels, 255), expected)
