"""Detectron2's Cityscapes evaluators, made to run under NumPy 2 (thin subclasses).

cityscapesscripts 2.3.0 (the newest release) calls ``np.in1d``, which NumPy 2.4 removed, and writes
its results with ``json.dumps(..., default=lambda o: o.__dict__)``, which fails on the NumPy scalars
NumPy 2 returns where NumPy 1 returned Python numbers. Pinning NumPy < 2 instead would hold back
every other package of the install (OpenCV 5 and others need NumPy 2), so the evaluators apply
:func:`cityscapes_numpy_compat` around cityscapesscripts' evaluation only, and nothing else sees it.
The instance evaluation also writes ``matches.json`` into the current directory; here it goes to
the evaluator's temporary folder instead.
"""

import contextlib
import json
import os
import sys

import numpy as np
from detectron2.evaluation import CityscapesInstanceEvaluator, CityscapesSemSegEvaluator

# cityscapesscripts modules that copy ``writeDict2JSON`` into their namespace (``import *``).
_JSON_WRITERS = (
    "cityscapesscripts.helpers.csHelpers",
    "cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling",
    "cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling",
)


def _in1d(ar1, ar2, assume_unique=False, invert=False, **kwargs):
    """NumPy 1's ``np.in1d``: ``np.isin`` flattened to 1-D."""
    return np.isin(ar1, ar2, assume_unique=assume_unique, invert=invert, **kwargs).ravel()


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj.__dict__


def _json_writer(out_dir: str):
    """cityscapesscripts' ``writeDict2JSON(dict, file)`` with NumPy scalars and arrays written as
    numbers, and relative file names put under ``out_dir``."""

    def write(dict_name, file_name):
        with open(os.path.join(out_dir, file_name), "w") as f:  # join keeps absolute names
            f.write(json.dumps(dict_name, default=_json_default, sort_keys=True, indent=4))

    return write


@contextlib.contextmanager
def cityscapes_numpy_compat(out_dir: str = "."):
    """Within the block, ``np.in1d`` exists (if NumPy lacks it) and cityscapesscripts' JSON writer
    accepts NumPy values and writes relative names under ``out_dir``; restored on exit."""
    import cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling  # noqa: F401
    import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling  # noqa: F401

    added_in1d = not hasattr(np, "in1d")
    if added_in1d:
        np.in1d = _in1d
    modules = [sys.modules[name] for name in _JSON_WRITERS]
    saved = [m.writeDict2JSON for m in modules]
    for m in modules:
        m.writeDict2JSON = _json_writer(out_dir)
    try:
        yield
    finally:
        for m, original in zip(modules, saved):
            m.writeDict2JSON = original
        if added_in1d:
            del np.in1d


class CityscapesInstanceEvaluatorNumPy2(CityscapesInstanceEvaluator):
    """``CityscapesInstanceEvaluator`` whose evaluation runs in :func:`cityscapes_numpy_compat`
    (``matches.json`` written into its temporary folder, not the current directory)."""

    def evaluate(self):
        with cityscapes_numpy_compat(self._temp_dir):
            return super().evaluate()


class CityscapesSemSegEvaluatorNumPy2(CityscapesSemSegEvaluator):
    """``CityscapesSemSegEvaluator`` whose evaluation runs in :func:`cityscapes_numpy_compat`."""

    def evaluate(self):
        with cityscapes_numpy_compat(self._temp_dir):
            return super().evaluate()
