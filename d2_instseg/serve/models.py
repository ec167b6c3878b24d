"""The models a server offers: read from a ``models.yaml`` (name -> config, weights, optional
backend and config overrides), each loaded into a ``d2_instseg.Predictor`` on first use and kept in
a bounded, thread-safe cache."""

import collections
import os
import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import yaml
from detectron2.config import get_cfg
from detectron2.data import MetadataCatalog

from ..engine import Predictor
from ..engine.config import BACKENDS
from ..engine.weights import check_weights_reachable
from ..utils.config_registry import add_d2_instseg_config


@dataclass
class ModelSpec:
    """One entry of ``models.yaml``: ``name: {config: PATH, weights: PATH, backend: torch,
    opts: [KEY, VALUE, ...]}`` (paths relative to the file's folder or absolute). ``backend`` is
    the Predictor's TEST.BACKEND: "torch" (weights: a checkpoint), "torchscript", "onnxruntime"
    or "inductor" (weights: a file of ``tools/export_model.py`` with its sidecar beside it)."""

    name: str
    config: str
    weights: str
    backend: str = "torch"
    opts: List[str] = field(default_factory=list)


def load_specs(path: str) -> Dict[str, ModelSpec]:
    """Parse ``models.yaml``; raise ValueError naming the file, the model and the key at fault."""
    if not os.path.isfile(path):
        raise ValueError(f"--models {path!r} does not exist")
    with open(path) as f:
        try:
            raw = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path}: expected a mapping of model name -> {{config, weights}}")
    base = os.path.dirname(os.path.abspath(path))
    specs = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: model {name!r} must be a mapping with config and weights")
        unknown = set(entry) - {"config", "weights", "backend", "opts"}
        missing = {"config", "weights"} - set(entry)
        if unknown or missing:
            raise ValueError(
                f"{path}: model {name!r}: missing {sorted(missing)}, unknown {sorted(unknown)}"
            )
        spec = ModelSpec(
            name=str(name),
            config=os.path.join(base, entry["config"]),
            weights=os.path.join(base, entry["weights"]) if entry["weights"] else "",
            backend=entry.get("backend", "torch"),
            opts=[str(v) for v in entry.get("opts", [])],
        )
        if spec.backend not in BACKENDS:
            raise ValueError(f"{path}: model {name!r}: backend must be one of {list(BACKENDS)}")
        if not os.path.isfile(spec.config):
            raise ValueError(f"{path}: model {name!r}: config {spec.config!r} does not exist")
        if len(spec.opts) % 2:
            raise ValueError(f"{path}: model {name!r}: opts must be KEY VALUE pairs")
        specs[spec.name] = spec
    return specs


@dataclass
class LoadedModel:
    spec: ModelSpec
    predictor: Predictor
    metadata: object  # Detectron2 Metadata of the config's test set (class names)
    kind: str  # "instance" or "semantic"


def build_model(spec: ModelSpec) -> LoadedModel:
    """A Predictor for ``spec`` (on the CPU when CUDA is absent), the class names of its config's
    first test set (else training set), and the kind of output it gives."""
    cfg = get_cfg()
    add_d2_instseg_config(cfg)
    cfg.merge_from_file(spec.config)
    cfg.merge_from_list(list(spec.opts))
    cfg.MODEL.WEIGHTS = spec.weights
    cfg.TEST.BACKEND = spec.backend  # "torch", or an export (torchscript, onnxruntime, inductor)
    if cfg.MODEL.DEVICE.startswith("cuda"):
        import torch

        cfg.MODEL.DEVICE = cfg.MODEL.DEVICE if torch.cuda.is_available() else "cpu"
    check_weights_reachable(spec.weights)
    cfg.freeze()
    names = list(cfg.DATASETS.TEST) or list(cfg.DATASETS.TRAIN)
    metadata = MetadataCatalog.get(names[0]) if names else MetadataCatalog.get("__none__")
    semantic = cfg.MODEL.META_ARCHITECTURE in ("SemanticSegmentor", "CPNetSegmentor")
    return LoadedModel(spec, Predictor(cfg), metadata, "semantic" if semantic else "instance")


class ModelCache:
    """At most ``capacity`` loaded models, least recently used evicted; each model is loaded once
    even when several threads ask for it at the same time."""

    def __init__(self, specs: Dict[str, ModelSpec], capacity: int = 4, loader=build_model):
        self.specs = specs
        self.capacity = capacity
        self.loader = loader
        self._models: "collections.OrderedDict[str, LoadedModel]" = collections.OrderedDict()
        self._lock = threading.Lock()
        self._loading: Dict[str, threading.Lock] = {name: threading.Lock() for name in specs}

    def loaded(self) -> List[str]:
        with self._lock:
            return list(self._models)

    def get(self, name: str) -> LoadedModel:
        """The loaded model ``name`` (KeyError if there is no such model)."""
        with self._loading[name]:
            with self._lock:
                model: Optional[LoadedModel] = self._models.get(name)
                if model is not None:
                    self._models.move_to_end(name)
                    return model
            model = self.loader(self.specs[name])
            with self._lock:
                self._models[name] = model
                while len(self._models) > self.capacity:
                    self._models.popitem(last=False)
            return model
