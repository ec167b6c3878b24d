"""CenterMask targets on synthetic images with known boxes and masks (values worked out by hand)."""

import math

import pytest
import torch
from detectron2.structures import BitMasks, Boxes, Instances

from d2_instseg.modeling.centermask.targets import centermask_targets, saliency_targets


def _instances(hw, boxes, classes, masks):
    inst = Instances(hw)
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).view(-1, 4))
    inst.gt_classes = torch.tensor(classes, dtype=torch.long)
    if masks is not None:
        inst.gt_masks = BitMasks(masks)
    return inst


def _empty(hw):
    """What Detectron2's DatasetMapper gives for an image without annotations (no gt_masks)."""
    return _instances(hw, [], [], None)


def test_targets_of_a_known_box():
    """Image 64 x 64, stride 4 -> 16 x 16 map. Box (10, 14, 42, 38) / 4 = (2.5, 3.5, 10.5, 9.5):
    w = 8, h = 6, center (6.5, 6.5) -> integer center (6, 6), offset (0.5, 0.5).
    Radius: gaussian_radius((6, 8)) = min(13.37, 25.76, (-19.6 + sqrt(384.16 + 161.28)) / 2 = 1.877)
    -> int 1, so the class-2 heatmap has 1 at (y, x) = (6, 6), exp(-2) at its 4 neighbours.
    The mask fills the box's left half (x < 26): on S = 4 cells of 8 px, columns 0-1 are 1, 2-3 are
    0."""
    masks = torch.zeros(1, 64, 64, dtype=torch.bool)
    masks[0, 14:38, 10:26] = True
    inst = _instances((64, 64), [10, 14, 42, 38], [2], masks)
    t = centermask_targets([inst], num_classes=3, feature_hw=(16, 16), stride=4, shape_size=4)
    assert t["batch_idx"].tolist() == [0] and t["classes"].tolist() == [2]
    assert t["centers"].tolist() == [[6, 6]]
    assert t["offsets"].tolist() == [[0.5, 0.5]]
    assert t["sizes"].tolist() == [[8.0, 6.0]]
    assert t["boxes"].tolist() == [[2.5, 3.5, 10.5, 9.5]]
    hm = t["heatmap"]
    assert hm.shape == (1, 3, 16, 16)
    assert hm[0, :2].abs().sum() == 0
    assert hm[0, 2, 6, 6] == 1.0 and (hm == 1).sum() == 1
    for y, x in [(5, 6), (7, 6), (6, 5), (6, 7)]:
        assert hm[0, 2, y, x].item() == pytest.approx(math.exp(-2), abs=1e-6)
    assert hm[0, 2, 6, 8] == 0 and hm[0, 2, 4, 6] == 0
    expected_mask = torch.tensor([[1.0, 1.0, 0.0, 0.0]] * 4)
    torch.testing.assert_close(t["masks"][0], expected_mask)


def test_batch_with_empty_image_and_degenerate_box():
    """Image 0 has no annotations; image 1 has a box clipped to zero width at the right border
    (x from 70 to 80 on a 72 px wide map of 18 feature px: /4 -> 17.5..20, clipped to W - 1 = 17,
    width 0 -> dropped, as CenterNet's ``if h > 0 and w > 0``) and a box (0, 0, 8, 8) -> (0, 0, 2,
    2): center (1, 1), radius int(gaussian_radius((2, 2))) = int((-5.6 + sqrt(31.36 + 13.44)) / 2)
    = int(0.547) = 0, class 0."""
    masks = torch.zeros(2, 40, 72, dtype=torch.bool)
    masks[0, :, 70:] = True
    masks[1, 0:8, 0:8] = True
    inst = _instances((40, 72), [[70, 0, 80, 40], [0, 0, 8, 8]], [1, 0], masks)
    t = centermask_targets(
        [_empty((36, 64)), inst], num_classes=2, feature_hw=(10, 18), stride=4, shape_size=8
    )
    assert t["batch_idx"].tolist() == [1] and t["classes"].tolist() == [0]
    assert t["centers"].tolist() == [[1, 1]] and t["sizes"].tolist() == [[2.0, 2.0]]
    assert t["masks"].shape == (1, 8, 8) and t["masks"].min() == 1.0
    hm = t["heatmap"]
    assert hm[0].abs().sum() == 0
    assert hm[1, 0].sum() == 1.0 and hm[1, 0, 1, 1] == 1.0
    assert hm[1, 1].abs().sum() == 0


def test_batch_without_any_object():
    t = centermask_targets(
        [_empty((32, 32)), _empty((32, 28))],
        num_classes=3,
        feature_hw=(8, 8),
        stride=4,
        shape_size=32,
    )
    assert t["heatmap"].shape == (2, 3, 8, 8) and t["heatmap"].abs().sum() == 0
    assert t["centers"].shape == (0, 2) and t["masks"].shape == (0, 32, 32)


def test_saliency_targets_fraction_per_feature_pixel():
    """Stride 4, 8 x 8 image -> 2 x 2 map. Class 1 covers input rows 0-3 and columns 0-1 (half of
    feature pixel (0, 0)); class 0 covers the full bottom-right 4 x 4 block. Class-specific: channel
    1 has 0.5 at (0, 0); channel 0 has 1 at (1, 1). Class-agnostic: their union in one channel.
    A padded batch (map 3 x 2 for a 8 x 8 image) pads with zeros."""
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, 0:4, 0:2] = True
    masks[1, 4:8, 4:8] = True
    inst = _instances((8, 8), [[0, 0, 2, 4], [4, 4, 8, 8]], [1, 0], masks)
    specific = saliency_targets([inst], num_channels=2, feature_hw=(2, 2), stride=4)
    torch.testing.assert_close(specific[0, 0], torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(specific[0, 1], torch.tensor([[0.5, 0.0], [0.0, 0.0]]))
    agnostic = saliency_targets([inst, _empty((8, 4))], num_channels=1, feature_hw=(3, 2), stride=4)
    assert agnostic.shape == (2, 1, 3, 2)
    torch.testing.assert_close(agnostic[0, 0], torch.tensor([[0.5, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    assert agnostic[1].abs().sum() == 0


def test_saliency_targets_of_an_image_smaller_than_its_padded_batch():
    """A 6 x 5 image (padded batch 8 x 8, stride 4) entirely covered by class 2 of 3: its cells
    hold the covered share of 16 input pixels, 0 in the padding: (0, 0) 16/16, (0, 1) 4 x 1 / 16,
    (1, 0) 2 x 4 / 16, (1, 1) 2 x 1 / 16. The other channels stay 0."""
    masks = torch.ones(1, 6, 5, dtype=torch.bool)
    inst = _instances((6, 5), [[0, 0, 5, 6]], [2], masks)
    sal = saliency_targets([inst], num_channels=3, feature_hw=(2, 2), stride=4)
    torch.testing.assert_close(sal[0, 2], torch.tensor([[1.0, 0.25], [0.5, 0.125]]))
    assert sal[0, :2].abs().sum() == 0
