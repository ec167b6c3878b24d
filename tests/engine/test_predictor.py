"""d2_instseg.Predictor: what users pass in, and what they get (random-init Mask R-CNN)."""

import functools

import numpy as np
import pytest
import torch

import d2_instseg
from d2_instseg.engine.predictor import prepare_image

from ..conftest import shapes_cfg

RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    cfg = shapes_cfg("configs/shapes/mask_rcnn_R18_FPN.yaml", "MODEL.WEIGHTS", "")
    return d2_instseg.Predictor(cfg)


@pytest.mark.parametrize(
    "name, image, expected",
    [
        ("uint8", RGB8, RGB8),
        ("grayscale 2-D", RGB8[:, :, 0], np.repeat(RGB8[:, :, :1], 3, axis=2)),
        ("grayscale 1-channel", RGB8[:, :, :1], np.repeat(RGB8[:, :, :1], 3, axis=2)),
        ("with alpha", np.dstack([RGB8, np.full((40, 60), 7, np.uint8)]), RGB8),
        ("uint16 full range", RGB8.astype(np.uint16) * 257, RGB8),
        ("float in [0, 1]", RGB8 / 255.0, RGB8),
        ("float in [0, 255]", RGB8.astype(np.float32), RGB8),
        ("int64 in [0, 255]", RGB8.astype(np.int64), RGB8),
        ("non-contiguous", np.ascontiguousarray(RGB8[:, ::-1])[:, ::-1], RGB8),
    ],
)
def test_prepare_image_converts(name, image, expected):
    out = prepare_image(image)
    assert out.dtype == np.uint8 and out.flags["C_CONTIGUOUS"], name
    assert np.array_equal(out, expected), name


# (image, what the error names): shared with the exported backends' tests (tests/export)
BAD_IMAGES = [
    ([[1, 2], [3, 4]], "numpy array"),
    (np.zeros((0, 10, 3), np.uint8), "empty"),
    (np.zeros((10, 0), np.uint8), "empty"),
    (np.zeros((10, 10, 2), np.uint8), "1, 3 or 4 channels"),
    (np.zeros((2, 10, 10, 3), np.uint8), "shape"),
    (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
    (np.full((4, 4, 3), 300.0), r"\[0, 1\] or \[0, 255\]"),
    (np.full((4, 4, 3), -1, np.int32), r"\[0, 255\]"),
    (np.zeros((4, 4, 3), bool), "dtype bool"),
]


@pytest.mark.parametrize("image, message", BAD_IMAGES)
def test_prepare_image_refuses_with_a_named_problem(image, message):
    with pytest.raises(ValueError, match=message):
        prepare_image(image)


def test_oversized_image_refused_before_allocation():
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (20000, 20000, 3))  # a view: no memory
    with pytest.raises(ValueError, match="20000x20000"):
        prepare_image(huge)


@pytest.mark.parametrize("shape", [(1, 1, 3), (40, 60), (37, 83, 4), (800, 1200, 3)])
def test_predictor_returns_instances_at_input_size(predictor, shape):
    image = RNG.integers(0, 256, size=shape, dtype=np.uint8)
    instances = predictor(image)["instances"]
    assert instances.image_size == shape[:2]
    for field in ("pred_boxes", "scores", "pred_classes", "pred_masks"):
        assert instances.has(field)
    assert tuple(instances.pred_masks.shape[1:]) == shape[:2]


def test_predictor_refuses_nan(predictor):
    with pytest.raises(ValueError, match="NaN"):
        predictor(np.full((20, 20, 3), np.nan, np.float32))


