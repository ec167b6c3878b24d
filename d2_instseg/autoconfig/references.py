"""The statistics of each paper's own dataset, at the scale its network sees it, that the scaling
rules (``d2_instseg.autoconfig.rules``) divide by: a rule keeps the paper's value per object (or
per image), so fed these statistics it returns the paper's setting exactly (tested).

Every figure says where it comes from. "documented" figures are read from the dataset's own pages
or papers; "estimate" figures could not be read off a source on this machine (no copy of the
dataset, no internet) and are stated as estimates: a user with the dataset measures the true value
with ``python tools/configure.py --dataset <its registered name> --fingerprint-only``, and every
derived value scales linearly with it. docs/autoconfig.md lists them with their derivations.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Reference:
    """A paper's dataset as its network sees it (sizes in input pixels)."""

    name: str
    image_short_side: float  # median short side of the network input
    image_long_side: float  # median long side of the network input
    object_size: float  # median sqrt(instance area); 0 for semantic-only datasets
    instances_per_image: float  # mean; 0 for semantic-only datasets
    source: str


COCO = Reference(
    "COCO 2017 (CenterMask, Mask R-CNN)",
    image_short_side=480.0,
    image_long_side=640.0,
    # 41% of COCO instances are small (area < 32^2), 34% medium (< 96^2), 24% large: the median
    # lies between 32 and 96, at 32 * 3^((50 - 41) / 34) = 42.8 px (log-linear within the bin).
    object_size=42.8,
    instances_per_image=7.7,
    source=(
        "documented: images are at most 640 px (COCO's 640 x 480 typical); size split 41/34/24 %"
        " small/medium/large from cocodataset.org's detection evaluation page; 7.7 instances per"
        " image from Lin et al., ECCV 2014. CenterNet tests at the original resolution (keep_res),"
        " so these are also its input sizes"
    ),
)

CITYSCAPES = Reference(
    "Cityscapes fine (Spatial Embeddings, CPNet)",
    image_short_side=1024.0,
    image_long_side=2048.0,
    object_size=50.0,
    instances_per_image=20.0,
    source=(
        "documented: 1024 x 2048 images, inferred at full resolution by Spatial Embeddings and"
        " CPNet. estimate: median instance size 50 px and ~20 thing instances per image (street"
        " scenes full of distant cars and people; not measured here: no copy of Cityscapes)"
    ),
)

ADE20K = Reference(
    "ADE20K (CPNet, FCN-8s, UNet)",
    image_short_side=512.0,
    image_long_side=683.0,
    object_size=0.0,
    instances_per_image=0.0,
    source=(
        "documented: the CPNet / mmsegmentation pipeline fits every image in 2048 x 512 (short"
        " side 512); ADE20K images are mostly 4:3, so the median long side is ~683"
    ),
)

VOC = Reference(
    "PASCAL VOC 2012 (IRNet)",
    image_short_side=375.0,
    image_long_side=500.0,
    object_size=110.0,
    instances_per_image=2.4,
    source=(
        "documented: images at most 500 px (500 x 375 typical), used at their original size by"
        " IRNet's inference; 6,929 objects in 2,913 segmentation images (2.4 per image)."
        " estimate: median instance size 110 px (objects of VOC photos are large; not measured"
        " here: no copy of VOC)"
    ),
)
