"""IRNetCAM / IRNetRelations: odd sizes, frozen backbone, checkpoint hand-over, configs."""

import glob

import pytest
import torch
import torch.nn.functional as F
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.modeling import build_model

from d2_instseg import add_d2_instseg_config
from d2_instseg.modeling.irnet import multiscale_cams
from d2_instseg.modeling.irnet.cam import cam_semantic_prediction
from d2_instseg.modeling.irnet.config import check_irnet_config

from ...conftest import hard_label_maps


def _build(cfg, arch):
    cfg = cfg.clone()
    cfg.MODEL.META_ARCHITECTURE = arch
    torch.manual_seed(0)
    return build_model(cfg)


def test_cam_train_loss_and_odd_size_inference(irnet_cfg):
    """Loss of an untrained classifier is near ln 2 = 0.693 per class (logits near 0); CAMs of a
    97x131 image live on the stride-16 grid: ((97-1)//16+1, (131-1)//16+1) = (7, 9)."""
    model = _build(irnet_cfg, "IRNetCAM")
    batch = [
        {"image": torch.rand(3, 97, 131) * 255, "image_labels": [0, 2]},
        {"image": torch.rand(3, 64, 80) * 255, "image_labels": []},
    ]
    loss = model(batch)["loss_cls"]
    assert torch.isfinite(loss) and 0.0 < loss.item() < 5.0
    loss.backward()
    assert model.classifier.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model(batch[:1])
    assert out[0]["cam"].shape == (3, 7, 9) and (out[0]["cam"] >= 0).all()


def test_classify_is_the_trained_pooled_logit(irnet_cfg):
    """``classify`` gives the logits the loss trains: the training loss of one unpadded image (BN in
    eval mode) equals the soft-margin loss of ``classify``; and, the classifier being linear, the
    logits equal the mean over the stride-16 grid of the pre-ReLU class maps."""
    model = _build(irnet_cfg, "IRNetCAM").eval()
    image = torch.rand(3, 96, 128) * 255
    with torch.no_grad():
        logits = model.classify(image[None])
        model.training = True  # the loss branch, with BN still in eval mode
        loss = model([{"image": image, "image_labels": [1]}])["loss_cls"]
        model.training = False
        maps = model.classifier(model._features(image[None]))  # (1, 3, 6, 8), before ReLU
    target = torch.tensor([[0.0, 1.0, 0.0]])
    assert loss.item() == pytest.approx(F.multilabel_soft_margin_loss(logits, target).item(), 1e-5)
    torch.testing.assert_close(logits, maps.mean(dim=(2, 3)), rtol=1e-5, atol=1e-5)


def test_multiscale_cams_shapes_and_normalisation(irnet_cfg):
    """cam on the stride-4 grid (25, 33), high_res at image size; each class max is 1 (or 0)."""
    model = _build(irnet_cfg, "IRNetCAM").eval()
    pack = multiscale_cams(model, torch.rand(3, 97, 131) * 255, [1, 2], (1.0, 0.5))
    assert pack["cam"].shape == (2, 25, 33) and pack["high_res"].shape == (2, 97, 131)
    for x in (pack["cam"], pack["high_res"]):
        peak = x.flatten(1).max(dim=1)[0]
        assert ((peak - 1).abs() < 1e-3).logical_or(peak == 0).all()
    empty = multiscale_cams(model, torch.rand(3, 40, 40) * 255, [], (1.0,))
    assert empty["cam"].shape == (0, 10, 10)
    assert (cam_semantic_prediction(empty["high_res"], [], 0.15) == 0).all()


def test_cam_semantic_prediction_hand_values():
    """bg score 0.15 vs classes 1 and 2 (ids -> labels 2, 3): pixel scores (0.1, 0.05) -> bg,
    (0.5, 0.2) -> label 2, (0.3, 0.9) -> label 3."""
    cams = torch.tensor([[[0.1, 0.5, 0.3]], [[0.05, 0.2, 0.9]]])
    assert cam_semantic_prediction(cams, [1, 2], 0.15).tolist() == [[0, 2, 3]]


