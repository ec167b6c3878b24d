#!/usr/bin/env python
"""Configure a method for a dataset from the dataset's fingerprint: every pixel-valued setting is
derived by the method's scaling rule (docs/autoconfig.md), the class count comes from the data and
the schedule from a time budget measured on this machine.

    python tools/configure.py --dataset mine_train:mine/train.json:mine/images \\
        --test-dataset mine_val:mine/val.json:mine/images --method centermask --minutes 20 \\
        -o my.yaml
    python tools/train_net.py --config-file my.yaml \\
        --dataset mine_train:mine/train.json:mine/images \\
        --dataset mine_val:mine/val.json:mine/images
    python tools/configure.py --dataset shapes_dense_train --fingerprint-only   # just measure

``--dataset`` takes a registered name or NAME:JSON:IMAGE_DIR (COCO instances). The written YAML
inherits the method's base config (``--device cpu``: the 2-core architecture of configs/shapes/;
``cuda``: the paper config) and comments every key with its reason and the figure it came from.
"""

import argparse
import datetime
import json
import logging
import os
import sys
import tempfile

from detectron2.config import get_cfg
from detectron2.data import MetadataCatalog

import d2_instseg  # noqa: F401  (registers models and datasets)
from d2_instseg import add_d2_instseg_config
from d2_instseg.autoconfig import METHODS, SEMANTIC, DataStats, Derived, derive
from d2_instseg.autoconfig.schedule import schedule_keys, split_budget
from d2_instseg.autoconfig.write import config_text, relative_base
from d2_instseg.data import register_user_dataset
from d2_instseg.data.datasets.user_datasets import parse_dataset_arg
from d2_instseg.data.fingerprint import fingerprint
from d2_instseg.engine import amp, iterations_for_epochs, measure_iteration_time
from d2_instseg.irnet.timing import irnet_iteration_times


def _dataset(spec: str) -> str:
    """Register NAME:JSON:IMAGES (or check a registered NAME) and return the name."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    if ":" in spec:
        name, json_file, _ = parse_dataset_arg(spec)
        if (
            name in DatasetCatalog.list()
            and MetadataCatalog.get(name).get("json_file") == json_file
        ):
            return name  # IRNet's step-5 config reads the same data
        return register_user_dataset(spec)
    if spec not in DatasetCatalog.list():
        raise SystemExit(f"--dataset {spec!r} is not registered; pass NAME:JSON:IMAGE_DIR")
    return spec


def _base_path(method: str, device: str) -> str:
    base = METHODS[method][0 if device == "cpu" else 1]
    if base.startswith("detectron2://"):
        from detectron2 import model_zoo

        return model_zoo.get_config_file(base[len("detectron2://") :])
    return base


def _load(path: str):
    cfg = get_cfg()
    add_d2_instseg_config(cfg)
    cfg.merge_from_file(path)
    return cfg


def _num_classes(method: str, name: str, fp: dict) -> int:
    meta = MetadataCatalog.get(name)
    if method in SEMANTIC:
        if not meta.get("stuff_classes"):
            raise SystemExit(
                f"{method} trains on semantic labels, but {name!r} has no stuff_classes in its "
                "metadata: register a semantic segmentation dataset (sem_seg_file_name per image)"
            )
        return len(meta.stuff_classes)
    return fp["num_classes"]


def _header(args, fp: dict) -> list:
    size, short = fp["instance_size"], fp["image_short_side"]
    per = fp["instances_per_image"]
    lines = [
        f"Written by tools/configure.py --dataset {args.dataset} --method {args.method} "
        f"--device {args.device} on {datetime.date.today()}; the rules: docs/autoconfig.md.",
        f"Fingerprint of {fp['dataset']}: {fp['num_images']} images, short side p50 "
        f"{short['p50']:g} px (p5 {short['p5']:g}, p95 {short['p95']:g}),",
    ]
    if args.object_size:
        known = f"; its instances: {size['p50']:g} px" if size else ", which has no instances"
        lines.append(
            f"Median object size {args.object_size:g} px given by --object-size (the fingerprint"
            f"{known})."
        )
    elif fp["has_image_labels"] and not size:
        labels = fp["image_labels_per_image"]
        lines.append(
            f"Image labels only: {labels['mean']:g} classes per image (max {labels['max']})."
        )
    if size:
        lines.append(
            f"instances sqrt(area) p5 / p50 / p95 {size['p5']:g} / {size['p50']:g} / "
            f"{size['p95']:g} px, {per['mean']:g} per image (max {per['max']}), "
            f"{100 * fp['touching_share']:.0f}% touching another."
        )
    if args.method == "irnet" and args.minutes:
        lines += [
            f"--minutes {args.minutes:g} is shared by the three trainings (cam, irn, step 5's Mask"
            " R-CNN) as their base",
            "schedules share their time here; the steps between them (CAMs of every image, CRF,"
            " synthesis)",
            "and the evaluations come on top.",
        ]
    elif args.method == "irnet" and args.max_iter:
        lines += [
            "--max-iter sets the schedule of step 5's Mask R-CNN only; the cam and irn trainings",
            "keep MODEL.IRNET.CAM.EPOCHS / IRN.EPOCHS of the base (--minutes times all three).",
        ]
    return lines


def _stem(path: str) -> str:
    """The YAML's name without folder and extension."""
    return os.path.splitext(os.path.basename(path))[0]


