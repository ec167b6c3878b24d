"""Register user datasets in COCO format from the command line: ``--dataset NAME:JSON:IMAGE_DIR``.

Every dataset dict also carries ``image_labels`` (the sorted contiguous ids of the classes in the
image), the only supervision IRNet reads: an ``images`` entry's own ``"image_labels"`` (a list of
category ids of the file; for data labelled per image only, with no annotations), else the classes
of the image's annotations."""

import json
import os
from typing import Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from ..checks import checked_coco_json


def parse_dataset_arg(spec: str):
    """Split ``NAME:JSON:IMAGE_DIR`` (paths may not contain ':'); raises ValueError naming the problem."""
    parts = spec.split(":")
    if len(parts) != 3 or not all(parts):
        raise ValueError(
            f"--dataset expects NAME:path/to/instances.json:path/to/images, got {spec!r}"
        )
    name, json_file, image_root = parts
    if not os.path.isfile(json_file):
        raise ValueError(f"--dataset {name}: annotation file {json_file!r} does not exist")
    if not os.path.isdir(image_root):
        raise ValueError(f"--dataset {name}: image folder {image_root!r} does not exist")
    return name, json_file, image_root


def attach_image_labels(dicts: List[Dict], coco: Dict, id_map: Dict[int, int], json_file: str):
    """Set ``image_labels`` of each dataset dict (see the module docstring), in place.

    ``coco`` is the parsed COCO file whose ``images`` the dicts were loaded from (matched by
    ``image_id``), ``id_map`` its category id -> contiguous id. Raises ValueError naming the file
    and the image when an ``image_labels`` entry is not a list of the file's category ids."""
    given = {im["id"]: im["image_labels"] for im in coco.get("images", []) if "image_labels" in im}
    for d in dicts:
        labels = given.get(d["image_id"])
        if labels is None:
            found = {a["category_id"] for a in d.get("annotations", []) if not a.get("iscrowd", 0)}
        else:
            if not isinstance(labels, list) or any(c not in id_map for c in labels):
                raise ValueError(
                    f"{json_file}: image id {d['image_id']} ({d['file_name']}): image_labels "
                    f"{labels!r} is not a list of the file's category ids {sorted(id_map)}"
                )
            found = {id_map[c] for c in labels}
        d["image_labels"] = sorted(found)
    return dicts


def load_user_coco(json_file: str, image_root: str, name: str, invalid_policy: str) -> List[Dict]:
    """Detectron2's ``load_coco_json`` of the checked file, with ``image_labels`` attached."""
    path = checked_coco_json(json_file, image_root, invalid_policy)
    dicts = load_coco_json(path, image_root, name)
    with open(path) as f:  # load_coco_json keeps no image field of its own: read them once more
        coco = json.load(f)
    id_map = MetadataCatalog.get(name).thing_dataset_id_to_contiguous_id
    return attach_image_labels(dicts, coco, id_map, json_file)


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
        name, lambda: load_user_coco(json_file, image_root, name, invalid_policy)
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
