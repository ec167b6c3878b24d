"""Crash-safe checkpoints that cannot run code: atomic writes, corrupt-file detection, resume from
the last good one, and weights read without unpickling objects.

A checkpoint is written to ``<name>.pth.tmp``, flushed to disk and renamed to ``<name>.pth``; the
``last_checkpoint`` tag is replaced (also atomically) only after that. A process killed at any
moment therefore leaves ``last_checkpoint`` naming a complete file; at worst a stray ``*.tmp`` stays
behind, and it is removed on the next resume. A save that fails (a full disk) removes its ``.tmp``,
keeps the previous checkpoint tagged and either stops training with the reason or, with
``SOLVER.CHECKPOINT_ON_FAILURE continue``, logs it and goes on.

Loading reads ``.pth`` files with ``torch.load(weights_only=True)``: tensors, numbers, strings and
containers only, so a file cannot execute code when it is loaded. Pickle-based files (Detectron2's
``.pkl`` model zoo, a ``.pth`` holding objects) are refused with how to convert a file one trusts:
``tools/convert_weights.py``.
"""

import glob
import logging
import os
import pickle
import re
from typing import Any, Dict, List

import torch
from detectron2.checkpoint import DetectionCheckpointer

from .weights import (
    PICKLE_SUFFIXES,
    PICKLE_WHY,
    UnsafeWeightsError,
    check_weights_reachable,
    unsafe_weights,
)

logger = logging.getLogger(__name__)


ON_FAILURE = ("stop", "continue")  # SOLVER.CHECKPOINT_ON_FAILURE


class CheckpointCorruptError(RuntimeError):
    """A checkpoint file exists but cannot be read (truncated, or not a checkpoint at all)."""


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written (e.g. the disk is full); the previous one stays tagged."""


def _atomic_write(path: str, write_fn) -> None:
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        if os.path.exists(tmp):  # a failed write (full disk, I/O error): leave nothing behind
            os.remove(tmp)
        raise
    os.replace(tmp, path)


class SafeCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer with atomic saves, a resume that skips corrupt checkpoints, and loading
    that never unpickles objects. ``on_save_failure``: "stop" (raise :class:`CheckpointSaveError`)
    or "continue" (log it; the previous checkpoint stays tagged)."""

    def __init__(self, *args, on_save_failure: str = "stop", **kwargs):
        super().__init__(*args, **kwargs)
        if on_save_failure not in ON_FAILURE:
            raise ValueError(f"on_save_failure must be in {ON_FAILURE}, got {on_save_failure!r}")
        self.on_save_failure = on_save_failure

    def save(self, name: str, **kwargs: Any) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        basename = f"{name}.pth"
        path = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {path}")
        try:
            _atomic_write(path, lambda f: torch.save(data, f))
        except OSError as e:
            kept = self.get_checkpoint_file() if self.has_checkpoint() else "none"
            message = f"Could not save checkpoint {path}: {e}; the last checkpoint stays {kept}"
            if self.on_save_failure == "stop":
                raise CheckpointSaveError(
                    message + " (SOLVER.CHECKPOINT_ON_FAILURE continue trains on instead)"
                ) from e
            logger.error(message + "; training continues (SOLVER.CHECKPOINT_ON_FAILURE continue)")
            return
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        path = os.path.join(self.save_dir, "last_checkpoint")
        _atomic_write(path, lambda f: f.write(last_filename_basename.encode()))

    def load(self, path: str, *args, **kwargs) -> Dict[str, Any]:
        try:
            return super().load(path, *args, **kwargs)
        finally:
            # DetectionCheckpointer resets this only when loading succeeds; a failed load must not
            # block the next attempt (the fallback in resume_or_load).
            self._parsed_url_during_load = None

    def _load_file(self, filename: str) -> Dict[str, Any]:
        if filename.endswith(PICKLE_SUFFIXES):
            raise unsafe_weights(filename, PICKLE_WHY)
        try:
            return super()._load_file(filename)
        except (FileNotFoundError, UnsafeWeightsError):
            raise
        except Exception as e:  # torch.load raises many types on truncated or foreign files
            raise CheckpointCorruptError(
                f"Checkpoint {filename} is corrupt or truncated and cannot be loaded: {e}"
            ) from e

    def _torch_load(self, filename: str) -> Dict[str, Any]:
        """``torch.load`` that unpickles no objects (a file holding some: UnsafeWeightsError)."""
        try:
            return torch.load(filename, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            if "Unsupported global" not in str(e):  # else garbage (e.g. "Unsupported operand")
                raise
            raise unsafe_weights(filename, "it holds Python objects besides tensors") from None

    def _resume_candidates(self) -> List[str]:
        """The tagged checkpoint first, then the other ``*.pth`` files, newest iteration first."""
        tagged = self.get_checkpoint_file()

        def iteration(path):
            match = re.search(r"(\d+)\.pth$", path)
            return int(match.group(1)) if match else -1

        others = sorted(
            (p for p in glob.glob(os.path.join(self.save_dir, "model_*.pth")) if p != tagged),
            key=iteration,
            reverse=True,
        )
        return [tagged] + others

    def resume_or_load(self, path: str, *, resume: bool = True) -> Dict[str, Any]:
        if not (resume and self.has_checkpoint()):
            check_weights_reachable(path)
            return super().resume_or_load(path, resume=resume)
        for stale in glob.glob(os.path.join(self.save_dir, "*.pth.tmp")):
            logger.warning(f"Removing {stale}: a save interrupted before it completed")
            os.remove(stale)
        errors = []
        for candidate in self._resume_candidates():
            try:
                return self.load(candidate)
            except (CheckpointCorruptError, FileNotFoundError) as e:
                logger.error(f"Cannot resume from {candidate}: {e}; trying the previous one")
                errors.append(str(e))
        raise CheckpointCorruptError(
            f"No readable checkpoint to resume from in {self.save_dir}: " + "; ".join(errors)
        )