def _output_dir(args) -> str:
    """``--output-dir``, else output/<YAML name>."""
    return args.output_dir or os.path.join("output", _stem(args.output))


def _mask_rcnn_path(output: str) -> str:
    return os.path.join(os.path.dirname(output), f"{_stem(output)}_mask_rcnn.yaml")


def _derivation(args):
    """(the base config's path, the base cfg, the derived keys but the schedule, the fingerprint)
    of ``args``."""
    train = _dataset(args.dataset)
    test = _dataset(args.test_dataset) if args.test_dataset else None
    fp = fingerprint(train)
    stats = DataStats.from_fingerprint(fp, args.object_size or 0.0)
    try:
        derived = derive(args.method, stats)
    except ValueError as e:
        hint = " (or give its median object size: --object-size PX)" if fp["num_images"] else ""
        raise SystemExit(f"{e}{hint}") from e
    base = _base_path(args.method, args.device)
    derived = [
        Derived("MODEL.DEVICE", args.device, "--device"),
        Derived(
            METHODS[args.method][2], _num_classes(args.method, train, fp), f"classes of {train}"
        ),
        Derived("DATASETS.TRAIN", (train,), "--dataset"),
        Derived(
            "DATASETS.TEST", (test,) if test else (), "--test-dataset" if test else "none given"
        ),
        Derived("OUTPUT_DIR", _output_dir(args), "where to train"),
    ] + derived
    if args.method == "irnet":
        derived.append(
            Derived(
                "MODEL.IRNET.PIPELINE.MASK_RCNN_CONFIG",
                _mask_rcnn_path(args.output),
                "Mask R-CNN for the pseudo labels, configured for the same data beside this file",
            )
        )
        derived.append(Derived("MODEL.IRNET.PIPELINE.GT_DATASET", "", "the training set's own"))
    base_cfg = _load(base)
    if args.device == "cpu" and base_cfg.SOLVER.AMP.ENABLED and not amp.cpu_has_native_bfloat16():
        derived.append(
            Derived(
                "SOLVER.AMP.ENABLED",
                False,
                "this CPU has no native bfloat16 (AVX-512 BF16 / AMX): mixed precision would be "
                "emulated, slower than float32",
            )
        )
    return base, base_cfg, derived, fp


def build_config(args, schedule=()) -> str:
    """The YAML text for ``args`` (writes nothing); ``schedule``: derived keys of a schedule worked
    out beforehand (IRNet's share of a budget), else the one of --max-iter / --minutes."""
    base, base_cfg, derived, fp = _derivation(args)
    if schedule:
        derived += list(schedule)
    elif args.max_iter and args.method != "irnet":
        derived += schedule_keys(base_cfg, args.max_iter, "--max-iter")
    elif args.minutes and args.method != "irnet":
        seconds = measure_iteration_time(_derived_cfg(base, derived))
        iterations = max(1, int(args.minutes * 60 / seconds))
        why = f"{args.minutes:g} min / {seconds:.2f} s per iteration measured here"
        derived += schedule_keys(base_cfg, iterations, why)
    return config_text(relative_base(base, args.output), derived, _header(args, fp))


