"""The IRNet workflow's files: written atomically (a step killed mid-write leaves no truncated file
for a resumed run to trust), CAMs as plain ``.npz`` arrays (no pickle), reports as JSON."""

import json
import os
from typing import Callable, Dict

import numpy as np
import torch


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """``write(tmp)`` then rename ``tmp`` to ``path`` (same folder, so the rename is atomic)."""
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{ext}"
    write(tmp)
    os.replace(tmp, path)


def write_json(path: str, obj) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)

    atomic_write(path, write)


def save_cams(path: str, pack: Dict[str, torch.Tensor]) -> None:
    """Write ``multiscale_cams``' output (``keys``, ``cam``, ``high_res``) as a ``.npz`` file."""
    arrays = {k: v.cpu().numpy() for k, v in pack.items()}
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays))


def load_cams(path: str) -> Dict[str, np.ndarray]:
    """``keys`` (K,) int64, ``cam`` (K, h4, w4) and ``high_res`` (K, H, W) float32 of one image."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in ("keys", "cam", "high_res")}


def stem(file_name: str) -> str:
    """The file name without folder and extension: the key of an image's per-step outputs."""
    return os.path.splitext(os.path.basename(file_name))[0]
