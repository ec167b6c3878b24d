"""What a scaling rule reads of a dataset (:class:`DataStats`, from a fingerprint or a paper's
:class:`~d2_instseg.autoconfig.references.Reference`) and what it returns (:class:`Derived`)."""

import dataclasses
import math
from typing import Any, Dict

from .references import Reference


@dataclasses.dataclass(frozen=True)
class DataStats:
    """Sizes in pixels of the images as stored (before any resize of the config)."""

    image_short_side: float  # median
    image_long_side: float  # median
    image_long_side_max: float  # p95 of the fingerprint: what the input size must admit
    object_size: float  # median sqrt(instance area); 0 when there are no instances
    instances_per_image: float  # mean
    max_instances: int  # the densest image
    num_classes: int
    source: str = ""
    foreground_share: float = 0.0  # of all pixels, inside an instance; 0 when not measured

    @classmethod
    def from_fingerprint(cls, fp: Dict, object_size: float = 0.0) -> "DataStats":
        """``object_size`` (px, > 0) replaces the fingerprint's median instance size: data with
        image-level labels only has none. Such data counts its instances by its labels (each
        class present is at least one instance: a lower bound)."""
        per_image = fp["instances_per_image"]
        if not fp["num_instances"] and fp.get("image_labels_per_image", {}).get("max"):
            per_image = fp["image_labels_per_image"]
        return cls(
            image_short_side=fp["image_short_side"]["p50"],
            image_long_side=fp["image_long_side"]["p50"],
            image_long_side_max=fp["image_long_side"]["p95"],
            object_size=object_size or fp["instance_size"].get("p50", 0.0),
            instances_per_image=per_image["mean"],
            max_instances=per_image["max"],
            num_classes=fp["num_classes"],
            source=f"fingerprint of {fp.get('dataset', 'the dataset')}",
            foreground_share=fp.get("foreground_share", 0.0),
        )

    @classmethod
    def from_reference(cls, ref: Reference, num_classes: int = 1) -> "DataStats":
        return cls(
            image_short_side=ref.image_short_side,
            image_long_side=ref.image_long_side,
            image_long_side_max=ref.image_long_side,
            object_size=ref.object_size,
            instances_per_image=ref.instances_per_image,
            max_instances=0,
            num_classes=num_classes,
            source=ref.name,
        )

    def require_instances(self, method: str) -> None:
        if self.object_size <= 0:
            raise ValueError(
                f"{method} needs instance sizes, but {self.source or 'the dataset'} has no "
                "instance annotations: fingerprint a dataset with instance masks (or boxes) of "
                "the same kind of images"
            )


@dataclasses.dataclass(frozen=True)
class Derived:
    """One config value with the reason it has this value (written as the YAML comment)."""

    key: str
    value: Any
    reason: str


def round_to(x: float, multiple: int, minimum: int = 0) -> int:
    """``x`` rounded to the nearest multiple of ``multiple``, at least max(minimum, multiple)."""
    return max(int(round(x / multiple)) * multiple, minimum, multiple)


def nearest_power_of_two(x: float) -> int:
    return 2 ** max(int(round(math.log2(max(x, 1.0)))), 0)


def clamp(x: float, low: float, high: float) -> float:
    return min(max(x, low), high)


def input_size(stats: DataStats, scale: float, multiple: int = 32) -> Dict[str, int]:
    """The short side the images are resized to (``scale`` x the median short side, rounded to
    ``multiple``) and the long side cap that keeps the p95 image's aspect."""
    short = round_to(scale * stats.image_short_side, multiple)
    long = round_to(stats.image_long_side_max * short / stats.image_short_side, multiple)
    return {"short": short, "long": max(long, short)}


def input_keys(size: Dict[str, int], why: str) -> list:
    """INPUT.MIN/MAX_SIZE_TRAIN/TEST for a resize to ``size`` (train and test alike)."""
    return [
        Derived("INPUT.MIN_SIZE_TRAIN", (size["short"],), why),
        Derived("INPUT.MAX_SIZE_TRAIN", size["long"], "keeps the p95 image's long side"),
        Derived("INPUT.MIN_SIZE_TEST", size["short"], "as in training"),
        Derived("INPUT.MAX_SIZE_TEST", size["long"], "as in training"),
    ]


def per_image_budget(stats: DataStats, ref_count: int, ref_mean: float) -> int:
    """A count per image kept in proportion to the mean instances per image, as ``ref_count`` for
    ``ref_mean`` (COCO's 100 for 7.7), rounded up to 10 and never fewer than the densest image's
    instances."""
    return max(
        stats.max_instances,
        int(math.ceil(ref_count * stats.instances_per_image / ref_mean / 10)) * 10,
    )


def detections_key(stats: DataStats, ref: Reference) -> Derived:
    """TEST.DETECTIONS_PER_IMAGE: COCO's 100 for its 7.7 instances per image, in proportion, at
    most 100 (COCO's evaluation scores the 100 best of an image)."""
    n = min(per_image_budget(stats, 100, ref.instances_per_image), max(100, stats.max_instances))
    return Derived(
        "TEST.DETECTIONS_PER_IMAGE",
        n,
        f"100 x {stats.instances_per_image:g} / {ref.instances_per_image:g} instances per image, "
        f"<= 100 (densest image: {stats.max_instances})",
    )


# Upsampling an image adds no detail, only cost: no rule enlarges inputs more than this.
MAX_UPSCALE = 2.0
