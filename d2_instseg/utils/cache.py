"""The package's cache folder: dataset fingerprints without a writable dataset folder, and the
compiled native kernels."""

import os

__all__ = ["cache_dir"]


def cache_dir() -> str:
    """``$D2_INSTSEG_CACHE``, default ``~/.cache/d2_instseg``."""
    return os.getenv(
        "D2_INSTSEG_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "d2_instseg")
    )
