"""A non-finite loss stops training with the loss term and the iteration named, for every method.

Each model returns its losses as a dict of named scalar terms; Detectron2's SimpleTrainer (which the
project's Trainer and the IRNet pipeline run) sums them after backward and raises FloatingPointError
with ``iteration=<it>`` and the whole loss dict when the sum is not finite. Here one loss function
of each model is poisoned (its output times NaN, so the graph stays connected) or the image is NaN.
"""

import importlib
import re

import pytest
import torch
from detectron2.engine import SimpleTrainer
from detectron2.modeling import build_model

from d2_instseg.engine import Trainer

from ..conftest import hard_instance_cases, hard_label_maps, shapes_cfg

NAN = float("nan")


def _instances_batch():
    return [{"image": torch.rand(3, 64, 64) * 255, "instances": hard_instance_cases()["border"]}]


def _sem_seg_batch():
    return [{"image": torch.rand(3, 128, 128) * 255, "sem_seg": hard_label_maps()["border"]}]


def _relation_batch():
    label = hard_label_maps(24, 24)["border"]
    return [{"image": torch.rand(3, 96, 96) * 255, "relation_label": label}]


CENTERMASK_OPTS = (
    "MODEL.CENTERMASK.HEAD_CONV", "8",
    "MODEL.CENTERMASK.SHAPE_SIZE", "8",
    "MODEL.DLA.CHANNELS", "[4, 4, 8, 8, 8, 8]",
)  # fmt: skip

# (config, opts, batch, poisoned loss function or None for a NaN image, the term that turns NaN)
METHODS = {
    "centermask": (
        "configs/shapes/centermask.yaml", CENTERMASK_OPTS, _instances_batch,
        "d2_instseg.modeling.centermask.meta_arch.mask_bce_loss", "loss_mask",
    ),
    "spatial_embed": (
        "configs/shapes/spatial_embeddings.yaml", (), _instances_batch,
        "d2_instseg.modeling.spatial_embed.loss.lovasz_hinge", "loss_instance",
    ),
    "cpnet": (
        "configs/shapes/cpnet.yaml", ("MODEL.CPNET.CHANNELS", "16"), _sem_seg_batch,
        "d2_instseg.modeling.cpnet.head.affinity_loss", "loss_affinity",
    ),
    "fcn8s": (
        "configs/shapes/fcn8s.yaml", (), _sem_seg_batch,
        "d2_instseg.modeling.fcn.base.cross_entropy_ignore", "loss_sem_seg",
    ),
    "unet": (
        "configs/shapes/unet.yaml", (), _sem_seg_batch,
        "d2_instseg.modeling.fcn.base.cross_entropy_ignore", "loss_sem_seg",
    ),
    "irnet_relations": (
        "configs/shapes/irnet.yaml", ("MODEL.META_ARCHITECTURE", "IRNetRelations"), _relation_batch,
        "d2_instseg.modeling.irnet.relation_net.displacement_loss", "loss_displacement",
    ),
    "irnet_cam": (
        "configs/shapes/irnet.yaml", (),
        lambda: [{"image": torch.full((3, 64, 64), NAN), "image_labels": [0]}],
        None, "loss_cls",
    ),
}  # fmt: skip


def poison(monkeypatch, target: str) -> None:
    """Replace the function ``target`` ("module.name") by one returning its output times NaN (each
    value, for a dict of losses)."""
    module, name = target.rsplit(".", 1)
    original = getattr(importlib.import_module(module), name)

    def poisoned(*args, **kwargs):
        out = original(*args, **kwargs)
        if isinstance(out, dict):
            return {k: v * NAN for k, v in out.items()}
        return out * NAN

    monkeypatch.setattr(target, poisoned)


def assert_names_term_and_iteration(error: FloatingPointError, term: str) -> None:
    """The message holds the iteration and the loss dict, where only ``term`` is NaN."""
    message = str(error)
    assert "iteration=0" in message, message
    # Values print as nan or np.float64(nan) (numpy 2).
    nan_terms = re.findall(r"'(\w+)': (?:np\.float64\()?nan", message)
    assert nan_terms == [term], message


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("method", sorted(METHODS))
def test_nan_loss_stops_simple_trainer_naming_term_and_iteration(monkeypatch, method):
    config, opts, batch, target, term = METHODS[method]
    torch.manual_seed(0)
    model = build_model(shapes_cfg(config, *opts)).train()
    if target is not None:
        poison(monkeypatch, target)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    trainer = SimpleTrainer(model, [batch()], optimizer)
    with pytest.raises(FloatingPointError) as error:
        trainer.train(0, 1)
    assert_names_term_and_iteration(error.value, term)


@pytest.mark.usefixtures("one_thread")
def test_nan_loss_stops_project_trainer(monkeypatch, tmp_path):
    """The same through d2_instseg's Trainer (DefaultTrainer: data loader, hooks, checkpointer) on
    shapes_tiny_train: the first iteration's NaN mask loss stops training."""
    cfg = shapes_cfg(
        "configs/shapes/centermask.yaml", *CENTERMASK_OPTS,
        "DATASETS.TRAIN", "('shapes_tiny_train',)", "DATASETS.TEST", "()",
        "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "1", "DATALOADER.NUM_WORKERS", "0",
        "OUTPUT_DIR", str(tmp_path),
    )  # fmt: skip
    poison(monkeypatch, "d2_instseg.modeling.centermask.meta_arch.mask_bce_loss")
    trainer = Trainer(cfg)
    with pytest.raises(FloatingPointError) as error:
        trainer.train()
    assert_names_term_and_iteration(error.value, "loss_mask")
