"""What the IRNet steps report besides their training: the CAM network as a classifier of held-out
image labels, the relation labels' confident share and accuracy, the Mask R-CNN's evaluation, and
the one-line-per-step summary."""

import json
import os
from typing import Dict, Iterable, List, Optional

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..data.datasets.irnet import image_label_dicts
from .quality import GroundTruth, multilabel_scores


@torch.no_grad()
def classifier_report(model, dataset_name: str, read_image) -> Dict[str, float]:
    """The CAM network as a multi-label classifier of ``dataset_name``'s image labels (held out):
    ``<dataset>_cls_mAP``, ``_cls_acc`` and ``_cls_acc_constant`` (the majority answer's accuracy).
    ``read_image(dict)`` gives the (3, H, W) input on the model's device."""
    dicts = image_label_dicts(dataset_name)
    logits = np.stack(
        [
            model.classify(read_image(d)[None])[0].cpu().numpy()
            for d in tqdm(dicts, desc=f"IRNet: classifying {dataset_name}")
        ]
    )
    labels = np.zeros_like(logits)
    for row, d in zip(labels, dicts):
        row[list(d["image_labels"])] = 1.0
    return {f"{dataset_name}_{k}": v for k, v in multilabel_scores(logits, labels).items()}


def relation_label_report(
    label_files: Iterable[str], file_names: Iterable[str], gt: Optional[GroundTruth]
) -> Dict[str, float]:
    """Shares of confident background, confident foreground and unsure pixels over the relation
    label PNGs (0 = bg, c + 1 = class c, 255 = unsure), and the accuracy of the confident pixels
    against ``gt`` (where it has the image): ``bg_frac``, ``fg_frac``, ``unsure_frac``,
    ``confident_pixel_acc``."""
    counts = np.zeros(3, dtype=np.int64)  # background, foreground, unsure
    correct = total = 0
    for path, file_name in zip(label_files, file_names):
        label = np.asarray(Image.open(path))
        fg = (label > 0) & (label < 255)
        counts += [(label == 0).sum(), fg.sum(), (label == 255).sum()]
        if gt is not None and file_name in gt:
            sure = label != 255
            correct += int((label[sure] == gt.semantic(file_name)[sure]).sum())
            total += int(sure.sum())
    frac = counts / max(1, counts.sum())
    report = {"bg_frac": float(frac[0]), "fg_frac": float(frac[1]), "unsure_frac": float(frac[2])}
    if total:
        report["confident_pixel_acc"] = 100.0 * correct / total
    return report


def evaluation_report(results: Dict, test_sets: List[str]) -> Dict[str, float]:
    """Detectron2's evaluation results (a single test set's dict unwrapped, as DefaultTrainer.test
    returns it) -> ``<dataset>_<task>_<AP|AP50|AP75>`` for the segm and bbox tasks."""
    if len(test_sets) == 1:
        results = {test_sets[0]: results}
    return {
        f"{dataset}_{task}_{metric}": float(res[task][metric])
        for dataset, res in results.items()
        for task in ("segm", "bbox")
        for metric in ("AP", "AP50", "AP75")
        if task in res and metric in res[task]
    }


def summary_text(root: str, train_name: str, steps: Iterable[str]) -> str:
    """One line per step with the numbers of ``root/reports/<step>.json`` ("not done" without)."""
    lines = [f"IRNet pipeline on {train_name} ({root})"]
    for step in steps:
        path = os.path.join(root, "reports", f"{step}.json")
        if not os.path.isfile(path):
            lines.append(f"  {step:<10s} not done")
            continue
        with open(path) as f:
            r = json.load(f)
        keys = [k for k in r if isinstance(r[k], (int, float)) and not isinstance(r[k], bool)]
        lines.append(f"  {step:<10s} " + ", ".join(f"{k}={r[k]:.4g}" for k in keys))
    return "\n".join(lines) + "\n"
