#!/usr/bin/env python
"""Run a model on image files and save its predictions in the formats other tools read.

    python tools/predict.py --config-file CFG --input a.png folder/ --output preds/ \
        MODEL.WEIGHTS model_final.pth
    python tools/predict.py --config-file CFG --input big.tif --output preds/ --format tiff \
        TEST.TILING.ENABLED True INPUT.NORMALIZE percentile MODEL.WEIGHTS model_final.pth
    python tools/predict.py --config-file CFG --input folder/ --output preds/ \
        TEST.BACKEND onnxruntime MODEL.WEIGHTS exported/model.int8.onnx

Writes into --output (per image, named after the image file):

- ``coco``: ``predictions.json``, COCO results (``image_id``, ``category_id`` from the test
  dataset's metadata, ``bbox`` [x, y, w, h], ``score``, ``segmentation`` as RLE) and
  ``images.json``, the matching COCO ``images`` and ``categories``:
  ``COCO("images.json").loadRes("predictions.json")`` loads them;
- ``png`` / ``tiff``: ``instances/<name>.png|.tif`` (0 background, 1..K the instances by descending
  score; 16-bit, 32-bit TIFF above 65535 instances; overlapping pixels go to the higher score),
  ``classes/<name>.png|.tif`` (0 background, c + 1 for class c), and for semantic models
  ``semantic/<name>.png|.tif`` (the class of highest score, contiguous ids);
- ``all``: every one of them.

Each finished image leaves ``parts/<name>.json``; a second run skips those images (resume after an
interruption, or add images to a folder) and rewrites the two COCO files from all parts. An image
that cannot be read or segmented is reported by name, the others still run, and the exit status is
1. Instance masks below --confidence-threshold are not saved.
"""

import argparse
import json
import logging
import os
import sys

import cv2
import tqdm
from detectron2.data import MetadataCatalog
from detectron2.utils.logger import setup_logger

import d2_instseg  # noqa: F401  (registers models and datasets)
from d2_instseg.data.image_files import list_images, read_image_file
from d2_instseg.engine import Predictor, add_dataset_argument, setup_cfg
from d2_instseg.engine.predictions import (
    category_ids,
    class_label_image,
    coco_results,
    instance_label_image,
    label_dtype,
    semantic_label_image,
)

logger = logging.getLogger("d2_instseg.predict")
FORMATS = ("coco", "png", "tiff", "all")


def argument_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--input", nargs="+", required=True, help="image files and/or folders")
    parser.add_argument("--output", required=True, metavar="DIR")
    parser.add_argument("--format", choices=FORMATS, default="all")
    parser.add_argument(
        "--confidence-threshold", type=float, default=0.0, help="drop instances scored below"
    )
    add_dataset_argument(parser)
    parser.add_argument("opts", default=[], nargs=argparse.REMAINDER, help="config KEY VALUE pairs")
    return parser


def output_names(files):
    """A unique name per file: its stem, with its folder's name prefixed where stems repeat."""
    stems = [os.path.splitext(os.path.basename(f))[0] for f in files]
    repeated = {s for s in stems if stems.count(s) > 1}
    return [
        f"{os.path.basename(os.path.dirname(os.path.abspath(f)))}_{s}" if s in repeated else s
        for f, s in zip(files, stems)
    ]


def write_label_image(path: str, labels) -> None:
    """PNG (8 / 16-bit) or TIFF (any unsigned width, zlib-compressed), by the extension."""
    if path.endswith(".tif"):
        import tifffile

        tifffile.imwrite(path, labels, compression="zlib")
    elif labels.dtype.itemsize > 2:
        raise ValueError(f"{path}: over 65535 labels do not fit a PNG; use --format tiff")
    elif not cv2.imwrite(path, labels):
        raise OSError(f"{path}: could not be written")


