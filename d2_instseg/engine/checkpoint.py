"""Crash-safe checkpoints: atomic writes, corrupt-file detection, and resume from the last good one.

A checkpoint is written to ``<name>.pth.tmp``, flushed to disk and renamed to ``<name>.pth``; the
``last_checkpoint`` tag is replaced (also atomically) only after that. A process killed at any
moment therefore leaves ``last_checkpoint`` naming a complete file; at worst a stray ``*.tmp`` stays
behind, and it is removed on the next resume.
"""

import glob
import logging
import os
import re
from typing import Any, Dict, List

import torch
from detectron2.checkpoint import DetectionCheckpointer

from .weights import check_weights_reachable

logger = logging.getLogger(__name__)


class CheckpointCorruptError(RuntimeError):
    """A checkpoint file exists but cannot be read (truncated, or not a checkpoint at all)."""


def _atomic_write(path: str, write_fn) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        write_fn(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class SafeCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer with atomic saves and a resume that skips corrupt checkpoints."""

    def save(self, name: str, **kwargs: Any) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        basename = f"{name}.pth"
        self.logger.info(f"Saving checkpoint to {os.path.join(self.save_dir, basename)}")
        _atomic_write(os.path.join(self.save_dir, basename), lambda f: torch.save(data, f))
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
        try:
            return super()._load_file(filename)
        except FileNotFoundError:
            raise
        except Exception as e:  # torch.load raises many types on truncated or foreign files
            raise CheckpointCorruptError(
                f"Checkpoint {filename} is corrupt or truncated and cannot be loaded: {e}"
            ) from e

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
