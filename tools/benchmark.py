#!/usr/bin/env python
"""Measure models side by side with Detectron2's Mask R-CNN R50-FPN (the reference row).

    python tools/benchmark.py --config-file configs/shapes/centermask.yaml \
        configs/shapes/spatial_embeddings.yaml --sizes 512x512 1024x2048 --output bench.json

For each config and input size, in a fresh process (so peak memory is its own), after warm-up:

- latency per image through the model's inference path (what ``d2_instseg.Predictor`` runs after
  resizing, with its BatchNorm folding and channels-last weights, TEST.FUSE_CONV_BN and
  TEST.CHANNELS_LAST):
  median and inter-quartile spread; split into *forward* (until the last sub-module returns) and
  *post-processing* (the rest: decoding, clustering, mask pasting, resizing to the original size);
- throughput (images/s) at each ``--batch-sizes`` value > 1;
- peak memory (CPU: the process' max RSS; CUDA: ``max_memory_allocated``), parameters, and FLOPs
  counted by fvcore as Detectron2's ``analyze_model`` does; achieved FLOP/s = FLOPs / forward time;
- training iterations/s on the config's own data pipeline (``--train-iters``, 0 to skip): in the
  ``eager`` row in float32, in the ``bf16`` row in mixed precision (``SOLVER.AMP.ENABLED``).

The reference runs inference with Detectron2's own RoIAlign (torchvision's kernel); every training
row, the reference's too, uses the model as ``d2_instseg.engine.Trainer`` builds it (RoIAlign by
``d2_instseg.layers.ROIAlignGather``: the same values, faster to train on CPU).

``--backends`` measures each config (not the reference, which stays Detectron2's eager fp32) on
each of: ``eager`` (fp32, as above), ``bf16`` (the eager network under bfloat16 autocast, the
post-processing in float32: as ``TEST.AMP.ENABLED`` runs it in the Predictor),
``compile`` (its network compiled by ``torch.compile``, as TEST.COMPILE does in the Predictor; the
compilation happens in the warm-up calls, which need ``--warmup`` >= 1),
``torchscript`` and ``onnxruntime`` (the model exported by ``d2_instseg.export`` at the row's input
size and run by ``d2_instseg.export.ExportedModel``, as ``TEST.BACKEND`` runs it in the Predictor)
and ``int8`` (that ONNX file quantised by ``d2_instseg.export.quantize_int8``, calibrated on
``--calib-images`` random images of the row's size: the speed does not depend on the calibration);
``inductor`` and ``inductor_int8`` (the model exported as a ``torch.export`` program, fp32 or
quantised by PyTorch's PT2E x86 path, compiled by inductor as ``TEST.BACKEND inductor`` runs it:
compiled in the warm-up calls, which need ``--warmup`` >= 1).
Exported rows split forward / post-processing at the exported network's return, count the eager
model's FLOPs and are also given as a ratio to the same config's eager row.

``--instances K [K ...]`` adds a scaling table: each instance model (and the reference) run with
K objects in every image, so post-processing is measured at K instances (random weights give almost
none). CenterMask and Mask R-CNN keep their K best detections at score threshold 0 (TOPK_TEST /
DETECTIONS_PER_IMAGE = K: the decoding, mask assembly and pasting then run for K objects, as on a
crowded image); Spatial Embeddings runs its network and then clusters planted outputs
(:func:`planted_spatial_embed_outputs`: K discs on a grid, every pixel embedded at its disc's
center, the seed map peaking at each center), so the clustering takes its K sequential steps.

``--modules`` adds a table per part of each eager model (:func:`module_parts`: the backbone's
stages, e.g. DLA-34's trunk, DLA-up and IDA-up, and the heads): its time per call between hooks, its
FLOPs and their ratio to the machine's dense rate (below), so a part that runs far from the rate
stands out.

``--malloc reuse`` runs every row (the reference too) with glibc's allocator told to keep and reuse
freed memory (``GLIBC_TUNABLES``, see MALLOC_REUSE): on CPU, full-resolution activations above
glibc's 32 MiB mmap threshold otherwise cost a page fault per page on every forward. A serving
process gets the same by starting with that environment variable (or jemalloc / tcmalloc preloaded).

``--rounds N`` runs the whole list of rows N times, one row after the other in each round, so that
a slow spell of a shared machine falls on every row alike instead of on one: each row reports the
round with its median latency, its latency in every round, and its ratios to the reference (and to
its eager row) round by round, whose range the table gives (a ratio that holds across the rounds is
a figure; one that moves with them is noise).

The same run measures the machine's dense throughput (float32 matmul and 3x3 convolution with the
same thread count): each model's achieved FLOP/s is reported as a fraction of it (the roofline
column). Every figure is also given as a ratio to the Mask R-CNN row at the same size. Random
weights are used unless MODEL.WEIGHTS is given (timings do not depend on them, except data-dependent
post-processing, where trained weights are more realistic: pass them when you have them).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
REFERENCE = "detectron2://COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
BACKENDS = (
    "eager", "bf16", "compile", "torchscript", "onnxruntime", "int8", "inductor", "inductor_int8"
)  # fmt: skip
# glibc malloc settings of ``--malloc reuse``: serve every block from the heap (no mmap) and never
# give freed memory back, so a tensor freed in one layer is reused by the next instead of each
# large (> 32 MiB) tensor being a fresh mapping that page-faults on every 4 KiB page when first
# written.
MALLOC_REUSE = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296"


def parse_size(text):
    h, w = text.lower().split("x")
    return int(h), int(w)


def load_cfg(config_file, opts, device):
    from detectron2 import model_zoo
    from detectron2.config import get_cfg

    import d2_instseg

    cfg = get_cfg()
    d2_instseg.add_d2_instseg_config(cfg)
    if config_file.startswith("detectron2://"):
        cfg.merge_from_file(model_zoo.get_config_file(config_file[len("detectron2://") :]))
    else:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(opts)
    cfg.MODEL.DEVICE = device
    cfg.MODEL.WEIGHTS = cfg.MODEL.WEIGHTS if os.path.isfile(cfg.MODEL.WEIGHTS) else ""
    return cfg


def synchronize(device):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


class ForwardSplit:
    """Records when the network part of a model last returns: each direct sub-module of an eager
    model (forward hooks), or the exported network of an ``ExportedModel`` / the compiled
    ``inference_network`` (wrapped: hooks inside a compiled function would break its graph)."""

    def __init__(self, model, device):
        self.device = device
        self.last_end = None
        self.model = model
        compiled = hasattr(getattr(model, "inference_network", None), "_torchdynamo_orig_callable")
        # d2_instseg.export.ExportedModel's network, or compile_network's inference_network
        self.attr = "network" if hasattr(model, "network") else "inference_network"
        if hasattr(model, "network") or compiled:
            self.network = getattr(model, self.attr)
            setattr(model, self.attr, self._timed_network)
            self.handles = []
        else:
            self.network = None
            self.handles = [m.register_forward_hook(self._hook) for m in model.children()]

    def _hook(self, *args):
        synchronize(self.device)
        self.last_end = time.perf_counter()

    def _timed_network(self, x):
        out = self.network(x)
        self._hook()
        return out

    def remove(self):
        for h in self.handles:
            h.remove()
        if self.network is not None:
            setattr(self.model, self.attr, self.network)


def time_inference(model, inputs, device, warmup, iters):
    """Returns lists of (total, forward) seconds per call."""
    import torch

    split = ForwardSplit(model, device)
    totals, forwards = [], []
    with torch.no_grad():
        for i in range(warmup + iters):
            synchronize(device)
            start = time.perf_counter()
            split.last_end = None
            model(inputs)
            synchronize(device)
            end = time.perf_counter()
            if i >= warmup:
                totals.append(end - start)
                forwards.append((split.last_end or end) - start)
    split.remove()
    return totals, forwards


def quartiles(values):
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return q[0], statistics.median(values), q[2]


def count_flops(model, cfg, inputs, size):
    """fvcore's FLOPs (one fused multiply-add = one flop) of one call. For a model whose network
    is followed by a data-dependent loop (``inference_network`` on the whole image: CenterMask,
    Spatial Embeddings) only the network is counted, on the batch it receives: fvcore traces the
    whole call, one traced step per instance of a clustering loop (seen: 23 GB for a Spatial
    Embeddings model whose random weights made thousands of seeds)."""
    import logging

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    if hasattr(model, "inference_network") and "crop_size" not in model.inference_params():
        from fvcore.nn import FlopCountAnalysis

        from d2_instseg.export import export_spec

        spec = export_spec(model, cfg, size)
        analysis = FlopCountAnalysis(spec.network, (spec.sample,))
    else:
        from detectron2.utils.analysis import FlopCountAnalysis

        analysis = FlopCountAnalysis(model, inputs)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis


def module_parts(model):
    """The parts of a model timed by ``--modules``: the direct sub-modules of its backbone (DLA's
    trunk, DLA-up and IDA-up; ResNet and the FPN's layers) and its other direct sub-modules (the
    heads), as (qualified name, module)."""
    parts = []
    for name, child in model.named_children():
        if name == "backbone" and len(list(child.children())) > 1:
            parts += [(f"backbone.{n}", m) for n, m in child.named_children()]
        else:
            parts.append((name, child))
    return parts


def module_rows(model, analysis, inputs, device, iters):
    """Per part of :func:`module_parts` with at least 1% of the FLOPs: its forward time per call
    (median over ``iters`` calls, between a pre-hook and a hook of the part, summed over the calls
    of one image), its FLOPs (fvcore's count of that module) and their ratio."""
    import torch

    by_module = analysis.by_module()
    total = analysis.total()

    def flops_of(name):  # fvcore names modules from its own root (a wrapper's "model." prefix)
        matches = [k for k in by_module if k == name or k.endswith("." + name)]
        return by_module[min(matches, key=len)] if matches else 0

    parts = [(n, m, flops_of(n)) for n, m in module_parts(model)]
    parts = [(n, m, f) for n, m, f in parts if f >= 0.01 * total]
    spent = {n: 0.0 for n, _, _ in parts}
    started = {}
    handles = []
    for name, module, _ in parts:

        def pre(*args, name=name):
            synchronize(device)
            started[name] = time.perf_counter()

        def post(*args, name=name):
            synchronize(device)
            spent[name] += time.perf_counter() - started[name]

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    samples = {n: [] for n in spent}
    with torch.no_grad():
        for i in range(iters + 1):  # one warm-up call
            spent.update({n: 0.0 for n in spent})
            model(inputs)
            if i:
                for n in spent:
                    samples[n].append(spent[n])
    for h in handles:
        h.remove()
    rows = []
    for name, _, flops in parts:
        seconds = statistics.median(samples[name])
        rows.append(
            {
                "module": name,
                "gflops": flops / 1e9,
                "ms": 1000 * seconds,
                "achieved_gflops_per_s": flops / 1e9 / seconds,
            }
        )
    return rows


def train_speed(cfg, iters, size, batch, amp=False):
    """Training iterations/s on the config's own mapper, with the shapes data as the input source,
    resized to ``size`` (mappers that crop to a fixed size use their own crop) at ``batch`` images:
    the median over ``iters`` steps (after 2 warm-up steps) of the step time without data loading,
    through the project's training loop (SGD at lr 1e-4, momentum 0.9, constant; with ``amp``, in
    mixed precision as ``SOLVER.AMP.ENABLED`` trains: bfloat16 on the CPU). Returns
    (iterations/s, median data-loading ms per iteration: the loader's own time, one worker)."""
    from detectron2.data import MetadataCatalog

    from d2_instseg.engine import Trainer, train_for

    cfg = cfg.clone()
    # (not "has stuff_classes": Cityscapes' instance splits carry them too)
    semantic = MetadataCatalog.get(cfg.DATASETS.TRAIN[0]).get("evaluator_type", "") == "sem_seg"
    cfg.DATASETS.TRAIN = ("shapes_sem_seg_train",) if semantic else ("shapes_train",)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.IMS_PER_BATCH = batch
    cfg.INPUT.MASK_FORMAT = "bitmask"  # shapes masks are RLE
    cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN = (min(size),), max(size)
    if not cfg.MODEL.WEIGHTS and cfg.MODEL.RESNETS.NORM == "FrozenBN":
        # Random weights under frozen (identity) BatchNorm overflow in a deep ResNet within one
        # step; Detectron2's from-scratch recipes train with a real norm, and so do we here.
        cfg.MODEL.RESNETS.NORM = "BN"
    s = cfg.SOLVER
    s.OPTIMIZER, s.BASE_LR, s.MOMENTUM, s.MAX_ITER = "SGD", 1e-4, 0.9, iters + 2
    s.LR_SCHEDULER_NAME, s.STEPS, s.WARMUP_ITERS = "WarmupMultiStepLR", (), 0
    s.CLIP_GRADIENTS.ENABLED = False
    s.AMP.ENABLED = amp
    model = Trainer.build_model(cfg)
    timer = step_timer(cfg.MODEL.DEVICE)
    train_for(cfg, model, Trainer.build_train_loader(cfg), extra_hooks=[timer])
    return 1.0 / statistics.median(timer.times[2:]), 1000 * statistics.median(timer.data_times[2:])


def step_timer(device):
    """A training hook recording each step's time without data loading (``.times``) and the data
    loading time (``.data_times``), the device synchronised around the step (CUDA kernels run
    asynchronously)."""
    from detectron2.engine import HookBase

    class StepTimer(HookBase):
        def __init__(self):
            self.times, self.data_times = [], []

        def before_step(self):
            synchronize(device)
            self._start = time.perf_counter()

        def after_step(self):
            synchronize(device)
            data_time = self.trainer.storage.history("data_time").latest()
            self.times.append(time.perf_counter() - self._start - data_time)
            self.data_times.append(data_time)

    return StepTimer()


def backend_model(model, cfg, backend, size, calibration_batches, device):
    """The prepared eager ``model`` as ``backend`` runs it (see the module docstring); exported
    files go to a temporary folder, removed when the process ends."""
    import atexit
    import shutil
    import tempfile

    from d2_instseg.engine import autocast_network, compile_network
    from d2_instseg.export import ExportedModel, export_model
    from d2_instseg.export.quantize import int8_path, quantize_int8_on_batches

    if backend == "eager":
        return model
    if backend == "bf16":  # as TEST.AMP.ENABLED runs it
        return autocast_network(model, device.split(":")[0])
    if backend == "compile":
        return compile_network(model)
    folder = tempfile.mkdtemp(prefix="d2_instseg_bench_")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    fmt = {"torchscript": "torchscript", "inductor": "pt2", "inductor_int8": "pt2"}
    path = export_model(model, cfg, folder, fmt.get(backend, "onnx"), size=size)
    if backend in ("int8", "inductor_int8"):
        fp32, path = path, int8_path(path)
        quantize_int8_on_batches(fp32, path, calibration_batches, device=device)
    return ExportedModel(path, device=device)


def planted_opts(cfg, k):
    """Config pairs that make the model of ``cfg`` return K detections per image (see
    ``--instances``); None for a model without instances (semantic segmentation)."""
    arch = cfg.MODEL.META_ARCHITECTURE
    if arch == "GeneralizedRCNN":
        return ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0, "TEST.DETECTIONS_PER_IMAGE", k]
    if arch == "CenterMaskPoint":
        return ["MODEL.CENTERMASK.TOPK_TEST", k, "MODEL.CENTERMASK.SCORE_THRESH_TEST", 0.0]
    if arch == "SpatialEmbeddings":
        return ["TEST.DETECTIONS_PER_IMAGE", max(k, cfg.TEST.DETECTIONS_PER_IMAGE)]
    return None


