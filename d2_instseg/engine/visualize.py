"""Pictures of a model's outputs: Detectron2 Visualizer overlays (tools/demo.py, the web app)."""

import numpy as np
import torch
from detectron2.utils.visualizer import ColorMode, Visualizer


def draw_predictions(
    rgb: np.ndarray, outputs, metadata, threshold: float, min_side: int = 480
) -> np.ndarray:
    """The Visualizer overlay of one image's outputs: instances with score >= ``threshold``
    (class names, scores, masks) or the semantic label map (the argmax of ``sem_seg``).

    rgb: (H, W, 3) uint8; outputs: the model's dict for it (``instances`` or ``sem_seg``);
    metadata: Detectron2 Metadata with ``thing_classes`` / ``stuff_classes``. Small images are
    drawn enlarged (long side >= ``min_side`` px) so that labels stay readable. Returns the
    (H', W', 3) uint8 RGB overlay.
    """
    scale = max(1.0, min_side / max(rgb.shape[:2]))
    vis = Visualizer(rgb, metadata, scale=scale, instance_mode=ColorMode.IMAGE)
    if "instances" in outputs:
        instances = outputs["instances"].to("cpu")
        return vis.draw_instance_predictions(instances[instances.scores >= threshold]).get_image()
    if "sem_seg" in outputs:
        labels = outputs["sem_seg"].argmax(dim=0).to("cpu", torch.int64)
        return vis.draw_sem_seg(labels, alpha=0.5).get_image()
    raise ValueError(f"The model returned neither instances nor sem_seg: {list(outputs)}")
