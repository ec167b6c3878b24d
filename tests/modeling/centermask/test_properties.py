"""Property-based tests of CenterMask's target generation, losses, decoding, mask assembly and
inference output on random boxes / masks / image sizes and random head outputs."""

import functools

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Boxes, Instances
from hypothesis import given, settings
from hypothesis import strategies as st

from d2_instseg.layers import centernet_focal_loss
from d2_instseg.modeling.centermask.assemble import assemble_masks
from d2_instseg.modeling.centermask.loss import mask_bce_loss, reg_l1_loss, saliency_bce_loss
from d2_instseg.modeling.centermask.postprocess import (
    center_boxes,
    centermask_postprocess,
    decode_detections,
    find_centers,
    topk_peaks,
)
from d2_instseg.modeling.centermask.targets import centermask_targets, saliency_targets

from ...conftest import shapes_cfg

SEEDS = st.integers(0, 2**31 - 1)

pytestmark = pytest.mark.usefixtures("one_thread")
STRIDE = 4
NUM_CLASSES = 3
SHAPE_SIZE = 8


@st.composite
def rectangle(draw, height: int, width: int):
    """(x0, y0, x1, y1) pixel rectangle inside the image, 1 px up to the whole image; often
    touching a border."""
    x0 = draw(st.sampled_from([0, width - 1]) | st.integers(0, width - 1))
    y0 = draw(st.sampled_from([0, height - 1]) | st.integers(0, height - 1))
    x1 = draw(st.sampled_from([x0 + 1, width]) | st.integers(x0 + 1, width))
    y1 = draw(st.sampled_from([y0 + 1, height]) | st.integers(y0 + 1, height))
    return x0, y0, x1, y1


