"""The miniature COCO / Cityscapes / ADE20K / VOC copies are in their real formats: checked with the
readers of Detectron2, pycocotools and cityscapesscripts, and for consistency between the files of
each dataset (instance ids vs labels vs polygons)."""

import glob
import os

import numpy as np
import pytest
from PIL import Image

from d2_instseg.data.datasets.miniature import write_miniature_datasets


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("miniature"))
    write_miniature_datasets(root)
    return root


def test_coco_read_by_detectron2_and_pycocotools(root):
    """80 categories with COCO's ids; polygons whose area field is pycocotools' area of the
    polygon; one crowd region per split (uncompressed RLE) that Detectron2 reads as iscrowd 1."""
    import pycocotools.mask as mask_util
    from detectron2.data.datasets import load_coco_json
    from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES
    from pycocotools.coco import COCO

    for split, n in (("train2017", 4), ("val2017", 2)):
        json_file = os.path.join(root, "coco", "annotations", f"instances_{split}.json")
        coco = COCO(json_file)
        ids = sorted(coco.getCatIds())
        assert ids == sorted(c["id"] for c in COCO_CATEGORIES if c["isthing"]) and ids[-1] == 90
        dicts = load_coco_json(json_file, os.path.join(root, "coco", split), f"mini_{split}")
        assert len(dicts) == n
        crowds = [a for d in dicts for a in d["annotations"] if a["iscrowd"]]
        assert len(crowds) == 1 and "counts" in crowds[0]["segmentation"]
        raw_crowds = [a for a in coco.dataset["annotations"] if a["iscrowd"]]
        assert isinstance(raw_crowds[0]["segmentation"]["counts"], list)  # uncompressed RLE
        for ann in coco.loadAnns(coco.getAnnIds()):
            mask = coco.annToMask(ann)
            assert abs(mask.sum() - ann["area"]) <= 0.5 and mask.sum() > 0
            x, y, w, h = ann["bbox"]
            if not ann["iscrowd"]:
                # bbox = the polygon's extent: its raster never reaches more than 1 px beyond it
                rle = mask_util.frPyObjects(ann["segmentation"], *mask.shape)
                px, py, pw, ph = mask_util.toBbox(rle)[0]
                assert px >= x - 1 and py >= y - 1
                assert px + pw <= x + w + 1 and py + ph <= y + h + 1
        for d in dicts:
            with Image.open(d["file_name"]) as im:
                assert im.size == (d["width"], d["height"]) and im.format == "JPEG"


def test_cityscapes_labels_equal_what_cityscapesscripts_makes_from_the_polygons(root):
    """labelIds, labelTrainIds and instanceIds PNGs equal cityscapesscripts' own rasterisation of
    each polygons.json (json2labelImg / json2instanceImg); Detectron2 reads both the JSON and the
    PNG instance paths with the same number of instances."""
    from cityscapesscripts.helpers.annotation import Annotation
    from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
    from cityscapesscripts.preparation.json2labelImg import createLabelImage
    from detectron2.data.datasets.cityscapes import (
        load_cityscapes_instances,
        load_cityscapes_semantic,
    )

    files = sorted(glob.glob(os.path.join(root, "cityscapes", "gtFine", "*", "*", "*.json")))
    assert len(files) == 6
    for path in files:
        ann = Annotation()
        ann.fromJsonFile(path)
        for encoding, suffix in (("ids", "labelIds"), ("trainIds", "labelTrainIds")):
            mine = np.asarray(Image.open(path.replace("polygons.json", suffix + ".png")))
            assert (np.asarray(createLabelImage(ann, encoding)) == mine).all(), (path, suffix)
        mine = np.asarray(Image.open(path.replace("polygons.json", "instanceIds.png")))
        assert (np.asarray(createInstanceImage(ann, "ids")) == mine).all(), path
        assert (mine >= 24000).any()  # instances are label id * 1000 + k
    image_dir = os.path.join(root, "cityscapes", "leftImg8bit", "train")
    gt_dir = os.path.join(root, "cityscapes", "gtFine", "train")
    from_json = load_cityscapes_instances(image_dir, gt_dir, from_json=True, to_polygons=True)
    from_png = load_cityscapes_instances(image_dir, gt_dir, from_json=False, to_polygons=False)
    assert [len(d["annotations"]) for d in from_json] == [len(d["annotations"]) for d in from_png]
    assert all(d["height"] == 128 and d["width"] == 256 for d in from_json)
    semantic = load_cityscapes_semantic(image_dir, gt_dir)
    assert len(semantic) == 4 and semantic[0]["sem_seg_file_name"].endswith("labelTrainIds.png")


