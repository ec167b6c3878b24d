"""The five steps of IRNet's workflow. Each is a function of the pipeline (its config, folders,
image list and ground truth) that reads the files the previous steps wrote under ``OUTPUT_DIR`` and
returns its report; so a test can run one step on files it wrote itself.

========== ==================================================================== ====================
step       does                                                                 writes (OUTPUT_DIR/)
========== ==================================================================== ====================
cam        trains the CAM network, saves multi-scale + flip CAMs per image      cam/
ir_label   confident fg/bg from CAMs (thresholds + dense CRF) -> relation labels ir_label/
irn        trains IRNet (frozen CAM backbone), sets the mean displacement       irn/
synthesize centroids, instance map, random walk -> COCO JSON + semantic PNGs    pseudo/
maskrcnn   Detectron2's Mask R-CNN trained on the pseudo labels (lead Trainer)  maskrcnn/
========== ==================================================================== ====================
"""

import json
import logging
import os
from multiprocessing import Pool
from typing import Any, Callable, Dict, List, Tuple

import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_train_loader
from detectron2.data import detection_utils as utils
from detectron2.modeling import build_model
from PIL import Image
from tqdm import tqdm

from ..data.dataset_mappers.irnet import IRNetCAMMapper, IRNetRelationMapper
from ..engine import SafeCheckpointer, Trainer, iterations_for_epochs, train_for
from ..modeling.irnet import cam_semantic_prediction, multiscale_cams
from .files import atomic_write, load_cams, save_cams, stem, write_json
from .pseudo_coco import coco_results, encode_mask, pseudo_coco
from .quality import ConfusionMatrix, instance_ap
from .relation_labels import confident_relation_label
from .reports import classifier_report, evaluation_report, relation_label_report
from .synthesis import synthesize_image_labels
from .visualize import overlay_grid

logger = logging.getLogger(__name__)


def step_cfg(cfg: CfgNode, meta_arch: str, node: CfgNode, num_images: int) -> CfgNode:
    """The config a step trains with: ``meta_arch`` and the step's schedule (MODEL.IRNET.CAM or
    .IRN: EPOCHS, IMS_PER_BATCH, OPTIMIZER, BASE_LR, MOMENTUM, WEIGHT_DECAY, POLY_POWER) as the
    SOLVER keys the Trainer's factories read. Weight decay applies to every parameter (norms
    included) and there is no warm-up or clipping, as in the authors' code."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.META_ARCHITECTURE = meta_arch
    s = cfg.SOLVER
    s.OPTIMIZER, s.BASE_LR = node.OPTIMIZER, node.BASE_LR
    s.MOMENTUM, s.NESTEROV = node.MOMENTUM, False
    s.WEIGHT_DECAY = s.WEIGHT_DECAY_NORM = node.WEIGHT_DECAY
    s.BIAS_LR_FACTOR, s.WEIGHT_DECAY_BIAS = 1.0, None
    s.IMS_PER_BATCH = node.IMS_PER_BATCH
    s.MAX_ITER = iterations_for_epochs(node.EPOCHS, num_images, node.IMS_PER_BATCH)
    s.LR_SCHEDULER_NAME, s.WARMUP_ITERS = "WarmupPolyLR", 0
    s.POLY_LR_POWER, s.POLY_LR_CONSTANT_ENDING = node.POLY_POWER, 0.0
    s.CLIP_GRADIENTS.ENABLED = False
    cfg.freeze()
    return cfg


def _loader(cfg: CfgNode, dicts: List[Dict], mapper):
    """Detectron2's training loader over ``dicts`` (shuffled, no aspect-ratio grouping)."""
    return build_detection_train_loader(
        dataset=dicts,
        mapper=mapper,
        total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
        aspect_ratio_grouping=False,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
    )


def _multiplier(mult: float, modules) -> Callable[[str], float]:
    """Learning-rate factor ``mult`` for the parameters of ``modules`` (top-level names), else 1."""
    prefixes = tuple(f"{m}." for m in modules)
    return lambda name: mult if name.startswith(prefixes) else 1.0


