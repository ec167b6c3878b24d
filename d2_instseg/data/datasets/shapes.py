"""Registration of the built-in synthetic shapes splits in DatasetCatalog / MetadataCatalog.

Splits (the files are generated on first ``DatasetCatalog.get``, then reused):

=========================  ==========  ========================================================
name                       images      use
=========================  ==========  ========================================================
``shapes_train``           400         training, instances (evaluator_type ``coco``)
``shapes_train_weak``      2,000       weakly supervised training (IRNet): its first 400 images are
                                       ``shapes_train``'s (same seed), like VOC's train_aug / train
``shapes_val``             100         evaluation, instances
``shapes_tiny_train``      64          unit tests
``shapes_tiny_val``        24          unit tests
``shapes_dense_train``     300         the second geometry: 256-384 px, 15-40 small shapes,
                                       many touching (``DENSE``), instances and image labels
``shapes_dense_val``       80          its evaluation split
``shapes_sem_seg_<split>`` same        the same images, semantic labels (evaluator ``sem_seg``)
=========================  ==========  ========================================================

The number of images of ``shapes_train`` / ``shapes_val`` can be changed with the environment variables
``D2_INSTSEG_SHAPES_TRAIN`` / ``D2_INSTSEG_SHAPES_VAL``; other splits can be made with
:func:`register_shapes`. Files live under ``$DETECTRON2_DATASETS/shapes`` (default ``datasets/shapes``).

Every dataset dict carries ``image_labels``: the sorted contiguous ids (0..2) of the classes present,
read from ``image_labels.json`` (the only supervision weakly supervised methods may use).
"""
import json
import os
from typing import Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from .synthetic_shapes import CATEGORIES, ShapesSpec, ensure_split

THING_CLASSES = [c["name"] for c in CATEGORIES]
STUFF_CLASSES = ["background"] + THING_CLASSES
IGNORE_LABEL = 255
_ID_MAP = {c["id"]: i for i, c in enumerate(CATEGORIES)}


def shapes_root() -> str:
    return os.path.join(os.getenv("DETECTRON2_DATASETS", "datasets"), "shapes")


def _attach_image_labels(dicts: List[Dict], folder: str) -> List[Dict]:
    with open(os.path.join(folder, "image_labels.json")) as f:
        labels = json.load(f)
    for d in dicts:
        d["image_labels"] = sorted(_ID_MAP[c] for c in labels[os.path.basename(d["file_name"])])
    return dicts


def _load_instances(name: str, folder: str, spec: ShapesSpec) -> List[Dict]:
    ensure_split(folder, spec, desc=name)
    dicts = load_coco_json(os.path.join(folder, "instances.json"), os.path.join(folder, "images"), name)
    return _attach_image_labels(dicts, folder)


def _load_sem_seg(name: str, folder: str, spec: ShapesSpec) -> List[Dict]:
    ensure_split(folder, spec, desc=name)
    with open(os.path.join(folder, "instances.json")) as f:
        images = json.load(f)["images"]
    dicts = [
        {
            "file_name": os.path.join(folder, "images", im["file_name"]),
            "sem_seg_file_name": os.path.join(folder, "sem_seg", im["file_name"]),
            "height": im["height"],
            "width": im["width"],
            "image_id": im["id"],
        }
        for im in images
    ]
    return _attach_image_labels(dicts, folder)


def register_shapes(split: str, spec: ShapesSpec, root: str = None) -> None:
    """Register ``shapes_<split>`` (instances) and ``shapes_sem_seg_<split>`` (semantic)."""
    folder = os.path.join(root or shapes_root(), spec.folder_name(split))
    inst, sem = f"shapes_{split}", f"shapes_sem_seg_{split}"
    DatasetCatalog.register(inst, lambda: _load_instances(inst, folder, spec))
    MetadataCatalog.get(inst).set(
        thing_classes=THING_CLASSES,
        thing_dataset_id_to_contiguous_id=dict(_ID_MAP),
        json_file=os.path.join(folder, "instances.json"),
        image_root=os.path.join(folder, "images"),
        evaluator_type="coco",
        shapes_spec=spec,
    )
    DatasetCatalog.register(sem, lambda: _load_sem_seg(sem, folder, spec))
    MetadataCatalog.get(sem).set(
        stuff_classes=STUFF_CLASSES,
        thing_classes=THING_CLASSES,
        ignore_label=IGNORE_LABEL,
        image_root=os.path.join(folder, "images"),
        sem_seg_root=os.path.join(folder, "sem_seg"),
        evaluator_type="sem_seg",
        shapes_spec=spec,
    )


def _env_int(key: str, default: int) -> int:
    value = os.getenv(key, str(default))
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(f"Environment variable {key} must be a positive integer, got {value!r}")
    return int(value)


BUILTIN_SPLITS = {
    "train": ShapesSpec(num_images=_env_int("D2_INSTSEG_SHAPES_TRAIN", 400), seed=0),
    "val": ShapesSpec(num_images=_env_int("D2_INSTSEG_SHAPES_VAL", 100), seed=1),
    "train_weak": ShapesSpec(num_images=2000, seed=0),
    "tiny_train": ShapesSpec(num_images=64, seed=2),
    "tiny_val": ShapesSpec(num_images=24, seed=3),
}
# The second geometry (generality is measured, not assumed): 256-384 px images with 15-40 small
# shapes (radius 1.5-5% of the short side: about 6-30 px as sqrt(area)) of 1-2 classes each, half
# of them placed against an earlier shape (touching, as in crowded scenes).
DENSE = dict(
    min_side=256,
    max_side=384,
    min_shapes=15,
    max_shapes=40,
    min_shape_frac=0.015,
    max_shape_frac=0.05,
    max_classes=2,
    cluster_prob=0.5,
)
BUILTIN_SPLITS.update(
    {
        "dense_train": ShapesSpec(num_images=300, seed=10, **DENSE),
        "dense_val": ShapesSpec(num_images=80, seed=11, **DENSE),
    }
)


def register_all_shapes() -> None:
    for split, spec in BUILTIN_SPLITS.items():
        if f"shapes_{split}" not in DatasetCatalog.list():
            register_shapes(split, spec)
