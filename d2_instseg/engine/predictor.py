"""``Predictor``: the DefaultPredictor to use in applications, with input checks."""

from typing import Optional, Tuple

import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model

from ..export import ExportedModel
from ..layers import fuse_conv_bn, use_gather_roi_align
from ..utils.config_registry import check_d2_instseg_config
from .amp import autocast_network
from .checkpoint import SafeCheckpointer
from .tiling import Tiling, tiled_inference

# Arrays above this many pixels are refused before anything is allocated for them (an 8000 x 8000
# photo is 64M pixels and is accepted: it is resized to the test size before the model sees it).
DEFAULT_MAX_PIXELS = 1 << 27
# Without test-time resizing (INPUT.MIN_SIZE_TEST = 0) the model sees the image as it is.
DEFAULT_MAX_MODEL_PIXELS = 4096 * 4096


def prepare_image(
    image, max_pixels: int = DEFAULT_MAX_PIXELS, percentiles: Optional[Tuple[float, float]] = None
) -> np.ndarray:
    """Convert what users pass into a contiguous (H, W, 3) uint8 array, or raise ValueError.

    Accepted and converted: (H, W) and (H, W, 1) grayscale (repeated to 3 channels); (H, W, 4)
    with alpha (alpha dropped); uint16 (scaled by 255/65535); float images in [0, 1] (scaled by 255)
    or [0, 255]; other integer types with values in [0, 255]; non-contiguous views. With
    ``percentiles`` (low, high), every image that is not uint8 is instead mapped by its own
    percentiles (:func:`percentile_to_uint8`), whatever its range.
    Refused: non-arrays, zero-sized images, other channel counts, NaN/inf, out-of-range values,
    bool/complex/object dtypes, and images over ``max_pixels``.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(
            f"Expected the image as a numpy array (H, W, C), got {type(image).__name__}"
        )
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ValueError(f"Expected an image of shape (H, W) or (H, W, C), got shape {image.shape}")
    h, w, c = image.shape
    if h == 0 or w == 0:
        raise ValueError(f"The image is empty: shape {image.shape}")
    if h * w > max_pixels:
        raise ValueError(
            f"The image is {h}x{w} = {h * w / 1e6:.0f}M pixels, over the limit of "
            f"{max_pixels / 1e6:.0f}M; resize it first (or raise max_pixels)"
        )
    if c not in (1, 3, 4):
        raise ValueError(f"Expected 1, 3 or 4 channels, got {c} (shape {image.shape})")
    if c == 4:
        image = image[:, :, :3]
    if percentiles is not None and image.dtype != np.uint8:
        image = percentile_to_uint8(image, *percentiles)
    else:
        image = _to_uint8(image)
    if c == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image)


def percentile_to_uint8(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """(H, W, C) image of any real dtype -> uint8: its ``low`` / ``high`` percentiles (all channels
    together) map to 0 / 255, values outside are clipped (the normalisation of microscopy tools,
    robust to a few saturated or dead pixels). A constant image maps to 0."""
    if image.dtype.kind not in "iuf":
        raise ValueError(f"Unsupported image dtype {image.dtype}; use uint8, uint16 or float")
    values = image.astype(np.float32)
    if not np.isfinite(values).all():
        raise ValueError("The image contains NaN or infinite values")
    lo, hi = np.percentile(values, (low, high))
    scaled = (values - lo) * (255.0 / max(float(hi - lo), 1e-12))
    return np.round(np.clip(scaled, 0, 255)).astype(np.uint8)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    kind = image.dtype.kind
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.round(image.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
    if kind == "f":
        if not np.isfinite(image).all():
            raise ValueError("The image contains NaN or infinite values")
        lo, hi = float(image.min()), float(image.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"Float image values must lie in [0, 1] or [0, 255], got [{lo}, {hi}]")
        scale = 255.0 if hi <= 1.0 else 1.0
        return np.round(image.astype(np.float32) * scale).astype(np.uint8)
    if kind in "iu":
        lo, hi = int(image.min()), int(image.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"{image.dtype} image values must lie in [0, 255], got [{lo}, {hi}]")
        return image.astype(np.uint8)
    raise ValueError(f"Unsupported image dtype {image.dtype}; use uint8, uint16 or float")


def prepare_for_inference(model: torch.nn.Module, cfg) -> torch.nn.Module:
    """What ``Predictor`` does to a loaded model in eval mode, in place: fold BatchNorms into convs
    (``TEST.FUSE_CONV_BN``), use channels-last weights (``TEST.CHANNELS_LAST``), run the network in
    mixed precision (``TEST.AMP.ENABLED``, :func:`~d2_instseg.engine.amp.autocast_network`) and
    compile it (``TEST.COMPILE``, :func:`compile_network`). Same outputs up to float rounding
    (mixed precision: up to bfloat16's); returns ``model``."""
    if cfg.TEST.get("FUSE_CONV_BN", False):
        fuse_conv_bn(model)
    if cfg.TEST.get("CHANNELS_LAST", False):
        model.to(memory_format=torch.channels_last)
    if cfg.TEST.AMP.ENABLED:
        autocast_network(model, torch.device(cfg.MODEL.DEVICE).type)
    if cfg.TEST.get("COMPILE", False):
        compile_network(model)
    return model


def compile_network(model: torch.nn.Module) -> torch.nn.Module:
    """Replace the network part of ``model`` by its ``torch.compile`` (inductor) version, in place:
    ``inference_network`` for the models of d2_instseg (the dense part the exports trace; the
    post-processing stays eager), else Detectron2's ``backbone`` and ``sem_seg_head`` (Mask R-CNN's
    RoI heads are data-dependent and stay eager). Compiling happens on the first call of each
    input size (tens of seconds on CPU; it needs a C++ compiler there); after a second size the
    compiled code takes any size. Returns ``model``."""
    if hasattr(model, "inference_network"):
        model.inference_network = torch.compile(model.inference_network)
        return model
    for name in ("backbone", "sem_seg_head"):
        part = getattr(model, name, None)
        if part is not None:
            part.forward = torch.compile(part.forward)
    return model


def load_exported(cfg) -> ExportedModel:
    """The exported model ``MODEL.WEIGHTS`` run by ``TEST.BACKEND``, checked against the config:
    the same meta-architecture and input channel order."""
    model = ExportedModel(cfg.MODEL.WEIGHTS, backend=cfg.TEST.BACKEND, device=cfg.MODEL.DEVICE)
    exported = (model.meta_architecture, model.sidecar["input"]["channels"])
    expected = (cfg.MODEL.META_ARCHITECTURE, cfg.INPUT.FORMAT)
    if exported != expected:
        raise ValueError(
            f"{cfg.MODEL.WEIGHTS} was exported from a {exported[0]} with {exported[1]} input; "
            f"the config has MODEL.META_ARCHITECTURE {expected[0]} and INPUT.FORMAT {expected[1]}"
        )
    return model


class Predictor(DefaultPredictor):
    """Drop-in subclass of Detectron2's ``DefaultPredictor`` for every model of d2_instseg.

    ``Predictor(cfg)(image)`` takes an image as ``DefaultPredictor`` does, (H, W, C) in BGR order
    (as ``cv2.imread`` gives), and returns the model's output dict (``instances`` and/or
    ``sem_seg``) at the image's resolution. Unlike ``DefaultPredictor`` it first checks and converts
    the input (:func:`prepare_image`): grayscale, alpha, 16-bit, float and non-contiguous images
    work; empty, NaN, oversized or otherwise unusable ones raise a ``ValueError`` that names the
    problem.

    ``TEST.BACKEND`` chooses what runs: "torch" (default), the eager model, whose weights are read
    by :class:`SafeCheckpointer` (``torch.load(weights_only=True)``: a file cannot run code when
    loaded; pickle files are refused); or an exported file (``tools/export_model.py``) named by
    ``MODEL.WEIGHTS``, "torchscript", "onnxruntime" or "inductor" (a .pt2 program compiled by
    inductor; :class:`d2_instseg.export.ExportedModel`: the same inference function around the
    exported network, the same outputs). The eager model
    is prepared for inference (:func:`prepare_for_inference`: BatchNorms folded into their
    convolutions, channels-last weights), so load other weights into a new ``Predictor``, not into
    ``predictor.model``. ``TEST.TILING.ENABLED`` segments the image tile by tile at its own
    resolution (:mod:`d2_instseg.engine.tiling`: any size, memory bounded by the tile; instance
    masks as ``pred_masks_rle``). ``INPUT.NORMALIZE`` "percentile" maps 16-bit and float images by
    their percentiles. A Predictor may be called from several threads at once (tested: the
    outputs equal those of sequential calls); the model runs in eval mode under ``no_grad`` and
    keeps no state between calls.
    """

    def __init__(self, cfg, max_pixels: int = DEFAULT_MAX_PIXELS):
        # DefaultPredictor.__init__, with the config checked before building and the weights read
        # by SafeCheckpointer instead of DetectionCheckpointer (which unpickles .pkl files)
        check_d2_instseg_config(cfg)
        self.cfg = cfg.clone()
        if len(cfg.DATASETS.TEST):
            self.metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0])
        self.backend = cfg.TEST.BACKEND
        if self.backend == "torch":
            self.model = build_model(self.cfg)
            use_gather_roi_align(self.model)  # as the Trainer builds it
            self.model.eval()
            SafeCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
            prepare_for_inference(self.model, cfg)
        else:
            self.model = load_exported(cfg)
        size = cfg.INPUT.MIN_SIZE_TEST
        self.aug = T.ResizeShortestEdge([size, size], cfg.INPUT.MAX_SIZE_TEST)
        self.input_format = cfg.INPUT.FORMAT
        if self.input_format not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT must be RGB or BGR, got {self.input_format!r}")
        self.max_pixels = max_pixels
        self.resizes = cfg.INPUT.MIN_SIZE_TEST > 0
        self.percentiles = (
            tuple(cfg.INPUT.NORMALIZE_PERCENTILES) if cfg.INPUT.NORMALIZE == "percentile" else None
        )
        tiling = cfg.TEST.TILING
        self.tiling = (
            Tiling(tiling.TILE, tiling.OVERLAP or tiling.TILE // 4) if tiling.ENABLED else None
        )

    def __call__(self, original_image):
        image = prepare_image(original_image, self.max_pixels, self.percentiles)
        if self.tiling is not None:
            return tiled_inference(self._run_tile, image, self.tiling)
        h, w = image.shape[:2]
        if not self.resizes and h * w > DEFAULT_MAX_MODEL_PIXELS:
            raise ValueError(
                f"The image is {h}x{w} and INPUT.MIN_SIZE_TEST=0 (no resizing): over the "
                f"{DEFAULT_MAX_MODEL_PIXELS / 1e6:.0f}M-pixel limit for one forward pass"
            )
        return super().__call__(image)

    def _run_tile(self, tile: np.ndarray):
        """One (h, w, 3) BGR uint8 tile through the model at its own size."""
        if self.input_format == "RGB":
            tile = tile[:, :, ::-1]
        h, w = tile.shape[:2]
        tensor = torch.as_tensor(np.ascontiguousarray(tile.transpose(2, 0, 1)))
        with torch.no_grad():
            return self.model(
                [{"image": tensor.to(self.cfg.MODEL.DEVICE), "height": h, "width": w}]
            )[0]
