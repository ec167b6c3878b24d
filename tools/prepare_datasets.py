#!/usr/bin/env python
"""Prepare downloaded datasets for Detectron2's builtin registrations, under $DETECTRON2_DATASETS.

    python tools/prepare_datasets.py ade20k        # ADEChallengeData2016/annotations_detectron2
    python tools/prepare_datasets.py cityscapes    # cityscapes/gtFine/*/*/*_labelTrainIds.png
    python tools/prepare_datasets.py --miniature   # write miniature COCO, Cityscapes, ADE20K, VOC

``--root`` overrides $DETECTRON2_DATASETS. ``--miniature`` writes a handful of small images in each
dataset's exact layout (d2_instseg.data.datasets.miniature), e.g. to try a paper config on a new
machine.
"""

import argparse
import os
import sys

from d2_instseg.data.datasets.miniature import write_miniature_datasets
from d2_instseg.data.prepare import prepare_ade20k, prepare_cityscapes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", choices=["ade20k", "cityscapes"], default=[])
    parser.add_argument("--root", default=os.getenv("DETECTRON2_DATASETS", "datasets"))
    parser.add_argument("--miniature", action="store_true", help="write the miniature datasets")
    args = parser.parse_args(argv)
    if not args.datasets and not args.miniature:
        parser.error("name a dataset to prepare (ade20k, cityscapes) or pass --miniature")
    if args.miniature:
        for family, folder in write_miniature_datasets(args.root).items():
            print(f"miniature {family}: {folder}")
    for name in args.datasets:
        written = {"ade20k": prepare_ade20k, "cityscapes": prepare_cityscapes}[name](args.root)
        print(f"{name}: wrote {len(written)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
