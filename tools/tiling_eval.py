#!/usr/bin/env python
"""Tiled inference on a large mosaic against the same images segmented one by one.

    python tools/tiling_eval.py --config-file configs/shapes/centermask.yaml --size 4096 \
        --tile 512 --overlap 96 --output output/tiling/centermask.json \
        --tiled-opts MODEL.CENTERMASK.TOPK_TEST 1600 -- \
        MODEL.WEIGHTS output/centermask/model_final.pth MODEL.CENTERMASK.TOPK_TEST 100

Builds a ``size`` x ``size`` mosaic of ``cell`` x ``cell`` cells from DATASETS.TEST[0] (the images
repeat when there are fewer than cells), with the ground truth moved along. ``--background cells``
pastes each image, cropped to the cell or padded with its mean colour: the mosaic then has edges
between cells that no single image has. ``--background shared`` draws one background over the whole
mosaic (the shapes generator's, seeded by ``--seed``) and paints each image's visible shape masks on
it in colours that stand out from the background under them, as the generator does, plus its sensor
noise: a large image without seams of its own. Then, in this process:

1. one by one: every cell (its pixels of the mosaic) through ``d2_instseg.Predictor`` (no tiling),
   its instances moved to their place in the mosaic;
2. tiled: the whole mosaic through the Predictor with ``TEST.TILING`` (``--tile``, ``--overlap``),
   peak memory measured as the process' peak RSS during it (the peak is reset just before it where
   Linux allows, see ``reset_peak_rss``) and its growth over what the process held before (model,
   mosaic, ground truth); ``--memory-only`` skips the one-by-one run.

Both are scored as one image by COCO mask AP (pycocotools, up to 100,000 detections) against the
same ground truth: the difference is what tiling costs. Prints a JSON line and writes --output.
"""

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import pycocotools.mask as mask_util
import torch
import tqdm
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import annotations_to_instances, read_image
from detectron2.structures import Boxes, Instances
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import d2_instseg  # noqa: F401  (registers models and datasets)
from d2_instseg.data.datasets.synthetic_shapes import distinct_colour, draw_background
from d2_instseg.engine import Predictor, setup_cfg
from d2_instseg.engine.predictions import coco_results
from d2_instseg.engine.tiling import crop_to_rle

MAX_DETECTIONS = 100_000


def argument_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--size", type=int, default=4096, help="mosaic side, pixels")
    parser.add_argument("--cell", type=int, default=128, help="cell side, pixels")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=96, help="at least the largest object")
    parser.add_argument(
        "--background",
        choices=("cells", "shared"),
        default="cells",
        help="cells: the images pasted side by side; shared: their shapes on one background",
    )
    parser.add_argument("--seed", type=int, default=0, help="of the shared background and colours")
    parser.add_argument("--memory-only", action="store_true", help="only the tiled run")
    parser.add_argument("--output", default="output/tiling/result.json")
    parser.add_argument(
        "--tiled-opts",
        nargs="*",
        default=[],
        metavar="KEY VALUE",
        help="config pairs for the tiled run only: a per-image cap on detections (e.g. "
        "MODEL.CENTERMASK.TOPK_TEST) must grow with the tile's area over a cell's, or a tile "
        "holding many cells returns fewer objects per cell than one cell alone",
    )
    parser.add_argument("opts", default=[], nargs=argparse.REMAINDER)
    return parser


def fit_to_cell(image: np.ndarray, cell: int) -> np.ndarray:
    """(H, W, 3) -> (cell, cell, 3): cropped at the bottom / right, padded with the mean colour."""
    out = np.empty((cell, cell, 3), dtype=image.dtype)
    out[:] = image.reshape(-1, 3).mean(0).astype(image.dtype)
    h, w = min(cell, image.shape[0]), min(cell, image.shape[1])
    out[:h, :w] = image[:h, :w]
    return out


def build_mosaic(dicts, size: int, cell: int, image_format: str, rng=None):
    """The mosaic (size, size, 3) uint8, its cells [(y, x, cell image)], and COCO ground truth.

    Without ``rng`` each image is pasted into its cell (``fit_to_cell``); with one, the cells share
    one background drawn over the whole mosaic, and each image's visible shape masks (cropped to the
    cell) are painted on it in a colour distinct from the background under them, then the
    generator's sensor noise (sigma 4) is added everywhere.
    """
    per_side = size // cell
    shared = rng is not None
    mosaic = draw_background(rng, size, size) if shared else np.zeros((size, size, 3), np.uint8)
    annotations, corners = [], []
    for i in tqdm.trange(per_side * per_side, desc="mosaic"):
        d = dicts[i % len(dicts)]
        y, x = (i // per_side) * cell, (i % per_side) * cell
        corners.append((y, x))
        if not shared:
            image = read_image(d["file_name"], format=image_format)
            mosaic[y : y + cell, x : x + cell] = fit_to_cell(image, cell)
        gt = annotations_to_instances(d["annotations"], (d["height"], d["width"]), "bitmask")
        for mask, label in zip(gt.gt_masks.tensor.numpy(), gt.gt_classes.tolist()):
            crop = mask[:cell, :cell]
            if not crop.any():
                continue
            if shared:  # the visible masks are disjoint: painting order does not matter
                region = mosaic[y : y + crop.shape[0], x : x + crop.shape[1]]
                region[crop] = distinct_colour(rng, region, crop)
            rle = crop_to_rle(crop, y, x, size, size)
            rle["counts"] = rle["counts"].decode("ascii")
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": 1,
                    "category_id": label,
                    "segmentation": rle,
                    "area": float(mask_util.area(rle)),
                    "bbox": mask_util.toBbox(rle).tolist(),
                    "iscrowd": 0,
                }
            )
    if shared:
        for row in mosaic:  # row by row: a float64 noise array of the whole mosaic is 400 MB
            row += rng.normal(0, 4, size=row.shape)
        mosaic = np.clip(np.round(mosaic), 0, 255).astype(np.uint8)
        if image_format == "BGR":  # the generator draws RGB
            mosaic = np.ascontiguousarray(mosaic[:, :, ::-1])
    cells = [(y, x, mosaic[y : y + cell, x : x + cell]) for y, x in corners]
    return mosaic, cells, annotations


