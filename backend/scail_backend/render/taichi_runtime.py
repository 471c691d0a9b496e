"""One taichi runtime per process: ``init_taichi(arch)`` picks CUDA or the CPU and says which.

Taichi has a single global runtime. ``ti.init`` destroys every field, ndarray and compiled kernel
of the previous runtime, so this module initialises once and only re-initialises when a caller
explicitly asks for a *different* architecture:

* ``init_taichi("auto")`` — first call: CUDA when taichi can use it, else the CPU. Later calls
  keep whatever is running (no re-init).
* ``init_taichi("cpu")`` / ``init_taichi("cuda")`` — no-op when that arch is already running;
  otherwise (re-)initialise on it, which invalidates renderers built before (they notice through
  :func:`generation` and rebuild their buffers). ``"cuda"`` without a usable GPU raises.

Importing this module does not import taichi; ``TI_SKIP_VERSION_CHECK`` is set first because
taichi's online version check hangs without network.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading

from scail_protocol.errors import RenderError

log = logging.getLogger(__name__)

ARCHES = ("auto", "cpu", "cuda")
_lock = threading.Lock()
_state = {"arch": None, "generation": 0}


def _import_taichi():
    os.environ["TI_SKIP_VERSION_CHECK"] = "ON"  # the online check hangs without network
    os.environ.setdefault("ENABLE_TAICHI_HEADER_PRINT", "False")  # keep stdout for results
    import taichi as ti

    return ti


def cuda_available() -> bool:
    """True when taichi can run kernels on CUDA here (does not initialise taichi)."""
    ti = _import_taichi()
    from taichi.lang.misc import is_arch_supported

    # The probe logs "libcuda.so lib not found" on machines without a GPU; that is the answer,
    # not a problem worth a warning.
    ti.set_logging_level(ti.ERROR)
    try:
        found = bool(is_arch_supported(ti.cuda))
    except Exception:  # taichi probes the driver; any failure means "no"
        found = False
    finally:
        ti.set_logging_level(ti.WARN)
    log.debug("taichi CUDA available: %s", found)
    return found


def init_taichi(arch: str = "auto") -> str:
    """Initialise taichi once (see the module docstring for the re-init rules).

    Args:
        arch: "auto" (CUDA when present, else CPU), "cpu" or "cuda".

    Returns:
        The arch in use: "cuda" or "cpu".

    Raises:
        RenderError: unknown arch, or "cuda" requested where CUDA is not available.
    """
    if arch not in ARCHES:
        raise RenderError(f"unknown taichi arch {arch!r}; use one of {', '.join(ARCHES)}")
    with _lock:
        current = _state["arch"]
        if current is not None and arch in ("auto", current):
            return current
        wanted = arch
        if arch == "auto":
            wanted = "cuda" if cuda_available() else "cpu"
        elif arch == "cuda" and not cuda_available():
            raise RenderError("--arch cuda: taichi finds no usable CUDA GPU here; "
                              "use --arch cpu (or auto)")
        ti = _import_taichi()
        banner = io.StringIO()
        with contextlib.redirect_stdout(banner):  # taichi prints "Starting on arch=..."
            ti.init(arch=ti.cuda if wanted == "cuda" else ti.cpu, default_fp=ti.f32,
                    offline_cache=True, log_level=ti.WARN)
        if current is not None:
            log.warning("taichi re-initialised on %s (was %s): earlier renderers are rebuilt",
                        wanted, current)
        _state["arch"] = wanted
        _state["generation"] += 1
        log.info("taichi running on %s", wanted)
        log.debug("taichi: %s", banner.getvalue().strip())
        return wanted


def current_arch():
    """The arch taichi runs on ("cpu" / "cuda"), or None before :func:`init_taichi`."""
    return _state["arch"]


def generation() -> int:
    """Increments at every (re-)initialisation; buffers from an older generation are dead."""
    return _state["generation"]
