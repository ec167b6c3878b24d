"""Export + parity: every model of the package (and Detectron2's Mask R-CNN) exported by
tools/export_model.py to TorchScript and ONNX at one input size, then run through
``d2_instseg.Predictor`` with ``TEST.BACKEND`` at another: the same outputs as the eager
Predictor within stated tolerances (instances: the same number, each matched to one of the same
class with mask IoU >= 0.99 and a score within 1e-3; semantic scores within 1e-4)."""

import sys

import numpy as np
import pytest
import torch

import d2_instseg

from ..conftest import REPO, shapes_cfg

sys.path.insert(0, f"{REPO}/tools")
import export_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

# (config, options): random weights, thresholds that still give instances to compare
CASES = {
    "spatial_embeddings": (
        "configs/shapes/spatial_embeddings.yaml",
        ["MODEL.SPATIAL_EMBED.MIN_PIXELS", 32],
    ),
    "cpnet": ("configs/shapes/cpnet.yaml", []),
    "fcn8s": ("configs/shapes/fcn8s.yaml", []),
    "unet": ("configs/shapes/unet.yaml", []),
    "mask_rcnn": (
        "configs/shapes/mask_rcnn_R18_FPN.yaml",
        ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0],
    ),
}
# The export traces 96 x 128 inputs; the parity image is 150 x 113 (the shapes configs resize its
# short side to 128: a 128 x 170 network input, 128 x 192 after padding).
IMAGE = np.random.default_rng(0).integers(0, 256, size=(150, 113, 3), dtype=np.uint8)


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(A, H, W), (B, H, W) bool -> (A, B) IoU; two empty masks are the same mask (IoU 1)."""
    a, b = a.flatten(1).float(), b.flatten(1).float()
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def assert_same_outputs(eager, exported):
    if "sem_seg" in eager:
        torch.testing.assert_close(exported["sem_seg"], eager["sem_seg"], atol=1e-4, rtol=0)
        return
    a, b = eager["instances"], exported["instances"]
    assert len(a) > 0, "nothing to compare: the eager model found no instance"
    assert len(b) == len(a)
    iou = mask_iou(a.pred_masks, b.pred_masks)
    iou[a.pred_classes[:, None] != b.pred_classes[None]] = -1
    best, match = iou.max(1)
    assert (best >= 0.99).all(), best.min()
    assert match.unique().numel() == len(a)  # one to one
    torch.testing.assert_close(b.scores[match], a.scores, atol=1e-3, rtol=0)


def run_parity(tmp_path, config, opts, weights=None):
    cfg = shapes_cfg(config, *opts)
    if weights is None:  # random weights, saved so both paths read the same checkpoint
        torch.manual_seed(0)
        model = d2_instseg.engine.Trainer.build_model(cfg)
        weights = str(tmp_path / "model.pth")
        torch.save({"model": model.state_dict()}, weights)
    cfg.MODEL.WEIGHTS = weights
    eager = d2_instseg.Predictor(cfg)(IMAGE)
    for fmt, backend, name in (
        ("torchscript", "torchscript", "model.ts"),
        ("onnx", "onnxruntime", "model.onnx"),
    ):
        out = tmp_path / fmt
        argv = ["--config-file", f"{REPO}/{config}", "--format", fmt, "--output", str(out)]
        argv += ["--size", "96x128", *map(str, opts), "MODEL.WEIGHTS", weights]
        assert export_model.main(argv) == 0
        exported_cfg = cfg.clone()
        exported_cfg.TEST.BACKEND = backend
        exported_cfg.MODEL.WEIGHTS = str(out / name)
        predictor = d2_instseg.Predictor(exported_cfg)
        assert predictor.model.backend == backend
        assert_same_outputs(eager, predictor(IMAGE))


@pytest.mark.parametrize("name", sorted(CASES))
def test_export_parity_at_another_size(tmp_path, name):
    config, opts = CASES[name]
    run_parity(tmp_path, config, opts)


def test_centermask_export_parity_trained(tmp_path, trained_centermask):
    """CenterMask with trained weights (random ones give near-equal peak scores everywhere, whose
    order float rounding decides)."""
    from ..conftest import TRAINED_CENTERMASK

    cfg, _, weights = trained_centermask
    opts = list(TRAINED_CENTERMASK[1:])
    run_parity(tmp_path, TRAINED_CENTERMASK[0], opts, weights)


def test_deformable_dla_network_parity(tmp_path):
    """The paper's DLA-34 with deformable IDA-up convs (ONNX DeformConv, opset 19; TorchScript
    traces the eager op): the network's outputs at another size than exported equal the eager
    network's (random weights: compared as tensors, before any decoding)."""
    from detectron2.modeling import build_model

    from d2_instseg.engine import prepare_for_inference
    from d2_instseg.export import ExportedModel, export_model

    cfg = shapes_cfg("configs/shapes/centermask.yaml", "MODEL.DLA.DEFORMABLE", True)
    torch.manual_seed(0)
    model = prepare_for_inference(build_model(cfg).eval(), cfg)
    # Random weights give near-equal heatmap logits whose order float rounding decides: spread
    # them, so that the top-K peaks are the same set whatever the backend.
    model.head.heatmap[-1].weight.data *= 1000
    x = torch.randn(2, 3, 96, 160)
    with torch.no_grad():
        eager = model.inference_network(x)
    for fmt in ("onnx", "torchscript"):
        exported = ExportedModel(export_model(model, cfg, str(tmp_path / fmt), fmt, size=(64, 64)))
        out = exported.network(x)
        assert sorted(out) == sorted(eager)
        torch.testing.assert_close(out["saliency"], eager["saliency"], atol=1e-4, rtol=1e-4)
        # the peaks of each image in one order: by position and class
        order = [
            (r["centers"][..., 1] * 1000 + r["centers"][..., 0]) * 10 + r["classes"]
            for r in (out, eager)
        ]
        order = [key.argsort(1) for key in order]
        for name in ("scores", "centers", "classes", "shape", "size", "offset"):
            a, b = (
                torch.stack([v[i][o[i]] for i in range(len(v))])
                for v, o in ((out[name], order[0]), (eager[name], order[1]))
            )
            torch.testing.assert_close(
                a, b, atol=1e-4, rtol=1e-4, msg=lambda m, name=name: f"{name}: {m}"
            )
