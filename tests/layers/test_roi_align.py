"""roi_align_gather: torchvision's roi_align (an independent implementation) value for value and
gradient for gradient, plus a hand-computed case; the swap into Detectron2's poolers."""

import pytest
import torch
from torchvision.ops import roi_align

from d2_instseg.layers import ROIAlignGather, roi_align_gather, use_gather_roi_align


def test_linear_ramp_averages_to_the_bin_centre():
    """On f(y, x) = x (feature pixel centres at integers, aligned=True), bilinear sampling is exact
    and the mean over a bin's points is f at the bin's centre. RoI (x 1..5, y 1..3) in input
    pixels at scale 1 -> 2 x 2 bins of 2 x 1 pixels, centred at x = 2 and 4 in input pixels, i.e.
    1.5 and 3.5 in feature pixels (aligned: pixel i's centre is at input coordinate i + 0.5)."""
    x = torch.arange(8.0).repeat(1, 1, 6, 1)  # (1, 1, 6, 8), value = column index
    rois = torch.tensor([[0.0, 1.0, 1.0, 5.0, 3.0]])
    out = roi_align_gather(x, rois, (2, 2), 1.0, 0, True)
    torch.testing.assert_close(out[0, 0], torch.tensor([[1.5, 3.5], [1.5, 3.5]]))


@pytest.mark.parametrize("sampling_ratio, aligned", [(0, True), (2, True), (0, False), (3, False)])
def test_equals_torchvision_values_and_gradients(sampling_ratio, aligned):
    g = torch.Generator().manual_seed(sampling_ratio + 10 * aligned)
    x = torch.randn(3, 5, 12, 16, generator=g, requires_grad=True)
    r = 40
    xy = torch.rand(r, 2, generator=g) * 70 - 10  # some RoIs reach outside the 64 x 48 image
    wh = torch.rand(r, 2, generator=g) * 40
    wh[:3] = 0  # empty RoIs
    rois = torch.cat([torch.randint(0, 3, (r, 1), generator=g).float(), xy, xy + wh], 1)
    ref = roi_align(x, rois, (7, 5), 0.25, sampling_ratio, aligned)
    ours = roi_align_gather(x, rois, (7, 5), 0.25, sampling_ratio, aligned)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    grad = torch.randn(ref.shape, generator=g)
    (g_ref,) = torch.autograd.grad(ref, x, grad)
    (g_ours,) = torch.autograd.grad(ours, x, grad)
    torch.testing.assert_close(g_ours, g_ref, atol=1e-5, rtol=1e-5)


def test_no_rois():
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    out = roi_align_gather(x, torch.zeros(0, 5), (7, 7), 0.5, 0, True)
    assert out.shape == (0, 4, 7, 7)


def test_detectron2_poolers_swapped_in_place():
    from detectron2.layers import ROIAlign
    from detectron2.modeling import build_model

    from ..conftest import shapes_cfg

    model = build_model(shapes_cfg("configs/shapes/mask_rcnn_R18_FPN.yaml"))
    poolers = [m for m in model.modules() if isinstance(m, ROIAlign)]
    settings = [(m.output_size, m.spatial_scale, m.sampling_ratio, m.aligned) for m in poolers]
    assert use_gather_roi_align(model) == len(poolers) == 8  # 4 FPN levels x (box, mask)
    assert all(type(m) is ROIAlignGather for m in poolers)
    assert settings == [
        (m.output_size, m.spatial_scale, m.sampling_ratio, m.aligned) for m in poolers
    ]
    x = torch.randn(2, 3, 20, 20)
    rois = torch.tensor([[1.0, 2.0, 3.0, 60.0, 50.0]])
    torch.testing.assert_close(poolers[0](x, rois), roi_align(x, rois, *settings[0]))
