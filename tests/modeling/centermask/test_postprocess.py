"""Mask assembly, CenterNet decoding and the L1 / mask losses on cases worked out by hand."""

import math

import pytest
import torch

from d2_instseg.modeling.centermask.assemble import assemble_masks
from d2_instseg.modeling.centermask.loss import mask_bce_loss, reg_l1_loss
from d2_instseg.modeling.centermask.postprocess import (
    center_boxes,
    centermask_postprocess,
    clip_to_images,
    find_centers,
    mask_grid_size,
    topk_peaks,
)

LN3 = math.log(3.0)


def _sig(x):
    return 1 / (1 + math.exp(-x))


def _assemble(shape, saliency, boxes, rois=None, mask_size=2, channel=None, batch=None):
    k = len(boxes)
    boxes = torch.tensor(boxes, dtype=torch.float32).view(-1, 4)
    return assemble_masks(
        shape_logits=shape,
        saliency_logits=saliency,
        saliency_channel=torch.zeros(k, dtype=torch.long) if channel is None else channel,
        batch_idx=torch.zeros(k, dtype=torch.long) if batch is None else batch,
        boxes=boxes,
        rois=boxes if rois is None else torch.tensor(rois, dtype=torch.float32),
        mask_size=mask_size,
    )


def test_assembly_is_product_of_sigmoids_on_the_box():
    """S = 2, box (0, 0, 2, 2) on a 4 x 4 saliency map, R_m = 2: each cell of the box is one feature
    pixel, so L_k = L and G_k = G[0:2, 0:2]. L = [[0, ln3], [-ln3, 0]] -> sigmoid [[.5, .75], [.25,
    .5]]; G = 0 except G[1, 1] = ln3 -> sigmoid [[.5, .5], [.5, .75]]. M = [[.25, .375], [.125,
    .375]]. The box (1, 0, 3, 2) reads G[0:2, 1:3] = sigmoid [[.5, .5], [.75, .5]] -> M = [[.25,
    .375], [.1875, .25]]."""
    shape = torch.tensor([[[0.0, LN3], [-LN3, 0.0]]]).repeat(2, 1, 1)
    saliency = torch.zeros(1, 1, 4, 4)
    saliency[0, 0, 1, 1] = LN3
    m = _assemble(shape, saliency, [[0, 0, 2, 2], [1, 0, 3, 2]])
    torch.testing.assert_close(m[0], torch.tensor([[0.25, 0.375], [0.125, 0.375]]))
    torch.testing.assert_close(m[1], torch.tensor([[0.25, 0.375], [0.1875, 0.25]]))


def test_local_shape_is_stretched_bilinearly_over_the_box():
    """Shape-only, S = 2, rows L = [0, 4], box 4 wide, R_m = 4: cell centers at shape coordinates
    0.25, 0.75, 1.25, 1.75 -> pixel-center positions -0.25, 0.25, 0.75, 1.25 -> (border-clamped)
    bilinear logits 0, 1, 3, 4 -> sigmoid."""
    shape = torch.tensor([[[0.0, 4.0], [0.0, 4.0]]])
    m = _assemble(shape, None, [[3, 5, 7, 9]], mask_size=4)
    expected = torch.tensor([_sig(0), _sig(1), _sig(3), _sig(4)]).repeat(4, 1)
    torch.testing.assert_close(m[0], expected)


def test_clipped_roi_reads_the_matching_part_of_the_shape():
    """Box (-2, 0, 2, 2) spans the local shape; only its right half (0, 0, 2, 2) is assembled.
    S = 2 with columns L[:, 0] = 0, L[:, 1] = 4: the ROI is shape columns [1, 2], so at R_m = 2 the
    cell centers 1.25, 1.75 -> positions 0.75, 1.25 -> logits 3, 4. Saliency-less (shape-only)."""
    shape = torch.tensor([[[0.0, 4.0], [0.0, 4.0]]])
    m = _assemble(shape, None, [[-2, 0, 2, 2]], rois=[[0, 0, 2, 2]])
    torch.testing.assert_close(m[0], torch.tensor([[_sig(3), _sig(4)]] * 2))


def test_saliency_only_reads_the_class_channel_of_the_right_image():
    """Saliency-only, class-specific: 2 images x 2 channels of 2 x 2; object (image 1, channel 1)
    over box (0, 0, 2, 2) at R_m = 2 reads exactly saliency[1, 1]."""
    saliency = torch.arange(16, dtype=torch.float32).view(2, 2, 2, 2) / 4 - 2
    m = _assemble(
        None,
        saliency,
        [[0, 0, 2, 2]],
        channel=torch.tensor([1]),
        batch=torch.tensor([1]),
    )
    torch.testing.assert_close(m[0], torch.sigmoid(saliency[1, 1]))


