"""A tiny CenterMask training run that must learn, then DefaultPredictor + Visualizer on the result.

Trains 120 Adam iterations of 8 images on shapes_train (400 images; on the 64 of shapes_tiny_train
the same run memorised them and reached 18.3 AP50 on held-out images) and evaluates mask AP on the
held-out shapes_tiny_val (24 images) with Detectron2's COCOEvaluator. Threshold: segm AP50 >= 20. An
untrained model scores 0.0 AP50 (measured with seeds 0 and 1, even with its size head biased to the
median object size), and this run reached AP50 30.2 (AP 12.8): 20 is far above chance, with margin
for platform-dependent numerics.
"""

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_test_loader
from detectron2.data.detection_utils import read_image
from detectron2.engine import DefaultPredictor
from detectron2.evaluation import COCOEvaluator, inference_on_dataset
from detectron2.utils.visualizer import Visualizer


@pytest.fixture(scope="module")
def trained(trained_centermask):
    """(cfg, model) of the session's trained CenterMask (tests/conftest.py)."""
    return trained_centermask[:2]


def test_tiny_training_learns_masks(trained, tmp_path):
    cfg, model = trained
    DatasetCatalog.get("shapes_tiny_val")  # writes its JSON on first use; the evaluator reads it
    evaluator = COCOEvaluator("shapes_tiny_val", output_dir=str(tmp_path), use_fast_impl=False)
    loader = build_detection_test_loader(cfg, "shapes_tiny_val")
    results = inference_on_dataset(model, loader, evaluator)
    assert results["segm"]["AP50"] >= 20.0, results


def test_default_predictor_and_visualizer(trained):
    cfg, model = trained
    predictor = DefaultPredictor(cfg)
    predictor.model.load_state_dict(model.state_dict())
    record = DatasetCatalog.get("shapes_tiny_val")[0]
    image = read_image(record["file_name"], format="BGR")  # DefaultPredictor takes BGR
    instances = predictor(image)["instances"].to("cpu")
    h, w = image.shape[:2]
    assert instances.image_size == (h, w)
    assert instances.pred_masks.shape[1:] == (h, w)
    assert len(instances) > 0
    vis = Visualizer(image[:, :, ::-1], MetadataCatalog.get("shapes_tiny_val"))
    out = vis.draw_instance_predictions(instances).get_image()
    assert out.shape == (h, w, 3)
    # Something was drawn on top of the image.
    assert np.abs(out.astype(np.int32) - image[:, :, ::-1].astype(np.int32)).sum() > 0
