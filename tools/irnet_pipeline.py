#!/usr/bin/env python
"""IRNet end to end: image-level labels -> CAMs -> relation labels -> IRNet -> pseudo instance masks
-> Detectron2 Mask R-CNN trained on them.

    python tools/irnet_pipeline.py --config-file configs/shapes/irnet.yaml            # all steps
    python tools/irnet_pipeline.py --config-file ... --steps synthesize,maskrcnn      # some steps
    python tools/irnet_pipeline.py --config-file ... MODEL.IRNET.CAM.EPOCHS 2         # overrides

``--steps all`` resumes after the last finished step (markers in OUTPUT_DIR/steps); named steps are
always (re)run. Reports: OUTPUT_DIR/reports/<step>.json and summary.txt.
"""

import sys

from detectron2.engine import default_argument_parser

from d2_instseg.engine import add_dataset_argument, check_weights_reachable, setup_cfg
from d2_instseg.irnet.pipeline import IRNetPipeline, parse_steps
from d2_instseg.irnet.steps import STEPS


def main(argv=None) -> int:
    parser = default_argument_parser()
    parser.add_argument(
        "--steps", default="all", help="'all' or a comma list of: " + ", ".join(STEPS)
    )
    add_dataset_argument(parser)
    args = parser.parse_args(argv)
    steps = parse_steps(args.steps)
    cfg = setup_cfg(args)  # checks the datasets and the CAM step's MODEL.WEIGHTS
    pipeline = IRNetPipeline(cfg)
    if "maskrcnn" in steps:  # ... and the final Mask R-CNN's, before hours of the other steps
        check_weights_reachable(pipeline.mask_rcnn_cfg().MODEL.WEIGHTS)
    pipeline.run(steps, resume=args.steps.strip() == "all")
    print(pipeline.write_summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