class Writer:
    """Writes one image's predictions in the chosen formats; ``parts/<name>.json`` last."""

    def __init__(self, output: str, fmt: str, metadata, threshold: float):
        self.output, self.threshold = output, threshold
        self.extensions = {"png": [".png"], "tiff": [".tif"], "all": [".png", ".tif"]}.get(fmt, [])
        self.categories = category_ids(metadata)
        for folder in ("parts", "instances", "classes", "semantic"):
            os.makedirs(os.path.join(output, folder), exist_ok=True)

    def part_path(self, name: str) -> str:
        return os.path.join(self.output, "parts", name + ".json")

    def __call__(self, name: str, file_name: str, outputs) -> None:
        height = width = None
        part = {"file_name": os.path.abspath(file_name), "results": []}
        if "instances" in outputs:
            instances = outputs["instances"].to("cpu")
            instances = instances[instances.scores >= self.threshold]
            height, width = instances.image_size
            part["results"] = coco_results(instances, 0, self.categories)
            if self.extensions:
                labels = instance_label_image(instances, label_dtype(max(len(instances), 256)))
                classes = class_label_image(labels, instances.pred_classes.numpy())
                for ext in self.extensions:
                    self._write("instances", name + ext, labels)
                    self._write("classes", name + ext, classes)
        if "sem_seg" in outputs:
            height, width = outputs["sem_seg"].shape[1:]
            labels = semantic_label_image(outputs["sem_seg"])
            for ext in self.extensions:
                self._write("semantic", name + ext, labels)
        part.update(height=int(height), width=int(width))
        tmp = self.part_path(name) + ".tmp"
        with open(tmp, "w") as f:
            json.dump(part, f)
        os.replace(tmp, self.part_path(name))  # the image is done only once its part is complete

    def _write(self, folder, file_name, labels):
        write_label_image(os.path.join(self.output, folder, file_name), labels)

    def write_coco(self, names, metadata) -> str:
        """predictions.json and images.json from every part, image ids 1..N in input order."""
        images, results = [], []
        for image_id, name in enumerate(names, start=1):
            if not os.path.isfile(self.part_path(name)):
                continue
            with open(self.part_path(name)) as f:
                part = json.load(f)
            images.append(
                {
                    "id": image_id,
                    "file_name": part["file_name"],
                    "height": part["height"],
                    "width": part["width"],
                }
            )
            results += [dict(r, image_id=image_id) for r in part["results"]]
        classes = getattr(metadata, "thing_classes", None) or []
        categories = [{"id": i, "name": n} for i, n in zip(self.categories, classes)]
        with open(os.path.join(self.output, "images.json"), "w") as f:
            json.dump({"images": images, "annotations": [], "categories": categories}, f)
        path = os.path.join(self.output, "predictions.json")
        with open(path, "w") as f:
            json.dump(results, f)
        return path


def main(argv=None) -> int:
    args = argument_parser().parse_args(argv)
    setup_logger(name="d2_instseg")
    cfg = setup_cfg(args, run_default_setup=False, check_data=False)
    files = list_images(args.input)
    names = output_names(files)
    metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0] if len(cfg.DATASETS.TEST) else "__unused")
    writer = Writer(args.output, args.format, metadata, args.confidence_threshold)
    todo = [(n, f) for n, f in zip(names, files) if not os.path.isfile(writer.part_path(n))]
    if len(todo) < len(files):
        logger.info(f"{len(files) - len(todo)} of {len(files)} images already done: skipped")
    predictor = Predictor(cfg) if todo else None
    failed = []
    for name, path in tqdm.tqdm(todo, desc="predict"):
        try:
            outputs = predictor(read_image_file(path))
        except ValueError as e:  # an unreadable or unusable image: named, the others go on
            logger.error(str(e) if path in str(e) else f"{path}: {e}")
            failed.append(path)
            continue
        writer(name, path, outputs)
    if args.format in ("coco", "all"):
        print(f"Wrote {writer.write_coco(names, metadata)}")
    print(f"{len(files) - len(failed)} of {len(files)} images segmented into {args.output}")
    if failed:
        print("Not segmented: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
