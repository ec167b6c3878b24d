"""A tiny CPNet training run on shapes_sem_seg_tiny_train that must learn (CPU, fixed seed)."""
import os

import torch

import d2_instseg
from d2_instseg.data import build_mapper
from d2_instseg.engine import build_evaluator_for_dataset
from detectron2.config import get_cfg
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.evaluation import inference_on_dataset
from detectron2.modeling import build_model
from detectron2.utils.env import seed_all_rng
from detectron2.utils.events import EventStorage

CONFIG = os.path.join(os.path.dirname(__file__), "../../../configs/shapes/cpnet.yaml")
ITERS = 120


def test_cpnet_learns_tiny_shapes(one_thread, tmp_path):
    """120 SGD iterations (batch 8, lr 0.05, poly) on the 64 tiny training images without scale /
    flip augmentation, then evaluation with SemSegEvaluator at the images' original sizes
    (96-160 px per side, not the 128 crop: sliding-window inference).

    Threshold: mIoU >= 35 on the training images. Predicting background everywhere scores about
    20 (background IoU ~0.8, three shape classes 0, averaged over 4); 35 needs the shape classes
    segmented to a mean IoU of ~20 or more. Seen: 46.7 (seed 0), 26 on tiny_val.
    """
    cfg = get_cfg()
    d2_instseg.add_d2_instseg_config(cfg)
    cfg.merge_from_file(CONFIG)
    cfg.merge_from_list(
        [
            "DATASETS.TRAIN", ("shapes_sem_seg_tiny_train",),
            "DATALOADER.NUM_WORKERS", 0,
            "INPUT.RANDOM_SCALE.RANGE", [1.0, 1.0],
            "INPUT.RANDOM_FLIP", "none",
            "SOLVER.BASE_LR", 0.05,
        ]
    )  # fmt: skip
    seed_all_rng(0)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    loader = build_detection_train_loader(cfg, mapper=build_mapper(cfg, is_train=True))
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.SOLVER.BASE_LR, momentum=0.9, weight_decay=1e-4
    )
    poly = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: (1 - i / ITERS) ** 0.9)
    with EventStorage():
        for _, batch in zip(range(ITERS), loader):
            loss = sum(model(batch).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            poly.step()
    assert torch.isfinite(loss)

    model.eval()
    name = "shapes_sem_seg_tiny_train"
    evaluator = build_evaluator_for_dataset(cfg, name, str(tmp_path))
    test_loader = build_detection_test_loader(cfg, name, mapper=build_mapper(cfg, is_train=False))
    miou = inference_on_dataset(model, test_loader, evaluator)["sem_seg"]["mIoU"]
    assert miou >= 35.0, f"CPNet did not learn: mIoU {miou:.1f} on the training images"
