"""``Trainer``: Detectron2's DefaultTrainer with per-method mappers, evaluators by
``evaluator_type`` and multi-process training on CPU (gloo)."""

import contextlib
import logging
import os
import weakref
from typing import Callable, Optional

import numpy as np
import torch
from detectron2.data import (
    DatasetCatalog,
    MetadataCatalog,
    build_detection_test_loader,
    build_detection_train_loader,
)
from detectron2.engine import DefaultTrainer
from detectron2.engine import defaults as d2_defaults
from detectron2.evaluation import DatasetEvaluators, SemSegEvaluator
from detectron2.projects.deeplab import build_lr_scheduler as build_lr_scheduler_with_poly
from detectron2.solver import get_default_optimizer_params
from PIL import Image

from ..data import build_mapper
from ..data.checks import CheckedMapper
from ..evaluation.cityscapes import (
    CityscapesInstanceEvaluatorNumPy2,
    CityscapesSemSegEvaluatorNumPy2,
)
from ..evaluation.coco import FastCOCOEvaluator
from ..layers import use_gather_roi_align
from ..utils.config_registry import check_d2_instseg_config
from .amp import build_step_trainer
from .checkpoint import SafeCheckpointer
from .config import OPTIMIZERS
from .grad_clip import with_gradient_clipping

logger = logging.getLogger(__name__)


def load_sem_seg_png(path: str, dtype) -> np.ndarray:
    """Label PNG -> (H, W) array. Replaces Detectron2's default loader, which fails under numpy
    2."""
    with open(path, "rb") as f:
        return np.asarray(Image.open(f), dtype=dtype)


@contextlib.contextmanager
def _ddp_without_device_ids_on_cpu(cfg):
    """DefaultTrainer wraps the model with ``device_ids=[local_rank]``, which DDP rejects for CPU
    modules; on CPU, pass ``device_ids=None`` instead (for the duration of the trainer's
    __init__)."""
    original = d2_defaults.create_ddp_model
    if cfg.MODEL.DEVICE == "cpu":

        def create_cpu_ddp_model(model, **kwargs):
            kwargs.setdefault("device_ids", None)
            return original(model, **kwargs)

        d2_defaults.create_ddp_model = create_cpu_ddp_model
    try:
        yield
    finally:
        d2_defaults.create_ddp_model = original


def build_evaluator_for_dataset(cfg, dataset_name: str, output_folder: str):
    """The evaluator matching ``MetadataCatalog.get(dataset_name).evaluator_type``."""
    meta = MetadataCatalog.get(dataset_name)
    evaluator_type = meta.get("evaluator_type", None)
    if evaluator_type == "coco":
        DatasetCatalog.get(dataset_name)  # generate / check the data before COCO reads the json
        return FastCOCOEvaluator(dataset_name, output_dir=output_folder)
    if evaluator_type == "sem_seg":
        return SemSegEvaluator(
            dataset_name, output_dir=output_folder, sem_seg_loading_fn=load_sem_seg_png
        )
    if evaluator_type in ("cityscapes_instance", "cityscapes_sem_seg"):
        try:
            import cityscapesscripts  # noqa: F401
        except ImportError as e:
            raise ImportError(
                f"Evaluating {dataset_name} needs cityscapesscripts, which tools/setup_venv.sh "
                f"installs (or `pip install cityscapesscripts`): {e}"
            ) from e
        if evaluator_type == "cityscapes_instance":
            return CityscapesInstanceEvaluatorNumPy2(dataset_name)
        return CityscapesSemSegEvaluatorNumPy2(dataset_name)
    raise NotImplementedError(
        f"No evaluator for dataset {dataset_name!r} with evaluator_type {evaluator_type!r}; "
        "set MetadataCatalog.get(name).evaluator_type to coco, sem_seg, cityscapes_instance or "
        "cityscapes_sem_seg"
    )