def cam_training(cfg: CfgNode, dicts: List[Dict]) -> Tuple[CfgNode, Any, Any, Callable]:
    """What the CAM network trains with on ``dicts`` (image-level label dicts): its step config,
    a new model, the data loader and each parameter's learning-rate factor (the classifier's
    x CAM.HEAD_LR_MULT)."""
    node = cfg.MODEL.IRNET.CAM
    cfg = step_cfg(cfg, "IRNetCAM", node, len(dicts))
    model = build_model(cfg)
    head = _multiplier(node.HEAD_LR_MULT, model.HEAD_MODULES)
    return cfg, model, _loader(cfg, dicts, IRNetCAMMapper(cfg, True)), head


def irn_training(cfg: CfgNode, dicts: List[Dict]) -> Tuple[CfgNode, Any, Any, Callable]:
    """As :func:`cam_training`, for IRNet on ``dicts`` that carry ``relation_label_file``: the
    displacement branch's learning rate x IRN.DISPLACEMENT_LR_MULT (the CAM backbone, frozen,
    is not loaded here)."""
    node = cfg.MODEL.IRNET.IRN
    cfg = step_cfg(cfg, "IRNetRelations", node, len(dicts))
    model = build_model(cfg)
    head = _multiplier(node.DISPLACEMENT_LR_MULT, model.DISPLACEMENT_MODULES)
    return cfg, model, _loader(cfg, dicts, IRNetRelationMapper(cfg, True)), head


def _train(run, cfg: CfgNode, model, loader, log: str, lr_factor: Callable):
    """``train_for`` logging to ``OUTPUT_DIR/<log>``; ``lr_factor(parameter name)`` is each
    parameter's learning-rate multiplier. Returns the report without the histories."""
    report = train_for(cfg, model, loader, log_dir=run.folder(log), lr_factor_func=lr_factor)
    report.pop("history")
    return report


def _trained(run, step: str, model, train: Callable[[], Dict]) -> Dict:
    """Train ``model`` with ``train()`` (its report) and save it as ``<step>/model_final.pth``; when
    the step resumes and that file exists, load it instead. The report says ``reused_model``."""
    final = os.path.join(run.root, step, "model_final.pth")
    report_file = os.path.join(run.root, step, "train_report.json")
    if run.resume and os.path.isfile(final) and os.path.isfile(report_file):
        logger.info(f"IRNet step {step!r}: resuming with the trained {final}")
        SafeCheckpointer(model).load(final)
        with open(report_file) as f:
            return dict(json.load(f), reused_model=True)
    report = train()
    SafeCheckpointer(model, save_dir=run.folder(step)).save("model_final")
    write_json(report_file, report)
    return dict(report, reused_model=False)


def _todo(report: Dict, paths: List[str]) -> List[bool]:
    """Which per-image outputs to (re)compute: all, unless the step reuses its trained model
    (``report["reused_model"]``), when the files that model already wrote are kept."""
    if not report["reused_model"]:
        return [True] * len(paths)
    return [not os.path.isfile(p) for p in paths]


def step_cam(run) -> Dict:
    """Train the CAM network (classifier lr x HEAD_LR_MULT), then save each image's CAMs."""
    node = run.cfg.MODEL.IRNET.CAM
    cfg, model, loader, head = cam_training(run.cfg, run.dicts)

    def train():
        if cfg.MODEL.WEIGHTS:
            SafeCheckpointer(model).resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
        return _train(run, cfg, model, loader, "cam/log", head)

    report = _trained(run, "cam", model, train)
    model.eval()
    device = model.pixel_mean.device
    paths = [run.cam_path(d) for d in run.dicts]
    todo = _todo(report, paths)
    for d, path, compute in tqdm(list(zip(run.dicts, paths, todo)), desc="IRNet: CAMs"):
        if compute:
            image = run.read_image(d, device)
            save_cams(path, multiscale_cams(model, image, d["image_labels"], node.SCALES))
    calibration = run.calibration(refresh=True)
    report["score_calibration"] = calibration
    if "operating_point" in calibration:
        report["cam_operating_point"] = calibration["operating_point"]
    if run.gt is not None:
        report.update(_cam_miou(run, paths, calibration.get("operating_point")))
    report["num_images"] = len(run.dicts)
    report["num_cams_reused"] = len(todo) - sum(todo)
    if cfg.DATASETS.TEST:
        test_set = cfg.DATASETS.TEST[0]
        report.update(classifier_report(model, test_set, lambda d: run.read_image(d, device)))
    return report


