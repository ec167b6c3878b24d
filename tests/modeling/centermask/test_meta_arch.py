"""CenterMaskPoint end to end on tiny random models: losses, empty images, output format, ablation
switches, config validation, and every CenterMask config file."""

import glob
import os

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Boxes, Instances

from d2_instseg import add_d2_instseg_config
from d2_instseg.modeling.centermask.targets import centermask_targets

from ...conftest import hard_instance_cases

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def tiny_cfg(*opts):
    cfg = get_cfg()
    add_d2_instseg_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, "configs/Base-CenterMask.yaml"))
    cfg.merge_from_list(
        [
            "MODEL.DEVICE",
            "cpu",
            "MODEL.CENTERMASK.NUM_CLASSES",
            3,
            "MODEL.CENTERMASK.HEAD_CONV",
            8,
            "MODEL.CENTERMASK.SHAPE_SIZE",
            8,
            "MODEL.DLA.CHANNELS",
            [4, 4, 8, 8, 8, 8],
            "MODEL.DLA.DEFORMABLE",
            False,
            *opts,
        ]
    )
    return cfg


def _image_with_objects(h=67, w=93):
    """An odd-sized image with two overlapping objects (classes 0 and 2)."""
    inst = Instances((h, w))
    inst.gt_boxes = Boxes(torch.tensor([[5.0, 6.0, 40.0, 50.0], [30.0, 20.0, 90.0, 60.0]]))
    inst.gt_classes = torch.tensor([0, 2])
    masks = torch.zeros(2, h, w, dtype=torch.bool)
    masks[0, 6:50, 5:40] = True
    masks[1, 20:60, 30:90] = True
    masks[1, 6:50, 5:40] = False  # occluded by object 0
    inst.gt_masks = BitMasks(masks)
    return {"image": torch.rand(3, h, w) * 255, "instances": inst}


def _image_without_objects(h=64, w=80):
    inst = Instances((h, w))
    inst.gt_boxes = Boxes(torch.zeros(0, 4))
    inst.gt_classes = torch.zeros(0, dtype=torch.long)
    return {"image": torch.rand(3, h, w) * 255, "instances": inst}


def _train_step(model, batch):
    model.train()
    losses = model(batch)
    total = sum(losses.values())
    assert torch.isfinite(total), losses
    model.zero_grad()
    total.backward()
    return losses


def test_losses_with_an_empty_image_in_the_batch():
    torch.manual_seed(0)
    model = build_model(tiny_cfg())
    losses = _train_step(model, [_image_with_objects(), _image_without_objects()])
    assert set(losses) == {"loss_heatmap", "loss_offset", "loss_size", "loss_mask"}
    for name, p in model.named_parameters():
        assert p.grad is not None, name


def test_batch_without_any_object_trains():
    """No centers: focal loss = negative sum only, L1 and mask losses 0, gradients still defined."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg())
    losses = _train_step(model, [_image_without_objects(), _image_without_objects(48, 40)])
    assert losses["loss_heatmap"] > 0
    assert losses["loss_offset"] == 0 and losses["loss_size"] == 0 and losses["loss_mask"] == 0
    assert model.head.shape_out.weight.grad is not None


def test_inference_output_format_at_requested_size():
    """Every detection is returned through detector_postprocess: boxes scaled to (height, width) =
    (134, 186) (twice the 67 x 93 input), bool masks of that size, scores >= the threshold."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg("MODEL.CENTERMASK.SCORE_THRESH_TEST", 0.0))
    # Positive sizes so every decoded box is non-empty.
    torch.nn.init.constant_(model.head.size[-1].bias, 6.0)
    model.eval()
    inputs = [{"image": torch.rand(3, 67, 93) * 255, "height": 134, "width": 186}]
    with torch.no_grad():
        (out,) = model(inputs)
    r = out["instances"]
    assert r.image_size == (134, 186)
    assert 0 < len(r) <= 100
    assert r.pred_masks.dtype == torch.bool and r.pred_masks.shape[1:] == (134, 186)
    assert r.pred_classes.max() < 3 and r.scores.min() >= 0
    boxes = r.pred_boxes.tensor
    assert boxes[:, 0].min() >= 0 and boxes[:, 2].max() <= 186 and boxes[:, 3].max() <= 134
    # No mask pixel outside its box (masks are assembled over the box and pasted into it).
    for box, mask in zip(boxes, r.pred_masks):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        if len(xs):
            assert xs.min() >= box[0].floor() - 1 and xs.max() <= box[2].ceil() + 1


