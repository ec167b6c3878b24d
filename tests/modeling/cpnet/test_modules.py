"""Aggregation module and context prior layer: shapes, receptive field, intra / inter context."""

import pytest
import torch

from d2_instseg.modeling.cpnet import AggregationModule, ContextPriorLayer, prior_context


def test_aggregation_module_shape_and_layers():
    am = AggregationModule(in_channels=24, channels=8, kernel_size=11)
    out = am(torch.randn(2, 24, 13, 9))
    assert out.shape == (2, 8, 13, 9)
    # Depth-wise (groups = C), spatially separable kernels, no point-wise convolution.
    for branch, kernels in ((am.branch_a, [(11, 1), (1, 11)]), (am.branch_b, [(1, 11), (11, 1)])):
        assert [c.kernel_size for c in branch] == kernels
        assert all(c.groups == 8 for c in branch)
    with pytest.raises(ValueError):
        AggregationModule(24, 8, kernel_size=4)


def test_aggregation_module_receptive_field_is_k_plus_2():
    """With positive weights and inputs no ReLU gates anything, so the input gradient of the
    centre output is non-zero exactly on its receptive field: the 3x3 reduction (+2) followed by
    k x 1 then 1 x k (and the reverse) covers a k x k box, hence (k + 2) x (k + 2) = 7 x 7 for
    k = 5, centred on the output position (10, 10)."""
    k = 5
    am = AggregationModule(in_channels=3, channels=4, kernel_size=k).eval()
    with torch.no_grad():
        for name, p in am.named_parameters():
            p.fill_(1.0 if "norm" in name and "weight" in name else 0.01)
    x = torch.ones(1, 3, 21, 21, requires_grad=True)
    am(x)[0, :, 10, 10].sum().backward()
    support = x.grad[0].abs().sum(0) > 0
    expected = torch.zeros(21, 21, dtype=torch.bool)
    half = (k + 2) // 2
    expected[10 - half : 10 + half + 1, 10 - half : 10 + half + 1] = True
    assert torch.equal(support, expected)


def test_prior_context_identity_prior_and_sum():
    """P = I: N * intra = X and N * inter = sum_j X_j - X. For any P, intra + inter = mean of X
    over positions (1 X / N), at every position."""
    x = torch.randn(2, 5, 3, 4)
    n = 12
    intra, inter = prior_context(torch.eye(n).expand(2, n, n), x)
    assert torch.allclose(intra * n, x, atol=1e-6)
    assert torch.allclose(inter * n, x.sum((2, 3), keepdim=True) - x, atol=1e-5)

    p = torch.rand(2, n, n)
    intra, inter = prior_context(p, x)
    assert torch.allclose(intra + inter, x.mean((2, 3), keepdim=True).expand_as(x), atol=1e-6)
    with pytest.raises(ValueError):
        prior_context(torch.rand(2, n, n + 1), x)


def test_prior_context_row_i_weights_positions_for_i():
    """A prior whose row i is one-hot at j gives intra at position i = X_j / N."""
    x = torch.arange(4.0).view(1, 1, 2, 2)  # positions 0..3 hold 0, 1, 2, 3
    p = torch.zeros(1, 4, 4)
    p[0, 0, 3] = 1.0  # position 0 relates to position 3 only
    intra, _ = prior_context(p, x)
    assert intra[0, 0, 0, 0].item() == pytest.approx(3.0 / 4)
    assert intra[0, 0].flatten()[1:].abs().sum().item() == 0.0


def test_context_prior_layer_shapes_and_layout():
    """Prior conv channel j at position i is P[:, i, j]: with zero weights and bias b_j (no norm),
    every row equals sigmoid(b)."""
    layer = ContextPriorLayer(channels=6, prior_size=(3, 5), norm="")
    bias = torch.linspace(-2, 2, 15)
    with torch.no_grad():
        layer.prior_conv.weight.zero_()
        layer.prior_conv.bias.copy_(bias)
    x = torch.randn(2, 6, 3, 5)
    prior, intra, inter = layer(x)
    assert prior.shape == (2, 15, 15)
    assert intra.shape == inter.shape == (2, 6, 3, 5)
    assert torch.allclose(prior, torch.sigmoid(bias).expand(2, 15, 15))
    assert ((prior >= 0) & (prior <= 1)).all()


def test_context_prior_layer_rejects_other_sizes_clearly():
    layer = ContextPriorLayer(channels=6, prior_size=(3, 5))
    with pytest.raises(ValueError, match="PRIOR_SIZE"):
        layer(torch.randn(1, 6, 4, 5))
