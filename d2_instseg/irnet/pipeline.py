"""IRNet's pipeline as resumable steps, from image-level labels to a Mask R-CNN on pseudo masks.

========== ==================================================================== ====================
step       does                                                                 writes (OUTPUT_DIR/)
========== ==================================================================== ====================
cam        trains the CAM network, saves multi-scale + flip CAMs per image      cam/
ir_label   confident fg/bg from CAMs (thresholds + dense CRF) -> relation labels ir_label/
irn        trains IRNet (frozen CAM backbone), sets the mean displacement       irn/
synthesize centroids, instance map, random walk -> COCO JSON + semantic PNGs    pseudo/
maskrcnn   Detectron2's Mask R-CNN trained on the pseudo labels (lead Trainer)  maskrcnn/
========== ==================================================================== ====================

A step writes ``steps/<step>.started`` when it starts and ``steps/<step>.done`` when it ends;
``all`` runs the steps not done yet, in order, and continues a step that was started (see
:meth:`IRNetPipeline.run`).
Each step writes ``reports/<step>.json``; ``reports/summary.txt`` sums them up. The training images
are seen only through :func:`data.image_label_dicts` (image-level labels); ground truth is read only
by :mod:`quality` for the reports.
"""
import json
import logging
import math
import os
import time
from multiprocessing import Pool
from typing import Dict, List, Sequence

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_train_loader
from detectron2.data import detection_utils as utils
from detectron2.engine import SimpleTrainer, hooks
from detectron2.modeling import build_model
from detectron2.solver import LRMultiplier
from detectron2.utils.events import CommonMetricPrinter, JSONWriter
from fvcore.common.param_scheduler import PolynomialDecayParamScheduler
from PIL import Image
from tqdm import tqdm

from ..engine.checkpoint import SafeCheckpointer
from .cam import IRNetCAM, cam_semantic_prediction, multiscale_cams
from .config import check_irnet_config
from .data import (
    IRNetCAMMapper,
    IRNetRelationMapper,
    image_label_dicts,
    image_to_tensor,
    register_pseudo_datasets,
)
from .quality import ConfusionMatrix, GroundTruth, instance_ap, multilabel_scores
from .relations import confident_relation_label
from .synthesis import synthesize_image_labels
from .visualize import overlay_grid

logger = logging.getLogger(__name__)

STEPS = ("cam", "ir_label", "irn", "synthesize", "maskrcnn")


def parse_steps(spec: str) -> List[str]:
    """"all" or a comma list of step names -> the steps in pipeline order."""
    if spec.strip() == "all":
        return list(STEPS)
    asked = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in asked if s not in STEPS]
    if unknown or not asked:
        raise ValueError(f"--steps: unknown step(s) {unknown}; choose 'all' or from {STEPS}")
    return [s for s in STEPS if s in asked]


def _stem(file_name: str) -> str:
    return os.path.splitext(os.path.basename(file_name))[0]