@pytest.mark.parametrize(
    "case, kept",
    # Objects left after CenterNet's clip of the stride-4 box to [0, W - 1] = [0, 15] (64 px
    # image), which drops any object lying inside the last feature column or row: "many" loses
    # its 9 squares at x = 60..62 ([15, 15.75] collapses to width 0), "tiny" the 2 x 2 object in
    # the bottom-right corner, "border" the 3-px-high strip along the bottom (rows 61-63).
    [("empty", 0), ("many", 141), ("tiny", 3), ("border", 4)],
)
@pytest.mark.usefixtures("one_thread")
def test_hard_inputs_train_and_infer(case, kept):
    """No object, 150 objects (more than TOPK_TEST = 10), 1-2 px objects and objects touching the
    border: every loss term, the saliency BCE included, and every gradient are finite (the
    regression and mask terms exactly 0 without objects); inference on the image returns at most
    TOPK_TEST detections, with boxes and masks inside the 64 x 64 image."""
    torch.manual_seed(0)
    model = build_model(
        tiny_cfg(
            "MODEL.CENTERMASK.TOPK_TEST", 10,
            "MODEL.CENTERMASK.SALIENCY_LOSS_WEIGHT", 1.0,
            "MODEL.CENTERMASK.SCORE_THRESH_TEST", 0.0,
        )
    )  # fmt: skip
    torch.nn.init.constant_(model.head.size[-1].bias, 6.0)  # non-empty boxes at inference
    inst = hard_instance_cases(64, 64)[case]
    targets = centermask_targets([inst], num_classes=3, feature_hw=(16, 16), stride=4, shape_size=8)
    assert len(targets["classes"]) == kept
    image = torch.rand(3, 64, 64) * 255
    losses = _train_step(model, [{"image": image, "instances": inst}])
    assert set(losses) == {"loss_heatmap", "loss_offset", "loss_size", "loss_mask", "loss_saliency"}
    assert all(torch.isfinite(v) for v in losses.values()), losses
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    if kept == 0:
        assert losses["loss_offset"] == losses["loss_size"] == losses["loss_mask"] == 0
    model.eval()
    with torch.no_grad():
        (out,) = model([{"image": image}])
    r = out["instances"]
    assert len(r) <= 10 and r.pred_masks.shape[1:] == (64, 64)
    boxes = r.pred_boxes.tensor
    assert (boxes >= 0).all() and (boxes <= 64).all()


@pytest.mark.parametrize(
    "opts, heads",
    [
        (["MODEL.CENTERMASK.MASK_BRANCHES", "shape"], {"shape": True, "saliency": False}),
        (["MODEL.CENTERMASK.MASK_BRANCHES", "saliency"], {"shape": False, "saliency": True}),
        (
            [
                "MODEL.CENTERMASK.SALIENCY_CLASS_SPECIFIC",
                True,
                "MODEL.CENTERMASK.SALIENCY_LOSS_WEIGHT",
                1.0,
            ],
            {"shape": True, "saliency": True},
        ),
    ],
)
def test_ablation_switches(opts, heads):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(*opts))
    assert (model.head.shape_hidden is not None) == heads["shape"]
    assert (model.head.saliency is not None) == heads["saliency"]
    losses = _train_step(model, [_image_with_objects()])
    assert ("loss_saliency" in losses) == ("MODEL.CENTERMASK.SALIENCY_LOSS_WEIGHT" in opts)
    if "MODEL.CENTERMASK.SALIENCY_CLASS_SPECIFIC" in opts:
        assert model.head.saliency[-1].out_channels == 3


def test_heatmap_bias_prior():
    """bias = -log((1 - 0.1) / 0.1) = -2.1972 (CenterNet's -2.19)."""
    model = build_model(tiny_cfg())
    bias = model.head.heatmap[-1].bias.detach()
    assert bias.tolist() == pytest.approx([-2.1972] * 3, abs=1e-4)


@pytest.mark.parametrize(
    "opts",
    [
        ["MODEL.CENTERMASK.MASK_BRANCHES", "none"],
        ["MODEL.CENTERMASK.IN_FEATURE", "p2"],
        ["MODEL.CENTERMASK.GAUSSIAN_MIN_OVERLAP", 1.5],
        ["MODEL.CENTERMASK.SHAPE_SIZE", 0],
        ["MODEL.CENTERMASK.MASK_BRANCHES", "shape", "MODEL.CENTERMASK.SALIENCY_LOSS_WEIGHT", 1.0],
    ],
)
def test_invalid_config_raises_naming_the_key(opts):
    with pytest.raises(ValueError, match="MODEL.CENTERMASK"):
        build_model(tiny_cfg(*opts))


@pytest.mark.parametrize(
    "path",
    sorted(
        glob.glob(os.path.join(REPO, "configs/*CenterMask*.yaml"))
        + glob.glob(os.path.join(REPO, "configs/centermask*.yaml"))
        + glob.glob(os.path.join(REPO, "configs/shapes/centermask*.yaml"))
    ),
)
def test_config_files_merge_and_build(path):
    cfg = get_cfg()
    add_d2_instseg_config(cfg)
    cfg.merge_from_file(path)
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    assert type(model).__name__ == "CenterMaskPoint"
    assert model.backbone.output_shape()[cfg.MODEL.CENTERMASK.IN_FEATURE].stride == 4
