"""SpatialEmbeddings as a Detectron2 model: build from config, output format, padding, empty GT."""

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Instances

from d2_instseg.modeling.backbone.erfnet import ERFNetEncoder

from ...conftest import hard_instance_cases, shapes_cfg

CONFIG = "configs/shapes/spatial_embeddings.yaml"


def _model(*opts):
    torch.manual_seed(0)
    return build_model(shapes_cfg(CONFIG, *opts))


def test_erfnet_shapes_and_output_init():
    """ERFNet: stride 8, widths[2] channels. Decoder outputs at full (padded) resolution with
    2 + S + C channels; at init the offsets are 0 (weights and bias 0) and sigma is the config's
    SIGMA_BIAS_INIT (the reference's 1 unless set; 0.6281 in the shapes config)."""
    enc = ERFNetEncoder(widths=(16, 32, 64), num_stage2_blocks=1, stage3_repeats=1)
    assert enc(torch.zeros(1, 3, 40, 56))["erf3"].shape == (1, 64, 5, 7)
    model = _model("MODEL.SPATIAL_EMBED.N_SIGMA", "2").eval()
    with torch.no_grad():
        out = model.decoder(model.backbone(torch.randn(2, 3, 64, 72)))
    assert out.shape == (2, 2 + 2 + 3, 64, 72)
    assert torch.all(out[:, :2] == 0) and torch.allclose(out[:, 2:4], torch.tensor(0.6281))
    model = _model("MODEL.SPATIAL_EMBED.SIGMA_BIAS_INIT", "1.0").eval()
    with torch.no_grad():
        out = model.decoder(model.backbone(torch.randn(1, 3, 64, 72)))
    assert torch.all(out[:, 2] == 1)


def test_invalid_keys_raise():
    with pytest.raises(ValueError, match="N_SIGMA"):
        _model("MODEL.SPATIAL_EMBED.N_SIGMA", "3")
    with pytest.raises(ValueError, match="DECODER_WIDTHS"):
        _model("MODEL.SPATIAL_EMBED.DECODER_WIDTHS", "[16]")


def test_training_with_and_without_instances():
    """Odd sizes (padded to 8), one image with two instances and one with none (no gt_masks field,
    as Detectron2's mapper gives it): finite losses, every parameter gets a gradient."""
    model = _model().train()
    masks = torch.zeros(2, 45, 61, dtype=torch.bool)
    masks[0, 5:20, 5:20] = True
    masks[1, 25:40, 30:55] = True
    inst = Instances((45, 61), gt_masks=BitMasks(masks), gt_classes=torch.tensor([0, 2]))
    empty = Instances((50, 37), gt_classes=torch.zeros(0, dtype=torch.int64))
    batch = [
        {"image": torch.rand(3, 45, 61) * 255, "instances": inst},
        {"image": torch.rand(3, 50, 37) * 255, "instances": empty},
    ]
    losses = model(batch)
    assert set(losses) == {"loss_instance", "loss_variance", "loss_seed"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_inference_output_format_from_known_outputs(monkeypatch):
    """Replace the decoder output by a constructed one on a 40x48 input returned at 80x96:
    offsets 0 everywhere except a 16x16 square whose embedding points at its center (tanh^-1 of
    center - coordinate), seed logit +5 (sigmoid 0.993) there and -5 elsewhere, sigma 0.5
    (radius sqrt(ln 2 / e^5) = 0.068 units = 70 px at 1023 px per unit): one instance of class 1,
    score 0.993, a 32x32 mask at (16..47, 32..63) and its box after the 2x resize."""
    model = _model().eval()
    ppu = model.pixels_per_unit

    def fake_decoder(features):
        out = torch.zeros(1, 2 + 1 + 3, 40, 48)
        ys, xs = torch.meshgrid(torch.arange(40.0), torch.arange(48.0), indexing="ij")
        sq = (ys >= 8) & (ys < 24) & (xs >= 16) & (xs < 32)
        out[0, 0][sq] = torch.atanh((23.5 - xs[sq]) / ppu)
        out[0, 1][sq] = torch.atanh((15.5 - ys[sq]) / ppu)
        out[0, 2] = 0.5
        out[0, 3:] = -5.0
        out[0, 4][sq] = 5.0
        return out

    monkeypatch.setattr(model.decoder, "forward", fake_decoder)
    with torch.no_grad():
        (result,) = model([{"image": torch.zeros(3, 40, 48), "height": 80, "width": 96}])
    inst = result["instances"]
    assert inst.image_size == (80, 96)
    assert inst.pred_classes.tolist() == [1]
    assert inst.scores.tolist() == pytest.approx([torch.sigmoid(torch.tensor(5.0)).item()])
    expected = torch.zeros(80, 96, dtype=torch.bool)
    expected[16:48, 32:64] = True
    assert torch.equal(inst.pred_masks[0], expected)
    assert inst.pred_boxes.tensor.tolist() == [[32.0, 16.0, 64.0, 48.0]]


def test_inference_without_instances():
    """An untrained model's seeds are ~sigmoid(0) = 0.5 < SEED_THRESHOLD = 0.9: no instance, but
    every field is present with length 0 at the requested size."""
    model = _model("MODEL.SPATIAL_EMBED.SEED_THRESHOLD", "0.9").eval()
    with torch.no_grad():
        (result,) = model([{"image": torch.rand(3, 37, 50) * 255, "height": 74, "width": 100}])
    inst = result["instances"]
    assert len(inst) == 0 and inst.image_size == (74, 100)
    assert inst.pred_masks.shape == (0, 74, 100)
    assert inst.has("scores") and inst.has("pred_classes") and inst.has("pred_boxes")


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("case", ["empty", "many", "tiny", "border"])
def test_hard_inputs_train_and_infer(case):
    """No object, 150 objects (more than TEST.DETECTIONS_PER_IMAGE = 50 of the shapes config),
    1-2 px objects (one-pixel instances: zero sigma variance, a centre exactly on a pixel) and
    objects touching the border: the three loss terms and every gradient are finite, instance and
    variance exactly 0 without objects. With every threshold at 0 the clustering finds many
    proposals, capped at 50, each a (64, 64) mask."""
    model = _model(
        *("MODEL.SPATIAL_EMBED.MIN_PIXELS", "0", "MODEL.SPATIAL_EMBED.SEED_THRESHOLD", "0.0"),
        *("MODEL.SPATIAL_EMBED.FG_THRESHOLD", "0.0"),
    ).train()
    image = torch.rand(3, 64, 64) * 255
    losses = model([{"image": image, "instances": hard_instance_cases(64, 64)[case]}])
    assert all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    if case == "empty":
        assert losses["loss_instance"] == 0 and losses["loss_variance"] == 0
    model.eval()
    with torch.no_grad():
        (result,) = model([{"image": image}])
    inst = result["instances"]
    assert 0 < len(inst) <= 50 and inst.pred_masks.shape[1:] == (64, 64)
