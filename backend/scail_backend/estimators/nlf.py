"""The studio-grade estimator of the reference (YOLOX + DWPose + NLF): weights check only, for now.

What exists in this release is honest bookkeeping: which weight files the estimator needs, where
they are looked for and whether they are there. The estimator itself (ONNX detection and
keypoints, the TorchScript NLF model, reference §2–3) arrives in a later release; choosing it
says so instead of producing anything.
"""

from __future__ import annotations

import logging
from typing import Iterable, Optional

import numpy as np

from scail_protocol.errors import EstimatorError, WeightsMissing

from .. import weights
from ..progress import ProgressFn
from .base import Estimator

log = logging.getLogger(__name__)

NAME = "nlf"
AVAILABLE = False  # the inference code is a later issue; `auto` falls back to mediapipe until then


def weights_status(weights_dir=None) -> weights.WeightsStatus:
    """Presence of the files the nlf estimator needs (argument, $SCAIL_WEIGHTS_DIR, project)."""
    return weights.status(weights_dir, used_by=NAME)


def require_weights(weights_dir=None) -> weights.WeightsStatus:
    """The weights status, or WeightsMissing naming the folder and what to do."""
    state = weights_status(weights_dir)
    if not state.complete:
        raise WeightsMissing(f"nlf weights not found at {state.directory} (missing "
                             f"{', '.join(state.missing)}); run `scail-pose weights download` or "
                             f"use `--estimator mediapipe`")
    return state


class NLFEstimator(Estimator):
    """YOLOX-L + DWPose-L + NLF-L (reference §2–3). Not available in this release.

    Raises on construction: WeightsMissing when the weights are absent, otherwise EstimatorError
    saying that the estimator arrives in a later release.
    """

    name = NAME
    version = "nlf_l_multi 0.3.2 + dw-ll_ucoco_384 + yolox_l"
    needs_weights = True

    def __init__(self, weights_dir=None, device: Optional[str] = None):
        state = require_weights(weights_dir)
        self.device = device or "cpu"
        raise EstimatorError(f"nlf weights found at {state.directory}, but the nlf estimator "
                             f"arrives in a later release of SCAIL Pose Studio; use "
                             f"`--estimator mediapipe` (or auto) for now")

    def estimate(self, frames: Iterable[np.ndarray], *, size, fps: float,
                 K: Optional[np.ndarray] = None, total: Optional[int] = None,
                 progress: Optional[ProgressFn] = None):
        raise EstimatorError("the nlf estimator arrives in a later release")
