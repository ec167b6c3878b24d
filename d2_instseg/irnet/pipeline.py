"""IRNet's workflow as resumable steps (:data:`d2_instseg.irnet.steps.STEPS`), from image-level
labels to a Mask R-CNN on pseudo masks: the orchestration (which steps run, markers, reports) and
what the steps share (folders, the image list, the ground truth of the reports).

A step writes ``steps/<step>.started`` when it starts and ``steps/<step>.done`` when it ends;
``all`` runs the steps not done yet, in order, and continues a step that was started (see
:meth:`IRNetPipeline.run`). Each step writes ``reports/<step>.json``; ``reports/summary.txt`` sums
them up. The training images are seen only through ``image_label_dicts`` (image-level labels);
ground truth is read only by :mod:`.quality` for the reports.
"""

import logging
import os
import time
from typing import Dict, List, Sequence

import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.data import MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.modeling import build_model
from tqdm import tqdm

from ..data.dataset_mappers.irnet import image_to_tensor
from ..data.datasets.irnet import image_label_dicts, register_pseudo_datasets
from ..engine import SafeCheckpointer, sync_num_classes
from ..utils.config_registry import add_d2_instseg_config, check_d2_instseg_config
from .calibration import calibrated_thresholds, foreground_score_histogram, score_exceeded_by
from .files import load_cams, stem, write_json
from .quality import GroundTruth
from .reports import summary_text
from .steps import STEPS

logger = logging.getLogger(__name__)


def parse_steps(spec: str) -> List[str]:
    """ "all" or a comma list of step names -> the steps in pipeline order."""
    if spec.strip() == "all":
        return list(STEPS)
    asked = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in asked if s not in STEPS]
    if unknown or not asked:
        raise ValueError(f"--steps: unknown step(s) {unknown}; choose 'all' or from {list(STEPS)}")
    return [s for s in STEPS if s in asked]