def _cam_miou(run, paths: List[str], operating_point) -> Dict[str, float]:
    """CAM mIoU against the ground truth with the constant background score CAM.EVAL_THRESH
    (``cam_miou``, the paper's evaluation) and, when the thresholds are calibrated, with the CAMs'
    own operating point (``cam_miou_operating_point``)."""
    bg_scores = {"cam_miou": run.cfg.MODEL.IRNET.CAM.EVAL_THRESH}
    if operating_point is not None:
        bg_scores["cam_miou_operating_point"] = operating_point
    confusions = {k: ConfusionMatrix(len(run.thing_classes) + 1) for k in bg_scores}
    for d, path in zip(run.dicts, paths):
        if d["file_name"] not in run.gt:
            continue
        high_res = torch.as_tensor(load_cams(path)["high_res"])
        truth = run.gt.semantic(d["file_name"])
        for key, bg in bg_scores.items():
            pred = cam_semantic_prediction(high_res, d["image_labels"], bg)
            confusions[key].update(pred.numpy(), truth)
    return {key: confusion.miou() for key, confusion in confusions.items()}


def _relation_label_worker(args) -> str:
    image_path, cam_path, out_path, params = args
    image = utils.read_image(image_path, format="RGB")
    pack = load_cams(cam_path)
    label = confident_relation_label(image, pack["high_res"], pack["keys"].tolist(), **params)
    atomic_write(out_path, lambda tmp: Image.fromarray(label).save(tmp))
    return out_path


def step_ir_label(run) -> Dict:
    """Relation labels from each image's CAMs (in DATALOADER.NUM_WORKERS processes)."""
    rel = run.cfg.MODEL.IRNET.RELATION
    thresholds = run.calibration()["thresholds"]
    params = {
        "fg_thresh": thresholds["RELATION.FG_THRESH"],
        "bg_thresh": thresholds["RELATION.BG_THRESH"],
        "crf_kwargs": {
            "iterations": rel.CRF_ITERS,
            "gt_prob": rel.CRF_GT_PROB,
            "gaussian": tuple(rel.CRF_GAUSSIAN),
            "bilateral": tuple(rel.CRF_BILATERAL),
        },
    }
    jobs = [
        (d["file_name"], run.cam_path(d), run.relation_path(d), params)
        for d in run.dicts
        if not (run.resume and os.path.isfile(run.relation_path(d)))
    ]
    workers = max(1, run.cfg.DATALOADER.NUM_WORKERS)
    progress = dict(total=len(jobs), desc="IRNet: CRF")
    if workers > 1:
        with Pool(workers) as pool:
            list(tqdm(pool.imap(_relation_label_worker, jobs), **progress))
    else:
        list(tqdm(map(_relation_label_worker, jobs), **progress))
    labels = [run.relation_path(d) for d in run.dicts]
    report = relation_label_report(labels, [d["file_name"] for d in run.dicts], run.gt)
    report["num_labels_reused"] = len(run.dicts) - len(jobs)
    report["fg_thresh"], report["bg_thresh"] = params["fg_thresh"], params["bg_thresh"]
    return report


def step_irn(run) -> Dict:
    """Train IRNet on the frozen CAM backbone (displacement branch lr x DISPLACEMENT_LR_MULT), then
    store the mean displacement over the images (the losses only fix D up to a constant)."""
    dicts = [dict(d, relation_label_file=run.relation_path(d)) for d in run.dicts]
    cfg, model, loader, head = irn_training(run.cfg, dicts)
    SafeCheckpointer(model).load(os.path.join(run.root, "cam", "model_final.pth"))

    def train():
        report = _train(run, cfg, model, loader, "irn/log", head)
        model.eval()
        model.displacement_mean.zero_()
        device = model.pixel_mean.device
        with torch.no_grad():
            means = [
                model([{"image": run.read_image(d, device)}])[0]["displacement"].mean(dim=(1, 2))
                for d in tqdm(run.dicts, desc="IRNet: mean displacement")
            ]
        model.displacement_mean.copy_(torch.stack(means).mean(dim=0))
        return report

    report = _trained(run, "irn", model, train)
    report["displacement_mean"] = model.displacement_mean.tolist()
    return report


