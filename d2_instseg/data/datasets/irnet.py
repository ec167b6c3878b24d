"""IRNet's view of a dataset (image-level labels only) and registration of the pseudo-label
datasets its ``synthesize`` step writes.

The IRNet steps only ever see :func:`image_label_dicts`, which keeps ``file_name``, ``height``,
``width``, ``image_id`` and ``image_labels`` of each dataset dict and drops every annotation.
"""

import os
from typing import Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances

IMAGE_LABEL_KEYS = ("file_name", "height", "width", "image_id", "image_labels")


def image_label_dicts(dataset_name: str) -> List[Dict]:
    """Dataset dicts of ``dataset_name`` reduced to image-level labels (no masks, boxes or classes
    of objects). Raises ValueError if a dict has no ``image_labels``."""
    out = []
    for d in DatasetCatalog.get(dataset_name):
        if "image_labels" not in d:
            raise ValueError(
                f"IRNet needs image-level labels: dataset {dataset_name!r} has a dict without "
                f"'image_labels' ({d.get('file_name')})"
            )
        out.append({k: d[k] for k in IMAGE_LABEL_KEYS if k in d})
    return out


def _unregister(name: str) -> None:
    """Forget ``name`` (a rerun of the pipeline registers its new labels under the same name)."""
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def register_pseudo_datasets(
    name: str, json_file: str, image_root: str, sem_seg_root: str, thing_classes: List[str]
) -> None:
    """Register the synthesised labels: ``name`` (COCO instances, evaluator ``coco``) and
    ``name + "_sem_seg"`` (label PNGs named like the images, 0 = background, c + 1 = class c)."""
    _unregister(name)
    register_coco_instances(name, {}, json_file, image_root)
    MetadataCatalog.get(name).set(thing_classes=list(thing_classes))
    sem = name + "_sem_seg"
    _unregister(sem)

    def load_sem():
        return [
            {
                "file_name": d["file_name"],
                "sem_seg_file_name": os.path.join(
                    sem_seg_root, os.path.splitext(os.path.basename(d["file_name"]))[0] + ".png"
                ),
                "height": d["height"],
                "width": d["width"],
                "image_id": d["image_id"],
            }
            for d in DatasetCatalog.get(name)
        ]

    DatasetCatalog.register(sem, load_sem)
    MetadataCatalog.get(sem).set(
        stuff_classes=["background"] + list(thing_classes),
        thing_classes=list(thing_classes),
        ignore_label=255,
        sem_seg_root=sem_seg_root,
        image_root=image_root,
        evaluator_type="sem_seg",
    )
