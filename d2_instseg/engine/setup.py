"""Turning command-line arguments into a checked config: datasets present, class counts, device."""

import importlib.util
import logging
import os
from typing import List, Tuple

import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.data import MetadataCatalog
from detectron2.engine import default_setup

from ..data import register_user_datasets
from ..data.presence import dataset_status
from ..utils.config_checks import get_key, set_key
from ..utils.config_registry import add_d2_instseg_config, check_d2_instseg_config
from .weights import check_weights_reachable, weights_status

logger = logging.getLogger(__name__)

# Config keys holding a number of "thing" classes / of semantic classes; synced from dataset
# metadata.
THING_CLASS_KEYS = (
    "MODEL.ROI_HEADS.NUM_CLASSES",
    "MODEL.RETINANET.NUM_CLASSES",
    "MODEL.CENTERMASK.NUM_CLASSES",
    "MODEL.SPATIAL_EMBED.NUM_CLASSES",
    "MODEL.IRNET.NUM_CLASSES",
)
STUFF_CLASS_KEYS = ("MODEL.SEM_SEG_HEAD.NUM_CLASSES",)
# The class-count keys each meta-architecture reads (an unknown one: every key counts as read).
_KEYS_READ = {
    "GeneralizedRCNN": ("MODEL.ROI_HEADS.NUM_CLASSES",),
    "PanopticFPN": ("MODEL.ROI_HEADS.NUM_CLASSES", "MODEL.SEM_SEG_HEAD.NUM_CLASSES"),
    "RetinaNet": ("MODEL.RETINANET.NUM_CLASSES",),
    "CenterMaskPoint": ("MODEL.CENTERMASK.NUM_CLASSES",),
    "SpatialEmbeddings": ("MODEL.SPATIAL_EMBED.NUM_CLASSES",),
    "IRNetCAM": ("MODEL.IRNET.NUM_CLASSES",),
    "IRNetRelations": ("MODEL.IRNET.NUM_CLASSES",),
    "SemanticSegmentor": ("MODEL.SEM_SEG_HEAD.NUM_CLASSES",),
    "CPNetSegmentor": ("MODEL.SEM_SEG_HEAD.NUM_CLASSES",),
}


def check_datasets_present(cfg: CfgNode) -> None:
    """Raise FileNotFoundError naming every missing file of DATASETS.TRAIN and DATASETS.TEST, where
    Detectron2 looks for it and how to prepare it (:func:`d2_instseg.data.dataset_status`)."""
    missing = [s for s in map(dataset_status, dataset_names(cfg)) if not s.present]
    if missing:
        root = os.getenv("DETECTRON2_DATASETS", "datasets")
        raise FileNotFoundError(
            "Datasets of this config are not on this machine (Detectron2 looks for builtin "
            f"datasets under $DETECTRON2_DATASETS, now {root!r}):\n"
            + "\n".join(s.describe() for s in missing)
            + "\nTo run on the built-in synthetic data instead, use a config from configs/shapes/ "
            "(e.g. configs/shapes/mask_rcnn_R18_FPN.yaml); `tools/train_net.py --check-data "
            "--config-file CFG` lists what a config needs."
        )


def requirements_report(cfg: CfgNode, resume: bool = False) -> Tuple[bool, str]:
    """(all present, text): for every dataset of the config what it needs on disk, where Detectron2
    looks and how to prepare what is missing; MODEL.WEIGHTS; the evaluators' extra packages."""
    ok, lines = True, [f"DETECTRON2_DATASETS = {os.getenv('DETECTRON2_DATASETS', 'datasets')!r}"]
    for status in map(dataset_status, dataset_names(cfg)):
        ok &= status.present
        lines.append(status.describe())
    if resume and has_checkpoint(cfg.OUTPUT_DIR):
        lines.append(f"MODEL.WEIGHTS: not used (--resume continues from {cfg.OUTPUT_DIR})")
    else:
        weights_ok, where = weights_status(cfg.MODEL.WEIGHTS)
        ok &= weights_ok
        state = "ok" if weights_ok else "MISSING"
        lines.append(f"MODEL.WEIGHTS {cfg.MODEL.WEIGHTS!r}: {state} ({where})")
    for name in cfg.DATASETS.TEST:
        evaluator = MetadataCatalog.get(name).get("evaluator_type", None)
        if evaluator in ("cityscapes_instance", "cityscapes_sem_seg"):
            found = importlib.util.find_spec("cityscapesscripts") is not None
            ok &= found
            lines.append(
                f"evaluator of {name} ({evaluator}): "
                + ("ok" if found else "MISSING: pip install cityscapesscripts")
            )
    return ok, "\n".join(lines)


def dataset_names(cfg: CfgNode) -> List[str]:
    """DATASETS.TRAIN, DATASETS.TEST and the IRNet pipeline's ground-truth set, without repeats."""
    names = [*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST]
    gt = get_key(cfg, "MODEL.IRNET.PIPELINE.GT_DATASET", "")
    return list(dict.fromkeys(names + ([gt] if gt else [])))