def test_irnet_frozen_backbone_losses_and_inference(irnet_cfg):
    """Backbone gets no gradient and stays in eval mode; both losses are finite and reach their
    branches; outputs of a 97x131 image are on its stride-4 grid (25, 33)."""
    model = _build(irnet_cfg, "IRNetRelations").train()
    assert not model.backbone.training
    assert not any(p.requires_grad for p in model.backbone.parameters())
    label = torch.full((25, 33), 255, dtype=torch.long)
    label[:12, :10], label[:12, 20:], label[15:, :] = 1, 3, 0
    batch = [{"image": torch.rand(3, 97, 131) * 255, "relation_label": label}]
    losses = model(batch)
    assert set(losses) == {"loss_boundary", "loss_displacement"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.boundary_out.weight.grad.abs().sum() > 0
    assert model.displacement_out.weight.grad.abs().sum() > 0
    model.eval()
    model.displacement_mean.fill_(1.0)
    with torch.no_grad():
        out = model([{"image": batch[0]["image"]}])[0]
    assert out["boundary"].shape == (25, 33) and out["displacement"].shape == (2, 25, 33)
    assert ((out["boundary"] >= 0) & (out["boundary"] <= 1)).all()


def test_cam_checkpoint_initialises_irnet_backbone(irnet_cfg, tmp_path):
    """IRNet's backbone is the CAM network's, handed over through DetectionCheckpointer."""
    cam = _build(irnet_cfg, "IRNetCAM")
    DetectionCheckpointer(cam, save_dir=str(tmp_path)).save("cam")
    torch.manual_seed(1)
    irn = _build(irnet_cfg, "IRNetRelations")
    DetectionCheckpointer(irn).load(str(tmp_path / "cam.pth"))
    for (name, a), b in zip(cam.backbone.state_dict().items(), irn.backbone.state_dict().values()):
        assert torch.equal(a, b), name


CONFIGS = sorted(glob.glob("configs/irnet/*.yaml")) + ["configs/shapes/irnet.yaml"]


@pytest.mark.parametrize("path", CONFIGS)
def test_configs_merge(path):
    cfg = get_cfg()
    add_d2_instseg_config(cfg)
    cfg.merge_from_file(path)
    check_irnet_config(cfg)
    if "mask_rcnn" in path:
        assert cfg.MODEL.MASK_ON and cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN"
    else:
        assert cfg.MODEL.META_ARCHITECTURE == "IRNetCAM"
        assert cfg.MODEL.RESNETS.RES5_DILATION == 2  # output stride 16


def test_invalid_config_value_names_the_key(irnet_cfg):
    irnet_cfg.MODEL.IRNET.RELATION.BG_THRESH = 0.5  # above FG_THRESH 0.30
    with pytest.raises(ValueError, match="MODEL.IRNET.RELATION.BG_THRESH"):
        _build(irnet_cfg, "IRNetCAM")


@pytest.mark.parametrize("case", ["background", "ignore", "one_pixel", "border"])
@pytest.mark.parametrize("size", [(96, 96), (48, 48), (20, 90)])
def test_irnet_hard_labels_and_small_images_train(irnet_cfg, case, size):
    """Relation labels with no foreground, no confident pixel at all, a single foreground pixel or
    classes only along the borders, on images down to 20 x 90 px (a stride-4 grid of 5 x 23, too
    small for pairs of radius 10 until the batch is padded for them): both losses and the branch
    gradients are finite, and exactly 0 when no pixel is confident (no pair)."""
    model = _build(irnet_cfg, "IRNetRelations").train()
    h4, w4 = (size[0] - 1) // 4 + 1, (size[1] - 1) // 4 + 1
    label = hard_label_maps(h4, w4)[case]
    losses = model([{"image": torch.rand(3, *size) * 255, "relation_label": label}])
    assert all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    for p in model.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()
    if case == "ignore":
        assert losses["loss_boundary"] == 0 and losses["loss_displacement"] == 0


def test_cam_loss_finite_without_any_label(irnet_cfg):
    """Images with no foreground class: every target is 0, the soft-margin loss is finite and
    positive (log(1 + e^x) > 0), and it back-propagates."""
    model = _build(irnet_cfg, "IRNetCAM").train()
    batch = [{"image": torch.rand(3, 48, 48) * 255, "image_labels": []}] * 2
    loss = model(batch)["loss_cls"]
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert torch.isfinite(model.classifier.weight.grad).all()
