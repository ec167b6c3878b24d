"""CPNetHead + CPNetSegmentor built from configs/shapes/cpnet.yaml (narrowed for speed): losses,
fixed-size checks, and inference at sizes other than the training crop."""

import os

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model
from detectron2.utils.visualizer import Visualizer

import d2_instseg
from d2_instseg.layers import affinity_loss, ideal_affinity_map, window_starts
from d2_instseg.modeling.cpnet.inference import slide

from ...conftest import hard_label_maps

CONFIG = os.path.join(os.path.dirname(__file__), "../../../configs/shapes/cpnet.yaml")


def make_cfg(*opts):
    cfg = get_cfg()
    d2_instseg.add_d2_instseg_config(cfg)
    cfg.merge_from_file(CONFIG)
    cfg.merge_from_list(["MODEL.CPNET.CHANNELS", 16, "MODEL.CPNET.AUX_CHANNELS", 8, *opts])
    return cfg


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(make_cfg())


def test_window_starts_by_hand():
    """157 px, window 128, stride 96: ceil(29 / 96) + 1 = 2 windows, the last moved back to 29."""
    assert window_starts(157, 128, 96) == [0, 29]
    assert window_starts(128, 128, 96) == [0]
    assert window_starts(60, 128, 96) == [0]
    assert window_starts(300, 128, 96) == [0, 96, 172]


def test_training_losses_with_padding_to_crop(model):
    """Images smaller than the 128 crop are padded (labels with ignore); three finite losses."""
    model.train()
    batch = [
        {"image": torch.rand(3, 100, 90) * 255, "sem_seg": torch.randint(0, 4, (100, 90))},
        {"image": torch.rand(3, 128, 128) * 255, "sem_seg": torch.full((128, 128), 255)},
    ]
    losses = model(batch)
    assert set(losses) == {"loss_sem_seg", "loss_aux", "loss_affinity"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    too_big = [{"image": torch.rand(3, 130, 90), "sem_seg": torch.zeros(130, 90, dtype=torch.long)}]
    with pytest.raises(ValueError, match="INPUT.CROP.SIZE"):
        model(too_big)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("case", ["background", "ignore", "one_pixel", "border"])
def test_degenerate_label_maps_give_finite_losses(model, case):
    """All background, all ignore, one labelled pixel, classes only along the borders: the three
    losses and every gradient are finite; with every pixel ignored both cross-entropies are 0
    (PyTorch's mean over no pixel is 0 / 0 = NaN)."""
    model.train()
    label = hard_label_maps(128, 128)[case]
    losses = model([{"image": torch.rand(3, 128, 128) * 255, "sem_seg": label}] * 2)
    assert all(torch.isfinite(v) for v in losses.values()), losses
    model.zero_grad()
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    if case == "ignore":
        assert losses["loss_sem_seg"] == 0 and losses["loss_aux"] == 0


def test_affinity_target_is_nearest_downsampled_labels(model):
    """The head's affinity loss uses labels sampled at the top-left pixel of every 8 x 8 cell
    (nearest down-sampling by 8: labels[:, ::8, ::8]) with ignore as its own class."""
    head = model.sem_seg_head.train()
    feats = model.backbone(torch.randn(2, 3, 128, 128))
    labels = torch.randint(0, 4, (2, 128, 128))
    labels[:, :40] = 255
    logits, prior = head.layers(feats)
    losses = head.losses(logits, prior, feats, labels)
    ideal = ideal_affinity_map(labels[:, ::8, ::8], num_classes=4, ignore_label=255)
    assert torch.allclose(losses["loss_affinity"], affinity_loss(prior, ideal))
    # Total loss weights: 1.0 CE + 0.4 aux + 1.0 affinity (authors' code).
    assert (head.loss_weight, head.aux_loss_weight, head.affinity_loss_weight) == (1.0, 0.4, 1.0)


@pytest.mark.parametrize(
    "opts",
    [
        [],
        ["MODEL.CPNET.TEST.MODE", "resize"],
        ["MODEL.CPNET.TEST.SCALES", [0.75, 1.25], "MODEL.CPNET.TEST.FLIP", True],
    ],
)
def test_inference_at_other_sizes(opts):
    """Images larger / smaller than the crop and of odd sizes give scores at ("height", "width")."""
    torch.manual_seed(0)
    model = build_model(make_cfg(*opts)).eval()
    inputs = [
        {"image": torch.rand(3, 101, 157) * 255, "height": 202, "width": 314},
        {"image": torch.rand(3, 60, 70) * 255},
    ]
    with torch.no_grad():
        out = model(inputs)
    assert out[0]["sem_seg"].shape == (4, 202, 314)
    assert out[1]["sem_seg"].shape == (4, 60, 70)
    for o in out:
        assert torch.allclose(o["sem_seg"].sum(0), torch.ones(()), atol=1e-5)


def test_slide_on_crop_sized_image_is_one_window(model):
    model.eval()
    image = torch.randn(3, 128, 128)
    with torch.no_grad():
        slid = slide(model.inference_network, image, model.crop_size, model.slide_stride)
        direct = model.inference_network(image[None])["logits"][0]
    assert torch.allclose(slid, direct, atol=1e-5)


def test_prior_size_must_match_crop():
    with pytest.raises(ValueError, match="PRIOR_SIZE"):
        build_model(make_cfg("MODEL.CPNET.PRIOR_SIZE", [15, 15]))
    with pytest.raises(ValueError, match="SLIDE_STRIDE"):
        build_model(make_cfg("MODEL.CPNET.TEST.SLIDE_STRIDE", [200, 96]))


def test_head_reports_feature_size_mismatch(model):
    """A feature of another size than the prior (e.g. a user calling the head directly on a full
    image) raises a ValueError naming the keys, not a reshape error."""
    head = model.sem_seg_head.eval()
    feats = model.backbone(torch.randn(1, 3, 160, 128))
    with pytest.raises(ValueError, match="PRIOR_SIZE"):
        head(feats)


def test_default_predictor_and_visualizer_unchanged():
    """Detectron2's DefaultPredictor (BGR numpy in) and Visualizer work on CPNet as on any
    SemanticSegmentor: scores at the input's size, class names from the dataset's metadata."""
    predictor = DefaultPredictor(make_cfg())
    image = np.random.RandomState(0).randint(0, 255, (97, 141, 3), dtype=np.uint8)
    sem_seg = predictor(image)["sem_seg"]
    assert sem_seg.shape == (4, 97, 141)
    meta = MetadataCatalog.get("shapes_sem_seg_val")
    vis = Visualizer(image[:, :, ::-1], meta).draw_sem_seg(sem_seg.argmax(0))
    assert vis.get_image().shape == (97, 141, 3)
