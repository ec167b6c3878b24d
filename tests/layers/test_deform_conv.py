"""modulated_deform_conv2d against hand-worked samples and against torchvision's deform_conv2d,
on both of its paths: the PyTorch one (training, tracing, other devices and dtypes) and the native
CPU kernel (inference)."""

import logging
import os

import pytest
import torch
from torchvision.ops import deform_conv2d

from d2_instseg.layers import deform_conv, modulated_deform_conv2d, native


@pytest.fixture(params=["pytorch", "native"])
def path(request, monkeypatch):
    """Runs a test once per path of modulated_deform_conv2d (inputs without gradients)."""
    if request.param == "native":
        if not native.native_ops_available():
            if os.getenv("CI"):  # CI installs g++ (.ci/run): the kernel must build there
                pytest.fail("the native kernels did not build")
            pytest.skip("no C++ compiler here: the native kernels are not built")
    else:
        monkeypatch.setattr(native, "_loaded", False)
    return request.param


def _identity_kernel(c: int) -> torch.Tensor:
    """(C, C, 3, 3) weight that copies the centre sample of each channel."""
    weight = torch.zeros(c, c, 3, 3)
    weight[range(c), range(c), 1, 1] = 1.0
    return weight


def test_zero_offsets_and_unit_mask_is_a_plain_conv(path):
    torch.manual_seed(0)
    x, weight, bias = torch.randn(2, 3, 5, 6), torch.randn(4, 3, 3, 3), torch.randn(4)
    out = modulated_deform_conv2d(x, torch.zeros(2, 18, 5, 6), weight, bias, torch.ones(2, 9, 5, 6))
    assert torch.allclose(out, torch.nn.functional.conv2d(x, weight, bias, padding=1), atol=1e-5)


def test_half_pixel_offset_samples_between_pixels_and_zero_outside(path):
    # One channel row [0, 10, 20, 30]; the centre tap moves right by 0.5 px and is halved by the
    # mask.
    x = torch.tensor([[[[0.0, 10.0, 20.0, 30.0]]]])
    offset = torch.zeros(1, 18, 1, 4)
    offset[:, 2 * 4 + 1] = 0.5  # centre position (k = 4), dx
    mask = torch.zeros(1, 9, 1, 4)
    mask[:, 4] = 0.5
    out = modulated_deform_conv2d(x, offset, _identity_kernel(1), None, mask)
    # samples at x = 0.5, 1.5, 2.5, 3.5 -> 5, 15, 25, 15 (the last half outside the image is 0)
    assert torch.allclose(out.flatten(), 0.5 * torch.tensor([5.0, 15.0, 25.0, 15.0]))


@pytest.mark.parametrize("shape", [(2, 5, 3, 7, 9), (1, 8, 4, 1, 6), (1, 4, 4, 6, 1)])
def test_matches_torchvision_in_outputs_and_gradients(shape):
    n, c, c_out, h, w = shape
    torch.manual_seed(1)
    tensors = [
        torch.randn(n, c, h, w),
        3 * torch.randn(n, 18, h, w),
        torch.randn(c_out, c, 3, 3),
        torch.randn(c_out),
        torch.rand(n, 9, h, w),
    ]
    results = []
    for fn in (
        lambda x, o, wt, b, m: deform_conv2d(x, o, wt, b, padding=(1, 1), mask=m),
        lambda x, o, wt, b, m: modulated_deform_conv2d(x, o, wt, b, m),
    ):
        inputs = [t.clone().requires_grad_() for t in tensors]
        out = fn(*inputs)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append([out] + [t.grad for t in inputs])
    for ref, ours in zip(*results):
        assert torch.allclose(ours, ref, atol=1e-4, rtol=1e-4)


def test_bad_shapes_name_the_tensors():
    with pytest.raises(ValueError, match="offset"):
        modulated_deform_conv2d(
            torch.zeros(1, 2, 4, 4),
            torch.zeros(1, 9, 4, 4),
            torch.zeros(3, 2, 3, 3),
            None,
            torch.zeros(1, 9, 4, 4),
        )


def test_far_away_offsets_sample_zeros(path):
    """Offsets of +-1e20 pixels put every sample outside the image: the output is the bias alone."""
    x, weight, bias = (
        torch.randn(1, 2, 4, 5),
        torch.randn(3, 2, 3, 3),
        torch.tensor([1.0, 2.0, 3.0]),
    )
    offset = torch.full((1, 18, 4, 5), 1e20)
    offset[:, ::4] = -1e20
    out = modulated_deform_conv2d(x, offset, weight, bias, torch.ones(1, 9, 4, 5))
    assert torch.equal(out, bias.view(1, 3, 1, 1).expand(1, 3, 4, 5))