def test_ade20k_detectron2_labels_are_the_raw_labels_minus_one(root):
    """annotations_detectron2 = annotations - 1 with 0 ("other") -> 255, as Detectron2's
    prepare_ade20k_sem_seg.py makes it; Detectron2's load_sem_seg pairs every image."""
    from detectron2.data.datasets import load_sem_seg

    base = os.path.join(root, "ADEChallengeData2016")
    for split, n in (("training", 4), ("validation", 2)):
        dicts = load_sem_seg(
            os.path.join(base, "annotations_detectron2", split),
            os.path.join(base, "images", split),
            gt_ext="png",
            image_ext="jpg",
        )
        assert len(dicts) == n
        for d in dicts:
            prepared = np.asarray(Image.open(d["sem_seg_file_name"]))
            raw = np.asarray(Image.open(d["sem_seg_file_name"].replace("_detectron2", "")))
            expected = np.where(raw == 0, 255, raw.astype(int) - 1)
            assert (prepared == expected).all() and (raw == 0).any()
            assert set(np.unique(prepared)) <= set(range(150)) | {255}


def test_voc_class_object_and_aug_agree(root):
    """SegmentationClass / SegmentationObject are VOC palette PNGs with the same 255 boundary band;
    each object has one class; SegmentationClassAug equals SegmentationClass off the band;
    train_aug = train + images with only the Aug labels; Detectron2's VOC detection reader and
    d2_instseg's segmentation reader see the same objects."""
    from detectron2.data.datasets.pascal_voc import load_voc_instances

    from d2_instseg.data.datasets.miniature import voc_palette
    from d2_instseg.data.datasets.voc import VOC_CLASSES, load_voc_seg

    base = os.path.join(root, "VOC2012")
    lists = {
        s: open(os.path.join(base, "ImageSets", "Segmentation", s + ".txt")).read().split()
        for s in ("train", "val", "train_aug")
    }
    assert set(lists["train"]) < set(lists["train_aug"])
    assert not set(lists["val"]) & set(lists["train_aug"])
    for name in lists["train"] + lists["val"]:
        cls_img = Image.open(os.path.join(base, "SegmentationClass", name + ".png"))
        obj_img = Image.open(os.path.join(base, "SegmentationObject", name + ".png"))
        assert (
            cls_img.mode == obj_img.mode == "P" and cls_img.getpalette()[:60] == voc_palette()[:60]
        )
        cls, obj = np.asarray(cls_img), np.asarray(obj_img)
        aug = np.asarray(Image.open(os.path.join(base, "SegmentationClassAug", name + ".png")))
        assert ((cls == 255) == (obj == 255)).all() and (cls == 255).any()
        assert (aug[cls != 255] == cls[cls != 255]).all()
        for k in set(np.unique(obj)) - {0, 255}:
            assert len(np.unique(cls[obj == k])) == 1
    for split in ("train", "val"):
        seg = load_voc_seg(base, split, with_instances=True)
        det = load_voc_instances(base, split if split == "val" else "train", VOC_CLASSES)
        by_name = {os.path.basename(d["file_name"]): d for d in det}
        for d in seg:
            boxes = by_name[os.path.basename(d["file_name"])]["annotations"]
            assert sorted(a["category_id"] for a in d["annotations"]) == sorted(
                b["category_id"] for b in boxes
            )
            assert d["image_labels"] == sorted({a["category_id"] for a in d["annotations"]})
    aug_only = load_voc_seg(base, "train_aug", with_instances=False)
    assert len(aug_only) == 8 and all("annotations" not in d for d in aug_only)


def test_unknown_family_and_tiny_split_are_refused(tmp_path):
    with pytest.raises(ValueError, match="kitti"):
        write_miniature_datasets(str(tmp_path), ("kitti",))
    with pytest.raises(ValueError, match="num_val"):
        write_miniature_datasets(str(tmp_path), ("coco",), num_val=1)


def test_prepare_steps_remake_the_prepared_files(root, tmp_path):
    """tools/prepare_datasets.py's two steps, run on copies without their outputs, write files equal
    to the miniature ones (ADE20K: the documented conversion; Cityscapes: cityscapesscripts')."""
    import shutil

    from d2_instseg.data.prepare import prepare_ade20k, prepare_cityscapes

    copy = str(tmp_path / "copy")
    for sub in ("ADEChallengeData2016", "cityscapes"):
        shutil.copytree(os.path.join(root, sub), os.path.join(copy, sub))
    shutil.rmtree(os.path.join(copy, "ADEChallengeData2016", "annotations_detectron2"))
    for f in glob.glob(os.path.join(copy, "cityscapes", "gtFine", "*", "*", "*labelTrainIds.png")):
        os.remove(f)
    assert len(prepare_ade20k(copy)) == 6 and len(prepare_cityscapes(copy)) == 6
    for made in glob.glob(os.path.join(copy, "**", "*.png"), recursive=True):
        original = made.replace(copy, root)
        assert (np.asarray(Image.open(made)) == np.asarray(Image.open(original))).all(), made
    with pytest.raises(FileNotFoundError, match="ADEChallengeData2016"):
        prepare_ade20k(str(tmp_path / "empty"))
