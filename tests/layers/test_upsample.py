"""BilinearUpsample: DLA's learnable IDA-up (CenterNet's fill_up_weights), bilinear at first."""

import torch

from d2_instseg.layers import BilinearUpsample


def test_bilinear_upsampling_init():
    """Factor 2: kernel taps 1 - |i / 2 - 0.75| = (0.25, 0.75, 0.75, 0.25); every output pixel gets
    0.25 + 0.75 = 1 of weight per axis, so a constant map stays constant (away from the border), and
    a ramp 0, 1, 2, 3 becomes 0.25-spaced bilinear samples 0.25, 0.75, 1.25, ... in the interior."""
    up = BilinearUpsample(2, 2)
    with torch.no_grad():
        const = up(torch.ones(1, 2, 4, 4))
        ramp = up(torch.arange(4.0).view(1, 1, 1, 4).expand(1, 2, 4, 4).contiguous())
    assert const.shape == (1, 2, 8, 8)
    torch.testing.assert_close(const[:, :, 1:-1, 1:-1], torch.ones(1, 2, 6, 6))
    expected = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.25, 2.75])
    torch.testing.assert_close(ramp[0, 0, 3, 1:-1], expected)
    assert up.weight.requires_grad