def test_assembly_without_objects_keeps_the_graph():
    shape = torch.zeros(0, 4, 4, requires_grad=True)
    saliency = torch.zeros(1, 1, 8, 8, requires_grad=True)
    m = _assemble(shape, saliency, torch.zeros(0, 4).tolist(), mask_size=4)
    assert m.shape == (0, 4, 4)
    m.sum().backward()
    assert saliency.grad is not None and saliency.grad.abs().sum() == 0


def test_assembly_needs_a_branch():
    with pytest.raises(ValueError):
        _assemble(None, None, [[0, 0, 1, 1]])


def test_decode_peaks_offsets_and_sizes():
    """1 class, 5 x 5 logits: peak 2 at (x, y) = (1, 2), its neighbour (2, 2) = 1 (suppressed by the
    3 x 3 max-pool), peak 0 at (4, 0), rest -10. Top-2: scores sigmoid(2) = 0.8808, sigmoid(0) =
    0.5. Offset (0.25, 0.5) and size (2, 4) at (1, 2): center (1.25, 2.5) -> box (0.25, 0.5, 2.25,
    4.5). With score threshold 0.6 only the first remains."""
    heat = torch.full((1, 1, 5, 5), -10.0)
    heat[0, 0, 2, 1] = 2.0
    heat[0, 0, 2, 2] = 1.0
    heat[0, 0, 0, 4] = 0.0
    det = find_centers(heat, topk=2, score_thresh=0.05)
    assert det["scores"].tolist() == pytest.approx([_sig(2), 0.5], abs=1e-6)
    assert det["centers"].tolist() == [[1, 2], [4, 0]]
    assert det["classes"].tolist() == [0, 0] and det["batch_idx"].tolist() == [0, 0]
    boxes = center_boxes(
        det["centers"][:1], torch.tensor([[0.25, 0.5]]), torch.tensor([[2.0, 4.0]])
    )
    assert boxes[0].tolist() == pytest.approx([0.25, 0.5, 2.25, 4.5])
    det = find_centers(heat, topk=2, score_thresh=0.6)
    assert det["centers"].tolist() == [[1, 2]]


def test_topk_across_classes_takes_several_peaks_of_one_class():
    """K = 3 over 2 classes on 1 x 7 logits: class 0 has isolated peaks 5, 4, 3 at x = 0, 3, 6
    (the rest -10), class 1 one peak 4.5 at x = 2 (the rest -10). Top 3 over everything: 5
    (class 0), 4.5 (class 1), 4 (class 0), so the per-class stage must keep more than one peak per
    class."""
    heat = torch.full((1, 2, 1, 7), -10.0)
    heat[0, 0, 0, [0, 3, 6]] = torch.tensor([5.0, 4.0, 3.0])
    heat[0, 1, 0, 2] = 4.5
    peaks = topk_peaks(heat, 3)
    assert peaks["scores"][0].tolist() == pytest.approx([_sig(5), _sig(4.5), _sig(4)], abs=1e-6)
    assert peaks["classes"][0].tolist() == [0, 1, 0]
    assert peaks["centers"][0].tolist() == [[0, 0], [2, 0], [3, 0]]


def test_topk_larger_than_one_class_map():
    """K = 5 over 3 classes of 1 x 2 logits (2 positions per class, so each class gives both):
    class 0 [1, -1] (x = 1 suppressed by the max-pool: score 0), class 1 [-2, 3] (x = 0
    suppressed), class 2 [0, 0] (a tie: both are peaks, 0.5 each). Top 5: sigmoid(3) at class 1
    x = 1, sigmoid(1) at class 0 x = 0, the two 0.5 of class 2, then a suppressed 0."""
    heat = torch.tensor([[[[1.0, -1.0]], [[-2.0, 3.0]], [[0.0, 0.0]]]])
    peaks = topk_peaks(heat, 5)
    assert peaks["scores"][0].tolist() == pytest.approx([_sig(3), _sig(1), 0.5, 0.5, 0.0])
    assert peaks["classes"][0, :4].tolist() == [1, 0, 2, 2]
    assert peaks["centers"][0, :2].tolist() == [[1, 0], [0, 0]]
    assert sorted(peaks["centers"][0, 2:4].tolist()) == [[0, 0], [1, 0]]


