"""Pictures of the synthesised labels: Detectron2 Visualizer overlays of pseudo instances, next to
the ground truth's where there is one."""

from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from detectron2.data import detection_utils as utils
from detectron2.utils.visualizer import Visualizer


def overlay_grid(
    pairs: Sequence[Tuple[Dict, Optional[Dict]]], metadata, out_png: str, height: int = 256
) -> np.ndarray:
    """Write ``out_png``: one row per (pseudo, ground truth) pair of dataset dicts of the same image
    (``file_name`` and ``annotations`` as DatasetCatalog gives them; ground truth may be None), the
    instances of each drawn with ``Visualizer.draw_dataset_dict`` (only ``annotations``: whatever
    else a ground-truth dict carries, e.g. VOC's ``sem_seg_file_name``, is not drawn, and
    ``metadata`` needs only ``thing_classes``) and scaled to ``height`` px; rows padded with white
    to the widest. Returns the (rows x height, W, 3) uint8 RGB grid."""
    if not pairs:
        raise ValueError(f"overlay_grid: no images to draw into {out_png!r}")
    rows: List[np.ndarray] = []
    for pseudo, gt in pairs:
        image = utils.read_image(pseudo["file_name"], format="RGB")
        scale = height / image.shape[0]
        width = max(1, round(image.shape[1] * scale))
        tiles = [
            Visualizer(image, metadata).draw_dataset_dict(_instances_only(d)).get_image()
            for d in (pseudo, gt)
            if d is not None
        ]
        rows.append(np.hstack([cv2.resize(t, (width, height)) for t in tiles]))
    widest = max(r.shape[1] for r in rows)
    grid = np.vstack(
        [np.pad(r, ((0, 0), (0, widest - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    )
    cv2.imwrite(out_png, grid[:, :, ::-1])
    return grid


def _instances_only(dataset_dict: Dict) -> Dict:
    return {"annotations": dataset_dict.get("annotations", [])}