def reset_peak_rss() -> bool:
    """Reset the process' peak RSS to its current RSS (Linux >= 4.0: ``5`` to /proc/self/clear_refs,
    which getrusage's ru_maxrss follows), so that the peak read later is the tiled run's own and not
    the mosaic's build (whose float temporaries reach ~2 GB at 4096²); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def shift(instances: Instances, y: int, x: int, size: int) -> Instances:
    """One cell's instances as instances of the mosaic (masks as RLE)."""
    out = Instances((size, size))
    out.pred_boxes = Boxes(instances.pred_boxes.tensor + torch.tensor([x, y, x, y]))
    out.scores, out.pred_classes = instances.scores, instances.pred_classes
    masks = instances.pred_masks.numpy().astype(bool)
    out.pred_masks_rle = [crop_to_rle(m, y, x, size, size) for m in masks]
    return out


def mask_ap(gt: COCO, results) -> dict:
    """COCO mask AP and AP50 of the one mosaic image, up to MAX_DETECTIONS detections (COCOeval's
    summary reads AP at 100 detections, far fewer than the mosaic's objects, so the figures come
    from its precision table at the last maxDets)."""
    if not results:
        return {"AP": 0.0, "AP50": 0.0, "detections": 0}
    evaluator = COCOeval(gt, gt.loadRes(results), "segm")
    evaluator.params.maxDets = [MAX_DETECTIONS]
    evaluator.evaluate()
    evaluator.accumulate()
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # (IoUs, recalls, classes), area all

    def mean(p):
        return 100 * float(p[p > -1].mean()) if (p > -1).any() else 0.0

    return {"AP": mean(precision), "AP50": mean(precision[0]), "detections": len(results)}


def main(argv=None):
    args = argument_parser().parse_args(argv)
    args.opts = args.opts[1:] if args.opts[:1] == ["--"] else args.opts  # after --tiled-opts
    cfg = setup_cfg(args, run_default_setup=False, check_data=False)
    dicts = DatasetCatalog.get(cfg.DATASETS.TEST[0])
    rng = np.random.default_rng(args.seed) if args.background == "shared" else None
    mosaic, cells, annotations = build_mosaic(dicts, args.size, args.cell, cfg.INPUT.FORMAT, rng)
    # the ground truth's category ids are the contiguous classes: results keep them as they are
    num_classes = len(MetadataCatalog.get(cfg.DATASETS.TEST[0]).thing_classes)
    identity = list(range(num_classes))
    gt = COCO()
    gt.dataset = {
        "images": [{"id": 1, "height": args.size, "width": args.size}],
        "annotations": annotations,
        "categories": [{"id": c, "name": str(c)} for c in range(num_classes)],
    }
    gt.createIndex()
    bgr = mosaic if cfg.INPUT.FORMAT == "BGR" else mosaic[:, :, ::-1]
    report = {"config": args.config_file, "size": args.size, "cell": args.cell}
    report.update(background=args.background, seed=args.seed)
    report["mosaic_peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report.update(tile=args.tile, overlap=args.overlap, objects=len(annotations))
    if not args.memory_only:
        single = Predictor(cfg)
        results, start = [], time.perf_counter()
        for y, x, image in tqdm.tqdm(cells, desc="one by one"):
            image = image if cfg.INPUT.FORMAT == "BGR" else image[:, :, ::-1]
            instances = single(np.ascontiguousarray(image))["instances"].to("cpu")
            results += coco_results(shift(instances, y, x, args.size), 1, identity)
        report["one_by_one"] = dict(mask_ap(gt, results), seconds=time.perf_counter() - start)
        del single
    tiled_cfg = cfg.clone()
    tiled_cfg.defrost()
    tiled_cfg.TEST.TILING.ENABLED = True
    tiled_cfg.TEST.TILING.TILE, tiled_cfg.TEST.TILING.OVERLAP = args.tile, args.overlap
    tiled_cfg.merge_from_list(args.tiled_opts)
    tiled = Predictor(tiled_cfg)
    report["tiled"] = {"peak_reset": reset_peak_rss()}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    instances = tiled(np.ascontiguousarray(bgr))["instances"]
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report["tiled"].update(seconds=seconds, peak_rss_MB=peak, rss_growth_MB=peak - before)
    if not args.memory_only:
        report["tiled"].update(mask_ap(gt, coco_results(instances, 1, identity)))
    else:
        report["tiled"]["detections"] = len(instances)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print("TILING " + json.dumps(report))
    return 0


if __name__ == "__main__":
    with torch.no_grad():
        sys.exit(main())