def step_synthesize(run) -> Dict:
    """Pseudo labels of every image from IRNet's outputs and its CAMs: ``pseudo/instances.json``
    (COCO), ``pseudo/sem_seg/*.png``, ``pseudo/overlays.png``, scored against the ground truth."""
    syn = run.cfg.MODEL.IRNET.SYNTHESIS
    thresholds = run.calibration()["thresholds"]
    model = run.load_irnet()
    device = model.pixel_mean.device
    gt = run.gt
    confusion = ConfusionMatrix(len(run.thing_classes) + 1)
    images, instances, results, eval_ids = [], [], [], []
    for d in tqdm(run.dicts, desc="IRNet: synthesize"):
        with torch.no_grad():
            out = model([{"image": run.read_image(d, device)}])[0]
        pack = load_cams(run.cam_path(d))
        semantic, found = synthesize_image_labels(
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
            sem_bg_thresh=thresholds["SYNTHESIS.SEM_BG_THRESH"],
            ins_bg_thresh=thresholds["SYNTHESIS.INS_BG_THRESH"],
            min_area_frac=syn.MIN_AREA_FRAC,
        )
        sem_png = run.path("pseudo", "sem_seg", stem(d["file_name"]) + ".png")
        atomic_write(sem_png, Image.fromarray(semantic).save)
        found = [
            {"segmentation": encode_mask(i["mask"]), "category": i["category"], "score": i["score"]}
            for i in found
        ]
        images.append(dict(d, file_name=os.path.abspath(d["file_name"])))
        instances.append(found)
        if gt is not None and d["file_name"] in gt:
            image_id = gt.image_id(d["file_name"])
            results += coco_results(found, image_id, gt.category_id)
            eval_ids.append(image_id)
            confusion.update(semantic, gt.semantic(d["file_name"]))
    coco = pseudo_coco(images, instances, run.thing_classes, syn.TRAIN_MIN_SCORE)
    json_file = run.path("pseudo", "instances.json")
    write_json(json_file, coco)
    run.register_pseudo()
    report = {
        "num_images": len(images),
        "num_pseudo_instances": len(coco["annotations"]),
        "sem_bg_thresh": thresholds["SYNTHESIS.SEM_BG_THRESH"],
        "ins_bg_thresh": thresholds["SYNTHESIS.INS_BG_THRESH"],
        "pseudo_json": json_file,
        "overlays": _write_overlays(run, gt),
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


def _write_overlays(run, gt, num_images: int = 8) -> str:
    """``pseudo/overlays.png``: the first images' pseudo instances (left) and ground truth."""
    dicts = DatasetCatalog.get(run.pseudo_name)[:num_images]
    pairs = [(d, gt.get(d["file_name"]) if gt else None) for d in dicts]
    out_png = run.path("pseudo", "overlays.png")
    overlay_grid(pairs, MetadataCatalog.get(run.pseudo_name), out_png)
    return out_png


def step_maskrcnn(run) -> Dict:
    """Detectron2's Mask R-CNN (PIPELINE.MASK_RCNN_CONFIG) trained on the pseudo labels by the
    Trainer, evaluated on DATASETS.TEST (the Trainer's final evaluation)."""
    run.register_pseudo()
    cfg = run.mask_rcnn_cfg()
    with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=run.resume)
    results = trainer.train()
    write_json(os.path.join(cfg.OUTPUT_DIR, "results.json"), results)  # as tools/train_net.py
    report = {"iterations": cfg.SOLVER.MAX_ITER}
    report.update(evaluation_report(results, list(cfg.DATASETS.TEST)))
    return report


# name -> step, in pipeline order
STEPS = {
    "cam": step_cam,
    "ir_label": step_ir_label,
    "irn": step_irn,
    "synthesize": step_synthesize,
    "maskrcnn": step_maskrcnn,
}
