"""What a worker can do, for ``hello``: estimators, device, weights, renderer.

Detection is cheap and defensive: it looks for modules and files without importing torch,
mediapipe or taichi, and a part that cannot be inspected is reported as absent with the reason.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from scail_protocol.errors import ScailError

log = logging.getLogger(__name__)

NVIDIA_PROC = Path("/proc/driver/nvidia/version")  # present when an NVIDIA driver is loaded


def detect() -> dict:
    """JSON-ready capabilities of this process."""
    return {
        "estimators": _estimators(),
        "device": _device(),
        "extract": _has_module("scail_backend.pipeline"),
        "render": _has_module("scail_backend.render.pipeline"),
        "align": False,
        "smoothing": _has_module("scail_backend.smoothing"),
    }


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _estimators() -> dict:
    """``{"names": [...], "auto": name, "reason": why, "weights": {...}}`` (best effort)."""
    info = {"names": [], "auto": None, "reason": None, "weights": None}
    try:
        from ..estimators import base
    except ImportError as e:
        info["reason"] = f"estimators unavailable: {e}"
        return info
    info["names"] = [n for n in base.names()
                     if n == base.AUTO or n != "mediapipe" or _has_module("mediapipe")]
    try:
        info["auto"], info["reason"] = base.choose(base.AUTO)
    except (ImportError, ScailError, OSError, AttributeError) as e:
        info["reason"] = f"cannot tell which estimator auto picks: {e}"
    try:
        from ..estimators import nlf

        status = nlf.weights_status(None)
        info["weights"] = {"nlf": {"present": bool(status.complete),
                                   "directory": str(status.directory),
                                   "missing": list(status.missing)}}
    except (ImportError, ScailError, OSError, AttributeError) as e:
        info["weights"] = {"nlf": {"present": False, "error": str(e)}}
    return info


def _device() -> dict:
    """``{"name": "cuda" | "cpu", "cpu_count": n}``: CUDA when an NVIDIA driver is loaded."""
    return {"name": "cuda" if NVIDIA_PROC.exists() else "cpu", "cpu_count": os.cpu_count()}