def test_bfloat16_input_keeps_subpixel_positions():
    """A 1 x 1030 row alternating 0 (even columns) and 100 (odd), centre tap moved +0.25 px: the
    sample at column 1001 is 0.75 * 100 + 0.25 * 0 = 75 (exact in bfloat16). bfloat16 spaces numbers
    near 1000 by 4, so positions computed in the input's dtype would land on column 1000 (value
    0)."""
    x = 100.0 * (torch.arange(1030) % 2).float().view(1, 1, 1, 1030)
    offset = torch.zeros(1, 18, 1, 1030)
    offset[:, 2 * 4 + 1] = 0.25
    mask = torch.zeros(1, 9, 1, 1030)
    mask[:, 4] = 1.0
    out = modulated_deform_conv2d(
        x.bfloat16(), offset.bfloat16(), _identity_kernel(1).bfloat16(), None, mask.bfloat16()
    )
    assert out.dtype == torch.bfloat16
    assert out[0, 0, 0, 1001].item() == 75.0 and out[0, 0, 0, 1000].item() == 25.0


@pytest.mark.parametrize(
    "n, c, c_out, h, w, dilation, bias",
    [
        (2, 5, 3, 7, 9, 1, True),
        (1, 4, 6, 6, 1, 2, False),  # dilation 2 (padding 2), a one-pixel-wide image, no bias
        (2, 16, 8, 24, 50, 1, True),  # 2,400 pixels: several tiles, one across the two images
        (1, 33, 40, 11, 13, 1, True),  # 40 outputs: a full 16- or 32-wide block and a partial one
    ],
)
def test_inference_matches_torchvision(path, n, c, c_out, h, w, dilation, bias):
    """Without gradients (where the native kernel runs), both paths equal torchvision's kernel;
    offsets of 3 px (s.d.) put many samples across or outside the border."""
    torch.manual_seed(2)
    k = 9
    x = torch.randn(n, c, h, w)
    offset, mask = 3 * torch.randn(n, 2 * k, h, w), torch.rand(n, k, h, w)
    weight, b = torch.randn(c_out, c, 3, 3), (torch.randn(c_out) if bias else None)
    expected = deform_conv2d(
        x, offset, weight, b, padding=(dilation, dilation), dilation=(dilation, dilation), mask=mask
    )
    with torch.no_grad():
        out = modulated_deform_conv2d(
            x, offset, weight, b, mask, padding=dilation, dilation=dilation
        )
    assert out.shape == (n, c_out, h, w)
    assert torch.allclose(out, expected, atol=1e-4, rtol=1e-4)


def test_channels_last_slices_as_inputs(path):
    """As a channels-last model calls it: offsets and mask are channel slices of one channels-last
    (N, 27, H, W) conv output and the weight is channels-last; the result equals torchvision's on
    contiguous copies (the native kernel reads these strides in place)."""
    torch.manual_seed(3)
    n, c, c_out, h, w = 2, 12, 20, 9, 10
    x = torch.randn(n, c, h, w).contiguous(memory_format=torch.channels_last)
    offset_mask = (3 * torch.randn(n, 27, h, w)).contiguous(memory_format=torch.channels_last)
    offset, mask = offset_mask[:, :18], torch.sigmoid(offset_mask[:, 18:])
    weight = torch.randn(c_out, c, 3, 3).contiguous(memory_format=torch.channels_last)
    b = torch.randn(c_out)
    assert not offset.is_contiguous() and not weight.is_contiguous()
    expected = deform_conv2d(
        x.contiguous(),
        offset.contiguous(),
        weight.contiguous(),
        b,
        padding=(1, 1),
        mask=mask.contiguous(),
    )
    with torch.no_grad():
        out = modulated_deform_conv2d(x, offset, weight, b, mask)
    assert torch.allclose(out, expected, atol=1e-4, rtol=1e-4)


def test_native_kernel_runs_only_where_it_applies(monkeypatch):
    """The native forward takes CPU float32 calls without gradients outside traces; a call that
    needs gradients, another dtype or a trace keeps the PyTorch path."""
    monkeypatch.setattr(native, "_loaded", True)  # as if built: only the routing is under test
    x, offset, mask = torch.randn(1, 2, 4, 4), torch.randn(1, 18, 4, 4), torch.rand(1, 9, 4, 4)
    weight = torch.nn.Parameter(torch.randn(3, 2, 3, 3))
    applies = deform_conv._native_applies
    with torch.no_grad():
        assert applies(x, offset, weight, None, mask)
        assert not applies(x.bfloat16(), offset, weight, None, mask)
    assert not applies(x, offset, weight, None, mask)  # the weight asks for its gradient
    assert applies(x, offset, weight.detach(), None, mask)
    seen = []
    monkeypatch.setattr(torch.jit, "is_tracing", lambda: seen.append(1) or True)
    assert not applies(x, offset, weight.detach(), None, mask) and seen


def test_native_build_without_compiler_falls_back(monkeypatch, tmp_path, caplog):
    """A compiler that cannot run: no library, a warning that names the fallback, no exception."""
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("D2_INSTSEG_CACHE", str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        assert native._load() is False
    assert "PyTorch path" in caplog.text
    assert not list((tmp_path / "cache").rglob("*.so"))