@st.composite
def gt_batches(draw):
    """1-2 images of 4-48 px per side with 0-8 rectangular objects each (masks, boxes from the
    masks, classes); the padded batch's stride-4 map is (ceil(H / 4), ceil(W / 4))."""
    images = []
    for _ in range(draw(st.integers(1, 2))):
        h, w = draw(st.integers(4, 48)), draw(st.integers(4, 48))
        rects = draw(st.lists(rectangle(h, w), max_size=8))
        masks = torch.zeros(len(rects), h, w, dtype=torch.bool)
        for i, (x0, y0, x1, y1) in enumerate(rects):
            masks[i, y0:y1, x0:x1] = True
        inst = Instances((h, w))
        k = len(rects)
        classes = draw(st.lists(st.integers(0, NUM_CLASSES - 1), min_size=k, max_size=k))
        inst.gt_classes = torch.tensor(classes, dtype=torch.long)
        if rects:  # Detectron2 leaves gt_masks unset on images without annotations
            inst.gt_masks = BitMasks(masks)
            inst.gt_boxes = inst.gt_masks.get_bounding_boxes()
        else:
            inst.gt_boxes = Boxes(torch.zeros(0, 4))
        images.append(inst)
    feature_hw = tuple(-(-max(inst.image_size[i] for inst in images) // STRIDE) for i in range(2))
    return images, feature_hw


@settings(max_examples=100)
@given(gt_batches())
def test_targets_invariants(batch):
    """Heatmap in [0, 1] and exactly 1 at the kept objects' centers only (all zero without
    objects); every kept object has a positive size, a box inside [0, W - 1] x [0, H - 1], an
    integer center inside its box, an offset in [0, 1); the S x S shape target of a rectangle is
    binary and 1 on its 2 x 2 central cells (the clipped box lies inside the rectangle; corner cells
    of a 1-2 px box may fall below 0.5 in the bilinear resampling); saliency targets are fractions
    in [0, 1]."""
    images, (h, w) = batch
    t = centermask_targets(
        images, num_classes=NUM_CLASSES, feature_hw=(h, w), stride=STRIDE, shape_size=SHAPE_SIZE
    )
    k = len(t["classes"])
    assert k <= sum(len(inst) for inst in images)
    heat = t["heatmap"]
    assert heat.shape == (len(images), NUM_CLASSES, h, w)
    assert ((heat >= 0) & (heat <= 1)).all()
    peaks = torch.zeros_like(heat, dtype=torch.bool)
    peaks[t["batch_idx"], t["classes"], t["centers"][:, 1], t["centers"][:, 0]] = True
    assert torch.equal(heat == 1, peaks)
    boxes, centers = t["boxes"], t["centers"].float()
    assert (t["sizes"] > 0).all()
    assert (boxes >= 0).all()
    assert (boxes[:, 0::2] <= w - 1).all() and (boxes[:, 1::2] <= h - 1).all()
    assert ((centers >= boxes[:, :2].floor()) & (centers <= boxes[:, 2:])).all()
    assert ((t["offsets"] >= 0) & (t["offsets"] < 1)).all()
    masks = t["masks"]
    assert masks.shape == (k, SHAPE_SIZE, SHAPE_SIZE) and ((masks == 0) | (masks == 1)).all()
    mid = SHAPE_SIZE // 2
    assert (masks[:, mid - 1 : mid + 1, mid - 1 : mid + 1] == 1).all()
    sal = saliency_targets(images, num_channels=NUM_CLASSES, feature_hw=(h, w), stride=STRIDE)
    assert sal.shape == heat.shape and ((sal >= 0) & (sal <= 1)).all()
    if k == 0 and not any(len(inst) for inst in images):
        assert (heat == 0).all() and (sal == 0).all()


@settings(max_examples=80)
@given(gt_batches(), SEEDS, st.floats(0.1, 20.0))
def test_losses_finite_and_zero_without_objects(batch, seed, scale):
    """Random head outputs (up to +-20: saturated sigmoids, masks of probability 0 or 1): the five
    loss terms are finite and >= 0; without any kept object the offset, size and mask terms are
    exactly 0."""
    images, (h, w) = batch
    n = len(images)
    t = centermask_targets(
        images, num_classes=NUM_CLASSES, feature_hw=(h, w), stride=STRIDE, shape_size=SHAPE_SIZE
    )
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return (torch.rand(shape, generator=g) * 2 - 1) * scale

    saliency = rand(n, NUM_CLASSES, h, w)
    saliency_target = saliency_targets(
        images, num_channels=NUM_CLASSES, feature_hw=(h, w), stride=STRIDE
    )
    k = len(t["classes"])
    masks = assemble_masks(
        shape_logits=rand(k, SHAPE_SIZE, SHAPE_SIZE),
        saliency_logits=saliency,
        saliency_channel=t["classes"],
        batch_idx=t["batch_idx"],
        boxes=t["boxes"],
        rois=t["boxes"],
        mask_size=SHAPE_SIZE,
    )
    losses = {
        "heatmap": centernet_focal_loss(rand(n, NUM_CLASSES, h, w), t["heatmap"]),
        "offset": reg_l1_loss(rand(k, 2), t["offsets"]),
        "size": reg_l1_loss(rand(k, 2), t["sizes"]),
        "mask": mask_bce_loss(masks, t["masks"]),
        "saliency": saliency_bce_loss(saliency, saliency_target),
    }
    for name, value in losses.items():
        assert torch.isfinite(value) and value >= 0, name
    if k == 0:
        assert losses["offset"] == losses["size"] == losses["mask"] == 0


@st.composite
def head_outputs(draw):
    """Random heatmap logits (N, C, H, W), offsets and sizes (N, 2, H, W), top-K, threshold."""
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 16)), draw(st.integers(1, 16))
    g = torch.Generator().manual_seed(draw(SEEDS))
    scale = draw(st.floats(0.1, 10.0))
    heat = (torch.rand(n, c, h, w, generator=g) * 2 - 1) * scale
    if draw(st.booleans()):  # plateaus: equal neighbours are all peaks of the 3x3 max-pool
        heat = heat.round()
    offset = torch.rand(n, 2, h, w, generator=g)
    size = torch.rand(n, 2, h, w, generator=g) * 8
    return heat, offset, size, draw(st.integers(1, 50)), draw(st.floats(0.0, 1.0))


@settings(max_examples=100)
@given(head_outputs())
def test_decode_centers_invariants(case):
    """At most K detections per image; within an image scores are sorted descending and lie in
    (threshold, 1]; classes in [0, C); every center is a 3 x 3 local maximum of its class' score
    map; boxes have the predicted size and contain the center."""
    heat, offset, size, topk, thresh = case
    n, c, h, w = heat.shape
    det = find_centers(heat, topk=topk, score_thresh=thresh)
    names = ("scores", "batch_idx", "classes", "centers")
    scores, b, cls, ctr = (det[k] for k in names)
    xs, ys = ctr[:, 0], ctr[:, 1]
    boxes = center_boxes(ctr, offset[b, :, ys, xs], size[b, :, ys, xs])
    assert ((scores > thresh) & (scores <= 1)).all()
    assert ((cls >= 0) & (cls < c)).all()
    assert (b[1:] >= b[:-1]).all()  # grouped by image
    for i in range(n):
        mine = scores[b == i]
        assert len(mine) <= topk and (mine[1:] <= mine[:-1]).all()
    prob = torch.sigmoid(heat)
    padded = torch.nn.functional.pad(prob, (1, 1, 1, 1), value=-1.0)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            assert (prob[b, cls, ys, xs] >= padded[b, cls, ys + dy, xs + dx]).all()
    torch.testing.assert_close(scores, prob[b, cls, ys, xs])
    torch.testing.assert_close(boxes[:, 2:] - boxes[:, :2], size[b, :, ys, xs])
    center = ctr.float() + offset[b, :, ys, xs]
    assert ((boxes[:, :2] <= center + 1e-5) & (center <= boxes[:, 2:] + 1e-5)).all()


