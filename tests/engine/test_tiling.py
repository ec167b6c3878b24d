"""Tiled inference (d2_instseg.engine.tiling): tile cores by hand, run-length codes against
pycocotools, objects placed on seams and core boundaries come out once and whole, and the Predictor
with TEST.TILING on instance and semantic models."""

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.structures import Instances
from scipy import ndimage

import d2_instseg
from d2_instseg.engine.tiling import Tiling, crop_to_rle, tile_cores, tiled_inference

from ..conftest import shapes_cfg


def test_tile_cores_by_hand():
    # tiles of 128 every 96 px (overlap 32) over 300 px: starts 0, 96, 172 (the last shifted back
    # to end at 300); core boundaries half-way through each overlap: (128 + 96) / 2 = 112 and
    # (224 + 172) / 2 = 198
    assert tile_cores(300, 128, 32) == [
        (0, 128, 0.0, 112.0),
        (96, 224, 112.0, 198.0),
        (172, 300, 198.0, 300.0),
    ]
    assert tile_cores(100, 128, 32) == [(0, 100, 0.0, 100.0)]


def test_tiling_refuses_an_overlap_as_large_as_the_tile():
    with pytest.raises(ValueError, match="OVERLAP 64"):
        Tiling(64, 64)


@pytest.mark.parametrize("y0, x0, h, w", [(0, 0, 3, 2), (5, 7, 4, 6), (9, 14, 3, 2), (2, 0, 1, 16)])
def test_crop_to_rle_equals_pycocotools_on_the_full_mask(y0, x0, h, w):
    rng = np.random.default_rng(y0 * 100 + x0)
    crop = rng.random((h, w)) < 0.5
    crop[0, 0] = crop[-1, -1] = True  # runs that start and end at the band's edges too
    full = np.zeros((12, 16), dtype=np.uint8)
    full[y0 : y0 + h, x0 : x0 + w] = crop
    expected = mask_util.encode(np.asfortranarray(full))
    got = crop_to_rle(crop, y0, x0, 12, 16)
    assert got["size"] == [12, 16] and got["counts"] == expected["counts"]


def segment_components(shift_odd_tiles: bool = False):
    """A stand-in model: every 8-connected component of a binary (h, w, 3) tile is an instance of
    class 0 (a perfect segmenter, so that whatever goes wrong is the merging). With
    ``shift_odd_tiles`` every other call shifts its masks one pixel right (two tiles then disagree
    by a pixel about the same object, as two forward passes do)."""
    calls = [0]

    def run(tile):
        labels, count = ndimage.label(tile[:, :, 0] > 0, structure=np.ones((3, 3)))
        masks = labels[None] == np.arange(1, count + 1)[:, None, None]
        if shift_odd_tiles and calls[0] % 2:
            masks = np.pad(masks[:, :, :-1], ((0, 0), (0, 0), (1, 0)))
        calls[0] += 1
        instances = Instances(tile.shape[:2])
        instances.pred_masks = torch.as_tensor(masks)
        instances.scores = torch.linspace(0.9, 0.5, count)
        instances.pred_classes = torch.zeros(count, dtype=torch.int64)
        return {"instances": instances}

    return run


def seam_image():
    """300 x 300 with 20 x 20 squares across the tile seams and core boundaries of 128-px tiles
    overlapping by 32 (tile edges at 96, 128, 172, 224; core boundaries at 112 and 198: centres
    exactly on them too), and where four tiles meet; no two squares touch."""
    image = np.zeros((300, 300, 3), dtype=np.uint8)
    squares = [(10, 88), (40, 102), (70, 118), (10, 160), (40, 188), (70, 214), (102, 102)]
    squares += [(190, 30), (188, 188), (260, 102), (260, 165)]
    for y, x in squares:
        image[y : y + 20, x : x + 20] = 255
    return image, squares


@pytest.mark.parametrize("shift", [False, True])
def test_objects_on_seams_come_out_once_and_whole(shift):
    image, squares = seam_image()
    out = tiled_inference(segment_components(shift), image, Tiling(128, 32))["instances"]
    assert len(out) == len(squares)
    masks = mask_util.decode(out.pred_masks_rle).transpose(2, 0, 1).astype(bool)  # (N, H, W)
    found = []
    for y, x in squares:
        truth = np.zeros((300, 300), bool)
        truth[y : y + 20, x : x + 20] = True
        iou = (masks & truth).sum((1, 2)) / (masks | truth).sum((1, 2))
        found.append(iou.argmax())
        # whole: the same 400 pixels (shifted by at most one column when the tiles disagree)
        assert iou.max() >= (1.0 if not shift else 380 / 420), (y, x, iou.max())
    assert sorted(found) == list(range(len(squares)))  # one instance per square
    boxes = out.pred_boxes.tensor
    assert ((boxes[:, 2] - boxes[:, 0]) == 20).all() and ((boxes[:, 3] - boxes[:, 1]) == 20).all()


