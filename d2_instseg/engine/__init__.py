"""The engine: training (``Trainer``, ``train_for``), inference (``Predictor``), checkpoints, and
turning command-line arguments into a checked config (``setup_cfg``)."""

from . import config  # noqa: F401  (registers the engine's config part)
from .amp import autocast_network
from .checkpoint import CheckpointCorruptError, SafeCheckpointer
from .predictor import Predictor, compile_network, load_exported, prepare_for_inference
from .setup import (
    add_dataset_argument,
    check_dataset_classes,
    check_datasets_present,
    requirements_report,
    setup_cfg,
    sync_num_classes,
)
from .train_loop import iterations_for_epochs, measure_iteration_time, train_for
from .trainer import Trainer, build_evaluator_for_dataset
from .weights import WeightsUnavailableError, check_weights_reachable

__all__ = [
    "add_dataset_argument",
    "CheckpointCorruptError",
    "Predictor",
    "SafeCheckpointer",
    "Trainer",
    "WeightsUnavailableError",
    "autocast_network",
    "build_evaluator_for_dataset",
    "check_dataset_classes",
    "check_datasets_present",
    "check_weights_reachable",
    "compile_network",
    "iterations_for_epochs",
    "measure_iteration_time",
    "load_exported",
    "prepare_for_inference",
    "requirements_report",
    "setup_cfg",
    "sync_num_classes",
    "train_for",
]