class IRNetPipeline:
    """Runs the steps of :data:`STEPS` for one config; the steps read what they share from it."""

    def __init__(self, cfg: CfgNode):
        check_d2_instseg_config(cfg)
        self.cfg = cfg
        self.root = cfg.OUTPUT_DIR
        self.train_name = cfg.DATASETS.TRAIN[0]
        self.thing_classes = MetadataCatalog.get(self.train_name).thing_classes
        self.pseudo_name = self.train_name + cfg.MODEL.IRNET.PIPELINE.PSEUDO_SUFFIX
        self._dicts = None
        self._gt = None
        self._calibration = None
        self.resume = False  # whether the running step continues an interrupted one

    # ------------------------------------------------------------------ orchestration
    def run(self, steps: Sequence[str], resume: bool = True) -> Dict[str, Dict]:
        """Run ``steps`` in order. With ``resume``, steps already done are skipped, and a step that
        was started and stopped half-way continues: a model it finished training is loaded instead
        of retrained, the per-image outputs that model already wrote are kept, and Mask R-CNN
        resumes from its last checkpoint. Without ``resume`` every step named runs from the start.
        A step that runs clears the markers of the steps after it (their inputs change)."""
        names = list(STEPS)
        reports = {}
        for step in steps:
            if resume and self.is_done(step):
                logger.info(f"IRNet step {step!r} already done ({self.root}/steps); skipping")
                continue
            missing = [s for s in names[: names.index(step)] if not self.is_done(s)]
            if missing and not all(s in steps for s in missing):
                raise RuntimeError(f"IRNet step {step!r} needs step(s) {missing} done first")
            self.resume = resume and os.path.isfile(self._marker(step, "started"))
            logger.info(f"IRNet step {step!r} {'resumes' if self.resume else 'starts'}")
            for later in names[names.index(step) + 1 :]:
                for kind in ("started", "done"):
                    if os.path.isfile(self._marker(later, kind)):
                        os.remove(self._marker(later, kind))
            self._stamp(step, "started")
            start = time.perf_counter()
            report = STEPS[step](self)
            report["wall_time_s"] = time.perf_counter() - start
            report["resumed"] = self.resume
            write_json(self.path("reports", f"{step}.json"), report)
            self._stamp(step, "done")
            reports[step] = report
            self.write_summary()
        return reports

    def is_done(self, step: str) -> bool:
        return os.path.isfile(self._marker(step, "done"))

    def _marker(self, step: str, kind: str) -> str:
        return os.path.join(self.root, "steps", f"{step}.{kind}")

    def _stamp(self, step: str, kind: str) -> None:
        with open(self.path("steps", f"{step}.{kind}"), "w") as f:
            f.write(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))

    def write_summary(self) -> str:
        text = summary_text(self.root, self.train_name, STEPS)
        with open(self.path("reports", "summary.txt"), "w") as f:
            f.write(text)
        return text

    # ------------------------------------------------------------------ what the steps share
    def path(self, *parts: str) -> str:
        """``OUTPUT_DIR/<parts>``, its folder created."""
        p = os.path.join(self.root, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def folder(self, *parts: str) -> str:
        p = os.path.join(self.root, *parts)
        os.makedirs(p, exist_ok=True)
        return p

    @property
    def dicts(self) -> List[Dict]:
        """The training images with image-level labels only."""
        if self._dicts is None:
            self._dicts = image_label_dicts(self.train_name)
        return self._dicts

    @property
    def gt(self):
        """Ground truth for the reports, or None when there is none."""
        if self._gt is None:
            name = self.cfg.MODEL.IRNET.PIPELINE.GT_DATASET or self.train_name
            try:
                self._gt = GroundTruth(name, self.path("reports", "gt"))
            except (ValueError, FileNotFoundError) as e:
                logger.warning(f"No pseudo-label quality report: {e}")
                self._gt = False
        return self._gt or None

    def calibration(self, refresh: bool = False) -> Dict:
        """The score thresholds of steps ``ir_label`` and ``synthesize`` (``thresholds``: config
        key -> value): the config's, or, with ``CAM.FG_FRACTION`` > 0, moved to the CAMs that step
        ``cam`` wrote (:mod:`.calibration`; also gives ``operating_point``, the score that share of
        all pixels exceeds). Read from the CAM files once per pipeline (``refresh``: again)."""
        if self._calibration is not None and not refresh:
            return self._calibration
        cam, rel, syn = (self.cfg.MODEL.IRNET[k] for k in ("CAM", "RELATION", "SYNTHESIS"))
        thresholds = {
            "RELATION.FG_THRESH": rel.FG_THRESH,
            "RELATION.BG_THRESH": rel.BG_THRESH,
            "SYNTHESIS.SEM_BG_THRESH": syn.SEM_BG_THRESH,
            "SYNTHESIS.INS_BG_THRESH": syn.INS_BG_THRESH,
        }
        if cam.FG_FRACTION <= 0:
            self._calibration = {"thresholds": thresholds}
            return self._calibration
        histogram = 0
        for d in tqdm(self.dicts, desc="IRNet: CAM scores"):
            high_res = load_cams(self.cam_path(d))["high_res"]
            pixels = high_res.shape[-2] * high_res.shape[-1]
            histogram = histogram + foreground_score_histogram(torch.as_tensor(high_res), pixels)
        point = score_exceeded_by(histogram, cam.FG_FRACTION)
        self._calibration = {
            "fg_fraction": cam.FG_FRACTION,
            "operating_point": point,
            "reference": cam.EVAL_THRESH,
            "thresholds": calibrated_thresholds(point, cam.EVAL_THRESH, thresholds),
        }
        logger.info(f"IRNet score thresholds for these CAMs: {self._calibration}")
        return self._calibration

    def cam_path(self, d: Dict) -> str:
        return self.path("cam", "cams", stem(d["file_name"]) + ".npz")

    def relation_path(self, d: Dict) -> str:
        return self.path("ir_label", "labels", stem(d["file_name"]) + ".png")

    def read_image(self, d: Dict, device) -> torch.Tensor:
        image = utils.read_image(d["file_name"], format=self.cfg.INPUT.FORMAT)
        return image_to_tensor(image).to(device)

    def load_irnet(self):
        """The trained IRNet of step ``irn``, in eval mode."""
        cfg = self.cfg.clone()
        cfg.defrost()
        cfg.MODEL.META_ARCHITECTURE = "IRNetRelations"
        model = build_model(cfg)
        SafeCheckpointer(model).load(os.path.join(self.root, "irn", "model_final.pth"))
        return model.eval()

    def register_pseudo(self) -> str:
        """Register the synthesised labels under ``<train set><PSEUDO_SUFFIX>`` (+ ``_sem_seg``)."""
        register_pseudo_datasets(
            self.pseudo_name,
            self.path("pseudo", "instances.json"),
            "",
            self.folder("pseudo", "sem_seg"),
            self.thing_classes,
        )
        return self.pseudo_name

    def mask_rcnn_cfg(self) -> CfgNode:
        """The Mask R-CNN config: PIPELINE.MASK_RCNN_CONFIG (+ MASK_RCNN_OPTS) trained on the pseudo
        labels, tested on DATASETS.TEST, writing to OUTPUT_DIR/maskrcnn."""
        pipe = self.cfg.MODEL.IRNET.PIPELINE
        cfg = get_cfg()
        add_d2_instseg_config(cfg)
        cfg.merge_from_file(pipe.MASK_RCNN_CONFIG)
        cfg.merge_from_list(list(pipe.MASK_RCNN_OPTS))
        cfg.DATASETS.TRAIN = (self.pseudo_name,)
        cfg.DATASETS.TEST = tuple(self.cfg.DATASETS.TEST)
        cfg.MODEL.DEVICE = self.cfg.MODEL.DEVICE
        cfg.OUTPUT_DIR = self.folder("maskrcnn")
        sync_num_classes(cfg)
        cfg.freeze()
        return cfg
