"""CenterMaskDatasetMapper: CenterNet's scale / crop / flip training augmentation."""

import pytest
import torch
from detectron2.data import DatasetCatalog

from d2_instseg import check_d2_instseg_config
from d2_instseg.data import build_mapper

from ..conftest import shapes_cfg


def _cfg(*opts):
    return shapes_cfg(
        "configs/shapes/centermask.yaml",
        "INPUT.DATASET_MAPPER_NAME", "CenterMaskDatasetMapper", *opts,
    )  # fmt: skip


def test_training_crops_are_square_and_boxes_follow_masks():
    """Every training image is TRAIN_CROP_SIZE x TRAIN_CROP_SIZE (padded when the scaled image is
    smaller); boxes are recomputed from the cropped masks, so each box is its mask's extent."""
    torch.manual_seed(0)
    mapper = build_mapper(_cfg("MODEL.CENTERMASK.TRAIN_CROP_SIZE", 96), is_train=True)
    for record in DatasetCatalog.get("shapes_tiny_train")[:4]:
        out = mapper(record)
        assert out["image"].shape == (3, 96, 96)
        inst = out["instances"]
        for box, mask in zip(inst.gt_boxes.tensor, inst.gt_masks.tensor):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            if len(xs):
                assert box.tolist() == pytest.approx(
                    [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
                )


def test_testing_keeps_detectron2_resizing():
    """At test time the mapper is Detectron2's (ResizeShortestEdge to MIN_SIZE_TEST = 128)."""
    mapper = build_mapper(_cfg(), is_train=False)
    record = DatasetCatalog.get("shapes_tiny_val")[0]
    out = mapper(record)
    assert min(out["image"].shape[1:]) == 128


def test_invalid_scale_range_is_named_by_the_config_check():
    with pytest.raises(ValueError, match="MODEL.CENTERMASK.TRAIN_SCALE_RANGE"):
        check_d2_instseg_config(_cfg("MODEL.CENTERMASK.TRAIN_SCALE_RANGE", (1.3, 0.6)))
