"""FCN-8s / 16s / 32s and UNet heads: bilinear initialisation, skip alignment on odd sizes."""

import os

import pytest
import torch
import torch.nn.functional as F
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model

import d2_instseg
from d2_instseg.layers import BilinearUpsample, bilinear_kernel
from d2_instseg.modeling.fcn import FCNHead, UNetHead

from ...conftest import hard_label_maps

CONFIGS = os.path.join(os.path.dirname(__file__), "../../../configs/shapes")


def odd_features(channels=(4, 6, 8), size=(99, 133)):
    """Backbone-like features of a (99, 133) input: ceil(size / s) for s = 8, 16, 32."""
    shapes = {}
    feats = {}
    for (name, stride), c in zip((("res3", 8), ("res4", 16), ("res5", 32)), channels):
        h, w = (-(-size[0] // stride), -(-size[1] // stride))
        shapes[name] = ShapeSpec(channels=c, stride=stride)
        feats[name] = torch.zeros(1, c, h, w)
    return shapes, feats


def fcn_head(shapes, in_features, num_classes, conv_dim=8, norm="BN"):
    """An FCNHead in eval mode, no dropout."""
    return FCNHead(
        shapes,
        in_features=in_features,
        num_classes=num_classes,
        ignore_value=255,
        conv_dim=conv_dim,
        dropout=0.0,
        norm=norm,
        loss_weight=1.0,
    ).eval()


def test_bilinear_kernel_by_hand():
    """Factor 2 -> k = 4, profile 1 - |x - 1.5| / 2 = [.25, .75, .75, .25]."""
    k = bilinear_kernel(1, 4)[0, 0]
    profile = torch.tensor([0.25, 0.75, 0.75, 0.25])
    assert torch.allclose(k, profile[:, None] * profile[None, :])


def test_bilinear_upsample_matches_interpolation_inside():
    """Away from the border (where the transposed conv misses taps), the initialised layer equals
    bilinear interpolation with align_corners=False; the size is exactly factor x input."""
    x = torch.randn(1, 3, 7, 9)
    for factor in (2, 8):
        up = BilinearUpsample(3, factor)(x)
        ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        assert up.shape == ref.shape == (1, 3, 7 * factor, 9 * factor)
        m = factor
        assert torch.allclose(up[..., m:-m, m:-m], ref[..., m:-m, m:-m], atol=1e-5)


@pytest.mark.parametrize("variant,stride", [(8, 8), (16, 16), (32, 32)])
def test_fcn_variants_cover_odd_inputs(variant, stride):
    shapes, feats = odd_features()
    head = fcn_head(shapes, ["res3", "res4", "res5"][3 - {8: 3, 16: 2, 32: 1}[variant] :], 5)
    logits, _ = head(feats)
    finest = feats[head.in_features[0]]
    assert logits.shape == (1, 5, finest.shape[-2] * stride, finest.shape[-1] * stride)
    assert logits.shape[-2] >= 99 and logits.shape[-1] >= 133


def test_fcn_upsampling_is_fixed_bilinear_up_to_the_border():
    """The authors' up-sampling is fixed (lr_mult 0): the head's only parameters are its convs, and
    a constant score map comes out constant everywhere, borders included (a zero-padded
    transposed convolution would give 3/4 of it in the first row of each 2x step)."""
    shapes, feats = odd_features()
    head = fcn_head(shapes, ["res3", "res4", "res5"], 2)
    assert all(".up" not in n for n, _ in head.named_parameters())
    classifier = head.score_coarsest[-1]
    with torch.no_grad():
        classifier.weight.zero_()
        classifier.bias.copy_(torch.tensor([1.5, -2.0]))
    logits, _ = head(feats)
    assert logits.shape == (1, 2, 13 * 8, 17 * 8)
    assert torch.allclose(logits[0, 0], torch.full_like(logits[0, 0], 1.5))
    assert torch.allclose(logits[0, 1], torch.full_like(logits[0, 1], -2.0))


def test_fcn8s_skip_alignment_on_odd_input():
    """An impulse at res3 position (5, 7) must come out centred on input pixel
    (8 * 5 + 3.5, 8 * 7 + 3.5) = (43.5, 59.5): the centre of stride-8 cell i is 8 i + 3.5. Coarser
    scores are zeroed and the res3 score is a pass-through of channel 0. The res5 -> res4 -> res3
    maps (4x5 -> 8x10 -> cropped to 7x9 -> 14x18 -> cropped to 13x17) must line up, else the sum
    fails or shifts."""
    shapes, feats = odd_features(channels=(1, 1, 1))
    head = fcn_head(shapes, ["res3", "res4", "res5"], 1, conv_dim=4, norm="")
    with torch.no_grad():
        for p in head.score_coarsest.parameters():
            p.zero_()
        head.score_skips[0].weight.fill_(1.0)  # res3 score = the res3 feature
    feats["res3"][0, 0, 5, 7] = 1.0
    logits, _ = head(feats)
    out = logits[0, 0]
    rows, cols = torch.nonzero(out == out.max(), as_tuple=True)
    assert rows.float().mean().item() == pytest.approx(43.5)
    assert cols.float().mean().item() == pytest.approx(59.5)


def test_unet_odd_input_shape():
    shapes = {
        "res2": ShapeSpec(channels=4, stride=4),
        "res3": ShapeSpec(channels=6, stride=8),
        "res4": ShapeSpec(channels=8, stride=16),
        "res5": ShapeSpec(channels=10, stride=32),
    }
    feats = {  # a 99 x 133 input: ceil(size / stride)
        "res2": torch.randn(2, 4, 25, 34),
        "res3": torch.randn(2, 6, 13, 17),
        "res4": torch.randn(2, 8, 7, 9),
        "res5": torch.randn(2, 10, 4, 5),
    }
    head = UNetHead(
        shapes,
        in_features=["res2", "res3", "res4", "res5"],
        decoder_channels=[8, 6, 4],
        num_classes=3,
        ignore_value=255,
        norm="BN",
        loss_weight=1.0,
    )
    _, losses = head(feats, torch.randint(0, 3, (2, 99, 133)))
    assert torch.isfinite(losses["loss_sem_seg"])
    logits, _ = head.eval()(feats)
    assert logits.shape == (2, 3, 100, 136)


@pytest.mark.parametrize("name", ["fcn8s.yaml", "unet.yaml"])
def test_shapes_configs_build_train_and_predict_odd_sizes(name):
    cfg = get_cfg()
    d2_instseg.add_d2_instseg_config(cfg)
    cfg.merge_from_file(os.path.join(CONFIGS, name))
    torch.manual_seed(0)
    model = build_model(cfg)
    batch = [{"image": torch.rand(3, 97, 131) * 255, "sem_seg": torch.randint(0, 4, (97, 131))}]
    sum(model(batch).values()).backward()
    model.eval()
    with torch.no_grad():
        out = model([{"image": torch.rand(3, 97, 131) * 255, "height": 50, "width": 66}])
    assert out[0]["sem_seg"].shape == (4, 50, 66)
    with pytest.raises(ValueError, match="MODEL.FCN.VARIANT"):
        cfg.MODEL.FCN.VARIANT = 4
        cfg.MODEL.SEM_SEG_HEAD.NAME = "FCNHead"
        build_model(cfg)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("case", ["background", "ignore", "one_pixel", "border"])
@pytest.mark.parametrize("name", ["fcn8s.yaml", "unet.yaml"])
def test_degenerate_label_maps_give_finite_losses(name, case):
    """All background, all ignore, one labelled pixel, classes only along the borders: finite
    loss and gradients; 0, not NaN, when every pixel is ignored."""
    cfg = get_cfg()
    d2_instseg.add_d2_instseg_config(cfg)
    cfg.merge_from_file(os.path.join(CONFIGS, name))
    torch.manual_seed(0)
    model = build_model(cfg)
    label = hard_label_maps(64, 64)[case]
    losses = model([{"image": torch.rand(3, 64, 64) * 255, "sem_seg": label}])
    loss = losses["loss_sem_seg"]
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    if case == "ignore":
        assert loss == 0
