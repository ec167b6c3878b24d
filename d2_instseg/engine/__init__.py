from .checkpoint import CheckpointCorruptError, SafeCheckpointer
from .predictor import Predictor, prepare_for_inference
from .setup import (
    check_dataset_classes,
    check_datasets_present,
    requirements_report,
    setup_cfg,
    sync_num_classes,
)
from .weights import WeightsUnavailableError, check_weights_reachable
from .trainer import Trainer, build_evaluator_for_dataset

__all__ = [
    "CheckpointCorruptError",
    "SafeCheckpointer",
    "Predictor",
    "prepare_for_inference",
    "requirements_report",
    "Trainer",
    "build_evaluator_for_dataset",
    "check_dataset_classes",
    "check_datasets_present",
    "setup_cfg",
    "sync_num_classes",
    "WeightsUnavailableError",
    "check_weights_reachable",
]
