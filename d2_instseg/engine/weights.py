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


class WeightsUnavailableError(FileNotFoundError):
    """``MODEL.WEIGHTS`` names a file that is not here and cannot be fetched."""


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
    or why none of these works."""
    if not path:
        return True, "none (random initialisation)"
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
    """Raise :class:`WeightsUnavailableError` naming the file and how to go on without it."""
    ok, where = weights_status(path)
    if ok:
        return
    raise WeightsUnavailableError(
        f"MODEL.WEIGHTS {path!r} is not available: {where}. Download it on a machine with "
        f"internet access and set MODEL.WEIGHTS to the local file, or train from scratch with "
        f'MODEL.WEIGHTS "" (configs made for pretrained weights freeze BatchNorm statistics or '
        f"early stages: from scratch also set MODEL.RESNETS.NORM GN, Detectron2's recipe for "
        f"training from scratch, or BN, and MODEL.BACKBONE.FREEZE_AT 0)."
    )