def test_fused_predictor_matches_unfused(tmp_path):
    """TEST.FUSE_CONV_BN folds the loaded BatchNorm statistics: same sem_seg logits as without."""
    from d2_instseg.engine import Trainer

    cfg = shapes_cfg("configs/shapes/fcn8s.yaml")
    torch.manual_seed(0)
    model = Trainer.build_model(cfg)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns, "the FCN-8s shapes config should have BatchNorms to fold"
    for bn in bns:  # statistics as after training
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    torch.save({"model": model.state_dict()}, tmp_path / "model.pth")
    cfg.MODEL.WEIGHTS = str(tmp_path / "model.pth")
    outputs = {}
    for fuse in (False, True):
        cfg.TEST.FUSE_CONV_BN = fuse
        predictor = d2_instseg.Predictor(cfg)
        outputs[fuse] = predictor(RGB8)["sem_seg"]
        left = sum(isinstance(m, torch.nn.BatchNorm2d) for m in predictor.model.modules())
        assert (left == 0) == fuse
    assert torch.allclose(outputs[True], outputs[False], atol=1e-4)


@pytest.mark.parametrize(
    "config, opts",
    [
        # a score threshold of 0 (and, for the shapes configs, the top-100 / 32 px minimum of
        # before their derived values) so that random weights still give instances to compare
        (
            "configs/shapes/centermask.yaml",
            ["MODEL.CENTERMASK.SCORE_THRESH_TEST", 0.0, "MODEL.CENTERMASK.TOPK_TEST", 100],
        ),
        ("configs/shapes/centermask_R18_FPN.yaml", ["MODEL.CENTERMASK.SCORE_THRESH_TEST", 0.0]),
        ("configs/shapes/mask_rcnn_R18_FPN.yaml", ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0]),
        ("configs/shapes/spatial_embeddings.yaml", ["MODEL.SPATIAL_EMBED.MIN_PIXELS", 32]),
        ("configs/shapes/cpnet.yaml", []),
        ("configs/shapes/unet.yaml", []),
    ],
)
def test_channels_last_predictor_matches_default_layout(config, opts):
    """TEST.CHANNELS_LAST changes memory layout only: the same outputs for every model."""
    cfg = shapes_cfg(config, "MODEL.WEIGHTS", "", *opts)
    outputs = {}
    for channels_last in (False, True):
        cfg.TEST.CHANNELS_LAST = channels_last
        torch.manual_seed(0)
        predictor = d2_instseg.Predictor(cfg)
        if cfg.MODEL.META_ARCHITECTURE == "CenterMaskPoint":
            # Random weights give a near-flat heatmap (every score 0.1000054 +- 1e-7), whose peaks
            # float rounding picks (47 against 48 for one seed): spread the logits.
            predictor.model.head.heatmap[-1].weight.data *= 1000
        outputs[channels_last] = predictor(RGB8)
    plain, last = outputs[False], outputs[True]
    if "sem_seg" in plain:
        assert torch.allclose(last["sem_seg"], plain["sem_seg"], atol=1e-4)
    else:
        a, b = plain["instances"], last["instances"]
        assert len(a) == len(b)
        assert torch.allclose(b.scores, a.scores, atol=1e-4)
        assert torch.allclose(b.pred_boxes.tensor, a.pred_boxes.tensor, atol=1e-2)
        assert (b.pred_masks != a.pred_masks).float().mean() < 1e-3
    if config.endswith(("centermask.yaml", "spatial_embeddings.yaml")):
        assert len(plain["instances"]) > 0


def test_percentile_normalisation_by_hand():
    """uint16 values 0, 60, ..., 59940 (1000 of them): the 1st / 99th percentiles are 599.4 and
    59340.6 (numpy's linear interpolation: positions 9.99 and 989.01); 30000 maps to
    (30000 - 599.4) / 58741.2 * 255 = 127.6 -> 128; values outside are clipped."""
    image = (np.arange(1000, dtype=np.uint16) * 60).reshape(10, 100)
    out = prepare_image(image, percentiles=(1.0, 99.0))
    assert out.shape == (10, 100, 3) and (out[..., 0] == out[..., 2]).all()
    flat = out[..., 0].ravel()
    assert flat[500] == 128 and flat[0] == flat[9] == 0 and flat[990] == flat[999] == 255
    assert flat[10] == 0 and flat[989] == 255  # 600 -> 0.6 / 58741.2 * 255 = 0.003
    # floats too, whatever their range; uint8 images are left as they are
    assert np.array_equal(
        prepare_image(image.astype(np.float64) * -3.5, percentiles=(1, 99))[..., 0],
        255 - out[..., 0],
    )
    assert np.array_equal(prepare_image(RGB8, percentiles=(1.0, 99.0)), RGB8)


