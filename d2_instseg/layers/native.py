"""Native CPU kernels (``csrc/``), compiled on first use with the machine's C++ compiler and loaded
as ``torch.ops.d2_instseg.*``.

A wheel of compiled kernels would have to match every torch build; compiling the one small source
file against the installed torch (about 15 s, once per machine, torch version and source: the
library is cached under :func:`d2_instseg.utils.cache.cache_dir`) keeps the package pure Python and
lets the compiler target this CPU (``-march=native``: AVX-512 where the CPU has it). Where no
compiler is found or the build fails, a warning says so and the callers keep their PyTorch path
(same function, slower); ``D2_INSTSEG_NATIVE=0`` turns the kernels off.
"""

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from typing import List, Optional

import torch

from ..utils.cache import cache_dir

__all__ = ["native_ops_available"]

logger = logging.getLogger(__name__)
_SOURCE = os.path.join(os.path.dirname(__file__), "csrc", "deform_conv_cpu.cpp")
_FLAGS = ["-O3", "-march=native", "-std=c++20", "-fopenmp", "-shared", "-fPIC"]
_loaded: Optional[bool] = None


def native_ops_available() -> bool:
    """Whether ``torch.ops.d2_instseg`` holds the native kernels; builds and loads them on the first
    call (False, with one warning, where that is not possible or ``D2_INSTSEG_NATIVE=0``)."""
    global _loaded
    if _loaded is None:
        _loaded = os.getenv("D2_INSTSEG_NATIVE", "1") != "0" and _load()
    return _loaded


def _cpu_flags() -> str:
    """The CPU's feature list (part of the cache key: ``-march=native`` code needs them)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return ""


def _command(compiler: str, output: str) -> List[str]:
    # torch's headers and libraries, where torch.utils.cpp_extension finds them (not imported: it
    # looks for CUDA on import and warns on a CPU-only machine)
    root = os.path.dirname(torch.__file__)
    lib = os.path.join(root, "lib")
    includes = [f"-I{os.path.join(root, 'include')}"]
    abi = f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"
    # torch's own libgomp (same soname) is the one already loaded, so the kernel's parallel_for
    # shares torch's OpenMP threads and torch.set_num_threads.
    libs = [f"-L{lib}", f"-Wl,-rpath,{lib}", "-lc10", "-ltorch_cpu"]
    return [compiler, *_FLAGS, abi, *includes, _SOURCE, *libs, "-o", output]


def _load() -> bool:
    compiler = os.getenv("CXX") or shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        logger.warning("d2_instseg: no C++ compiler found; native kernels off (PyTorch path)")
        return False
    with open(_SOURCE, "rb") as f:
        source = f.read()
    key = hashlib.sha1(
        b"\0".join(
            [
                source,
                torch.__version__.encode(),
                " ".join(_FLAGS).encode(),
                _cpu_flags().encode(),
                compiler.encode(),
            ]
        )
    ).hexdigest()[:16]
    folder = os.path.join(cache_dir(), "native", key)
    library = os.path.join(folder, "d2_instseg_native.so")
    partial = None
    if not os.path.exists(library):
        try:
            os.makedirs(folder, exist_ok=True)
            logger.info("d2_instseg: compiling the native kernels into %s (once)", folder)
            # Built under a temporary name and renamed: concurrent processes never load half a file.
            fd, partial = tempfile.mkstemp(suffix=".so", dir=folder)
            os.close(fd)
            subprocess.run(_command(compiler, partial), check=True, capture_output=True, text=True)
            os.replace(partial, library)
        except (OSError, subprocess.CalledProcessError) as e:
            detail = getattr(e, "stderr", "") or str(e)
            if partial is not None and os.path.exists(partial):
                os.remove(partial)
            logger.warning(
                "d2_instseg: native kernels not built (%s); PyTorch path", detail[-2000:]
            )
            return False
    try:
        torch.ops.load_library(library)
    except (OSError, RuntimeError) as e:
        logger.warning(
            "d2_instseg: native kernels not loaded from %s (%s); PyTorch path", library, e
        )
        return False
    return True
