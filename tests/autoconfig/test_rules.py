"""The scaling rules: fed each paper's own dataset statistics they return the paper's settings
(self-consistency), and on hand-computed cases the values worked out here from the rules' stated
derivations (docs/autoconfig.md)."""

import dataclasses
import math

import pytest

from d2_instseg.autoconfig import (
    ADE20K,
    CITYSCAPES,
    COCO,
    COCO_AT_800,
    VOC,
    DataStats,
    centermask_input_scale,
    centermask_rules,
    irnet_rules,
    mask_rcnn_rules,
    semantic_reference,
    semantic_rules,
    spatial_embed_rules,
)


def _values(derived):
    return {d.key: d.value for d in derived}


def _stats(**kw):
    base = dict(
        image_short_side=200.0,
        image_long_side=300.0,
        image_long_side_max=300.0,
        object_size=20.0,
        instances_per_image=3.0,
        max_instances=5,
        num_classes=2,
    )
    base.update(kw)
    return DataStats(**base)


# ---- self-consistency: the paper's statistics give the paper's values


def test_spatial_embeddings_at_cityscapes_is_the_authors_setting():
    v = _values(spatial_embed_rules(DataStats.from_reference(CITYSCAPES)))
    assert v["INPUT.MIN_SIZE_TEST"] == 1024 and v["INPUT.MAX_SIZE_TEST"] == 2048
    assert v["MODEL.SPATIAL_EMBED.PIXELS_PER_UNIT"] == 1023
    assert v["MODEL.SPATIAL_EMBED.SIGMA_BIAS_INIT"] == pytest.approx(1.0, abs=1e-4)
    assert v["MODEL.SPATIAL_EMBED.MIN_PIXELS"] == 128
    assert v["INPUT.CROP.ENABLED"] and v["INPUT.CROP.SIZE"] == [512, 512]
    assert "SOLVER.BASE_LR" not in v  # not size-dependent: the base config's


def test_centermask_at_coco_is_the_papers_setting():
    stats = DataStats.from_reference(COCO)
    assert centermask_input_scale(stats) == 1.0  # COCO at its own resolution (keep_res)
    v = _values(centermask_rules(stats))
    assert v["MODEL.CENTERMASK.TOPK_TEST"] == 100 and v["MODEL.CENTERMASK.SHAPE_SIZE"] == 32
    assert v["TEST.DETECTIONS_PER_IMAGE"] == 100
    assert v["INPUT.MIN_SIZE_TEST"] == 480 and v["INPUT.MAX_SIZE_TEST"] == 640


def test_mask_rcnn_at_coco_800_is_detectron2s_anchors():
    v = _values(mask_rcnn_rules(DataStats.from_reference(COCO_AT_800)))
    assert v["MODEL.ANCHOR_GENERATOR.SIZES"] == [[32], [64], [128], [256], [512]]
    assert v["INPUT.MIN_SIZE_TEST"] == 800


@pytest.mark.parametrize(
    "ref, crop, prior, stride, base",
    [(ADE20K, 480, 60, 320, [512, 2048]), (CITYSCAPES, 768, 96, 512, [1024, 2048])],
)
def test_cpnet_at_its_datasets_is_the_released_configs(ref, crop, prior, stride, base):
    stats = DataStats.from_reference(ref)
    assert semantic_reference(stats) is ref  # the nearest aspect ratio is the dataset's own
    v = _values(semantic_rules(stats, "cpnet"))
    assert v["INPUT.CROP.SIZE"] == [crop, crop]
    assert v["MODEL.CPNET.PRIOR_SIZE"] == [prior, prior]
    assert v["MODEL.CPNET.TEST.SLIDE_STRIDE"] == [stride, stride]
    assert v["INPUT.RANDOM_SCALE.BASE_SIZE"] == base
    assert "MODEL.CPNET.PRIOR_SIZE" not in _values(semantic_rules(stats, "fcn8s"))


