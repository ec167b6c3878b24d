"""paste_masks: a hand-worked case and equality with Detectron2's paste_masks_in_image."""

import pytest
import torch
from detectron2.layers.mask_ops import paste_masks_in_image

from d2_instseg.layers import paste_masks


def test_all_ones_mask_fills_exactly_its_box():
    """A 2 x 2 all-ones mask over the box (1, 1, 3, 3) in a 4 x 4 image: pixel centre x = 0.5 maps
    to grid -1.5, i.e. mask coordinate -1 (weight 0 on the mask), x = 1.5 and 2.5 to mask pixels 0
    and 1 (value 1), x = 3.5 to coordinate 2 (outside): True on rows and columns 1-2 only."""
    out = paste_masks(torch.ones(1, 2, 2), torch.tensor([[1.0, 1.0, 3.0, 3.0]]), (4, 4))
    expected = torch.zeros(1, 4, 4, dtype=torch.bool)
    expected[0, 1:3, 1:3] = True
    assert torch.equal(out, expected)


@pytest.mark.parametrize("seed", range(5))
def test_equals_detectron2_paste(seed):
    """Random masks and boxes: inside, touching the border, sub-pixel, large; clipped to the image
    and non-empty, as ``detector_postprocess`` hands them over (Detectron2's paste fails on boxes
    entirely outside the image; ours returns empty masks for them)."""
    g = torch.Generator().manual_seed(seed)
    k, h, w, r = 30, 37, 53, 8
    xy = torch.rand(k, 2, generator=g) * torch.tensor([w + 20.0, h + 20.0]) - 10
    wh = torch.rand(k, 2, generator=g) ** 3 * torch.tensor([float(w), float(h)]) + 0.2
    boxes = torch.cat([xy, xy + wh], 1)
    boxes = torch.minimum(boxes.clamp(min=0), torch.tensor([w, h, w, h]))
    boxes = boxes[(boxes[:, 2:] > boxes[:, :2]).all(1)]
    masks = torch.rand(len(boxes), r, r, generator=g)
    for threshold in (0.3, 0.5):
        ours = paste_masks(masks, boxes, (h, w), threshold)
        ref = paste_masks_in_image(masks, boxes, (h, w), threshold)
        assert ours.dtype == torch.bool and torch.equal(ours, ref)


def test_empty_and_bad_shapes():
    outside = paste_masks(torch.ones(1, 4, 4), torch.tensor([[10.0, 10.0, 12.0, 12.0]]), (5, 6))
    assert outside.shape == (1, 5, 6) and not outside.any()
    assert paste_masks(torch.zeros(0, 4, 4), torch.zeros(0, 4), (5, 6)).shape == (0, 5, 6)
    with pytest.raises(ValueError, match="boxes"):
        paste_masks(torch.zeros(2, 4, 4), torch.zeros(3, 4), (5, 6))