def _write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def _train(model, dicts, mapper, param_groups, node, cfg, log_dir: str) -> Dict:
    """Plain Detectron2 training loop (SimpleTrainer) with IRNet's poly schedule and ETA printing.
    ``node`` is MODEL.IRNET.CAM or .IRN (epochs, batch, lr, momentum, weight decay, poly power)."""
    max_iter = max(1, math.ceil(node.EPOCHS * len(dicts) / node.IMS_PER_BATCH))
    loader = build_detection_train_loader(
        dataset=dicts,
        mapper=mapper,
        total_batch_size=node.IMS_PER_BATCH,
        aspect_ratio_grouping=False,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
    )
    if node.OPTIMIZER == "SGD":
        optimizer = torch.optim.SGD(
            param_groups, lr=node.BASE_LR, momentum=node.MOMENTUM, weight_decay=node.WEIGHT_DECAY
        )
    else:
        optimizer = torch.optim.AdamW(param_groups, lr=node.BASE_LR, weight_decay=node.WEIGHT_DECAY)
    schedule = LRMultiplier(
        optimizer, PolynomialDecayParamScheduler(1.0, node.POLY_POWER), max_iter
    )
    trainer = SimpleTrainer(model, loader, optimizer)
    os.makedirs(log_dir, exist_ok=True)
    writers = [CommonMetricPrinter(max_iter), JSONWriter(os.path.join(log_dir, "metrics.json"))]
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.LRScheduler(optimizer, schedule),
            hooks.PeriodicWriter(writers, period=max(1, min(20, max_iter // 5))),
        ]
    )
    start = time.perf_counter()
    trainer.train(0, max_iter)
    losses = {
        k: float(v.median(min(20, max_iter)))
        for k, v in trainer.storage.histories().items()
        if "loss" in k
    }
    return {"iterations": max_iter, "train_time_s": time.perf_counter() - start, "losses": losses}


def _atomic(path: str, write) -> None:
    """``write(tmp)`` then rename to ``path``: a step killed mid-write leaves no truncated file for a
    resumed run to trust."""
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{ext}"
    write(tmp)
    os.replace(tmp, path)


def save_cams(path: str, pack: Dict[str, torch.Tensor]) -> None:
    """Write :func:`multiscale_cams`' output as plain arrays (``.npz``, no pickle)."""
    arrays = {k: v.cpu().numpy() for k, v in pack.items()}
    _atomic(path, lambda tmp: np.savez(tmp, **arrays))


def load_cams(path: str) -> Dict[str, np.ndarray]:
    """``keys`` (K,) int64, ``cam`` (K, h4, w4) and ``high_res`` (K, H, W) float32 of one image."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in ("keys", "cam", "high_res")}


def _relation_label_worker(args) -> str:
    image_path, cam_path, out_path, params = args
    image = utils.read_image(image_path, format="RGB")
    pack = load_cams(cam_path)
    label = confident_relation_label(image, pack["high_res"], pack["keys"].tolist(), **params)
    _atomic(out_path, lambda tmp: Image.fromarray(label).save(tmp))
    return out_path


class IRNetPipeline:
    """Runs the steps of :data:`STEPS` for one config (see the module docstring)."""

    def __init__(self, cfg: CfgNode):
        check_irnet_config(cfg)
        self.cfg = cfg
        self.root = cfg.OUTPUT_DIR
        self.train_name = cfg.DATASETS.TRAIN[0]
        self.thing_classes = MetadataCatalog.get(self.train_name).thing_classes
        self.pseudo_name = self.train_name + cfg.MODEL.IRNET.PIPELINE.PSEUDO_SUFFIX
        self._dicts = None
        self._gt = None
        self.resume = False

    # ------------------------------------------------------------------ bookkeeping
    def path(self, *parts: str) -> str:
        p = os.path.join(self.root, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def folder(self, *parts: str) -> str:
        p = os.path.join(self.root, *parts)
        os.makedirs(p, exist_ok=True)
        return p

    def is_done(self, step: str) -> bool:
        return os.path.isfile(self._marker(step, "done"))

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

    def run(self, steps: Sequence[str], resume: bool = True) -> Dict[str, Dict]:
        """Run ``steps`` in order. With ``resume``, steps already done are skipped, and a step that
        was started and stopped half-way continues: a model it finished training is loaded instead
        of retrained, the per-image outputs that model already wrote are kept, and Mask R-CNN
        resumes from its last checkpoint. Without ``resume`` every step named runs from the start.
        A step that runs clears the markers of the steps after it (their inputs change)."""
        reports = {}
        for step in steps:
            if resume and self.is_done(step):
                logger.info(f"IRNet step {step!r} already done ({self.root}/steps); skipping")
                continue
            missing = [s for s in STEPS[: STEPS.index(step)] if not self.is_done(s)]
            if missing and not all(s in steps for s in missing):
                raise RuntimeError(f"IRNet step {step!r} needs step(s) {missing} done first")
            self.resume = resume and os.path.isfile(self._marker(step, "started"))
            logger.info(f"IRNet step {step!r} {'resumes' if self.resume else 'starts'}")
            for later in STEPS[STEPS.index(step) + 1 :]:
                for kind in ("started", "done"):
                    if os.path.isfile(self._marker(later, kind)):
                        os.remove(self._marker(later, kind))
            self._stamp(step, "started")
            start = time.perf_counter()
            report = getattr(self, f"step_{step}")()
            report["wall_time_s"] = time.perf_counter() - start
            report["resumed"] = self.resume
            _atomic(self.path("reports", f"{step}.json"), lambda tmp: _write_json(tmp, report))
            self._stamp(step, "done")
            reports[step] = report
            self.write_summary()
        return reports

    def _marker(self, step: str, kind: str) -> str:
        return os.path.join(self.root, "steps", f"{step}.{kind}")

    def _stamp(self, step: str, kind: str) -> None:
        with open(self.path("steps", f"{step}.{kind}"), "w") as f:
            f.write(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))

    def write_summary(self) -> str:
        lines = [f"IRNet pipeline on {self.train_name} ({self.root})"]
        for step in STEPS:
            path = os.path.join(self.root, "reports", f"{step}.json")
            if not os.path.isfile(path):
                lines.append(f"  {step:<10s} not done")
                continue
            with open(path) as f:
                r = json.load(f)
            keys = [k for k in r if isinstance(r[k], (int, float)) and not isinstance(r[k], bool)]
            items = ", ".join(f"{k}={r[k]:.4g}" for k in keys)
            lines.append(f"  {step:<10s} {items}")
        text = "\n".join(lines) + "\n"
        with open(self.path("reports", "summary.txt"), "w") as f:
            f.write(text)
        return text

    def _model_cfg(self, meta_arch: str) -> CfgNode:
        cfg = self.cfg.clone()
        cfg.defrost()
        cfg.MODEL.META_ARCHITECTURE = meta_arch
        cfg.freeze()
        return cfg

    def _cam_path(self, d: Dict) -> str:
        return self.path("cam", "cams", _stem(d["file_name"]) + ".npz")

    def _relation_path(self, d: Dict) -> str:
        return self.path("ir_label", "labels", _stem(d["file_name"]) + ".png")

    def _read_image(self, d: Dict, device) -> torch.Tensor:
        image = utils.read_image(d["file_name"], format=self.cfg.INPUT.FORMAT)
        return image_to_tensor(image).to(device)

    # ------------------------------------------------------------------ steps
    def _trained(self, step: str, model, train) -> Dict:
        """Train ``model`` with ``train()`` (returns the training report) and save it as
        ``<step>/model_final.pth``; when resuming and that file exists, load it instead. Returns the
        training report, with ``reused_model`` True if the model was loaded."""
        final = os.path.join(self.root, step, "model_final.pth")
        report_file = os.path.join(self.root, step, "train_report.json")
        if self.resume and os.path.isfile(final) and os.path.isfile(report_file):
            logger.info(f"IRNet step {step!r}: resuming with the trained {final}")
            SafeCheckpointer(model).load(final)
            with open(report_file) as f:
                return dict(json.load(f), reused_model=True)
        report = train()
        SafeCheckpointer(model, save_dir=self.folder(step)).save("model_final")
        _atomic(report_file, lambda tmp: _write_json(tmp, report))
        return dict(report, reused_model=False)

    def _todo(self, report: Dict, paths: List[str]) -> List[bool]:
        """Which per-image outputs to (re)compute: all of them, unless the step reuses its trained
        model (``report["reused_model"]``), when the files already written by it are kept."""
        if not report["reused_model"]:
            return [True] * len(paths)
        return [not os.path.isfile(p) for p in paths]

    def step_cam(self) -> Dict:
        cfg = self._model_cfg("IRNetCAM")
        node = cfg.MODEL.IRNET.CAM
        model = build_model(cfg)

        def train():
            if cfg.MODEL.WEIGHTS:
                SafeCheckpointer(model).resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
            head = set(model.head_parameters())
            groups = [
                {"params": [p for p in model.parameters() if p.requires_grad and p not in head]},
                {"params": list(head), "lr": node.BASE_LR * node.HEAD_LR_MULT},
            ]
            mapper = IRNetCAMMapper(cfg, True)
            return _train(model, self.dicts, mapper, groups, node, cfg, self.folder("cam", "log"))

        report = self._trained("cam", model, train)
        model.eval()
        device = model.pixel_mean.device
        gt = self.gt
        confusion = ConfusionMatrix(len(self.thing_classes) + 1)
        paths = [self._cam_path(d) for d in self.dicts]
        todo = self._todo(report, paths)
        for d, path, compute in tqdm(zip(self.dicts, paths, todo), total=len(paths), desc="IRNet: CAMs"):
            if compute:
                pack = multiscale_cams(
                    model, self._read_image(d, device), d["image_labels"], node.SCALES
                )
                save_cams(path, pack)
            if gt is not None and d["file_name"] in gt:
                high_res = torch.as_tensor(load_cams(path)["high_res"])
                pred = cam_semantic_prediction(high_res, d["image_labels"], node.EVAL_THRESH)
                confusion.update(pred.numpy(), gt.semantic(d["file_name"]))
        if gt is not None:
            report["cam_miou"] = confusion.miou()
        report["num_images"] = len(self.dicts)
        report["num_cams_reused"] = len(todo) - sum(todo)
        report.update(self._classifier_report(model))
        return report

    @torch.no_grad()
    def _classifier_report(self, model: IRNetCAM) -> Dict:
        """The CAM network as a classifier on DATASETS.TEST[0]'s image labels (held out), as
        ``<dataset>_cls_mAP`` / ``_cls_acc`` / ``_cls_acc_constant``; empty without a test set."""
        if not self.cfg.DATASETS.TEST:
            return {}
        name = self.cfg.DATASETS.TEST[0]
        dicts = image_label_dicts(name)
        device = model.pixel_mean.device
        logits = np.stack(
            [
                model.classify(self._read_image(d, device)[None])[0].cpu().numpy()
                for d in tqdm(dicts, desc=f"IRNet: classifying {name}")
            ]
        )
        labels = np.zeros_like(logits)
        for row, d in zip(labels, dicts):
            row[list(d["image_labels"])] = 1.0
        return {f"{name}_{k}": v for k, v in multilabel_scores(logits, labels).items()}

    def step_ir_label(self) -> Dict:
        rel = self.cfg.MODEL.IRNET.RELATION
        params = {
            "fg_thresh": rel.FG_THRESH,
            "bg_thresh": rel.BG_THRESH,
            "crf_kwargs": {
                "iterations": rel.CRF_ITERS,
                "gt_prob": rel.CRF_GT_PROB,
                "gaussian": tuple(rel.CRF_GAUSSIAN),
                "bilateral": tuple(rel.CRF_BILATERAL),
            },
        }
        jobs = [
            (d["file_name"], self._cam_path(d), self._relation_path(d), params)
            for d in self.dicts
            if not (self.resume and os.path.isfile(self._relation_path(d)))
        ]
        workers = max(1, self.cfg.DATALOADER.NUM_WORKERS)
        progress = dict(total=len(jobs), desc="IRNet: CRF")
        if workers > 1:
            with Pool(workers) as pool:
                list(tqdm(pool.imap(_relation_label_worker, jobs), **progress))
        else:
            list(tqdm(map(_relation_label_worker, jobs), **progress))
        counts = np.zeros(3, dtype=np.int64)  # background, foreground, unsure
        correct = total = 0
        gt = self.gt
        for d in self.dicts:
            label = np.asarray(Image.open(self._relation_path(d)))
            fg = (label > 0) & (label < 255)
            counts += [(label == 0).sum(), fg.sum(), (label == 255).sum()]
            if gt is not None and d["file_name"] in gt:
                sure = label != 255
                correct += int((label[sure] == gt.semantic(d["file_name"])[sure]).sum())
                total += int(sure.sum())
        frac = counts / max(1, counts.sum())
        report = {"bg_frac": frac[0], "fg_frac": frac[1], "unsure_frac": frac[2]}
        report = {k: float(v) for k, v in report.items()}
        report["num_labels_reused"] = len(self.dicts) - len(jobs)
        if total:
            report["confident_pixel_acc"] = 100.0 * correct / total
        return report

    def _load_irnet(self, weights: str):
        model = build_model(self._model_cfg("IRNetRelations"))
        SafeCheckpointer(model).load(weights)
        return model

    def step_irn(self) -> Dict:
        cfg = self._model_cfg("IRNetRelations")
        node = cfg.MODEL.IRNET.IRN
        model = self._load_irnet(self.path("cam", "model_final.pth"))

        def train():
            disp = set(model.displacement_parameters())
            trainable = [p for p in model.parameters() if p.requires_grad]
            groups = [
                {"params": [p for p in trainable if p not in disp]},
                {"params": list(disp), "lr": node.BASE_LR * node.DISPLACEMENT_LR_MULT},
            ]
            dicts = [dict(d, relation_label_file=self._relation_path(d)) for d in self.dicts]
            mapper = IRNetRelationMapper(cfg, True)
            report = _train(model, dicts, mapper, groups, node, cfg, self.folder("irn", "log"))
            # The losses only constrain differences of D: remove its mean over the inferred images.
            model.eval()
            model.displacement_mean.zero_()
            means = []
            device = model.pixel_mean.device
            with torch.no_grad():
                for d in tqdm(self.dicts, desc="IRNet: mean displacement"):
                    out = model([{"image": self._read_image(d, device)}])[0]
                    means.append(out["displacement"].mean(dim=(1, 2)))
            model.displacement_mean.copy_(torch.stack(means).mean(dim=0))
            return report

        report = self._trained("irn", model, train)
        report["displacement_mean"] = model.displacement_mean.tolist()
        return report

    def step_synthesize(self) -> Dict:
        syn = self.cfg.MODEL.IRNET.SYNTHESIS
        model = self._load_irnet(self.path("irn", "model_final.pth"))
        model.eval()
        device = model.pixel_mean.device
        gt = self.gt
        confusion = ConfusionMatrix(len(self.thing_classes) + 1)
        images, annotations, results, eval_ids = [], [], [], []
        for d in tqdm(self.dicts, desc="IRNet: synthesize"):
            with torch.no_grad():
                out = model([{"image": self._read_image(d, device)}])[0]
            pack = load_cams(self._cam_path(d))
            semantic, instances = synthesize_image_labels(
                torch.as_tensor(pack["cam"], device=device),
                pack["keys"].tolist(),
                out["boundary"],
                out["displacement"],
                (d["height"], d["width"]),
                radius=syn.RADIUS,
                beta=syn.BETA,
                exp_times=syn.EXP_TIMES,
                centroid_iterations=syn.CENTROID_ITERS,
                cluster_thresh=syn.CLUSTER_THRESH,
                sem_bg_thresh=syn.SEM_BG_THRESH,
                ins_bg_thresh=syn.INS_BG_THRESH,
                min_area_frac=syn.MIN_AREA_FRAC,
            )
            sem_png = self.path("pseudo", "sem_seg", _stem(d["file_name"]) + ".png")
            _atomic(sem_png, lambda tmp: Image.fromarray(semantic).save(tmp))
            image_id = len(images) + 1
            images.append(
                {
                    "id": image_id,
                    "file_name": os.path.abspath(d["file_name"]),
                    "height": d["height"],
                    "width": d["width"],
                }
            )
            in_gt = gt is not None and d["file_name"] in gt
            for inst in instances:
                rle = mask_util.encode(np.asfortranarray(inst["mask"].astype(np.uint8)))
                rle["counts"] = rle["counts"].decode("ascii")
                if inst["score"] > syn.TRAIN_MIN_SCORE:
                    annotations.append(
                        {
                            "id": len(annotations) + 1,
                            "image_id": image_id,
                            "category_id": inst["category"] + 1,
                            "segmentation": rle,
                            "area": float(mask_util.area(rle)),
                            "bbox": mask_util.toBbox(rle).tolist(),
                            "iscrowd": 0,
                        }
                    )
                if in_gt:
                    results.append(
                        {
                            "image_id": gt.image_id(d["file_name"]),
                            "category_id": gt.category_id(inst["category"]),
                            "segmentation": rle,
                            "score": inst["score"],
                        }
                    )
            if in_gt:
                eval_ids.append(gt.image_id(d["file_name"]))
                confusion.update(semantic, gt.semantic(d["file_name"]))
        categories = [{"id": i + 1, "name": n} for i, n in enumerate(self.thing_classes)]
        json_file = self.path("pseudo", "instances.json")
        coco = {"images": images, "annotations": annotations, "categories": categories}
        _atomic(json_file, lambda tmp: _write_json(tmp, coco))
        self.register_pseudo()
        report = {
            "num_images": len(images),
            "num_pseudo_instances": len(annotations),
            "pseudo_json": json_file,
            "overlays": self._write_overlays(gt),
        }
        if gt is not None:
            ap = instance_ap(gt, results, eval_ids)
            report.update(
                {
                    "pseudo_sem_miou": confusion.miou(),
                    "pseudo_mask_AP50": ap["AP50"],
                    "pseudo_mask_AP": ap["AP"],
                    "num_gt_images": len(eval_ids),
                }
            )
        return report

    def _write_overlays(self, gt, num_images: int = 8) -> str:
        """``pseudo/overlays.png``: the first images' pseudo instances (left) and ground truth."""
        dicts = DatasetCatalog.get(self.pseudo_name)[:num_images]
        pairs = [(d, gt.get(d["file_name"]) if gt else None) for d in dicts]
        out_png = self.path("pseudo", "overlays.png")
        overlay_grid(pairs, MetadataCatalog.get(self.pseudo_name), out_png)
        return out_png

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
        from ..config import add_d2_instseg_config
        from ..engine import sync_num_classes

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

    def step_maskrcnn(self) -> Dict:
        from ..engine import Trainer

        self.register_pseudo()
        cfg = self.mask_rcnn_cfg()
        with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
            f.write(cfg.dump())
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=self.resume)
        start = time.perf_counter()
        trainer.train()
        report = {"iterations": cfg.SOLVER.MAX_ITER, "train_time_s": time.perf_counter() - start}
        results = Trainer.test(cfg, trainer.model)
        with open(os.path.join(cfg.OUTPUT_DIR, "results.json"), "w") as f:
            json.dump(results, f, indent=2)  # as tools/train_net.py writes it
        if len(cfg.DATASETS.TEST) == 1:  # DefaultTrainer.test unwraps a single test set
            results = {cfg.DATASETS.TEST[0]: results}
        for dataset, res in results.items():
            for task in ("segm", "bbox"):
                for metric in ("AP", "AP50", "AP75"):
                    if task in res and metric in res[task]:
                        report[f"{dataset}_{task}_{metric}"] = float(res[task][metric])
        return report
