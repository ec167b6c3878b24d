"""Is ``MODEL.WEIGHTS`` reachable? Checked before training starts, so that an offline machine learns
at once (not after building the data loader) that pretrained weights cannot be fetched.

A local path must exist; a URL (``detectron2://``, ``catalog://``, ``http(s)://``) is fine when
iopath's download cache already holds it (where Detectron2's checkpointer would look), and otherwise
must answer a HEAD request within a few seconds.
"""

import functools
import os
import urllib.error
import urllib.request
from typing import Tuple
from urllib.parse import urlparse

from iopath.common.file_io import get_cache_dir

_PROBE_TIMEOUT_S = 10.0  # a reachable server answers a HEAD request well within this


PICKLE_SUFFIXES = (".pkl", ".pyth")  # Detectron2 / Caffe2 / pycls model zoos: pickles, never loaded
PICKLE_WHY = "it is a pickle file (Detectron2 / Caffe2 / pycls format)"


class WeightsUnavailableError(FileNotFoundError):
    """``MODEL.WEIGHTS`` names a file that is not here and cannot be fetched."""


class UnsafeWeightsError(RuntimeError):
    """A weights file that could run code when loaded (pickle-based); it is not loaded."""


def unsafe_weights(filename: str, why: str) -> UnsafeWeightsError:
    """The error for a file that is refused, saying how to convert it if one trusts it."""
    url = resolve_url(filename)
    local, get = filename, ""
    if "://" in url:  # a model-zoo URL: fetched first, converted locally
        local, get = os.path.basename(urlparse(url).path), f"download {url} and "
    stem = os.path.splitext(local)[0]
    return UnsafeWeightsError(
        f"Refusing to load {filename}: {why}, and unpickling it could run any code. If you trust "
        f"the file, {get}convert it once to plain tensors: python tools/convert_weights.py "
        f"--input {local} --output {stem}.safe.pth, then set MODEL.WEIGHTS to that file."
    )


def resolve_url(path: str) -> str:
    """``detectron2://`` and ``catalog://`` names -> the https URL Detectron2 downloads; other
    paths unchanged."""
    if path.startswith("detectron2://"):
        from detectron2.utils.file_io import Detectron2Handler

        return Detectron2Handler.S3_DETECTRON2_PREFIX + path[len("detectron2://") :]
    if path.startswith("catalog://"):
        from detectron2.checkpoint.catalog import ModelCatalog

        return ModelCatalog.get(path[len("catalog://") :])
    return path


def cached_path(url: str) -> str:
    """Where iopath's HTTP handler caches ``url`` (the file Detectron2 loads once downloaded)."""
    parsed = urlparse(url)
    folder = os.path.join(get_cache_dir(), os.path.dirname(parsed.path.lstrip("/")))
    return os.path.join(folder, url.split("/")[-1])


@functools.lru_cache(maxsize=None)
def _probe(url: str) -> str:
    """ "" if ``url`` answers a HEAD request, else the error (probed once per process)."""
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=_PROBE_TIMEOUT_S)
        return ""
    except (urllib.error.URLError, OSError, ValueError) as e:
        return str(getattr(e, "reason", e))


def weights_status(path: str) -> Tuple[bool, str]:
    """(usable, where): ``where`` is the local file, the cached download, the URL that answers,
    or why none of these works (a pickle file never does: weights are loaded without unpickling,
    see ``SafeCheckpointer``)."""
    if not path:
        return True, "none (random initialisation)"
    if path.endswith(PICKLE_SUFFIXES):
        return False, (
            "it is a pickle file, which d2_instseg does not load (unpickling can run code); "
            "download it once and convert it with tools/convert_weights.py, then set MODEL.WEIGHTS "
            "to the converted .pth"
        )
    url = resolve_url(path)
    if "://" not in url:
        return (True, path) if os.path.isfile(path) else (False, f"file {path!r} does not exist")
    cached = cached_path(url)
    if os.path.isfile(cached):
        return True, cached
    error = _probe(url)
    if not error:
        return True, url
    return False, f"{url} is not in the download cache ({cached}) and cannot be fetched: {error}"


def check_weights_reachable(path: str) -> None:
    """Raise :class:`WeightsUnavailableError` naming the file and how to go on without it, or
    :class:`UnsafeWeightsError` for a pickle file (it would be refused when loaded)."""
    if path.endswith(PICKLE_SUFFIXES):
        raise unsafe_weights(path, PICKLE_WHY)
    ok, where = weights_status(path)
    if ok:
        return
    raise WeightsUnavailableError(
        f"MODEL.WEIGHTS {path!r} is not available: {where}. Get the file (on a machine with "
        f"internet access if need be) and set MODEL.WEIGHTS to the local file, or train from "
        f"scratch with "
        f'MODEL.WEIGHTS "" (configs made for pretrained weights freeze BatchNorm statistics or '
        f"early stages: from scratch also set MODEL.RESNETS.NORM GN, Detectron2's recipe for "
        f"training from scratch, or BN, and MODEL.BACKBONE.FREEZE_AT 0)."
    )
