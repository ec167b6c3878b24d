#!/usr/bin/env python
"""Export a trained model to TorchScript, ONNX or a torch.export program (with its JSON sidecar),
optionally quantised to int8 for the CPU.

    python tools/export_model.py --config-file configs/shapes/centermask.yaml --format onnx \
        --output exported/centermask MODEL.WEIGHTS output/centermask/model_final.pth
    python tools/export_model.py --config-file CFG --format onnx --output DIR \
        --quantize int8 --calib-images 64 MODEL.WEIGHTS model_final.pth
    python tools/export_model.py --config-file CFG --format torchscript --output DIR \
        MODEL.WEIGHTS model_final.pth
    python tools/export_model.py --config-file CFG --format pt2 --output DIR \
        --quantize int8 --calib-images 64 MODEL.WEIGHTS model_final.pth

Writes DIR/model.onnx (or model.ts, model.pt2) and DIR/model.onnx.json, the sidecar an
application needs (config, class names, input format and normalisation, what each output is); with
``--quantize int8`` also DIR/model.int8.onnx (or model.int8.pt2) (+ .json), calibrated on the first
N images of DATASETS.TRAIN[0] as the test loader prepares them. pt2 (``torch.export``, run by
inductor with TEST.BACKEND inductor) is the fastest CPU path for CenterMask in int8 (README
"Deploying"); it takes the package's models and FCN-8s / UNet, not Mask R-CNN. Every model of the
package exports to TorchScript and ONNX (CenterMaskPoint, SpatialEmbeddings, CPNetSegmentor,
FCN-8s / UNet on Detectron2's SemanticSegmentor), and Detectron2's Mask R-CNN through Detectron2's
TracingAdapter. Run an
export with ``d2_instseg.Predictor`` and ``TEST.BACKEND onnxruntime`` (or ``torchscript``,
``inductor``), ``MODEL.WEIGHTS DIR/model.onnx``: same inputs, same outputs as the eager model.
"""

import argparse
import itertools
import logging
import sys

import torch
from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

import d2_instseg  # noqa: F401  (registers models and datasets)
from d2_instseg.engine import (
    SafeCheckpointer,
    Trainer,
    add_dataset_argument,
    prepare_for_inference,
    setup_cfg,
)
from d2_instseg.export import FORMATS, export_model
from d2_instseg.export.quantize import int8_path, quantize_int8_on_batches

logger = logging.getLogger("d2_instseg.export")


def parse_size(text: str):
    h, w = text.lower().split("x")
    return int(h), int(w)


def argument_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--format", required=True, choices=sorted(FORMATS))
    parser.add_argument("--output", required=True, metavar="DIR", help="folder to write into")
    parser.add_argument(
        "--size",
        type=parse_size,
        default=None,
        metavar="HxW",
        help="size of the tracing input (default: CPNet's crop, else 512x512); the export runs "
        "at other sizes too",
    )
    parser.add_argument(
        "--quantize",
        choices=["int8"],
        help="also write an int8 model (onnx: ONNX Runtime's quantiser; pt2: PyTorch's PT2E x86)",
    )
    parser.add_argument(
        "--calib-images",
        type=int,
        default=64,
        metavar="N",
        help="calibration images for --quantize (the first N of DATASETS.TRAIN[0]; the "
        "calibration's memory grows with N and the image size)",
    )
    add_dataset_argument(parser)
    parser.add_argument("opts", default=[], nargs=argparse.REMAINDER, help="config KEY VALUE pairs")
    return parser


def calibration_batches(cfg, count: int):
    """The first ``count`` images of DATASETS.TRAIN[0] as the test loader gives them."""
    if not len(cfg.DATASETS.TRAIN):
        raise SystemExit("--quantize int8 calibrates on DATASETS.TRAIN[0]; the config has none")
    loader = Trainer.build_test_loader(cfg, cfg.DATASETS.TRAIN[0])
    return itertools.islice(loader, count)


def main(argv=None) -> int:
    args = argument_parser().parse_args(argv)
    setup_logger(name="d2_instseg")
    if args.quantize and args.format not in ("onnx", "pt2"):
        raise SystemExit("--quantize int8 needs --format onnx or pt2")
    cfg = setup_cfg(args, run_default_setup=False, check_data=False)
    if cfg.TEST.BACKEND != "torch":
        raise SystemExit("Export reads a PyTorch checkpoint: leave TEST.BACKEND at 'torch'")
    model = build_model(cfg).eval()
    if cfg.MODEL.WEIGHTS:
        SafeCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    else:
        logger.warning("MODEL.WEIGHTS is empty: exporting randomly initialised weights")
    prepare_for_inference(model, cfg)
    path = export_model(model, cfg, args.output, args.format, size=args.size)
    print(f"Wrote {path} and {path}.json")
    if args.quantize:
        target = int8_path(path)
        batches = calibration_batches(cfg, args.calib_images)
        inputs = quantize_int8_on_batches(path, target, batches, device=cfg.MODEL.DEVICE)
        print(f"Wrote {target} and {target}.json ({len(inputs)} calibration inputs)")
    return 0


if __name__ == "__main__":
    with torch.no_grad():
        sys.exit(main())