def test_decode_classes_and_images():
    """2 images, 3 classes on 4 x 4: image 0 has a class-2 peak at (3, 1), image 1 a class-1 peak at
    (0, 3); every other logit -10 (sigmoid 4.5e-5 < threshold 0.05)."""
    heat = torch.full((2, 3, 4, 4), -10.0)
    heat[0, 2, 1, 3] = 1.0
    heat[1, 1, 3, 0] = 1.0
    det = find_centers(heat, topk=5, score_thresh=0.05)
    assert det["batch_idx"].tolist() == [0, 1]
    assert det["classes"].tolist() == [2, 1]
    assert det["centers"].tolist() == [[3, 1], [0, 3]]


def test_mask_bce_loss_by_hand_and_under_autocast():
    """Two objects on 1 x 2 grids: M_1 = [0.5, 0.5] vs T_1 = [1, 0] -> BCE ln 2 = 0.693147 each
    pixel; M_2 = [0.8, 0.8] vs T_2 = [1, 1] -> -ln 0.8 = 0.223144. Mean over objects: 0.458145. The
    same under CPU bfloat16 autocast (the BCE runs in float32)."""
    probs = torch.tensor([[[0.5, 0.5]], [[0.8, 0.8]]])
    target = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])
    assert mask_bce_loss(probs, target).item() == pytest.approx(0.458145, abs=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = mask_bce_loss(probs.bfloat16(), target)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(0.458145, abs=1e-2)
    assert mask_bce_loss(probs[:0], target[:0]).item() == 0.0


def test_reg_l1_loss_by_hand():
    """Prediction (0.5, 2.0) vs target (0.25, 1.0): |0.25| + |1.0| = 1.25 over 2 coordinates
    (+1e-4) = 0.624969; no objects gives 0."""
    loss = reg_l1_loss(torch.tensor([[0.5, 2.0]]), torch.tensor([[0.25, 1.0]]))
    assert loss.item() == pytest.approx(1.25 / 2.0001, abs=1e-6)
    assert reg_l1_loss(torch.zeros(0, 2), torch.zeros(0, 2)).item() == 0.0


def test_clip_to_images_by_hand():
    """Stride 4; image 0 is 40 x 60 (feature 10 x 15), image 1 is 20 x 20 (5 x 5). Box (-1, 2, 20,
    8) of image 0 -> (0, 2, 15, 8); the same box in image 1 -> (0, 2, 5, 5); inside boxes stay."""
    boxes = torch.tensor([[-1.0, 2, 20, 8], [-1, 2, 20, 8], [1, 1, 3, 3]])
    clipped = clip_to_images(boxes, torch.tensor([0, 1, 1]), [(40, 60), (20, 20)], stride=4)
    assert clipped.tolist() == [[0, 2, 15, 8], [0, 2, 5, 5], [1, 1, 3, 3]]


def test_mask_grid_size_by_hand():
    """At least S; else the widest ROI side rounded up: 2.5 x 7.2 -> 8; no ROI -> S."""
    rois = torch.tensor([[0.0, 0.0, 2.5, 7.2], [1.0, 1.0, 3.0, 2.0]])
    assert mask_grid_size(rois, 4) == 8
    assert mask_grid_size(rois, 32) == 32
    assert mask_grid_size(rois[:0], 6) == 6


def test_centermask_postprocess_scales_boxes_and_pastes_masks():
    """A 10 x 10 input detection (box (2, 2, 6, 6), an all-ones 2 x 2 mask) returned at 20 x 20:
    the box doubles to (4, 4, 12, 12); an empty box is dropped. Pasting samples the mask bilinearly
    at pixel centres with zeros outside it: the first pixel centre inside the box, 4.5, lies 0.375
    mask pixels before the mask's first centre, so an edge pixel gets 0.625 (kept at threshold 0.5)
    and a corner pixel 0.625^2 = 0.39 (dropped): the 8 x 8 box without its 4 corners."""
    from detectron2.structures import Boxes, Instances

    result = Instances((10, 10))
    result.pred_boxes = Boxes(torch.tensor([[2.0, 2, 6, 6], [3, 3, 3, 5]]))
    result.scores = torch.tensor([0.9, 0.8])
    result.pred_classes = torch.tensor([1, 0])
    result.mask_probs = torch.ones(2, 2, 2)
    out = centermask_postprocess(result, 20, 20, mask_threshold=0.5)
    assert len(out) == 1 and out.pred_boxes.tensor.tolist() == [[4, 4, 12, 12]]
    assert not out.has("mask_probs") and out.pred_masks.shape == (1, 20, 20)
    expected = torch.zeros(20, 20, dtype=torch.bool)
    expected[4:12, 4:12] = True
    expected[4, 4] = expected[4, 11] = expected[11, 4] = expected[11, 11] = False
    assert torch.equal(out.pred_masks[0], expected)