def test_percentile_predictor_and_bad_tiling_keys():
    cfg = shapes_cfg(
        "configs/shapes/mask_rcnn_R18_FPN.yaml",
        *("MODEL.WEIGHTS", "", "INPUT.NORMALIZE", "percentile"),
    )
    out = d2_instseg.Predictor(cfg)(np.full((30, 40), 1000, np.uint16))  # constant: all 0
    assert out["instances"].image_size == (30, 40)
    for key, value in (("TEST.TILING.OVERLAP", 2048), ("INPUT.NORMALIZE_PERCENTILES", [5, 2])):
        bad = cfg.clone()
        bad.merge_from_list([key, value])
        with pytest.raises(ValueError, match=key):
            d2_instseg.Predictor(bad)


@pytest.mark.parametrize(
    "config, opts",
    [
        (
            "configs/shapes/centermask.yaml",
            ["MODEL.CENTERMASK.SCORE_THRESH_TEST", 0.0, "MODEL.CENTERMASK.TOPK_TEST", 100],
        ),
        ("configs/shapes/mask_rcnn_R18_FPN.yaml", ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0]),
        ("configs/shapes/fcn8s.yaml", []),
    ],
)
def test_amp_predictor_runs_the_network_in_bfloat16(config, opts):
    """TEST.AMP.ENABLED: every convolution and linear layer of the network computes in bfloat16
    (on this CPU's autocast) but those making the outputs, what the Predictor returns is float32
    (the post-processing ran on float32 maps), and semantic logits stay within bfloat16's rounding
    of float32's: 8 significant bits (2^-9 = 0.2% per operation, accumulating over about 20
    layers), so a mean relative error under 5%."""
    cfg = shapes_cfg(config, "MODEL.WEIGHTS", "", *opts)
    outputs = {}
    for amp in (False, True):
        cfg.TEST.AMP.ENABLED = amp
        torch.manual_seed(0)
        predictor = d2_instseg.Predictor(cfg)
        dtypes = {}
        for name, m in predictor.model.named_modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.register_forward_hook(functools.partial(_record_dtype, dtypes, name))
        outputs[amp] = predictor(RGB8)
        # the layers whose outputs are ranked and thresholded stay float32 (CenterMask's heatmap
        # and saliency logits; Mask R-CNN's box predictor and mask logits; FCN-8s's three score
        # paths are summed, beyond output_layers' walk); all others compute in bfloat16
        kept = {"head.heatmap.1", "head.saliency.1", "roi_heads.mask_head.predictor"}
        kept |= {"roi_heads.box_predictor.cls_score", "roi_heads.box_predictor.bbox_pred"}
        for name, dtype in dtypes.items():
            expected = torch.bfloat16 if amp and name not in kept else torch.float32
            assert dtype == expected, (name, dtype)
    plain, mixed = outputs[False], outputs[True]
    if "sem_seg" in plain:
        assert mixed["sem_seg"].dtype == torch.float32
        error = (mixed["sem_seg"] - plain["sem_seg"]).abs().mean()
        assert error < 0.05 * plain["sem_seg"].abs().mean()
    else:
        instances = mixed["instances"]
        assert len(instances) > 0 and instances.scores.dtype == torch.float32
        assert instances.pred_boxes.tensor.dtype == torch.float32
        assert instances.pred_masks.dtype == torch.bool


def _record_dtype(dtypes, name, module, args, output):
    dtypes[name] = output.dtype


def test_amp_refused_for_an_exported_backend():
    cfg = shapes_cfg("configs/shapes/fcn8s.yaml", "TEST.AMP.ENABLED", True)
    cfg.TEST.BACKEND = "onnxruntime"
    with pytest.raises(ValueError, match="TEST.AMP.ENABLED"):
        d2_instseg.Predictor(cfg)
