import hashlib
import json
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image
from pycocotools.coco import COCO

from d2_instseg.data import ShapesSpec
from d2_instseg.data.datasets.synthetic_shapes import draw_image, ensure_split, write_split

SPEC = ShapesSpec(num_images=12, seed=7, max_shapes=5)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("shapes") / "split")
    write_split(out, SPEC)
    return out


def test_coco_json_loads_and_categories(split):
    coco = COCO(os.path.join(split, "instances.json"))
    cats = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert cats == {1: "circle", 2: "square", 3: "triangle"}
    assert len(coco.getImgIds()) == SPEC.num_images
    assert len(coco.getAnnIds()) >= SPEC.num_images  # at least one shape per image


def test_masks_are_the_visible_pixels_of_the_semantic_png(split):
    """Each instance mask has its class in the label PNG everywhere; masks are disjoint; together
    they cover exactly the non-background pixels; the bbox is the mask's extent."""
    coco = COCO(os.path.join(split, "instances.json"))
    sizes = set()
    for img in coco.loadImgs(coco.getImgIds()):
        sem = np.asarray(Image.open(os.path.join(split, "sem_seg", img["file_name"])))
        assert sem.shape == (img["height"], img["width"])
        sizes.add(sem.shape)
        covered = np.zeros(sem.shape, np.int32)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            m = mask_util.decode(ann["segmentation"]).astype(bool)
            assert m.sum() == ann["area"] > 0
            assert (sem[m] == ann["category_id"]).all()
            ys, xs = np.nonzero(m)
            assert ann["bbox"] == [
                xs.min(),
                ys.min(),
                xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1,
            ]
            covered += m
        assert covered.max() <= 1
        assert ((covered == 1) == (sem > 0)).all()
    assert any(h != w for h, w in sizes), "sizes should include non-square images"


def test_image_labels_match_annotations(split):
    coco = COCO(os.path.join(split, "instances.json"))
    with open(os.path.join(split, "image_labels.json")) as f:
        labels = json.load(f)
    for img in coco.loadImgs(coco.getImgIds()):
        cats = {a["category_id"] for a in coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))}
        assert labels[img["file_name"]] == sorted(cats)


def test_occlusion_keeps_only_visible_part():
    """Some image of a split has a shape cut by a later one: its visible area is then smaller than
    the area of the same shape drawn alone; we detect this as a non-convex circle mask (a full disk
    fills ~pi/4 of its bounding box; an occluded one much less)."""
    fills = []
    for i in range(40):
        _, instances = draw_image(ShapesSpec(num_images=40, seed=11, max_shapes=6), i)
        for cat, m in instances:
            if cat == 1:
                ys, xs = np.nonzero(m)
                fills.append(m.sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1)))
    assert max(fills) > 0.7  # unoccluded disks
    assert min(fills) < 0.6  # at least one disk partly hidden


def test_deterministic_by_seed(tmp_path):
    a, b = draw_image(SPEC, 3), draw_image(SPEC, 3)
    assert np.array_equal(a[0], b[0])
    other = draw_image(ShapesSpec(num_images=12, seed=8, max_shapes=5), 3)
    assert a[0].shape != other[0].shape or not np.array_equal(a[0], other[0])

    def digest(folder):
        h = hashlib.sha1()
        for root, _, files in sorted(os.walk(folder)):
            for name in sorted(files):
                with open(os.path.join(root, name), "rb") as f:
                    h.update(name.encode() + f.read())
        return h.hexdigest()

    write_split(str(tmp_path / "x"), ShapesSpec(num_images=4, seed=5))
    write_split(str(tmp_path / "y"), ShapesSpec(num_images=4, seed=5))
    assert digest(tmp_path / "x") == digest(tmp_path / "y")


def test_not_regenerated_when_present(split, monkeypatch):
    import d2_instseg.data.datasets.synthetic_shapes as shapes

    def fail(*args, **kwargs):
        raise AssertionError("regenerated a complete split")

    monkeypatch.setattr(shapes, "write_split", fail)
    assert ensure_split(split, SPEC) == split


def test_incomplete_split_is_regenerated(tmp_path):
    out = tmp_path / "partial"
    (out / "images").mkdir(parents=True)  # a crash left a folder without .complete
    ensure_split(str(out), ShapesSpec(num_images=2, seed=1))
    assert (out / ".complete").exists() and len(os.listdir(out / "images")) == 2


@pytest.mark.parametrize(
    "kwargs", [dict(num_images=0), dict(min_side=200, max_side=100), dict(max_shape_frac=0.6)]
)
def test_invalid_spec_names_the_field(kwargs):
    with pytest.raises(ValueError, match="ShapesSpec"):
        ShapesSpec(**kwargs)


def test_weak_split_starts_with_the_train_split():
    """shapes_train_weak's first 400 images are shapes_train's (image i depends on seed and i only),
    the way VOC's train_aug contains train."""
    from d2_instseg.data.datasets.shapes import BUILTIN_SPLITS

    train, weak = BUILTIN_SPLITS["train"], BUILTIN_SPLITS["train_weak"]
    assert weak.seed == train.seed and weak.folder_name("w") != train.folder_name("w")
    for i in (0, 123, min(train.num_images, weak.num_images) - 1):
        (a, inst_a), (b, inst_b) = draw_image(train, i), draw_image(weak, i)
        assert np.array_equal(a, b) and [c for c, _ in inst_a] == [c for c, _ in inst_b]
