#!/usr/bin/env python
"""Train and evaluate any d2_instseg model (or Detectron2's own) in Detectron2's style.

    python tools/train_net.py --config-file configs/shapes/mask_rcnn_R18_FPN.yaml
    python tools/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS path/to/model.pth
    python tools/train_net.py --config-file CFG --eval-only TEST.BACKEND onnxruntime \
        MODEL.WEIGHTS exported/model.int8.onnx      # an export of tools/export_model.py
    python tools/train_net.py --config-file CFG --eval-only TEST.AMP.ENABLED True \
        MODEL.WEIGHTS path/to/model.pth             # the network in bfloat16 (float16 on CUDA)
    python tools/train_net.py --config-file CFG --num-gpus 2            # 2 processes (gloo on CPU)
    python tools/train_net.py --config-file CFG --resume
    python tools/train_net.py --config-file configs/shapes/mask_rcnn_R18_FPN.yaml \
        --dataset mine_train:mine/train.json:mine/images \
        --dataset mine_val:mine/val.json:mine/images \
        DATASETS.TRAIN "('mine_train',)" DATASETS.TEST "('mine_val',)"
    python tools/train_net.py --config-file CFG --check-data    # what CFG needs, and what is here

Before building anything, the datasets' files and MODEL.WEIGHTS are checked (a missing one stops the
run with the path and how to prepare it); the Trainer then builds the evaluator of every test set.
On success the final evaluation results are also written to OUTPUT_DIR/results.json.
"""

import json
import logging
import os
import sys
from datetime import timedelta

from detectron2.engine import default_argument_parser, launch
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from torch.multiprocessing.spawn import ProcessException

import d2_instseg  # noqa: F401  (registers models and datasets)
from d2_instseg.engine import (
    SafeCheckpointer,
    Trainer,
    add_dataset_argument,
    autocast_network,
    load_exported,
    requirements_report,
    setup_cfg,
)


def argument_parser():
    parser = default_argument_parser()
    add_dataset_argument(parser)
    parser.add_argument(
        "--dist-timeout",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="how long a process waits for the others in a collective before it fails "
        "(Detectron2's 30 min by default); a process that dies is noticed sooner, by the launcher",
    )
    parser.add_argument(
        "--check-data",
        action="store_true",
        help="list the files the config's datasets and weights need, present or missing, and exit "
        "(status 0 if all are present, 1 otherwise)",
    )
    return parser


def main(args):
    cfg = setup_cfg(args)
    # which process is which rank (rank > 0 log to OUTPUT_DIR/log.txt.rank<r>)
    logging.getLogger("detectron2").info(f"Rank {comm.get_rank()} runs as pid {os.getpid()}")
    if args.eval_only:
        if cfg.TEST.BACKEND == "torch":
            model = Trainer.build_model(cfg)
            SafeCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
                cfg.MODEL.WEIGHTS, resume=args.resume
            )
            if cfg.TEST.AMP.ENABLED:  # as the Predictor runs it
                autocast_network(model, cfg.MODEL.DEVICE.split(":")[0])
        else:  # the exported file MODEL.WEIGHTS behind the eager model's inference function
            model = load_exported(cfg)
        results = Trainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, results)
    else:
        if cfg.TEST.BACKEND != "torch":
            raise SystemExit(
                f"TEST.BACKEND {cfg.TEST.BACKEND!r} runs an exported model: use it with "
                "--eval-only (or d2_instseg.Predictor); training needs TEST.BACKEND 'torch'"
            )
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        results = trainer.train()
    if comm.is_main_process() and results:
        with open(os.path.join(cfg.OUTPUT_DIR, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
    return results


def describe_dead_process(error: ProcessException, args) -> str:
    """The message a multi-process run ends with when one of its processes failed."""
    rank = args.machine_rank * args.num_gpus + error.error_index
    signal_name = getattr(error, "signal_name", None)
    if signal_name:
        how = f"was killed by {signal_name}"
    elif hasattr(error, "exit_code"):
        how = f"exited with code {error.exit_code}"
    else:
        how = f"raised an error:\n{error}"
    return (
        f"Training stopped: rank {rank} (pid {error.error_pid}) {how}; the launcher stopped the "
        "other processes of this machine. Continue from the last complete checkpoint with "
        "--resume."
    )


if __name__ == "__main__":
    args = argument_parser().parse_args()
    if args.check_data:
        ok, report = requirements_report(
            setup_cfg(args, run_default_setup=False, check_data=False), resume=args.resume
        )
        print(report)
        sys.exit(0 if ok else 1)
    print("Command Line Args:", args)
    try:
        launch(
            main,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
            timeout=timedelta(seconds=args.dist_timeout),
        )
    except ProcessException as e:  # a process of this machine died or raised: all were stopped
        sys.exit(describe_dead_process(e, args))
