"""Register user datasets in COCO format from the command line: ``--dataset NAME:JSON:IMAGE_DIR``."""
import json
import os
from typing import List

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from ..checks import checked_coco_json


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


def register_user_dataset(spec: str, invalid_policy: str = "error") -> str:
    """Register one COCO-format dataset (instances, evaluator_type ``coco``) and return its name.

    The class names are read from the JSON's ``categories`` now, so the config can be checked against
    them (``Trainer`` sets the models' NUM_CLASSES from them) before any data is loaded. When the data
    is loaded, the file is checked first (see :mod:`d2_instseg.data.checks`; ``invalid_policy`` is
    ``DATASETS.INVALID_ANNOTATIONS``).
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
    DatasetCatalog.register(
        name,
        lambda: load_coco_json(checked_coco_json(json_file, image_root, invalid_policy), image_root, name),
    )
    MetadataCatalog.get(name).set(
        json_file=json_file,
        image_root=image_root,
        evaluator_type="coco",
        thing_classes=[c["name"] for c in categories],
        thing_dataset_id_to_contiguous_id={c["id"]: i for i, c in enumerate(categories)},
    )
    return name


def register_user_datasets(specs: List[str], invalid_policy: str = "error") -> List[str]:
    return [register_user_dataset(s, invalid_policy) for s in specs or []]
