#!/usr/bin/env python
"""Convert a pickle-based weights file YOU TRUST into a plain ``.pth`` d2_instseg loads safely.

    python tools/convert_weights.py --input R-50.pkl --output R-50.safe.pth
    python tools/convert_weights.py --input foreign_model.pth --output foreign_model.safe.pth

d2_instseg reads weights with ``torch.load(weights_only=True)``, which cannot run code, and refuses
pickle files (Detectron2's ``.pkl`` model zoo, Caffe2 / Detectron1 ``.pkl``, pycls ``.pyth``, a
``.pth`` holding Python objects): unpickling a file can execute anything its author put in it. This
tool unpickles the input (so run it only on a file from a source you trust) and writes only its
model weights, as tensors: ``{"model": {name: tensor}, "__author__": ...}`` plus
``"matching_heuristics": True`` for Caffe2-named weights, which Detectron2's loader then renames.
"""

import argparse
import os
import pickle
import sys

import numpy as np
import torch


def read_trusted(path: str) -> dict:
    """The weights of a pickle-based file as Detectron2 reads it: ``{"model": {name: array}}`` and
    its format's flags. Unpickles: only for trusted files."""
    if path.endswith(".pkl"):
        with open(path, "rb") as f:
            data = pickle.load(f, encoding="latin1")
        if "model" in data and "__author__" in data:  # Detectron2's model zoo format
            return {"model": data["model"], "__author__": str(data["__author__"])}
        blobs = data.get("blobs", data)  # Caffe2 / Detectron1: detection models keep "blobs"
        weights = {k: v for k, v in blobs.items() if not k.endswith("_momentum")}
        return {"model": weights, "__author__": "Caffe2", "matching_heuristics": True}
    data = torch.load(path, map_location="cpu", weights_only=False)
    if path.endswith(".pyth"):  # pycls
        return {"model": data["model_state"], "__author__": "pycls", "matching_heuristics": True}
    return {"model": data.get("model", data) if isinstance(data, dict) else data}


def to_tensors(state) -> dict:
    """Only the name -> tensor entries (NumPy arrays and numbers converted); the rest is dropped."""
    out = {}
    for name, value in state.items():
        if isinstance(value, torch.Tensor):
            out[name] = value.detach().cpu()
        elif isinstance(value, (np.ndarray, np.generic, int, float)):
            out[name] = torch.as_tensor(np.asarray(value))
    return out


def convert(src: str, dst: str) -> int:
    """Write ``dst`` from ``src``; returns the number of tensors written."""
    data = read_trusted(src)
    if not isinstance(data["model"], dict):
        raise ValueError(f"{src}: no name -> weight mapping found (got {type(data['model'])})")
    out = {"model": to_tensors(data["model"]), "__author__": data.get("__author__", src)}
    if data.get("matching_heuristics"):
        out["matching_heuristics"] = True
    if not out["model"]:
        raise ValueError(f"{src}: no tensors found in its model weights")
    torch.save(out, dst)
    torch.load(dst, map_location="cpu", weights_only=True)  # what d2_instseg will do
    return len(out["model"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="a .pkl / .pyth / .pth file you trust")
    parser.add_argument("--output", required=True, help="the .pth file to write")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.input):
        parser.error(f"--input {args.input!r} does not exist")
    if os.path.abspath(args.input) == os.path.abspath(args.output):
        parser.error("--output must differ from --input")
    count = convert(args.input, args.output)
    print(f"wrote {count} tensors to {args.output} (loadable with weights_only=True)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
