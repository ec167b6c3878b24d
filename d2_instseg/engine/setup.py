"""Turning command-line arguments into a checked config: datasets present, class counts, device."""
import logging
import os

import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.data import MetadataCatalog
from detectron2.engine import default_setup

from ..config import add_d2_instseg_config
from ..data import register_user_datasets

logger = logging.getLogger(__name__)

# Config keys holding a number of "thing" classes / of semantic classes; synced from dataset metadata.
THING_CLASS_KEYS = (
    "MODEL.ROI_HEADS.NUM_CLASSES",
    "MODEL.RETINANET.NUM_CLASSES",
    "MODEL.CENTERMASK.NUM_CLASSES",
    "MODEL.SPATIAL_EMBED.NUM_CLASSES",
    "MODEL.IRNET.NUM_CLASSES",
)
STUFF_CLASS_KEYS = ("MODEL.SEM_SEG_HEAD.NUM_CLASSES",)
# Metadata fields that name files or folders a dataset reads from.
_PATH_FIELDS = ("json_file", "image_root", "image_dir", "gt_dir", "sem_seg_root", "panoptic_root")


def _get_key(cfg: CfgNode, key: str):
    node = cfg
    for part in key.split("."):
        if not isinstance(node, CfgNode) or part not in node:
            return None
        node = node[part]
    return node


def _set_key(cfg: CfgNode, key: str, value) -> None:
    *parents, leaf = key.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    node[leaf] = value


def check_datasets_present(cfg: CfgNode) -> None:
    """Raise FileNotFoundError naming the dataset, the missing path and the CPU alternative."""
    for name in list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST):
        meta = MetadataCatalog.get(name)
        if meta.get("shapes_spec", None) is not None:
            continue  # generated on first use
        for field in _PATH_FIELDS:
            path = meta.get(field, None)
            if path and not os.path.exists(path):
                root = os.getenv("DETECTRON2_DATASETS", "datasets")
                raise FileNotFoundError(
                    f"Dataset {name!r} is not on this machine: its {field} {path!r} does not exist. "
                    f"Detectron2 looks for builtin datasets under $DETECTRON2_DATASETS (now {root!r}); "
                    "see Detectron2's datasets/README.md for the expected layout. To run on the "
                    "built-in synthetic data instead, use a config from configs/shapes/ "
                    "(e.g. configs/shapes/mask_rcnn_R18_FPN.yaml)."
                )


def sync_num_classes(cfg: CfgNode) -> None:
    """Set every NUM_CLASSES key the config has to the training set's class count (with a warning
    when it changes), so a config written for one dataset trains on another."""
    if not cfg.DATASETS.TRAIN:
        return
    meta = MetadataCatalog.get(cfg.DATASETS.TRAIN[0])
    for keys, field in ((THING_CLASS_KEYS, "thing_classes"), (STUFF_CLASS_KEYS, "stuff_classes")):
        classes = meta.get(field, None)
        if classes is None:
            continue
        for key in keys:
            current = _get_key(cfg, key)
            if current is not None and current != len(classes):
                logger.warning(
                    f"{key}={current} but {cfg.DATASETS.TRAIN[0]!r} has {len(classes)} {field}; "
                    f"using {len(classes)}"
                )
                _set_key(cfg, key, len(classes))


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
                differ = [k for k in keys if _get_key(cfg, k) not in (None, len(classes))]
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


def setup_cfg(args, *, run_default_setup: bool = True, check_data: bool = True) -> CfgNode:
    """Config from Detectron2-style ``args`` (config_file, opts, and our ``dataset`` list).

    ``run_default_setup`` runs Detectron2's ``default_setup`` (logging, OUTPUT_DIR, seeds);
    ``check_data`` checks that the training and test sets are on disk (not needed for a demo).
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
    cfg.freeze()
    if run_default_setup:
        default_setup(cfg, args)
    if check_data:
        check_datasets_present(cfg)
    return cfg