def planted_grid(k, height, width):
    """K objects of a (height, width) image: the first K cells of a grid of about-square cells
    (rows x cols >= K), each object a disc of radius 0.35 cell at its cell's center. Returns
    (rows, cols, cell_h, cell_w, radius)."""
    import math

    cols = min(width, max(1, round(math.sqrt(k * width / height))))
    rows = math.ceil(k / cols)
    cell_h, cell_w = height / rows, width / cols
    return rows, cols, cell_h, cell_w, 0.35 * min(cell_h, cell_w)


def planted_spatial_embed_outputs(k, height, width, pixels_per_unit, n_sigma, n_classes):
    """Spatial Embeddings outputs with the K objects of :func:`planted_grid`, classes in turn.
    Disc pixels are embedded at the disc's center (units of ``pixels_per_unit``), the margin is half
    the radius (sigma = ln(1 / (2 margin^2)) / 10, every channel), the seed is 1 - 0.4 d / r at
    distance d from the center (> 0.5 inside, 1 at the center), 0 elsewhere.

    Returns {"embedding": (1, 2, H, W), "sigma": (1, S, H, W), "seed": (1, C, H, W)}."""
    import math

    import torch

    from d2_instseg.modeling.spatial_embed import coordinate_map

    _, cols, cell_h, cell_w, radius = planted_grid(k, height, width)
    ys = torch.arange(height, dtype=torch.float32).view(-1, 1)
    xs = torch.arange(width, dtype=torch.float32).view(1, -1)
    row, col = (ys / cell_h).floor(), (xs / cell_w).floor()
    cell = row * cols + col  # (H, W) cell index
    cy, cx = (row + 0.5) * cell_h, (col + 0.5) * cell_w
    dist = ((ys - cy) ** 2 + (xs - cx) ** 2).sqrt()
    inside = (dist < radius) & (cell < k)
    coords = coordinate_map(height, width, pixels_per_unit)
    centers = torch.stack([cx.expand(height, width), cy.expand(height, width)]) / pixels_per_unit
    embedding = torch.where(inside, centers, coords)
    margin = 0.5 * radius / pixels_per_unit
    sigma = torch.full((n_sigma, height, width), math.log(1 / (2 * margin**2)) / 10)
    seed = torch.zeros(n_classes, height, width)
    value = torch.where(inside, 1 - 0.4 * dist / radius, torch.zeros(()))
    seed.scatter_(0, (cell.long() % n_classes).expand(height, width).unsqueeze(0), value[None])
    return {"embedding": embedding[None], "sigma": sigma[None], "seed": seed[None]}