class Trainer(DefaultTrainer):
    """DefaultTrainer for every model of d2_instseg (and Detectron2's own).

    - the dataset mapper comes from ``cfg.INPUT.DATASET_MAPPER_NAME`` (see ``d2_instseg.data``);
    - evaluators are chosen by each test set's ``evaluator_type``;
    - ``SOLVER.LR_SCHEDULER_NAME`` may also be ``WarmupPolyLR`` (the papers' poly schedule);
    - multi-process training works on CPU (gloo, DDP without device ids);
    - ``SOLVER.AMP.ENABLED`` trains in bfloat16 autocast on the CPU (Detectron2's AMPTrainer, CUDA
      only, stays the GPU's: :mod:`d2_instseg.engine.amp`);
    - checkpoints are crash-safe (:class:`SafeCheckpointer`);
    - the evaluator of every test set is built before anything else, so that a missing evaluation
      dependency or test file stops the run at once, not at the first evaluation.
    """

    def __init__(self, cfg):
        for name in cfg.DATASETS.TEST:
            self.build_evaluator(cfg, name)
        with _ddp_without_device_ids_on_cpu(cfg):
            super().__init__(cfg)
        if cfg.SOLVER.AMP.ENABLED:  # DefaultTrainer picked Detectron2's CUDA-only AMPTrainer
            step = self._trainer
            self._trainer = build_step_trainer(cfg, step.model, step.data_loader, step.optimizer)

    def build_hooks(self):
        # DefaultTrainer.__init__ creates a plain DetectionCheckpointer just before calling this;
        # replace it here so that the periodic-checkpoint hook built below saves through ours.
        self.checkpointer = SafeCheckpointer(
            self.checkpointer.model,
            self.cfg.OUTPUT_DIR,
            on_save_failure=self.cfg.SOLVER.CHECKPOINT_ON_FAILURE,
            trainer=weakref.proxy(self),
        )
        return super().build_hooks()

    def train(self):
        """Train, then return the final evaluation's results (``{}`` when TEST.DATASETS is empty);
        Detectron2's own ``train()`` returns them only when TEST.EXPECTED_RESULTS is set."""
        super().train()
        return getattr(self, "_last_eval_results", None) or {}

    @classmethod
    def build_model(cls, cfg):
        """Detectron2's ``build_model`` after :func:`check_d2_instseg_config` (for Detectron2's own
        meta-architectures with our heads, e.g. SemanticSegmentor + FCNHead), its RoIAlign poolers
        computed by :class:`d2_instseg.layers.ROIAlignGather` (the same values; on CPU several
        times faster to train than torchvision's kernel), with channels-last weights when
        ``SOLVER.CHANNELS_LAST``."""
        check_d2_instseg_config(cfg)
        model = super().build_model(cfg)
        use_gather_roi_align(model)
        if cfg.SOLVER.get("CHANNELS_LAST", False):
            model.to(memory_format=torch.channels_last)
        return model

    @classmethod
    def build_optimizer(cls, cfg, model, lr_factor_func: Optional[Callable[[str], float]] = None):
        """``SOLVER.OPTIMIZER``: "SGD" (with SOLVER.MOMENTUM and NESTEROV, as Detectron2's),
        "ADAM" or "ADAMW", with SOLVER.WEIGHT_DECAY, WEIGHT_DECAY_NORM, BIAS_LR_FACTOR,
        WEIGHT_DECAY_BIAS and gradient clipping as configured. ``lr_factor_func`` maps a parameter's
        name to a learning-rate multiplier (Detectron2's ``get_default_optimizer_params``)."""
        name = cfg.SOLVER.OPTIMIZER.upper()
        if name not in OPTIMIZERS:
            raise ValueError(f"SOLVER.OPTIMIZER must be one of {list(OPTIMIZERS)}, got {name!r}")
        params = get_default_optimizer_params(
            model,
            base_lr=cfg.SOLVER.BASE_LR,
            weight_decay=cfg.SOLVER.WEIGHT_DECAY,
            weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
            bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
            weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
            lr_factor_func=lr_factor_func,
        )
        if name == "SGD":
            sgd = with_gradient_clipping(cfg, torch.optim.SGD)
            s = cfg.SOLVER
            return sgd(params, lr=s.BASE_LR, momentum=s.MOMENTUM, nesterov=s.NESTEROV, foreach=True)
        adam = {"ADAM": torch.optim.Adam, "ADAMW": torch.optim.AdamW}[name]
        # Not fused=True: the same update to 1 ulp and 13 ms less per shapes CenterMask step
        # (16.8 -> 3.3 ms for the optimizer), but 120-iteration trainings at lr 2e-3 are chaotic
        # enough that the rounding moved the tests' briefly trained CenterMask from AP50 38.8 to
        # 31.1 (and 6.4 in another test's evaluation): measured, not worth 4% of a step.
        return with_gradient_clipping(cfg, adam)(params, lr=cfg.SOLVER.BASE_LR)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        """Detectron2's schedulers plus ``WarmupPolyLR`` (from its DeepLab project)."""
        return build_lr_scheduler_with_poly(cfg, optimizer)

    @classmethod
    def build_train_loader(cls, cfg):
        mapper = CheckedMapper(build_mapper(cfg, is_train=True), cfg.DATASETS.INVALID_ANNOTATIONS)
        return build_detection_train_loader(cfg, mapper=mapper)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        # Never skip at test time: evaluation must see every image of the test set.
        mapper = CheckedMapper(build_mapper(cfg, is_train=False), "error")
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return DatasetEvaluators([build_evaluator_for_dataset(cfg, dataset_name, output_folder)])
