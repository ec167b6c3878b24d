"""``Predictor``: the DefaultPredictor to use in applications."""
from detectron2.engine import DefaultPredictor


class Predictor(DefaultPredictor):
    """Drop-in subclass of Detectron2's ``DefaultPredictor`` for every model of d2_instseg.

    ``Predictor(cfg)(image)`` takes an (H, W, C) uint8 image in ``cfg.INPUT.FORMAT`` and returns the
    model's output dict (``instances`` and/or ``sem_seg``) at the image's resolution.
    """