def test_kept_masks_do_not_hold_the_tiles_masks():
    """What is kept of a tile's instance until the end is its box-sized crop, owning its memory: a
    view would keep the tile's whole (N, h, w) masks alive, and memory would grow with the number
    of tiles (seen: +2.5 GB for 100 tiles of 512 px) instead of staying bounded by one tile."""
    from d2_instseg.engine.tiling import _tile_candidates

    image, squares = seam_image()
    instances = segment_components()(image[:128, :128])["instances"]
    candidates = _tile_candidates(instances, 0, (0, 0), (0, 0, 112, 112), 8)
    assert candidates and all(c.crop.flags.owndata and c.crop.shape == (20, 20) for c in candidates)


def test_an_object_larger_than_the_overlap_is_not_duplicated():
    """A 60-px bar across a 32-px overlap cannot be whole in either tile: it comes out cut, but
    never twice over the same pixels."""
    image = np.zeros((128, 300, 3), dtype=np.uint8)
    image[50:60, 80:140] = 255
    out = tiled_inference(segment_components(), image, Tiling(128, 32))["instances"]
    masks = mask_util.decode(out.pred_masks_rle).astype(np.int64)
    assert masks.sum(2).max() == 1  # no pixel in two instances


@pytest.fixture(scope="module")
def random_se_predictor():
    cfg = shapes_cfg(
        "configs/shapes/spatial_embeddings.yaml",
        *("MODEL.SPATIAL_EMBED.MIN_PIXELS", 32, "MODEL.WEIGHTS", ""),
        *("TEST.TILING.ENABLED", True, "TEST.TILING.TILE", 96, "TEST.TILING.OVERLAP", 24),
    )
    torch.manual_seed(0)
    return d2_instseg.Predictor(cfg)


def test_tiled_predictor_instances_at_image_size(random_se_predictor):
    image = np.random.default_rng(0).integers(0, 256, size=(150, 260, 3), dtype=np.uint8)
    out = random_se_predictor(image)["instances"]
    assert out.image_size == (150, 260)
    assert len(out.pred_masks_rle) == len(out.scores) == len(out.pred_classes)
    for rle in out.pred_masks_rle:
        assert rle["size"] == [150, 260]
    if len(out):
        areas = mask_util.area(out.pred_masks_rle)
        assert (areas >= 1).all()


def test_tiled_predictor_semantic_scores_equal_per_tile_scores():
    """FCN-8s (fully convolutional up to its crop of padding): each pixel's scores are those of
    the tile whose core holds it; a single-tile image equals the untiled model at that size."""
    opts = ("MODEL.WEIGHTS", "", "INPUT.MIN_SIZE_TEST", 0)
    torch.manual_seed(0)
    plain = d2_instseg.Predictor(shapes_cfg("configs/shapes/fcn8s.yaml", *opts))
    cfg = plain.cfg.clone()
    cfg.TEST.TILING.ENABLED, cfg.TEST.TILING.TILE, cfg.TEST.TILING.OVERLAP = True, 128, 32
    tiled = d2_instseg.Predictor(cfg)
    tiled.model.load_state_dict(plain.model.state_dict())
    image = np.random.default_rng(1).integers(0, 256, size=(100, 120, 3), dtype=np.uint8)
    torch.testing.assert_close(tiled(image)["sem_seg"], plain(image)["sem_seg"])
    big = np.random.default_rng(2).integers(0, 256, size=(200, 120, 3), dtype=np.uint8)
    scores = tiled(big)["sem_seg"]
    assert scores.shape[1:] == (200, 120)
    # two tiles, rows 0..127 and 72..199 (the last shifted back to end at 200): rows 0..99 come
    # from the first, the rest from the second (the core boundary is half-way through rows 72..127)
    torch.testing.assert_close(scores[:, :100], plain(big[:128])["sem_seg"][:, :100])
    torch.testing.assert_close(scores[:, 100:], plain(big[72:])["sem_seg"][:, 28:])