def planted_centermask_peaks(peaks, k, height, width, stride):
    """CenterMask's top-K peaks (:meth:`CenterMaskPoint.inference_network`) moved onto the K objects
    of :func:`planted_grid` on a (height, width) input: centers, sub-pixel offsets and box sizes
    (the disc's box, feature pixels) of every image, scores 1 down to 0.5; the shapes and saliency
    stay the network's. With random weights the size head's boxes are mostly empty and dropped."""
    import torch

    boxes = planted_boxes(k, height, width) / stride
    xy, size = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
    n, device = peaks["scores"].shape[0], peaks["scores"].device
    centers = xy.floor()
    planted = {
        "scores": torch.linspace(1.0, 0.5, k).expand(n, k),
        "centers": centers.long().expand(n, k, 2),
        "offset": (xy - centers).expand(n, k, 2),
        "size": size.expand(n, k, 2),
    }
    return {**peaks, **{name: v.to(device) for name, v in planted.items()}}


def planted_boxes(k, height, width):
    """(K, 4) XYXY boxes of the discs of :func:`planted_grid`."""
    import torch

    _, cols, cell_h, cell_w, radius = planted_grid(k, height, width)
    index = torch.arange(k, dtype=torch.float32)
    xy = torch.stack([(index % cols + 0.5) * cell_w, (index // cols + 0.5) * cell_h], 1)
    return torch.cat([xy - radius, xy + radius], 1)


def plant_mask_rcnn(model, k):
    """Detectron2's Mask R-CNN on K planted objects: the RPN's proposals replaced by the boxes of
    :func:`planted_boxes` (the RPN still runs), box regression zeroed so that each detection is its
    proposal (random weights otherwise send the boxes off the image), every class scoring alike."""
    import torch
    from detectron2.structures import Boxes, Instances

    rpn_forward = model.proposal_generator.forward

    def planted(images, features, gt_instances=None):
        rpn_forward(images, features, gt_instances)
        proposals = []
        for h, w in images.image_sizes:
            p = Instances((h, w))
            p.proposal_boxes = Boxes(planted_boxes(k, h, w).to(images.tensor.device))
            p.objectness_logits = torch.ones(k, device=images.tensor.device)
            proposals.append(p)
        return proposals, {}

    model.proposal_generator.forward = planted  # the module stays (its forward hooks time it)
    predictor = model.roi_heads.box_predictor
    for layer in (predictor.bbox_pred, predictor.cls_score):
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)


def plant_instances(model, k):
    """Make an eager Spatial Embeddings, CenterMask or Mask R-CNN ``model`` post-process K planted
    objects after running its own network (with :func:`planted_opts` in its config)."""
    network = getattr(model, "inference_network", None)
    if hasattr(model, "roi_heads"):
        return plant_mask_rcnn(model, k)
    if hasattr(model, "pixels_per_unit"):  # Spatial Embeddings
        made = {}  # the planted maps of each output shape, made once (not timed as clustering)

        def planted(images):
            out = network(images)
            shape = (out["sigma"].shape[1], out["seed"].shape[1], *out["sigma"].shape[-2:])
            if shape not in made:
                s, c, h, w = shape
                maps = planted_spatial_embed_outputs(k, h, w, model.pixels_per_unit, s, c)
                made[shape] = {name: v.to(images.device) for name, v in maps.items()}
            return made[shape]

    elif hasattr(model, "topk_test"):  # CenterMask

        def planted(images):
            h, w = images.shape[-2:]
            return planted_centermask_peaks(network(images), k, h, w, model.stride)

    else:
        return
    model.inference_network = planted


def worker(args):
    """One config at one size and backend, in this process; prints one JSON line."""
    import torch

    from d2_instseg.engine import Trainer
    from d2_instseg.engine.predictor import prepare_for_inference
    from d2_instseg.layers import use_gather_roi_align

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_cfg(args.config_file[0], args.opts, args.device)
    opts = planted_opts(cfg, args.planted) if args.planted else []
    if opts is None:  # semantic segmentation: no instances to plant, no row
        print("BENCHMARK_ROW null", flush=True)
        return
    cfg.merge_from_list(opts)
    model = Trainer.build_model(cfg).eval()
    if cfg.MODEL.WEIGHTS:
        from detectron2.checkpoint import DetectionCheckpointer

        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    prepare_for_inference(model, cfg)  # as d2_instseg.Predictor does
    if args.config_file[0] == REFERENCE:  # Detectron2's own RoIAlign (torchvision's kernel)
        use_gather_roi_align(model, gather=False)
    h, w = parse_size(args.sizes[0])
    gen = torch.Generator().manual_seed(0)

    def batch(n):
        return [
            {
                "image": torch.randint(0, 256, (3, h, w), generator=gen).float().to(args.device),
                "height": h,
                "width": w,
            }
            for _ in range(n)
        ]

    if args.planted:
        return planted_row(model, args, batch)
    analysis = count_flops(model, cfg, batch(1), (h, w))  # the eager network's, any backend
    flops = float(analysis.total())
    modules = None
    if args.modules and args.backend == "eager":
        modules = module_rows(model, analysis, batch(1), args.device, args.iters)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    calibration = (batch(1) for _ in range(args.calib_images))
    model = backend_model(model, cfg, args.backend, (h, w), calibration, args.device)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    totals, forwards = time_inference(model, batch(1), args.device, args.warmup, args.iters)
    with torch.no_grad():
        output = model(batch(1))[0]
    lo, med, hi = quartiles(totals)
    fwd = statistics.median(forwards)
    row = {
        "config": args.config_file[0],
        "backend": args.backend,
        "size": f"{h}x{w}",
        "device": args.device,
        "threads": torch.get_num_threads(),
        "latency_ms": 1000 * med,
        "latency_iqr_ms": [1000 * lo, 1000 * hi],
        "forward_ms": 1000 * fwd,
        "postprocess_ms": 1000 * (med - fwd),
        "postprocess_fraction": (med - fwd) / med,
        "params_M": params,
        "gflops": flops / 1e9,
        "achieved_gflops_per_s": flops / 1e9 / fwd,
        "throughput": {},
        "modules": modules,
        # Post-processing work depends on how many instances come out (random weights: few or none
        # for Mask R-CNN, whose mask head then does not run; up to top-K for CenterMask).
        "instances": len(output["instances"]) if "instances" in output else None,
    }
    for b in args.batch_sizes:
        if b > 1:
            t, _ = time_inference(model, batch(b), args.device, 1, max(2, args.iters // 2))
            row["throughput"][str(b)] = b / statistics.median(t)
    if args.device.startswith("cuda"):
        row["peak_memory_MB"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        row["peak_memory_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.train_iters and args.backend in ("eager", "bf16"):
        row["train_iters_per_s"], row["train_data_ms"] = train_speed(
            cfg, args.train_iters, (h, w), args.train_batch, amp=args.backend == "bf16"
        )
        row["train_ims_per_batch"] = args.train_batch
    print("BENCHMARK_ROW " + json.dumps(row), flush=True)


def planted_row(model, args, batch):
    """One row of the ``--instances`` table: latency split at K planted instances."""
    import torch

    plant_instances(model, args.planted)
    totals, forwards = time_inference(model, batch(1), args.device, args.warmup, args.iters)
    with torch.no_grad():
        output = model(batch(1))[0]
    med, fwd = statistics.median(totals), statistics.median(forwards)
    row = {
        "config": args.config_file[0],
        "size": args.sizes[0],
        "planted": args.planted,
        "instances": len(output["instances"]),
        "latency_ms": 1000 * med,
        "forward_ms": 1000 * fwd,
        "postprocess_ms": 1000 * (med - fwd),
        "postprocess_fraction": (med - fwd) / med,
    }
    print("BENCHMARK_ROW " + json.dumps(row), flush=True)


def dense_throughput(device, threads):
    """GFLOP/s (multiply-add = 1 flop, as fvcore counts) of a large float32 matmul and 3x3 conv."""
    import torch
    import torch.nn.functional as F

    if threads:
        torch.set_num_threads(threads)
    results = {}
    a = torch.randn(2048, 2048, device=device)
    x = torch.randn(1, 128, 128, 128, device=device)
    k = torch.randn(128, 128, 3, 3, device=device)
    cases = {
        "matmul_2048": (lambda: a @ a, 2048**3),
        "conv3x3_128ch_128px": (lambda: F.conv2d(x, k, padding=1), 128 * 128 * 128 * 128 * 9),
    }
    for name, (fn, macs) in cases.items():
        fn()
        times = []
        for _ in range(5):
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times.append(time.perf_counter() - start)
        results[name] = macs / 1e9 / statistics.median(times)
    return results


def run_row(config, size, backend, args, planted=0):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        "--planted",
        str(planted),
        "--config-file",
        config,
        "--backend",
        backend,
        "--calib-images",
        str(args.calib_images),
        "--sizes",
        size,
        "--device",
        args.device,
        "--warmup",
        str(args.warmup),
        "--iters",
        str(args.iters),
        "--train-iters",
        str(args.train_iters),
        "--train-batch",
        str(args.train_batch),
        "--batch-sizes",
        *map(str, args.batch_sizes),
        "--threads",
        str(args.threads),
    ]  # a one-value option last: what follows is opts
    if args.modules:
        cmd.insert(3, "--modules")
    cmd += args.reference_opts if config == REFERENCE else args.opts
    env = dict(os.environ)
    if args.malloc == "reuse":
        env["GLIBC_TUNABLES"] = ":".join(filter(None, [env.get("GLIBC_TUNABLES"), MALLOC_REUSE]))
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCHMARK_ROW "):
            return json.loads(line[len("BENCHMARK_ROW ") :])
    raise RuntimeError(
        f"Benchmark of {config} ({backend}) at {size} failed:\n{proc.stderr[-3000:]}"
    )


# how argparse reads --reference-opts (nargs="*" before the models' REMAINDER), said in its help
# and in the error for a misplaced key
REFERENCE_OPTS_RULE = (
    "takes every KEY VALUE up to the next option, so put the other models' pairs after one "
    "(e.g. --output FILE KEY VALUE ...)"
)


def model_section_keys(opts):
    """The keys among ``opts`` (KEY VALUE pairs) that lie in a d2_instseg model's config section
    (MODEL.CENTERMASK, MODEL.DLA, ...: the MODEL children Detectron2's own config lacks), which the
    Mask R-CNN reference never reads."""
    from detectron2.config import get_cfg

    from d2_instseg import add_d2_instseg_config

    ours = get_cfg()
    add_d2_instseg_config(ours)
    sections = set(ours.MODEL) - set(get_cfg().MODEL)
    return [key for key in opts[::2] if _model_section(key) in sections]


def _model_section(key):
    """MODEL.CENTERMASK.TOPK_TEST -> "CENTERMASK"; "" for a key outside a MODEL section."""
    parts = key.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "MODEL" else ""


def median_round(results):
    """The row of the round with the median latency (the lower one of an even count), with every
    round's latency in ``round_latencies_ms`` (in round order)."""
    row = sorted(results, key=lambda r: r["latency_ms"])[(len(results) - 1) // 2]
    return dict(row, round_latencies_ms=[r["latency_ms"] for r in results])


def _round_ratios(row, other):
    return [a / b for a, b in zip(row["round_latencies_ms"], other["round_latencies_ms"])]


def add_ratios(rows):
    keys = (
        "latency_ms",
        "postprocess_ms",
        "peak_memory_MB",
        "params_M",
        "gflops",
        "train_iters_per_s",
    )
    for row in rows:
        ref = next(r for r in rows if r["config"] == REFERENCE and r["size"] == row["size"])
        row["ratio_to_mask_rcnn"] = {k: row[k] / ref[k] for k in keys if k in row and ref.get(k)}
        row["round_ratios_to_mask_rcnn"] = _round_ratios(row, ref)
        eager = [
            r
            for r in rows
            if (r["config"], r["size"], r["backend"]) == (row["config"], row["size"], "eager")
        ]
        if eager:
            row["latency_ratio_to_eager"] = row["latency_ms"] / eager[0]["latency_ms"]
            row["round_ratios_to_eager"] = _round_ratios(row, eager[0])


def _or_dash(value):
    return "-" if value is None else value


def _ratio(value, rounds):
    """A ratio, followed by its range over the rounds when there are several."""
    if value is None:
        return "-"
    return f"{value:.2f}" + (f" ({min(rounds):.2f}-{max(rounds):.2f})" if len(rounds) > 1 else "")


def format_table(rows, peak):
    header = (
        "| model | backend | size | latency ms (IQR) | x Mask R-CNN | x eager | forward / post ms "
        "| post % | instances | GFLOPs | achieved GFLOP/s | % of dense | params M | peak MB | "
        "imgs/s at batch | train it/s (loader ms per it) |"
    )
    lines = [header, "|" + "---|" * 16]
    for r in rows:
        name = "Mask R-CNN R50-FPN (reference)" if r["config"] == REFERENCE else r["config"]
        tp = ", ".join(f"{v:.2f}@{b}" for b, v in r["throughput"].items()) or "-"
        train = (
            f"{r['train_iters_per_s']:.2f} ({r['train_data_ms']:.0f} ms data)"
            if "train_iters_per_s" in r
            else "-"
        )
        to_eager = _ratio(r.get("latency_ratio_to_eager"), r.get("round_ratios_to_eager", []))
        lines.append(
            f"| {name} | {r['backend']} | {r['size']} | {r['latency_ms']:.0f} "
            f"({r['latency_iqr_ms'][0]:.0f}-{r['latency_iqr_ms'][1]:.0f}) | "
            f"{_ratio(r['ratio_to_mask_rcnn']['latency_ms'], r['round_ratios_to_mask_rcnn'])} | "
            f"{to_eager} | "
            f"{r['forward_ms']:.0f} / {r['postprocess_ms']:.0f} | "
            f"{100 * r['postprocess_fraction']:.0f} | {_or_dash(r.get('instances'))} | "
            f"{r['gflops']:.1f} | "
            f"{r['achieved_gflops_per_s']:.1f} | {100 * r['achieved_gflops_per_s'] / peak:.0f} | "
            f"{r['params_M']:.1f} | {r['peak_memory_MB']:.0f} | {tp} | {train} |"
        )
    return "\n".join(lines)


def format_module_table(rows, peak):
    lines = [
        "| model | size | module | GFLOPs | ms | achieved GFLOP/s | % of dense |",
        "|" + "---|" * 7,
    ]
    for r in rows:
        name = "Mask R-CNN R50-FPN (reference)" if r["config"] == REFERENCE else r["config"]
        for m in r.get("modules") or []:
            rate = m["achieved_gflops_per_s"]
            lines.append(
                f"| {name} | {r['size']} | {m['module']} | {m['gflops']:.2f} | {m['ms']:.0f} | "
                f"{rate:.1f} | {100 * rate / peak:.0f} |"
            )
    return "\n".join(lines)


def format_scaling_table(rows):
    lines = [
        "| model | size | K planted | instances out | latency ms | forward / post ms | post % |",
        "|" + "---|" * 7,
    ]
    for r in rows:
        name = "Mask R-CNN R50-FPN (reference)" if r["config"] == REFERENCE else r["config"]
        lines.append(
            f"| {name} | {r['size']} | {r['planted']} | {r['instances']} | "
            f"{r['latency_ms']:.0f} | {r['forward_ms']:.0f} / {r['postprocess_ms']:.0f} | "
            f"{100 * r['postprocess_fraction']:.0f} |"
        )
    return "\n".join(lines)


def plot_latency(rows, out_png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for config, backend in dict.fromkeys((r["config"], r["backend"]) for r in rows):
        pts = sorted(
            (parse_size(r["size"])[0] * parse_size(r["size"])[1] / 1e6, r["latency_ms"])
            for r in rows
            if (r["config"], r["backend"]) == (config, backend)
        )
        label = "Mask R-CNN R50-FPN" if config == REFERENCE else os.path.basename(config)
        label += "" if backend == "eager" else f" ({backend})"
        ax.plot(*zip(*pts), marker="o", label=label)
    ax.set_xlabel("input size (megapixels)")
    ax.set_ylabel("latency per image (ms)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", nargs="+", required=True)
    parser.add_argument("--sizes", nargs="+", default=["512x512"], help="HxW input sizes")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--train-iters", type=int, default=3, help="0 skips the training speed")
    parser.add_argument("--train-batch", type=int, default=2, help="images per training iteration")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps the default")
    parser.add_argument(
        "--rounds", type=int, default=1, help="run every row this many times, interleaved"
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=BACKENDS,
        default=["eager"],
        help="how each config runs (the reference: eager fp32 always)",
    )
    parser.add_argument(
        "--calib-images", type=int, default=4, help="random calibration images of the int8 rows"
    )
    parser.add_argument(
        "--instances",
        nargs="+",
        type=int,
        default=[],
        metavar="K",
        help="also time every instance model (and the reference) with K objects per image",
    )
    parser.add_argument(
        "--modules",
        action="store_true",
        help="also time each part of every eager model (backbone stages, heads) and give its "
        "achieved FLOP/s as a share of the dense rate",
    )
    parser.add_argument("--planted", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="eager", help=argparse.SUPPRESS)
    parser.add_argument("--output", default="output/benchmark/benchmark.json")
    parser.add_argument(
        "--malloc",
        choices=["default", "reuse"],
        default="default",
        help="'reuse': run every row with glibc malloc keeping freed memory (GLIBC_TUNABLES="
        + MALLOC_REUSE
        + "); no effect without glibc",
    )
    parser.add_argument(
        "--reference-opts",
        nargs="*",
        default=[],
        metavar="KEY VALUE",
        help="config pairs for the Mask R-CNN reference row only, e.g. "
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST 0.0 so that with random weights it returns its 100 "
        "detections and runs its mask head, as a trained model does on a crowded image; it "
        + REFERENCE_OPTS_RULE
        + "; a d2_instseg model's key here (MODEL.CENTERMASK.*, ...) is refused",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        help="config KEY VALUE pairs for every config but the reference",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.worker:
        return worker(args)
    misplaced = model_section_keys(args.reference_opts)
    if misplaced:
        parser.error(
            f"--reference-opts got {', '.join(misplaced)}, which the Mask R-CNN reference does not "
            f"read: --reference-opts {REFERENCE_OPTS_RULE}"
        )
    import torch

    peak = dense_throughput(args.device, args.threads)
    rows = []
    for size in args.sizes:
        runs = [(REFERENCE, "eager")] + [(c, b) for c in args.config_file for b in args.backends]
        results = {run: [] for run in runs}
        for r in range(args.rounds):
            for config, backend in runs:
                which = f", round {r + 1} of {args.rounds}" if args.rounds > 1 else ""
                print(f"benchmarking {config} ({backend}) at {size}{which} ...", flush=True)
                results[config, backend].append(run_row(config, size, backend, args))
        rows += [median_round(results[run]) for run in runs]
    add_ratios(rows)
    scaling = []
    for size in args.sizes if args.instances else []:
        for config in [REFERENCE] + args.config_file:
            for k in args.instances:
                print(f"benchmarking {config} with {k} instances at {size} ...", flush=True)
                row = run_row(config, size, "eager", args, planted=k)
                if row is None:
                    break  # not an instance model
                scaling.append(row)
    best = max(peak.values())
    table = format_table(rows, best)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    result = {
        "device": args.device,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "threads": rows[0]["threads"],
        "malloc": args.malloc,
        "rounds": args.rounds,
        "dense_gflops_per_s": peak,
        "rows": rows,
        "scaling": scaling,
    }
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    png = os.path.splitext(args.output)[0] + "_latency.png"
    plot_latency(rows, png)
    print(
        f"\nDense throughput on {args.device} ({rows[0]['threads']} threads, malloc "
        f"{args.malloc}): " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peak.items())
    )
    print(table)
    if args.modules:
        print("\nPer module (eager fp32; hooks around each part):")
        print(format_module_table(rows, best))
    if scaling:
        print("\nPost-processing against the number of instances (eager fp32):")
        print(format_scaling_table(scaling))
    print(f"\nwrote {args.output} and {png}")


if __name__ == "__main__":
    main()
