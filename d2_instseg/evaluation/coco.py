"""Detectron2's COCOEvaluator on faster-coco-eval's C++ COCOeval (a registry package, a drop-in
subclass of pycocotools' COCOeval), instead of pycocotools' pure-Python per-image loop.

Detectron2's own fast path (``use_fast_impl=True``) needs its compiled ``_C``, which the pure-Python
install here lacks; faster-coco-eval gives the same numbers (tests/evaluation/test_coco.py checks
every summary figure against pycocotools on the same predictions) in a fraction of the time.
Detectron2's evaluator calls ``COCOeval`` from its own module, so :func:`faster_cocoeval` swaps
that name for the duration of one evaluation only.
"""

import contextlib

import detectron2.evaluation.coco_evaluation as d2_coco
from detectron2.evaluation import COCOEvaluator
from faster_coco_eval import COCOeval_faster


@contextlib.contextmanager
def faster_cocoeval():
    """Within the block, Detectron2's COCO evaluation uses faster-coco-eval's COCOeval."""
    original = d2_coco.COCOeval
    d2_coco.COCOeval = COCOeval_faster
    try:
        yield
    finally:
        d2_coco.COCOeval = original


class FastCOCOEvaluator(COCOEvaluator):
    """``COCOEvaluator(..., use_fast_impl=False)`` whose COCOeval is faster-coco-eval's."""

    def __init__(self, dataset_name, **kwargs):
        kwargs["use_fast_impl"] = False  # Detectron2's own fast path needs detectron2._C
        super().__init__(dataset_name, **kwargs)

    def _eval_predictions(self, predictions, img_ids=None):
        with faster_cocoeval():
            super()._eval_predictions(predictions, img_ids)
