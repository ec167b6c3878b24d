"""IRNet's scaling rule (Ahn et al., CVPR 2019; the authors' PASCAL VOC 2012 setting).

IRNet's pixel-valued settings live on two grids: the CAM network's stride-16 features and the
stride-4 grid of the relations, displacements and random walk. Each keeps the paper's value per
object: ``r = obj / 110 px`` (VOC's median object, :data:`~.references.VOC`)."""

import math
from typing import List

from .references import VOC, Reference
from .stats import MAX_UPSCALE, DataStats, Derived, clamp, round_to

_CAM_STRIDE = 16
_REF = {
    "IRN.RADIUS": 10,  # gamma, stride-4 cells
    "SYNTHESIS.RADIUS": 5,  # the random walk's affinity radius, stride-4 cells
    "SYNTHESIS.EXP_TIMES": 8,  # t = 2^8 = 256 steps
    "SYNTHESIS.CLUSTER_THRESH": 2.5,  # stride-4 cells
    "RELATION.CRF_GAUSSIAN": (3.0, 3.0),  # (sxy px, compat)
    "RELATION.CRF_BILATERAL": (50.0, 5.0, 10.0),  # (sxy px, srgb, compat)
    "CAM.RESIZE_LONG": (320, 640),  # px, for VOC's 500 px long side
    "CAM.CROP_SIZE": 512,
    "IRN.CROP_SIZE": 512,
    "CAM.SCALES": (1.0, 0.5, 1.5, 2.0),
    "SYNTHESIS.MIN_AREA_FRAC": 0.01,  # of the image: 1,875 px of a 500 x 375 VOC image
}

# A share of foreground above this leaves too little background to calibrate the thresholds on
# (the estimate counts overlapping objects twice).
_MAX_FG_SHARE = 0.9


def irnet_cam_scale(stats: DataStats, ref: Reference = VOC) -> float:
    """How much the CAM network's input is enlarged so the median object spans as many stride-16
    cells as VOC's (110 / 16 = 6.9), between 1 and :data:`MAX_UPSCALE` (the CAM output stride of
    small images: stride 16 at 2x is stride 8 of the image)."""
    return clamp(ref.object_size / stats.object_size, 1.0, MAX_UPSCALE)