def _derived_cfg(base: str, derived):
    """The cfg of ``base`` with the ``derived`` keys set (to time it)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "timing.yaml")
        with open(path, "w") as f:
            f.write(config_text(os.path.abspath(base), derived, []))
        return _load(path)


def _irnet_budget(args, mrcnn) -> tuple:
    """``args.minutes`` shared by IRNet's three trainings as their base schedules share their time
    here (:func:`split_budget`): the keys of the cam and irn epochs for the IRNet config, and the
    schedule keys of step 5's Mask R-CNN config (``mrcnn``)."""
    base, _, derived, _ = _derivation(args)
    cfg = _derived_cfg(base, derived)
    times = irnet_iteration_times(cfg, cfg.DATASETS.TRAIN[0])
    m_base, m_base_cfg, m_derived, _ = _derivation(mrcnn)
    times["maskrcnn"] = measure_iteration_time(_derived_cfg(m_base, m_derived))
    n, irnet = times["num_images"], cfg.MODEL.IRNET
    steps = {
        "cam": (irnet.CAM, iterations_for_epochs(irnet.CAM.EPOCHS, n, irnet.CAM.IMS_PER_BATCH)),
        "irn": (irnet.IRN, iterations_for_epochs(irnet.IRN.EPOCHS, n, irnet.IRN.IMS_PER_BATCH)),
        "maskrcnn": (None, m_base_cfg.SOLVER.MAX_ITER),
    }
    shares = split_budget(args.minutes * 60, [(it, times[k]) for k, (_, it) in steps.items()])
    irnet_keys, mrcnn_keys = [], []
    for (step, (node, base_it)), iterations in zip(steps.items(), shares):
        why = (
            f"{iterations} it = {100 * iterations * times[step] / (args.minutes * 60):.0f}% of "
            f"{args.minutes:g} min at {times[step]:.2f} s per iteration measured here (base "
            f"{base_it} it)"
        )
        if node is None:
            mrcnn_keys = schedule_keys(m_base_cfg, iterations, why)
        else:
            epochs = round(iterations * node.IMS_PER_BATCH / n, 4)
            irnet_keys.append(Derived(f"MODEL.IRNET.{step.upper()}.EPOCHS", epochs, why))
    return irnet_keys, mrcnn_keys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="training set: NAME or NAME:JSON:IMAGES")
    parser.add_argument("--test-dataset", help="evaluation set: NAME or NAME:JSON:IMAGES")
    parser.add_argument("--method", choices=sorted(METHODS))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="training time budget on this machine")
    budget.add_argument("--max-iter", type=int, help="iterations (instead of --minutes)")
    parser.add_argument(
        "--object-size",
        type=float,
        help="median object size, sqrt(area) in px of the stored images: for data with image-level"
        " labels only (IRNet), or to replace the fingerprint's",
    )
    parser.add_argument("--fingerprint-only", action="store_true", help="print it and exit")
    parser.add_argument("-o", "--output", help="the YAML to write")
    parser.add_argument("--output-dir", help="its OUTPUT_DIR (default output/<YAML name>)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if args.fingerprint_only:
        print(json.dumps(fingerprint(_dataset(args.dataset)), indent=1))
        return 0
    if not (args.method and args.output):
        parser.error("--method and -o/--output are required (or --fingerprint-only)")
    if args.object_size is not None and args.object_size <= 0:
        parser.error(f"--object-size must be > 0 px, got {args.object_size:g}")
    outputs = [(args, args.output)]
    if args.method == "irnet":  # step 5's Mask R-CNN, on the same data
        mrcnn = argparse.Namespace(**vars(args))
        mrcnn.method, mrcnn.output = "mask_rcnn", _mask_rcnn_path(args.output)
        mrcnn.output_dir = os.path.join(_output_dir(args), "maskrcnn")
        outputs.append((mrcnn, mrcnn.output))
    schedules = [()] * len(outputs)
    if args.method == "irnet" and args.minutes:
        schedules = _irnet_budget(args, mrcnn)
    for (job, path), schedule in zip(outputs, schedules):
        text = build_config(job, schedule)
        with open(path, "w") as f:
            f.write(text)
        print(text, end="")
        print(f"Wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