@functools.lru_cache(maxsize=None)
def tiny_model():
    """A tiny CenterMaskPoint (8-channel heads, S = 8, TOPK_TEST = 20) in eval mode."""
    torch.manual_seed(0)
    cfg = shapes_cfg(
        "configs/shapes/centermask.yaml",
        "MODEL.CENTERMASK.HEAD_CONV", "8", "MODEL.CENTERMASK.SHAPE_SIZE", "8",
        "MODEL.DLA.CHANNELS", "[4, 4, 8, 8, 8, 8]", "MODEL.CENTERMASK.TOPK_TEST", "20",
    )  # fmt: skip
    return build_model(cfg).eval()


@settings(max_examples=40)
@given(
    st.lists(st.tuples(st.integers(8, 40), st.integers(8, 40)), min_size=1, max_size=2),
    st.floats(0.5, 3.0),
    SEEDS,
)
@torch.no_grad()
def test_inference_output_inside_the_requested_size(image_sizes, out_scale, seed):
    """Random head outputs on a padded batch of 1-2 images, each returned at a random output size
    (Detectron2's "height" / "width"): at most TOPK_TEST detections, scores sorted descending in
    [SCORE_THRESH_TEST, 1], boxes inside the output image, bool masks of the output size whose
    pixels all lie in their (rounded) box, the assembled masks probabilities in [0, 1]."""
    model = tiny_model()
    n, k = len(image_sizes), 20
    h, w = (-(-max(s[i] for s in image_sizes) // 32) * 32 // STRIDE for i in range(2))
    g = torch.Generator().manual_seed(seed)
    # The network's outputs at the top-K peaks of random heatmap logits; the point heads' outputs
    # read at those peaks from random dense maps.
    peaks = topk_peaks(torch.randn(n, NUM_CLASSES, h, w, generator=g) * 3, k)
    b = torch.arange(n)[:, None].expand(n, k)
    xs, ys = peaks["centers"][..., 0], peaks["centers"][..., 1]
    dense = {
        "offset": torch.rand(n, 2, h, w, generator=g),
        "size": torch.rand(n, 2, h, w, generator=g) * 2 * max(h, w),
        "shape": torch.randn(n, 64, h, w, generator=g),
    }
    outputs = {name: v.permute(0, 2, 3, 1)[b, ys, xs] for name, v in dense.items()}
    outputs["shape"] = outputs["shape"].view(n, k, 8, 8)
    outputs.update(peaks, saliency=torch.randn(n, NUM_CLASSES, h, w, generator=g))
    params = model.inference_params()
    results = decode_detections(
        outputs,
        image_sizes,
        stride=params["stride"],
        score_thresh=params["score_thresh"],
        shape_size=params["shape_size"],
        saliency_class_specific=params["saliency_class_specific"],
    )
    for result, (ih, iw) in zip(results, image_sizes):
        probs = result.mask_probs
        assert ((probs >= 0) & (probs <= 1)).all()
        height, width = max(1, round(ih * out_scale)), max(1, round(iw * out_scale))
        r = centermask_postprocess(result, height, width, model.mask_thresh_test)
        assert len(r) <= 20 and r.image_size == (height, width)
        assert ((r.scores >= model.score_thresh_test) & (r.scores <= 1)).all()
        assert (r.scores[1:] <= r.scores[:-1]).all()
        boxes = r.pred_boxes.tensor
        assert (boxes >= 0).all() and (boxes[:, 0::2] <= width).all()
        assert (boxes[:, 1::2] <= height).all()
        assert r.pred_masks.dtype == torch.bool and r.pred_masks.shape[1:] == (height, width)
        for box, mask in zip(boxes, r.pred_masks):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            if len(xs):
                assert xs.min() >= box[0].floor() - 1 and xs.max() <= box[2].ceil() + 1
                assert ys.min() >= box[1].floor() - 1 and ys.max() <= box[3].ceil() + 1
