"""A tiny training run learns: mask AP on shapes_tiny_val after training on shapes_tiny_train."""
import torch
from detectron2.evaluation import inference_on_dataset
from detectron2.modeling import build_model
from detectron2.utils.env import seed_all_rng
from detectron2.utils.events import EventStorage

from d2_instseg.engine import Trainer, build_evaluator_for_dataset

from ...conftest import shapes_cfg

ITERS = 300


def test_tiny_training_learns(tmp_path):
    """300 Adam steps (lr 2e-3, batch 4, fixed seeds, 1 thread) of the shapes config on 64 images.
    Before training the model scores mask AP 0.0 on shapes_tiny_val (measured: its seeds hover
    around sigmoid(0) = 0.5, so it predicts nothing or blobs). A mask AP above 5 means that seeds,
    offsets and sigmas were learned together well enough to cut shapes at IoU >= 0.5; this run
    measured 15.7 (the shapes config, 450 steps of batch 8, reaches ~42 on shapes_val)."""
    cfg = shapes_cfg(
        "configs/shapes/spatial_embeddings.yaml",
        *("DATASETS.TRAIN", "('shapes_tiny_train',)", "DATASETS.TEST", "('shapes_tiny_val',)"),
        *("DATALOADER.NUM_WORKERS", "0", "SOLVER.IMS_PER_BATCH", "4", "SEED", "0"),
    )
    seed_all_rng(0)
    threads = torch.get_num_threads()
    # These small convolutions run as fast on one thread, and much faster on a busy machine.
    torch.set_num_threads(1)
    try:
        model = build_model(cfg)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
        loader = iter(Trainer.build_train_loader(cfg))
        with EventStorage():
            for _ in range(ITERS):
                loss = sum(model(next(loader)).values())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        model.eval()
        dataset = cfg.DATASETS.TEST[0]
        evaluator = build_evaluator_for_dataset(cfg, dataset, str(tmp_path))
        results = inference_on_dataset(model, Trainer.build_test_loader(cfg, dataset), evaluator)
    finally:
        torch.set_num_threads(threads)
    assert results["segm"]["AP"] > 5.0, results["segm"]
