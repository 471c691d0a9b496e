"""The Estimator interface, and the registry that picks one by name (auto, mediapipe, nlf).

An estimator turns a stream of working-size frames into a :class:`PoseSequence`. It is created
cheaply (models load on first use or in ``__init__`` at the latest), used for one or more videos
and closed. ``resolve("auto")`` picks ``nlf`` when its weights are present and the estimator is
available in this release, otherwise ``mediapipe``, and returns why.
"""

from __future__ import annotations

import abc
import logging
from typing import Callable, Dict, Iterable, Optional, Tuple

import numpy as np

from scail_protocol.errors import EstimatorError
from scail_protocol.sequence import PoseSequence

from ..progress import ProgressFn

log = logging.getLogger(__name__)

AUTO = "auto"
ESTIMATE_STAGE = "estimate"  # progress stage name


class Estimator(abc.ABC):
    """Turns RGB frames into poses.

    Class attributes:
        name: registry name ("mediapipe", "nlf").
        version: version string of the estimator and its models (goes into PoseSequence.meta).
        needs_weights: whether it needs downloaded weights (``scail-pose weights``).
    Attributes:
        device: where it runs ("cpu", "cuda:0").
    """

    name: str = ""
    version: str = ""
    needs_weights: bool = False
    device: str = "cpu"

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
            K: (3, 3) intrinsics to estimate the 3D joints with; None = FOV 55° (reference §3.4).
            total: frame count for progress reports, if known.
            progress: ``progress("estimate", done, total)`` after each frame; may raise
                Cancelled.

        Returns:
            A PoseSequence with one entry per frame; frames without a person are NaN.
        """

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


# --- registry -----------------------------------------------------------------------------------

Factory = Callable[..., Estimator]


def _make_mediapipe(**options) -> Estimator:
    from .mediapipe_holistic import MediaPipeHolisticEstimator
    return MediaPipeHolisticEstimator(**options)


def _make_nlf(**options) -> Estimator:
    from .nlf import NLFEstimator
    return NLFEstimator(**options)


ESTIMATORS: Dict[str, Factory] = {  # name -> factory; heavy imports happen inside the factory
    "mediapipe": _make_mediapipe,
    "nlf": _make_nlf,
}


def names() -> Tuple[str, ...]:
    """Every name ``resolve`` accepts, ``auto`` first."""
    return (AUTO,) + tuple(ESTIMATORS)


def create(name: str, **options) -> Estimator:
    """Create the estimator registered under ``name`` (not ``auto``).

    Raises:
        EstimatorError: unknown name.
        WeightsMissing: the estimator needs weights that are not on disk.
    """
    try:
        factory = ESTIMATORS[name]
    except KeyError:
        raise EstimatorError(f"unknown estimator {name!r}; choose one of "
                             f"{', '.join(names())}") from None
    return factory(**options)


def choose(name: str = AUTO, weights_dir=None) -> Tuple[str, str]:
    """The estimator name ``resolve`` would create, and why, without creating it."""
    if name != AUTO:
        return name, f"{name} was asked for"
    from . import nlf

    status = nlf.weights_status(weights_dir)
    if not status.complete:
        return "mediapipe", (f"auto chose mediapipe: the nlf weights are not at {status.directory} "
                             f"(missing {', '.join(status.missing)}); "
                             f"`scail-pose weights download` fetches them")
    if not nlf.AVAILABLE:
        return "mediapipe", (f"auto chose mediapipe: nlf weights found at {status.directory}, but "
                             f"the nlf estimator arrives in a later release")
    return "nlf", f"auto chose nlf: its weights are at {status.directory}"


def resolve(name: str = AUTO, *, weights_dir=None, **options) -> Tuple[Estimator, str]:
    """Create an estimator by name, ``auto`` included, and say which and why.

    Args:
        name: "auto", "mediapipe" or "nlf".
        weights_dir: where the nlf weights live (else $SCAIL_WEIGHTS_DIR, else the project's
            ``pretrained_weights/``).
        options: passed to the estimator's constructor.

    Returns:
        (estimator, reason): the reason is one sentence, also logged at INFO.
    """
    chosen, reason = choose(name, weights_dir)
    log.info("estimator: %s", reason)
    if chosen == "nlf":
        options["weights_dir"] = weights_dir
    return create(chosen, **options), reason
