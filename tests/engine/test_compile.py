"""TEST.COMPILE: the Predictor's network compiled by torch.compile (inductor) gives the eager
outputs; Detectron2's own models get their backbone and semantic head compiled."""

import shutil

import numpy as np
import pytest
import torch

import d2_instseg
from d2_instseg.engine import compile_network

from ..conftest import shapes_cfg

# Inductor's CPU code is C++ compiled on the fly (.ci/run installs g++).
needs_compiler = pytest.mark.skipif(
    not (shutil.which("g++") or shutil.which("c++")), reason="torch.compile on CPU needs g++"
)


@needs_compiler
def test_compiled_predictor_gives_the_eager_outputs_at_two_sizes():
    """Random-init CenterMask (score threshold 0 and the top-100 of before the derived top-40, so
    that some instances with a non-empty mask come out): the same detections with TEST.COMPILE
    on, at one size and at another (resized to 128 x 192 and 160 x 128: the second compiles
    again)."""
    cfg = shapes_cfg(
        "configs/shapes/centermask.yaml",
        "MODEL.WEIGHTS",
        "",
        "MODEL.CENTERMASK.SCORE_THRESH_TEST",
        0.0,
        "MODEL.CENTERMASK.TOPK_TEST",
        100,
    )
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=s, dtype=np.uint8) for s in ((64, 96, 3), (80, 64, 3))]
    outputs = {}
    for compiled in (False, True):
        cfg.TEST.COMPILE = compiled
        torch.manual_seed(0)
        predictor = d2_instseg.Predictor(cfg)
        is_compiled = hasattr(predictor.model.inference_network, "_torchdynamo_orig_callable")
        assert is_compiled == compiled
        outputs[compiled] = [predictor(image)["instances"] for image in images]
    for eager, compiled in zip(outputs[False], outputs[True]):
        assert len(eager) == len(compiled) > 0
        assert torch.allclose(compiled.scores, eager.scores, atol=1e-4)
        assert torch.equal(compiled.pred_classes, eager.pred_classes)
        assert torch.allclose(compiled.pred_boxes.tensor, eager.pred_boxes.tensor, atol=1e-2)
        assert (compiled.pred_masks != eager.pred_masks).float().mean() < 1e-3


def test_detectron2_models_get_backbone_and_semantic_head_compiled(monkeypatch):
    """A model without ``inference_network`` (Detectron2's SemanticSegmentor here): its backbone's
    and sem_seg_head's forwards are what gets compiled, nothing else."""
    from d2_instseg.engine import Trainer

    compiled = []

    def fake_compile(fn):
        compiled.append(fn)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = Trainer.build_model(shapes_cfg("configs/shapes/fcn8s.yaml")).eval()
    compile_network(model)
    owners = [fn.__self__ for fn in compiled]
    assert owners == [model.backbone, model.sem_seg_head]
