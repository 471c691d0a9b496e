"""The Estimator interface.

An estimator turns a stream of working-size frames into a :class:`PoseSequence`. It is created
cheaply (models load on first use or in ``__init__`` at the latest), used for one or more videos
and closed. It says whether it can run here with :meth:`Estimator.availability`; the registry
(``registry.py``) picks one by name, ``auto`` included.
"""

from __future__ import annotations

import abc
import logging
from typing import Iterable, Optional, Tuple

import numpy as np

from scail_protocol.sequence import PoseSequence

from ..progress import ProgressFn

log = logging.getLogger(__name__)

ESTIMATE_STAGE = "estimate"  # progress stage name


class Estimator(abc.ABC):
    """Turns RGB frames into poses.

    Class attributes:
        name: registry name ("mediapipe", "nlf").
        label: short human name (menus, ``--help``).
        version: version string of the estimator and its models (goes into PoseSequence.meta).
        needs_weights: whether it needs downloaded weights (``scail-pose weights``).
    Attributes:
        device: where it runs ("cpu", "cuda:0").
        chosen_because: why it was picked (``registry.resolve`` sets it, e.g. "auto chose
            mediapipe: ..."); "" for one created directly.
    """

    name: str = ""
    label: str = ""
    version: str = ""
    needs_weights: bool = False
    device: str = "cpu"
    chosen_because: str = ""

    @abc.abstractmethod
    def estimate(self, frames: Iterable[np.ndarray], *, size, fps: float,
                 K: Optional[np.ndarray] = None, total: Optional[int] = None,
                 progress: Optional[ProgressFn] = None) -> PoseSequence:
        """Estimate every frame of a clip.

        Args:
            frames: iterable of (H, W, 3) uint8 RGB frames at the working size, consumed once,
                one at a time (it may be a decoding generator).
            size: (H, W) of the frames, pixels.
            fps: frame rate of the source, frames per second.
            K: (3, 3) intrinsics to estimate the 3D joints with; None = FOV 55° (docs/pipeline.md
            §3.4).
            total: frame count for progress reports, if known.
            progress: ``progress("estimate", done, total)`` after each frame; may raise
                Cancelled.

        Returns:
            A PoseSequence with one entry per frame; frames without a person are NaN.
        """

    @classmethod
    def availability(cls, *, weights_dir=None, device: Optional[str] = None) -> Tuple[bool, str]:
        """Whether this estimator can run here: ``(True, "")``, or ``(False, reason)`` where the
        reason is one sentence saying why not and what to do. Cheap (no model loading, no heavy
        import) and never raises. ``weights_dir`` and ``device`` are the constructor's."""
        return True, ""

    def close(self) -> None:
        """Release models and threads; the estimator cannot be used afterwards."""

    def describe(self) -> dict:
        """JSON-ready identity for PoseSequence.meta."""
        return {"estimator": self.name, "estimator_version": self.version,
                "estimator_device": self.device}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
