"""Config keys of the IRNet workflow itself, ``MODEL.IRNET.PIPELINE`` (the method's keys are in
``d2_instseg/modeling/irnet/config.py``)."""

from detectron2.config import CfgNode as CN

from ..utils.config_checks import Rule, check_keys
from ..utils.config_registry import register_config_part


def add_irnet_pipeline_config(cfg: CN) -> None:
    """Add ``MODEL.IRNET.PIPELINE`` (MODEL.IRNET is added by the IRNet models' part)."""
    cfg.MODEL.IRNET.PIPELINE = CN()
    # Dataset with ground truth on (some of) the training images, used ONLY for the quality report;
    # "" = the training set itself when it has annotations.
    cfg.MODEL.IRNET.PIPELINE.GT_DATASET = ""
    # The pseudo-label datasets are registered as "<DATASETS.TRAIN[0]><PSEUDO_SUFFIX>" (instances)
    # and "<...><PSEUDO_SUFFIX>_sem_seg" (semantic).
    cfg.MODEL.IRNET.PIPELINE.PSEUDO_SUFFIX = "_irnet_pseudo"
    # Config of step 5's Mask R-CNN, trained on the pseudo labels and tested on DATASETS.TEST.
    cfg.MODEL.IRNET.PIPELINE.MASK_RCNN_CONFIG = "configs/shapes/mask_rcnn_R18_FPN.yaml"
    # Extra "KEY VALUE" overrides for the Mask R-CNN config (e.g. ["SOLVER.MAX_ITER", "600"]).
    cfg.MODEL.IRNET.PIPELINE.MASK_RCNN_OPTS = []


def check_irnet_pipeline_config(cfg: CN) -> None:
    pairs = Rule(lambda v: len(v) % 2 == 0, "needs KEY VALUE pairs")
    check_keys(cfg, "MODEL.IRNET.PIPELINE", [("MASK_RCNN_OPTS", pairs)])


register_config_part("irnet_pipeline", add_irnet_pipeline_config, check_irnet_pipeline_config)
