"""CenterMaskHead: the point heads evaluated at centers equal the dense CenterNet heads read
there."""

import pytest
import torch

from d2_instseg.modeling.centermask.head import CenterMaskHead, patches_at


def test_patches_at_by_hand():
    """A 1-channel 3 x 3 map [[1, 2, 3], [4, 5, 6], [7, 8, 9]]: the neighbourhood of the corner
    (x, y) = (0, 0) is [[0, 0, 0], [0, 1, 2], [0, 4, 5]] (zeros outside), of (2, 1) it is
    [[2, 3, 0], [5, 6, 0], [8, 9, 0]]."""
    x = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    patches = patches_at(x, torch.tensor([0, 0]), torch.tensor([[0, 0], [2, 1]]))
    assert patches.tolist() == [[0, 0, 0, 0, 1, 2, 0, 4, 5], [2, 3, 0, 5, 6, 0, 8, 9, 0]]


@pytest.mark.parametrize("branches", ["both", "shape", "saliency"])
def test_point_heads_equal_dense_heads_in_values_and_gradients(branches):
    """Dense reference: each head's own conv3x3 -> ReLU -> conv1x1 over the whole map, read at the
    centers (corners, edges and the interior of two images)."""
    torch.manual_seed(0)
    head = CenterMaskHead(
        in_channels=5, num_classes=3, head_conv=6, shape_size=4, mask_branches=branches
    )
    for p in head.parameters():  # non-zero biases everywhere
        torch.nn.init.normal_(p, std=0.5)
    features = torch.randn(2, 5, 6, 7, requires_grad=True)
    batch_idx = torch.tensor([0, 0, 1, 1, 1])
    centers = torch.tensor([[0, 0], [6, 5], [3, 2], [6, 0], [0, 5]])
    points = head.at_points(features, batch_idx, centers)

    def dense(hidden, last):
        return last(hidden(features))[batch_idx, :, centers[:, 1], centers[:, 0]]

    expected = {"offset": dense(*head.offset), "size": dense(*head.size)}
    if branches != "saliency":
        expected["shape"] = dense(head.shape_hidden, head.shape_out).view(-1, 4, 4)
    assert set(points) == set(expected)
    params = [features] + list(head.parameters())

    def grads(output, weights):
        g = torch.autograd.grad(
            (output * weights).sum(), params, allow_unused=True, retain_graph=True
        )
        return [torch.zeros_like(p) if x is None else x for p, x in zip(params, g)]

    for name in expected:
        torch.testing.assert_close(points[name], expected[name], atol=1e-5, rtol=1e-5)
        weights = torch.linspace(-1, 1, expected[name].numel()).view_as(expected[name])
        for ours, ref in zip(grads(points[name], weights), grads(expected[name], weights)):
            torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_point_heads_without_points():
    head = CenterMaskHead(in_channels=5, num_classes=3, head_conv=6, shape_size=4)
    points = head.at_points(
        torch.randn(1, 5, 4, 4),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0, 2, dtype=torch.long),
    )
    assert points["offset"].shape == (0, 2) and points["shape"].shape == (0, 4, 4)
