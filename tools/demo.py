#!/usr/bin/env python
"""Run a trained model on images, a folder, a video or a registered dataset; write Visualizer
overlays.

    python tools/demo.py --config-file CFG --input a.jpg b.png --output out/ MODEL.WEIGHTS m.pth
    python tools/demo.py --config-file CFG --input path/to/folder --output out/ MODEL.WEIGHTS m.pth
    python tools/demo.py --config-file CFG --video-input in.mp4 --output out.mp4 MODEL.WEIGHTS m.pth
    python tools/demo.py --config-file CFG --from-dataset shapes_val --max-images 8 --output out/

Instance outputs are drawn with their class names, scores and masks; semantic outputs as a label
overlay. Class names come from the metadata of the config's first test dataset.
"""

import argparse
import os

import cv2
import numpy as np
import tqdm
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import read_image
from detectron2.utils.logger import setup_logger

import d2_instseg  # noqa: F401  (registers models and datasets)
from d2_instseg.data.image_files import list_images
from d2_instseg.engine import Predictor, setup_cfg
from d2_instseg.engine.visualize import draw_predictions


def argument_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", nargs="+", help="image files and/or folders of images")
    src.add_argument("--video-input", help="a video file")
    src.add_argument(
        "--from-dataset", help="a registered dataset name (its first --max-images images)"
    )
    parser.add_argument("--max-images", type=int, default=8)
    parser.add_argument("--output", required=True, help="output folder (or .mp4 for --video-input)")
    parser.add_argument("--confidence-threshold", type=float, default=0.5)
    parser.add_argument("opts", default=[], nargs=argparse.REMAINDER, help="config KEY VALUE pairs")
    return parser


class OverlayRenderer:
    """Runs the predictor on one image (RGB uint8, (H, W, 3)) and draws its outputs."""

    def __init__(self, cfg, confidence_threshold: float):
        self.predictor = Predictor(cfg)
        name = cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else "__unused"
        self.metadata = MetadataCatalog.get(name)
        self.threshold = confidence_threshold

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        outputs = self.predictor(rgb[:, :, ::-1])  # predictors take BGR, as cv2.imread gives
        return draw_predictions(rgb, outputs, self.metadata, self.threshold)


def run_images(renderer, files, output):
    os.makedirs(output, exist_ok=True)
    written = []
    for path in tqdm.tqdm(files, desc="demo"):
        rgb = read_image(path, format="RGB")
        out_path = os.path.join(output, os.path.splitext(os.path.basename(path))[0] + ".png")
        cv2.imwrite(out_path, renderer(rgb)[:, :, ::-1])
        written.append(out_path)
    return written


def run_video(renderer, video_path, output):
    video = cv2.VideoCapture(video_path)
    if not video.isOpened():
        raise ValueError(f"--video-input {video_path!r} cannot be opened")
    fps = video.get(cv2.CAP_PROP_FPS) or 25.0
    count = int(video.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer = None
    try:
        for _ in tqdm.tqdm(range(count) if count else iter(int, 1), desc="video"):
            ok, frame = video.read()
            if not ok:
                break
            drawn = renderer(frame[:, :, ::-1])[:, :, ::-1]
            if writer is None:
                h, w = drawn.shape[:2]
                writer = cv2.VideoWriter(output, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            writer.write(np.ascontiguousarray(drawn))
    finally:
        video.release()
        if writer is not None:
            writer.release()
    return [output]


def main(args):
    setup_logger(name="d2_instseg")
    cfg = setup_cfg(args, run_default_setup=False, check_data=False)
    renderer = OverlayRenderer(cfg, args.confidence_threshold)
    if args.video_input:
        return run_video(renderer, args.video_input, args.output)
    if args.from_dataset:
        files = [d["file_name"] for d in DatasetCatalog.get(args.from_dataset)[: args.max_images]]
    else:
        files = list_images(args.input)
    return run_images(renderer, files, args.output)


if __name__ == "__main__":
    main(argument_parser().parse_args())
