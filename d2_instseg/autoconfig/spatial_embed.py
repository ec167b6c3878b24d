"""Spatial Embeddings' scaling rule (Neven et al., CVPR 2019; the authors' Cityscapes setting).

Spatial Embeddings runs at the images' own resolution (the paper: full 1024 x 2048 Cityscapes
frames); what scales is the embedding space and everything measured in pixels inside it."""

import math
from typing import List

from .references import CITYSCAPES, COCO, Reference
from .stats import DataStats, Derived, detections_key, input_keys, input_size, round_to

# The reference: 1 unit = the 1023 row steps of a 1024-row frame; sigma bias 1 at init gives
# exp(10 * 1) as 1 / (2 sigma^2), a margin of sigma = 1 / sqrt(2 e^10) = 0.00476 units (4.9 px).
_REF_BIAS = 1.0
_REF_SIGMA_UNITS = 1.0 / math.sqrt(2.0 * math.exp(10.0 * _REF_BIAS))
_REF_MIN_PIXELS = 128  # the authors' Cluster at 1024 x 2048
_REF_CROP = 512  # the authors' 512 x 512 training crops


def spatial_embed_rules(stats: DataStats, ref: Reference = CITYSCAPES) -> List[Derived]:
    """Derived keys for Spatial Embeddings on data with ``stats``.

    - input: the images' own size (scale 1, rounded to 32), as the paper;
    - PIXELS_PER_UNIT: the input rows - 1 (the reference's y in [0, 1] over the frame's rows);
    - SIGMA_BIAS_INIT: the starting margin is the same fraction of the median object as the
      reference's 4.9 px of its ``ref.object_size`` px objects;
    - MIN_PIXELS: the reference's 128 px as the same fraction of the median object's area;
    - crop: the reference's 512 px crops as the same multiple of the median object (off when it
      is larger than every image);
    - not derived: SEED_THRESHOLD, a probability with no pixel unit, stays the base config's
      (the paper config's 0.9 of the authors' test.py; the shapes config's 0.5, their Cluster
      default, as a 600-iteration model's seeds rarely reach 0.9);
    - not derived: Adam's lr. Kept per object in embedding units, the reference's 5e-4 gave
      4.67e-4 on shapes_dense, which trained to 0.8 mask AP in 542 iterations where the shapes
      config's 3.21e-3 reached 13.0 (measured 2026-12-02): from scratch on a short budget the lr
      is a matter of the budget, not of the data's scale, so the base config's stays (the paper
      config's 5e-4, the CPU config's 3.21e-3).
    """
    stats.require_instances("Spatial Embeddings")
    size = input_size(stats, 1.0)
    obj = stats.object_size * size["short"] / stats.image_short_side  # median object at the input
    ratio = obj / ref.object_size
    ppu = float(size["short"] - 1)
    sigma_units = _REF_SIGMA_UNITS * (ref.image_short_side - 1) * ratio / ppu
    bias = math.log(1.0 / (2.0 * sigma_units**2)) / 10.0
    min_pixels = int(round(_REF_MIN_PIXELS * ratio**2))
    crop = round_to(_REF_CROP * ratio, 16)
    out = input_keys(size, f"the images' own size: median short side {stats.image_short_side:g} px")
    out += [
        Derived(
            "MODEL.SPATIAL_EMBED.PIXELS_PER_UNIT",
            ppu,
            f"1 unit = the input's {size['short']} rows (reference: 1023 for 1024 rows)",
        ),
        Derived(
            "MODEL.SPATIAL_EMBED.SIGMA_BIAS_INIT",
            round(bias, 4),
            f"starting margin {sigma_units * ppu:.2f} px = {_REF_SIGMA_UNITS * 1023:.2f} px x "
            f"{obj:.1f} / {ref.object_size:g} px median object (reference: bias 1)",
        ),
        Derived(
            "MODEL.SPATIAL_EMBED.MIN_PIXELS",
            min_pixels,
            f"{_REF_MIN_PIXELS} px x ({obj:.1f} / {ref.object_size:g})^2 (reference: 128)",
        ),
        detections_key(stats, COCO),
    ]
    if crop < stats.image_long_side_max:
        out += [
            Derived("INPUT.CROP.ENABLED", True, f"{crop} px = 512 x {ratio:.3f}"),
            Derived("INPUT.CROP.TYPE", "absolute", "square crops, as the authors'"),
            Derived("INPUT.CROP.SIZE", [crop, crop], f"512 px x {obj:.1f} / {ref.object_size:g}"),
        ]
    else:
        out.append(
            Derived(
                "INPUT.CROP.ENABLED",
                False,
                f"the {crop} px crop (512 x {ratio:.3f}) is larger than the images",
            )
        )
    return out
