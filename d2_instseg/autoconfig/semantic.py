"""The scaling rule of the semantic segmentors (CPNet, Yu et al., CVPR 2020; FCN-8s and UNet
trained with the same pipeline): crop, context-prior size and sliding window from the image size.

The paper's datasets differ in shape (ADE20K 4:3 at a 512 px short side, crop 480; Cityscapes 2:1
at 1024, crop 768), so the rule takes the reference whose aspect ratio is nearest the data's and
keeps its crop as the same fraction of the short side."""

from typing import List

from .references import ADE20K, CITYSCAPES, Reference
from .stats import DataStats, Derived, round_to

_REF_CROP = {ADE20K.name: 480, CITYSCAPES.name: 768}
_OUTPUT_STRIDE = 8  # the dilated ResNet's: the prior map is the crop / 8 (480 -> 60, 768 -> 96)
_SLIDE_FRACTION = (
    2 / 3
)  # sliding-window stride / crop in both released configs (320 / 480, 512 / 768)
_LONG_CAP = {
    ADE20K.name: 4.0,
    CITYSCAPES.name: 2.0,
}  # fitted long side / short (2048/512, 2048/1024)


def semantic_reference(stats: DataStats) -> Reference:
    """ADE20K or Cityscapes, whichever aspect ratio (median long / short side) is nearer."""
    aspect = stats.image_long_side / stats.image_short_side
    return min(
        (ADE20K, CITYSCAPES),
        key=lambda r: abs(aspect - r.image_long_side / r.image_short_side),
    )


def semantic_rules(stats: DataStats, method: str, ref: Reference = None) -> List[Derived]:
    """Derived keys for ``method`` in ("cpnet", "fcn8s", "unet")."""
    ref = ref or semantic_reference(stats)
    short = round_to(stats.image_short_side, _OUTPUT_STRIDE)
    crop = round_to(_REF_CROP[ref.name] * short / ref.image_short_side, _OUTPUT_STRIDE)
    long = int(round(_LONG_CAP[ref.name] * short))
    fraction = f"{_REF_CROP[ref.name]} / {ref.image_short_side:g} of the short side ({ref.name})"
    out = [
        Derived("INPUT.CROP.SIZE", [crop, crop], f"{fraction}"),
        Derived(
            "INPUT.RANDOM_SCALE.BASE_SIZE",
            [short, long],
            f"images fitted to their median short side {short} px (long side <= "
            f"{_LONG_CAP[ref.name]:g}x), as the reference's {ref.image_short_side:g} px",
        ),
        Derived("INPUT.MIN_SIZE_TEST", short, "the training scale (BASE_SIZE)"),
        Derived("INPUT.MAX_SIZE_TEST", long, "the training scale (BASE_SIZE)"),
    ]
    if method == "cpnet":
        prior = crop // _OUTPUT_STRIDE
        stride = round_to(crop * _SLIDE_FRACTION, _OUTPUT_STRIDE)
        out += [
            Derived("MODEL.CPNET.PRIOR_SIZE", [prior, prior], "the crop / output stride 8"),
            Derived(
                "MODEL.CPNET.TEST.SLIDE_STRIDE",
                [stride, stride],
                "2/3 of the crop, as both released configs",
            ),
        ]
    return out
