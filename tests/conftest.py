import os

import pytest
from hypothesis import settings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Property tests (tests/**/test_properties.py): the same examples on every run and every machine
# (derandomize), no example database written to disk, no reproduction blobs printed; each test sets
# its own max_examples.
settings.register_profile(
    "d2_instseg", derandomize=True, database=None, print_blob=False, deadline=None
)
settings.load_profile("d2_instseg")


@pytest.fixture(scope="session")
def repo_root():
    return REPO


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread from the first test that asks for it to the end of its module, then
    restored: on the shared 2-core test machine, OpenMP spin-waiting made 2 threads up to 40x slower
    than 1 for small convolutions (measured). Module-scoped, so hypothesis tests may use it too."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_train():
    """``tiny_train(cfg, iters, seed=0) -> model``: ``iters`` iterations of the config's own recipe
    (the Trainer's model, training loader, optimizer and schedule, through
    ``d2_instseg.engine.train_for``; SOLVER.MAX_ITER = iters), seeds fixed; returned in eval
    mode."""

    def train(cfg, iters: int, seed: int = 0):
        from detectron2.utils.env import seed_all_rng

        from d2_instseg.engine import Trainer, train_for

        cfg = cfg.clone()
        cfg.defrost()
        cfg.SOLVER.MAX_ITER, cfg.SEED = iters, seed
        seed_all_rng(seed)
        model = Trainer.build_model(cfg)
        train_for(cfg, model, Trainer.build_train_loader(cfg))
        return model.eval()

    return train


# A CenterMask trained 120 Adam iterations (lr 2e-3, 20 warm-up iterations) of 8 images on
# shapes_train: its learning is tested in tests/modeling/centermask/test_train_shapes.py, and the
# web app's tests serve it (trained once per session).
TRAINED_CENTERMASK = (
    "configs/shapes/centermask.yaml",
    "DATASETS.TRAIN", ("shapes_train",),
    "DATASETS.TEST", ("shapes_tiny_val",),
    "DATALOADER.NUM_WORKERS", 0,
    # Thinner heads than the shapes config: the heads' 3x3 convs dominate the compute.
    "MODEL.CENTERMASK.HEAD_CONV", 32,
    # One class-agnostic saliency channel: learns faster in 120 iterations than the
    # class-specific default (AP50 37.5 against 27.3 on shapes_tiny_val).
    "MODEL.CENTERMASK.SALIENCY_CLASS_SPECIFIC", False,
    "MODEL.CENTERMASK.SALIENCY_LOSS_WEIGHT", 0.0,
    "SOLVER.BASE_LR", 2e-3,
    "SOLVER.WARMUP_ITERS", 20,
    "SOLVER.WARMUP_FACTOR", 0.05,
    "SOLVER.STEPS", (),
)  # fmt: skip


@pytest.fixture(scope="session")
def trained_centermask(tmp_path_factory, tiny_train):
    """(cfg, model in eval mode, path of its saved weights)."""
    from d2_instseg.engine import SafeCheckpointer

    out = tmp_path_factory.mktemp("trained_centermask")
    cfg = shapes_cfg(*TRAINED_CENTERMASK, "OUTPUT_DIR", str(out))
    model = tiny_train(cfg, 120)
    SafeCheckpointer(model, save_dir=str(out)).save("model_final")
    return cfg, model, str(out / "model_final.pth")


@pytest.fixture
def irnet_cfg():
    """configs/shapes/irnet.yaml with every d2_instseg key (not frozen)."""
    return shapes_cfg("configs/shapes/irnet.yaml")


def shapes_cfg(config_file: str, *opts):
    """A frozen-free config: get_cfg + our keys + ``config_file`` (relative to the repo) + opts."""
    from detectron2.config import get_cfg

    import d2_instseg

    cfg = get_cfg()
    d2_instseg.add_d2_instseg_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, config_file))
    cfg.merge_from_list(list(opts))
    return cfg


def hard_instance_cases(height: int = 64, width: int = 64):
    """Training targets that must neither crash nor give NaN, as Detectron2 mappers build them
    (gt_masks BitMasks (K, H, W), gt_boxes from the masks, gt_classes in {0, 1, 2}):

    - "empty": no instance (no gt_masks field, as Detectron2 leaves it);
    - "many": 150 disjoint 3 x 3 squares, more than any TOPK_TEST / DETECTIONS_PER_IMAGE used here;
    - "tiny": 1-pixel and 2 x 2-pixel objects, two of them in image corners;
    - "border": objects along each border and one covering the whole image.
    """
    import torch
    from detectron2.structures import BitMasks, Boxes, Instances

    def instances(masks, classes):
        inst = Instances((height, width), gt_classes=torch.as_tensor(classes, dtype=torch.long))
        if len(masks):
            inst.gt_masks = BitMasks(masks)
            inst.gt_boxes = inst.gt_masks.get_bounding_boxes()
        else:
            inst.gt_boxes = Boxes(torch.zeros(0, 4))
        return inst

    many = torch.zeros(150, height, width, dtype=torch.bool)
    for i in range(150):
        y, x = divmod(i, width // 4)
        many[i, 4 * y : 4 * y + 3, 4 * x : 4 * x + 3] = True
    tiny = torch.zeros(4, height, width, dtype=torch.bool)
    tiny[0, 10, 10] = True
    tiny[1, 20:22, 30:32] = True
    tiny[2, 0, 0] = True
    tiny[3, height - 2 :, width - 2 :] = True
    border = torch.zeros(5, height, width, dtype=torch.bool)
    border[0, :10] = True
    border[1, :, width - 5 :] = True
    border[2, height - 3 :, :20] = True
    border[3, 20:40, :2] = True
    border[4] = True
    return {
        "empty": instances(torch.zeros(0, height, width, dtype=torch.bool), []),
        "many": instances(many, torch.arange(150) % 3),
        "tiny": instances(tiny, [0, 1, 2, 0]),
        "border": instances(border, [0, 1, 2, 0, 1]),
    }


def hard_label_maps(height: int = 128, width: int = 128, ignore: int = 255):
    """Semantic label maps (H, W) int64 that must neither crash nor give NaN: "background" (all 0),
    "ignore" (all ``ignore``, e.g. a crop of padding only), "one_pixel" (one pixel of class 2, the
    rest ignored) and "border" (classes 1 and 3 only in strips along the left and bottom borders).
    """
    import torch

    maps = {
        "background": torch.zeros(height, width, dtype=torch.long),
        "ignore": torch.full((height, width), ignore, dtype=torch.long),
        "one_pixel": torch.full((height, width), ignore, dtype=torch.long),
        "border": torch.zeros(height, width, dtype=torch.long),
    }
    maps["one_pixel"][height // 2, width // 2] = 2
    maps["border"][:, :3] = 1
    maps["border"][height - 2 :, :] = 3
    return maps
