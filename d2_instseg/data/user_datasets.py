"""Register user datasets in COCO format from the command line: ``--dataset NAME:JSON:IMAGE_DIR``."""
import json
import os
from typing import List

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances


def parse_dataset_arg(spec: str):
    """Split ``NAME:JSON:IMAGE_DIR`` (paths may not contain ':'); raises ValueError naming the problem."""
    parts = spec.split(":")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"--dataset expects NAME:path/to/instances.json:path/to/images, got {spec!r}")
    name, json_file, image_root = parts
    if not os.path.isfile(json_file):
        raise ValueError(f"--dataset {name}: annotation file {json_file!r} does not exist")
    if not os.path.isdir(image_root):
        raise ValueError(f"--dataset {name}: image folder {image_root!r} does not exist")
    return name, json_file, image_root


def register_user_dataset(spec: str) -> str:
    """Register one COCO-format dataset (instances, evaluator_type ``coco``) and return its name.

    The class names are read from the JSON's ``categories`` now, so the config can be checked against
    them (``Trainer`` sets the models' NUM_CLASSES from them) before any data is loaded.
    """
    name, json_file, image_root = parse_dataset_arg(spec)
    with open(json_file) as f:
        try:
            categories = json.load(f)["categories"]
        except (json.JSONDecodeError, KeyError) as e:
            raise ValueError(f"--dataset {name}: {json_file} is not a COCO instances file ({e})")
    categories = sorted(categories, key=lambda c: c["id"])
    if name in DatasetCatalog.list():
        raise ValueError(f"--dataset {name}: a dataset with this name is already registered")
    register_coco_instances(name, {}, json_file, image_root)
    MetadataCatalog.get(name).set(
        thing_classes=[c["name"] for c in categories],
        thing_dataset_id_to_contiguous_id={c["id"]: i for i, c in enumerate(categories)},
    )
    return name


def register_user_datasets(specs: List[str]) -> List[str]:
    return [register_user_dataset(s) for s in specs or []]