def test_irnet_at_voc_is_the_authors_setting():
    v = _values(irnet_rules(DataStats.from_reference(VOC)))
    k = "MODEL.IRNET."
    assert v[k + "IRN.RADIUS"] == 10 and v[k + "SYNTHESIS.RADIUS"] == 5
    assert v[k + "SYNTHESIS.EXP_TIMES"] == 8  # t = 256
    assert v[k + "SYNTHESIS.CLUSTER_THRESH"] == 2.5
    assert v[k + "RELATION.CRF_GAUSSIAN"] == (3.0, 3.0)
    assert v[k + "RELATION.CRF_BILATERAL"] == (50.0, 5.0, 10.0)
    assert v[k + "CAM.RESIZE_LONG"] == (320, 640) and v[k + "CAM.CROP_SIZE"] == 512
    assert v[k + "CAM.SCALES"] == (1.0, 0.5, 1.5, 2.0) and v[k + "IRN.CROP_SIZE"] == 512
    assert v[k + "SYNTHESIS.MIN_AREA_FRAC"] == 0.01
    # the expected foreground share, 2.4 x 110^2 / (375 x 500); the thresholds stay the paper's
    # for CAMs that this share exceeds at the paper's 0.15 (tests/irnet/test_calibration.py)
    assert v[k + "CAM.FG_FRACTION"] == pytest.approx(0.1549)


# ---- hand-computed cases


def test_spatial_embeddings_hand_case():
    """Short side 256 (input 256 rows), median object 25 px = half Cityscapes' 50: ppu 255; margin
    4.875 px x 0.5 at 255 px per unit, so bias = 1 - 0.2 ln((1023 x 0.5) / 255) = 0.86078;
    MIN_PIXELS 128 / 4 = 32; crop 512 / 2 = 256 < the 300 px long side: on."""
    v = _values(spatial_embed_rules(_stats(image_short_side=256.0, object_size=25.0)))
    assert v["MODEL.SPATIAL_EMBED.PIXELS_PER_UNIT"] == 255
    assert v["MODEL.SPATIAL_EMBED.SIGMA_BIAS_INIT"] == pytest.approx(
        1 - 0.2 * math.log(511.5 / 255), abs=1e-4
    )
    assert v["MODEL.SPATIAL_EMBED.MIN_PIXELS"] == 32
    assert v["INPUT.CROP.SIZE"] == [256, 256]
    # a crop larger than every image is switched off instead
    small = _values(spatial_embed_rules(_stats(image_short_side=256.0, object_size=40.0)))
    assert small["INPUT.CROP.ENABLED"] is False  # 512 x 40 / 50 = 410 > 300


def test_centermask_hand_case():
    """Objects of 21.4 px (half COCO's 42.8): x2 -> 416 x 608 inputs (208 x 300 doubled, long side
    600 rounded to 32); the median object is then
    42.8 px, so S = 32; 15.4 instances per image = 2x COCO's 7.7 -> top-200 (the densest image's
    50 is fewer)."""
    stats = _stats(
        image_short_side=208.0, object_size=21.4, instances_per_image=15.4, max_instances=50
    )
    v = _values(centermask_rules(stats))
    assert v["INPUT.MIN_SIZE_TEST"] == 416 and v["INPUT.MAX_SIZE_TEST"] == 608
    assert v["MODEL.CENTERMASK.TOPK_TEST"] == 200 and v["MODEL.CENTERMASK.SHAPE_SIZE"] == 32
    assert v["TEST.DETECTIONS_PER_IMAGE"] == 100  # 200 candidates; COCO scores the 100 best
    sparse = _values(
        centermask_rules(dataclasses.replace(stats, instances_per_image=2.6, max_instances=5))
    )
    assert sparse["TEST.DETECTIONS_PER_IMAGE"] == 40  # 100 x 2.6 / 7.7 = 33.8 -> 40
    dense = _values(centermask_rules(dataclasses.replace(stats, max_instances=230)))
    assert dense["MODEL.CENTERMASK.TOPK_TEST"] == 230  # never fewer than the densest image
    tiny = centermask_input_scale(_stats(object_size=5.0))
    assert tiny == 2.0  # 42.8 / 5 = 8.6, capped at 2 (upsampling adds no detail)


