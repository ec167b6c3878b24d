"""Detectron2's Mask R-CNN (the baseline): anchors from the object sizes."""

import dataclasses
from typing import List

from .references import COCO
from .stats import DataStats, Derived, detections_key, input_keys, input_size, nearest_power_of_two

# COCO as Detectron2's Mask R-CNN sees it: resized from a 480 px short side to 800.
COCO_AT_800 = dataclasses.replace(
    COCO,
    name="COCO at Detectron2's 800 px",
    image_short_side=800.0,
    image_long_side=640.0 * 800 / 480,
    object_size=COCO.object_size * 800 / 480,
)
_REF_ANCHOR = 32  # Detectron2's smallest anchor (P2) on COCO
_MIN_ANCHOR = 8  # two P2 cells (stride 4): a smaller anchor is below the feature's resolution


def mask_rcnn_rules(stats: DataStats, ref=COCO_AT_800) -> List[Derived]:
    """Derived keys for Mask R-CNN: the images at their own size (scale 1: Detectron2 enlarges
    COCO 800 / 480 x, which costs 2.8x the pixels; matching anchors to the objects instead is what
    makes the proposals fit) and anchor sizes the same multiple of the median object as
    Detectron2's 32..512 of COCO's 71.3 px (at 800 px), as powers of two from 8."""
    stats.require_instances("Mask R-CNN")
    size = input_size(stats, 1.0)
    obj = stats.object_size * size["short"] / stats.image_short_side
    smallest = max(nearest_power_of_two(_REF_ANCHOR * obj / ref.object_size), _MIN_ANCHOR)
    sizes = [[smallest * 2**i] for i in range(5)]
    return input_keys(size, "the images' own size (rounded to 32)") + [
        Derived(
            "MODEL.ANCHOR_GENERATOR.SIZES",
            sizes,
            f"32 x {obj:.1f} / {ref.object_size:.1f} px median object, as a power of 2 (>= 8)",
        ),
        detections_key(stats, ref),
    ]
