"""CenterMask's scaling rule (Wang et al., CVPR 2020, on CenterNet; COCO at 512 px)."""

from typing import List

from .references import COCO, Reference
from .stats import (
    MAX_UPSCALE,
    DataStats,
    Derived,
    clamp,
    detections_key,
    input_keys,
    input_size,
    per_image_budget,
    round_to,
)

_STRIDE = 4  # CenterNet's output stride
_REF_TOPK = 100  # CenterNet / CenterMask's top-K centers on COCO
_REF_SHAPE_SIZE = 32  # the paper's S


def centermask_input_scale(stats: DataStats, ref: Reference = COCO) -> float:
    """The resize that gives the median object as many stride-4 cells as COCO's at CenterNet's
    test resolution (42.8 px / 4 = 10.7 cells), between 1/4 and :data:`MAX_UPSCALE`."""
    return clamp(ref.object_size / stats.object_size, 0.25, MAX_UPSCALE)


def centermask_rules(stats: DataStats, ref: Reference = COCO) -> List[Derived]:
    """Derived keys for CenterMask on data with ``stats``: the input size (above); TOPK_TEST:
    the same multiple of the mean instances per image as COCO's 100 for 7.7 (and never fewer
    than the densest image's instances), rounded up to 10; SHAPE_SIZE: the same shape pixels per
    input pixel of the median object as S = 32 for COCO's 42.8 px (multiple of 4, 8..64). The
    gaussian radius keeps CenterNet's rule (it is already relative to each box)."""
    stats.require_instances("CenterMask")
    scale = centermask_input_scale(stats, ref)
    size = input_size(stats, scale)
    obj = stats.object_size * size["short"] / stats.image_short_side
    cells = obj / _STRIDE
    topk = per_image_budget(stats, _REF_TOPK, ref.instances_per_image)
    shape = int(clamp(round_to(_REF_SHAPE_SIZE * obj / ref.object_size, 4), 8, 64))
    capped = " (capped)" if scale in (0.25, MAX_UPSCALE) else ""
    why = (
        f"x{scale:.2f}{capped}: the median object ({stats.object_size:g} px) covers {cells:.1f}"
        f" stride-4 cells (COCO: {ref.object_size / _STRIDE:.1f})"
    )
    return input_keys(size, why) + [
        Derived(
            "MODEL.CENTERMASK.TOPK_TEST",
            topk,
            f"100 x {stats.instances_per_image:g} / {ref.instances_per_image:g} instances per image"
            f" (densest image: {stats.max_instances})",
        ),
        Derived(
            "MODEL.CENTERMASK.SHAPE_SIZE",
            shape,
            f"32 x {obj:.1f} / {ref.object_size:g} px median object",
        ),
        detections_key(stats, ref),
    ]