def test_mask_rcnn_hand_case():
    """Median object 17.8 px at the images' own 200 px: 32 x 17.8 / 71.33 = 8.0 -> 8..128."""
    v = _values(mask_rcnn_rules(_stats(object_size=17.8)))
    assert v["MODEL.ANCHOR_GENERATOR.SIZES"] == [[8], [16], [32], [64], [128]]
    tiny = _values(mask_rcnn_rules(_stats(object_size=4.0)))
    assert tiny["MODEL.ANCHOR_GENERATOR.SIZES"][0] == [8]  # never below two P2 cells


def test_semantic_hand_case():
    """A 2:1 data set (200 x 400) takes Cityscapes as its reference: crop 768 / 1024 x 200 = 150
    -> 152 (multiple of 8), prior 19, stride 2/3 x 152 = 101 -> 104; base [200, 400]."""
    stats = _stats(image_short_side=200.0, image_long_side=400.0)
    v = _values(semantic_rules(stats, "cpnet"))
    assert v["INPUT.CROP.SIZE"] == [152, 152] and v["MODEL.CPNET.PRIOR_SIZE"] == [19, 19]
    assert v["MODEL.CPNET.TEST.SLIDE_STRIDE"] == [104, 104]
    assert v["INPUT.RANDOM_SCALE.BASE_SIZE"] == [200, 400]


def test_irnet_hand_case():
    """Objects of 44 px (r = 0.4 of VOC's 110) in 250 px images (half VOC's 500): radius 4, walk
    radius 2, sqrt(t) = 16 x 0.4 x 5 / 2 = 16 -> t = 256; cluster 1.0; CRF sxy 1.2 and 20; the CAM
    scale is 110 / 44 = 2.5 capped at 2, so the CAM crop is 512 x 0.5 x 2 = 512; the smallest
    scored segment 1,875 px x 0.16 = 300 px, of a 200 x 250 px image 0.006; 3 objects of 44^2 px
    cover 0.1162 of that image."""
    v = _values(irnet_rules(_stats(object_size=44.0, image_long_side=250.0)))
    k = "MODEL.IRNET."
    assert v[k + "IRN.RADIUS"] == 4 and v[k + "SYNTHESIS.RADIUS"] == 2
    assert v[k + "SYNTHESIS.EXP_TIMES"] == 8
    assert v[k + "SYNTHESIS.CLUSTER_THRESH"] == pytest.approx(1.0)
    assert v[k + "RELATION.CRF_GAUSSIAN"] == (1.2, 3.0)
    assert v[k + "RELATION.CRF_BILATERAL"] == (20.0, 5.0, 10.0)
    assert v[k + "CAM.RESIZE_LONG"] == (320, 640) and v[k + "CAM.CROP_SIZE"] == 512
    assert v[k + "CAM.SCALES"] == (2.0, 1.0, 3.0, 4.0) and v[k + "IRN.CROP_SIZE"] == 256
    assert v[k + "SYNTHESIS.MIN_AREA_FRAC"] == pytest.approx(0.006)
    assert v[k + "CAM.FG_FRACTION"] == pytest.approx(0.1162)
    # measured on masks, the fingerprint's share is taken as it is
    measured = _values(irnet_rules(_stats(object_size=44.0, foreground_share=0.3)))
    assert measured[k + "CAM.FG_FRACTION"] == 0.3


def test_rules_refuse_data_without_instances():
    with pytest.raises(ValueError, match="no instance annotations"):
        centermask_rules(_stats(object_size=0.0))