def irnet_rules(stats: DataStats, ref: Reference = VOC) -> List[Derived]:
    """Derived ``MODEL.IRNET`` keys (and why) for data with ``stats``.

    - IRN.RADIUS, SYNTHESIS.RADIUS (>= 2, the search needs it), CLUSTER_THRESH: x r;
    - EXP_TIMES: a random walk of t steps of radius R reaches ~R sqrt(t) cells; the paper's
      5 x 16 = 80 cells is 2.9 VOC objects (27.5 cells): kept per object, sqrt(t) = 16 r 5 / R;
    - CRF sxy (gaussian and bilateral): x r (the colour and compat terms have no pixel unit);
    - MIN_AREA_FRAC (a fraction of the image): the paper's 1% of a VOC image is 1,875 px, 0.155 of
      a median VOC object's area; that area x r^2, as a fraction of the median image;
    - CAM crop and resize range: the paper's per image long side, x the CAM scale; CAM.SCALES x the
      CAM scale; IRN crop: the paper's per image long side.
    - CAM.FG_FRACTION, the share of foreground pixels (the fingerprint's, measured on the masks;
      without masks, instances per image x median object area / median image area): the pipeline
      moves the paper's score thresholds to the CAMs it trains, by the score that this share of
      the pixels exceeds (:mod:`d2_instseg.irnet.calibration`). The thresholds themselves are CAM
      scores, not sizes.
    """
    stats.require_instances("IRNet")
    r = stats.object_size / ref.object_size
    per_image = stats.image_long_side / ref.image_long_side
    k = irnet_cam_scale(stats, ref)
    radius = max(2, int(round(_REF["IRN.RADIUS"] * r)))
    walk_radius = max(2, int(round(_REF["SYNTHESIS.RADIUS"] * r)))
    sqrt_t = 2 ** (_REF["SYNTHESIS.EXP_TIMES"] / 2) * r * _REF["SYNTHESIS.RADIUS"] / walk_radius
    exp_times = max(0, int(round(2 * math.log2(max(sqrt_t, 1.0)))))
    g_sxy, g_compat = _REF["RELATION.CRF_GAUSSIAN"]
    b_sxy, b_rgb, b_compat = _REF["RELATION.CRF_BILATERAL"]
    lo, hi = _REF["CAM.RESIZE_LONG"]
    min_area = _REF["SYNTHESIS.MIN_AREA_FRAC"] * ref.image_short_side * ref.image_long_side * r**2
    image_area = stats.image_short_side * stats.image_long_side
    fg_estimate = stats.instances_per_image * stats.object_size**2 / image_area
    fg_fraction = min(stats.foreground_share or fg_estimate, _MAX_FG_SHARE)
    why_fg = (
        f"the fingerprint's share of instance pixels {stats.foreground_share:g}"
        if stats.foreground_share
        else f"{stats.instances_per_image:g} instances per image x {stats.object_size:g}^2 px of"
        f" the {stats.image_short_side:g} x {stats.image_long_side:g} px image"
    )
    why_r = f"x {r:.3f} = median object {stats.object_size:g} / {ref.object_size:g} px"
    key = "MODEL.IRNET."
    return [
        Derived(key + "IRN.RADIUS", radius, f"10 cells {why_r} (>= 2)"),
        Derived(key + "SYNTHESIS.RADIUS", walk_radius, f"5 cells {why_r} (>= 2)"),
        Derived(
            key + "SYNTHESIS.EXP_TIMES",
            exp_times,
            f"t = 2^{exp_times}: the walk's reach R sqrt(t) kept per object (paper: 5 x 16)",
        ),
        Derived(
            key + "SYNTHESIS.CLUSTER_THRESH",
            round(_REF["SYNTHESIS.CLUSTER_THRESH"] * r, 3),
            f"2.5 cells {why_r}",
        ),
        Derived(
            key + "SYNTHESIS.MIN_AREA_FRAC",
            round(min(min_area / image_area, 1.0), 6),
            f"1% of a VOC image ({min_area / r**2:g} px) x r^2, r {why_r[2:]}: {min_area:.1f} px"
            f" of the median {stats.image_short_side:g} x {stats.image_long_side:g} px image",
        ),
        Derived(
            key + "CAM.FG_FRACTION",
            round(fg_fraction, 4),
            f"{why_fg} (<= {_MAX_FG_SHARE}): the score thresholds move to the CAMs'"
            " operating point (d2_instseg/irnet/calibration.py)",
        ),
        Derived(
            key + "RELATION.CRF_GAUSSIAN",
            (round(max(g_sxy * r, 1.0), 2), g_compat),
            f"sxy 3 px {why_r} (>= 1)",
        ),
        Derived(
            key + "RELATION.CRF_BILATERAL",
            (round(b_sxy * r, 2), b_rgb, b_compat),
            f"sxy 50 px {why_r}",
        ),
        Derived(
            key + "CAM.RESIZE_LONG",
            (round_to(lo * per_image * k, 16), round_to(hi * per_image * k, 16)),
            f"(320, 640) for 500 px images, per median long side {stats.image_long_side:g} px,"
            f" x{k:.2f} CAM scale (objects span {stats.object_size * k / _CAM_STRIDE:.1f} stride-16"
            f" cells; VOC {ref.object_size / _CAM_STRIDE:.1f})",
        ),
        Derived(
            key + "CAM.CROP_SIZE",
            round_to(_REF["CAM.CROP_SIZE"] * per_image * k, 16),
            f"512 for 500 px images, per long side, x{k:.2f}",
        ),
        Derived(
            key + "CAM.SCALES",
            tuple(round(s * k, 3) for s in _REF["CAM.SCALES"]),
            f"the paper's (1, 0.5, 1.5, 2) x{k:.2f} CAM scale",
        ),
        Derived(
            key + "IRN.CROP_SIZE",
            round_to(_REF["IRN.CROP_SIZE"] * per_image, 16),
            "512 for 500 px images, per long side",
        ),
    ]
