#!/usr/bin/env python
"""The README's main job (`make demo`): train and evaluate each method on the built-in shapes data.

For every job: train with tools/train_net.py, evaluate on the test set, write Visualizer overlays of
a few validation images and a loss-curve plot, then print one summary table of all jobs.

    python tools/main_job.py                         # every job
    python tools/main_job.py --jobs mask_rcnn        # a subset
    python tools/main_job.py --iters 100             # shorter schedule for a quick look

Outputs go to output/main_job/<job>/ (model, metrics.json, results.json, loss.png, vis/*.png) and
output/main_job/summary.{json,md}.
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from typing import List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


@dataclasses.dataclass
class Job:
    name: str
    config: str
    kind: str  # "instance" (COCO AP) or "semantic" (mIoU)
    extra_opts: List[str] = dataclasses.field(default_factory=list)
    vis_threshold: float = 0.5  # score threshold of the overlays

    @property
    def vis_dataset(self) -> str:
        return "shapes_sem_seg_val" if self.kind == "semantic" else "shapes_val"


JOBS = [
    Job("mask_rcnn", "configs/shapes/mask_rcnn_R18_FPN.yaml", "instance"),
    # CenterNet-style scores run lower than Mask R-CNN's; CenterNet draws at 0.3.
    Job("centermask", "configs/shapes/centermask.yaml", "instance", vis_threshold=0.3),
    Job("spatial_embeddings", "configs/shapes/spatial_embeddings.yaml", "instance"),
    Job("cpnet", "configs/shapes/cpnet.yaml", "semantic"),
    Job("fcn8s", "configs/shapes/fcn8s.yaml", "semantic"),
    Job("unet", "configs/shapes/unet.yaml", "semantic"),
]


def run(cmd: List[str], log_path: str) -> None:
    print("$", " ".join(cmd), f"  (log: {log_path})", flush=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for line in proc.stdout:
            log.write(line)
            if "eta:" in line or "Evaluation results" in line or "Error" in line:
                print("   ", line.rstrip()[:160], flush=True)
        if proc.wait() != 0:
            raise SystemExit(f"Command failed ({proc.returncode}); see {log_path}")


def schedule_opts(iters: int) -> List[str]:
    return [
        "SOLVER.MAX_ITER",
        str(iters),
        "SOLVER.STEPS",
        f"({int(iters * 0.75)},{int(iters * 0.92)})",
    ]


def run_job(job: Job, out_root: str, iters: int, num_vis: int) -> dict:
    from d2_instseg.utils.plots import plot_loss_curves

    out = os.path.join(out_root, job.name)
    os.makedirs(out, exist_ok=True)
    opts = ["OUTPUT_DIR", out] + job.extra_opts + (schedule_opts(iters) if iters else [])
    start = time.time()
    run(
        [sys.executable, "tools/train_net.py", "--config-file", job.config] + opts,
        f"{out}/train.log",
    )
    minutes = (time.time() - start) / 60
    weights = os.path.join(out, "model_final.pth")
    run(
        [
            sys.executable,
            "tools/demo.py",
            "--config-file",
            job.config,
            "--from-dataset",
            job.vis_dataset,
            "--max-images",
            str(num_vis),
            "--output",
            os.path.join(out, "vis"),
            "--confidence-threshold",
            str(job.vis_threshold),
            "MODEL.WEIGHTS",
            weights,
        ]
        + job.extra_opts,
        f"{out}/demo.log",
    )
    plot_loss_curves(os.path.join(out, "metrics.json"), os.path.join(out, "loss.png"), job.name)
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    return {
        "job": job.name,
        "kind": job.kind,
        "config": job.config,
        "minutes": round(minutes, 1),
        "results": results,
        "dir": out,
    }


def summary_table(rows: List[dict]) -> str:
    lines = [
        "| job | config | train+eval min | mask AP | mask AP50 | box AP | mIoU |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        res = r["results"]
        segm, bbox, sem = res.get("segm", {}), res.get("bbox", {}), res.get("sem_seg", {})
        cell = lambda d, k: f"{d[k]:.1f}" if k in d else "-"  # noqa: E731
        lines.append(
            f"| {r['job']} | {r['config']} | {r['minutes']} | {cell(segm, 'AP')} | "
            f"{cell(segm, 'AP50')} | {cell(bbox, 'AP')} | {cell(sem, 'mIoU')} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--jobs",
        default=",".join(j.name for j in JOBS),
        help="comma-separated subset of: " + ", ".join(j.name for j in JOBS),
    )
    parser.add_argument("--iters", type=int, default=0, help="override every job's SOLVER.MAX_ITER")
    parser.add_argument("--num-vis", type=int, default=6, help="validation images to draw")
    parser.add_argument("--output", default=os.path.join(REPO, "output", "main_job"))
    args = parser.parse_args()
    by_name = {j.name: j for j in JOBS}
    unknown = [n for n in args.jobs.split(",") if n not in by_name]
    if unknown:
        raise SystemExit(f"Unknown job(s) {unknown}; choose from {sorted(by_name)}")
    rows = [
        run_job(by_name[n], args.output, args.iters, args.num_vis) for n in args.jobs.split(",")
    ]
    table = summary_table(rows)
    with open(os.path.join(args.output, "summary.json"), "w") as f:
        json.dump(rows, f, indent=2)
    with open(os.path.join(args.output, "summary.md"), "w") as f:
        f.write(table + "\n")
    print("\nResults on the shapes validation split (this machine):\n" + table)
    print(f"\nOverlays: {args.output}/<job>/vis/*.png   loss curves: {args.output}/<job>/loss.png")


if __name__ == "__main__":
    main()
