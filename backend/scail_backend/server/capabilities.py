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
        "align": _has_module("scail_backend.align") and _has_module("scipy"),
        "smoothing": _has_module("scail_backend.smoothing"),
        # several people tracked with identities; `cleanup` job option (max_people, order,
        # fill_gaps, foot_lock)
        "multi_person": _has_module("scail_backend.tracking"),
        "cleanup": _has_module("scail_backend.cleanup"),
    }


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _estimators() -> dict:
    """The registry's view (``estimators.registry.capabilities``): names that can run here,
    what ``auto`` picks, and for every estimator whether it can run and why not."""
    try:
        from ..estimators import registry

        return registry.capabilities()
    except (ImportError, ScailError, OSError) as e:
        return {"names": [], "auto": None, "reason": f"estimators unavailable: {e}", "all": {}}


def _device() -> dict:
    """``{"name": "cuda" | "cpu", "cpu_count": n, "models": {...}}``: CUDA when an NVIDIA driver
    is loaded; ``models`` says where each model of an estimator that can run here runs, e.g.
    ``{"nlf": {"yolox": "cuda", "dwpose": "cuda", "nlf": "cuda:0"}}``."""
    return {"name": "cuda" if NVIDIA_PROC.exists() else "cpu", "cpu_count": os.cpu_count(),
            "models": _model_devices()}


def _model_devices() -> dict:
    try:
        from ..estimators import registry

        if not registry.availability("nlf").ok:
            return {}
        from ..estimators.nlf.models import planned_devices

        return {"nlf": planned_devices()}
    except (ImportError, ScailError, OSError) as e:
        log.debug("cannot tell where the nlf models would run: %s", e)
        return {}