def sync_num_classes(cfg: CfgNode) -> None:
    """Set every NUM_CLASSES key the config has to the training set's class count, so a config
    written for one dataset trains on another. A change of a key the model reads is a warning;
    the other methods' keys change silently (debug log)."""
    if not cfg.DATASETS.TRAIN:
        return
    meta = MetadataCatalog.get(cfg.DATASETS.TRAIN[0])
    for keys, field in ((THING_CLASS_KEYS, "thing_classes"), (STUFF_CLASS_KEYS, "stuff_classes")):
        classes = meta.get(field, None)
        if classes is None:
            continue
        for key in keys:
            current = get_key(cfg, key, None)
            if current is not None and current != len(classes):
                read = key in _KEYS_READ.get(cfg.MODEL.META_ARCHITECTURE, (key,))
                logger.log(
                    logging.WARNING if read else logging.DEBUG,
                    f"{key}={current} but {cfg.DATASETS.TRAIN[0]!r} has {len(classes)} {field}; "
                    f"using {len(classes)}",
                )
                set_key(cfg, key, len(classes))


def check_dataset_classes(cfg: CfgNode, *, eval_only: bool = False) -> None:
    """Check that the class lists of the datasets agree with each other and with the model.

    Training (``eval_only`` False): raise ValueError naming the datasets when two of DATASETS.TRAIN
    and DATASETS.TEST have different ``thing_classes`` (or ``stuff_classes``) lists, since class id
    k would be one class in training and another in evaluation. Datasets without the field (e.g. a
    semantic test set next to an instance training set) are not compared.
    Evaluation only: the training sets play no part; warn when NUM_CLASSES keys (already synced
    from the training set's metadata, which the weights were trained for) differ from a test set's
    class count.
    """
    for keys, field in ((THING_CLASS_KEYS, "thing_classes"), (STUFF_CLASS_KEYS, "stuff_classes")):
        names = list(cfg.DATASETS.TEST) if eval_only else [*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST]
        lists = {n: list(c) for n in names if (c := MetadataCatalog.get(n).get(field, None))}
        if eval_only:
            for name, classes in lists.items():
                differ = [k for k in keys if get_key(cfg, k, None) not in (None, len(classes))]
                if differ:
                    logger.warning(
                        f"{', '.join(differ)} differ from the {len(classes)} {field} of test set "
                        f"{name!r}: evaluation compares class ids of different lists"
                    )
        elif lists:
            (first, reference), *others = lists.items()
            for name, classes in others:
                if classes != reference:
                    raise ValueError(
                        f"Datasets {first!r} and {name!r} (DATASETS.TRAIN / DATASETS.TEST) have "
                        f"different {field}: {reference} vs {classes}; a model trained on one "
                        "cannot be evaluated on the other"
                    )


def add_dataset_argument(parser) -> None:
    """The tools' ``--dataset NAME:JSON:IMAGE_DIR`` option (repeatable), read by :func:`setup_cfg`:
    each COCO-format file is registered under NAME before the config is built."""
    parser.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="NAME:JSON:IMAGE_DIR",
        help="register a COCO-format dataset under NAME (repeatable; its categories name the "
        "classes)",
    )


def setup_cfg(args, *, run_default_setup: bool = True, check_data: bool = True) -> CfgNode:
    """Config from Detectron2-style ``args`` (config_file, opts, and our ``dataset`` list).

    ``run_default_setup`` runs Detectron2's ``default_setup`` (logging, OUTPUT_DIR, seeds);
    ``check_data`` checks, before anything is built, that the training and test sets are on disk
    and that MODEL.WEIGHTS is reachable (unless ``--resume`` finds a checkpoint to continue from);
    not needed for a demo.
    """
    cfg = get_cfg()
    add_d2_instseg_config(cfg)
    if not os.path.isfile(args.config_file):
        raise FileNotFoundError(f"--config-file {args.config_file!r} does not exist")
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    register_user_datasets(getattr(args, "dataset", None), cfg.DATASETS.INVALID_ANNOTATIONS)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("CUDA is not available: using MODEL.DEVICE=cpu")
        cfg.MODEL.DEVICE = "cpu"
    sync_num_classes(cfg)
    check_dataset_classes(cfg, eval_only=getattr(args, "eval_only", False))
    check_d2_instseg_config(cfg)
    cfg.freeze()
    if run_default_setup:
        default_setup(cfg, args)
    if check_data:
        check_datasets_present(cfg)
        if not (getattr(args, "resume", False) and has_checkpoint(cfg.OUTPUT_DIR)):
            check_weights_reachable(cfg.MODEL.WEIGHTS)
    return cfg


def has_checkpoint(output_dir: str) -> bool:
    """Whether ``--resume`` would continue from a checkpoint in ``output_dir`` (Detectron2's
    ``last_checkpoint`` tag) instead of loading MODEL.WEIGHTS."""
    return os.path.isfile(os.path.join(output_dir, "last_checkpoint"))
