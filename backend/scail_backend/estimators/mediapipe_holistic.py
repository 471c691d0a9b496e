"""The embedded default estimator: MediaPipe Holistic (``mediapipe==0.10.21``), CPU, no download.

0.10.21 is the last MediaPipe release whose wheel carries the legacy ``solutions`` models; only
``model_complexity=1`` is bundled (0 and 2 try to download their models and fail offline), so it
is the only one offered. Video mode (``static_image_mode=False``) tracks the person between frames
and smooths the landmarks. One person per frame; a frame where MediaPipe finds nobody is NaN.

MediaPipe's landmark smoothing filters run in real time (cutoffs in Hz), but the ``solutions``
API stamps every frame 1/30 s after the previous one, whatever the video's rate; frames are
stamped here at the video's own rate instead (:func:`_process_at`). Measured on the synthetic
library (bench/accuracy.py): at 8 fps the 2D error fell from 5.0 to 4.5 px and the PA-MPJPE from
48.8 to 48.0 mm; at 16 fps 4.7 -> 4.6 px, PA-MPJPE unchanged; at 30 fps nothing changes.

The mapping onto SMPL-24 and whole-body-134 is in ``mediapipe_mapping``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterable, Optional

import numpy as np

from scail_protocol.camera import intrinsics_from_fov
from scail_protocol.errors import EstimatorError
from scail_protocol.sequence import PoseSequence

from ..progress import ProgressFn, no_progress
from .base import ESTIMATE_STAGE, Estimator
from .mediapipe_mapping import Landmarks, map_frame, normalized_to_px

log = logging.getLogger(__name__)

MODEL_COMPLEXITY = 1             # the only Holistic model bundled in mediapipe 0.10.21
MIN_DETECTION_CONFIDENCE = 0.5   # MediaPipe's defaults
MIN_TRACKING_CONFIDENCE = 0.5
SOLUTION_FRAME_STEP_US = 33333   # what mediapipe.solutions adds to its clock per process() call


def _import_mediapipe():
    # MediaPipe's C++ side logs through glog/absl to stderr; keep it to errors unless the user
    # asked otherwise. Must be set before the first import.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import mediapipe as mp
    except ImportError as e:
        raise EstimatorError(f"the mediapipe estimator needs the 'mediapipe==0.10.21' package "
                             f"({e}); install the project's dependencies") from None
    return mp


def mediapipe_version() -> str:
    """Installed MediaPipe version, without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mediapipe")
    except PackageNotFoundError:
        return "not installed"


class MediaPipeHolisticEstimator(Estimator):
    """SMPL-24 + whole-body-134 from MediaPipe Holistic, one person, CPU."""

    name = "mediapipe"
    needs_weights = False

    def __init__(self, *, min_detection_confidence: float = MIN_DETECTION_CONFIDENCE,
                 min_tracking_confidence: float = MIN_TRACKING_CONFIDENCE,
                 smooth_landmarks: bool = True):
        self.device = "cpu"
        self.version = f"mediapipe {mediapipe_version()} holistic complexity {MODEL_COMPLEXITY}"
        self._options = dict(static_image_mode=False, model_complexity=MODEL_COMPLEXITY,
                             smooth_landmarks=smooth_landmarks, refine_face_landmarks=False,
                             min_detection_confidence=min_detection_confidence,
                             min_tracking_confidence=min_tracking_confidence)
        self._graph = None
        self._closed = False

    def _fresh_graph(self):
        """The Holistic graph, reset so no tracking state leaks from a previous video."""
        if self._closed:
            raise EstimatorError("this mediapipe estimator has been closed")
        if self._graph is None:
            mp = _import_mediapipe()
            self._graph = mp.solutions.holistic.Holistic(**self._options)
        else:
            self._graph.reset()
        return self._graph

    def estimate(self, frames: Iterable[np.ndarray], *, size, fps: float,
                 K: Optional[np.ndarray] = None, total: Optional[int] = None,
                 progress: Optional[ProgressFn] = None) -> PoseSequence:
        """See :meth:`Estimator.estimate`. The result has one person (P = 1)."""
        progress = progress or no_progress
        height, width = (int(v) for v in size)
        K = intrinsics_from_fov(height, width) if K is None else np.asarray(K, dtype=np.float64)
        graph = self._fresh_graph()
        step_us = max(1, round(1e6 / float(fps)))
        poses = []
        progress(ESTIMATE_STAGE, 0, total or 0)
        for frame in frames:
            if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                raise EstimatorError(f"frame {len(poses)} is {frame.shape} {frame.dtype}, "
                                     f"expected ({height}, {width}, 3) uint8 RGB")
            if poses:
                result = _process_at(graph, frame, step_us)
            else:  # the graph's calculators start on the first frame and chatter on stderr
                with _native_stderr_silenced():
                    result = _process_at(graph, frame, step_us)
            landmarks = landmarks_from_result(result, (height, width))
            poses.append(None if landmarks is None else map_frame(landmarks, K))
            # total 0 = unknown (a frame count estimated from the duration may run short)
            progress(ESTIMATE_STAGE, len(poses), total if total and total >= len(poses) else 0)
        progress(ESTIMATE_STAGE, len(poses), len(poses))
        found = sum(p is not None for p in poses)
        log.info("mediapipe found a person in %d of %d frames", found, len(poses))
        return _sequence(poses, (height, width), fps, K, self.describe())

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None
        self._closed = True


def _process_at(graph, frame: np.ndarray, step_us: int):
    """``graph.process(frame)`` stamped ``step_us`` microseconds after the previous frame.

    ``SolutionBase.process`` adds 33333 µs to its private clock ``_simulated_timestamp`` before
    stamping the frame; moving that clock first makes the stamp land ``step_us`` after the last
    one (still strictly increasing, across ``reset()`` too). Without that attribute (another
    MediaPipe release) frames keep MediaPipe's own 30 fps clock.
    """
    clock = getattr(graph, "_simulated_timestamp", None)
    if isinstance(clock, int):
        graph._simulated_timestamp = clock + step_us - SOLUTION_FRAME_STEP_US
    return graph.process(frame)


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send file descriptor 2 to /dev/null for the duration (not when logging at DEBUG).

    MediaPipe's C++ side writes ~10 warnings through absl straight to fd 2 when its models start
    ("Feedback manager requires a model with a single signature...", "Using NORM_RECT without
    IMAGE_DIMENSIONS..."); they are noise to users and no environment variable reaches them.
    Anything else written to stderr in that ~0.2 s window is lost too.
    """
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def landmarks_from_result(result, size) -> Optional[Landmarks]:
    """Arrays from a Holistic result; None when no body was found."""
    if result.pose_landmarks is None or result.pose_world_landmarks is None:
        return None
    pose = _xyz(result.pose_landmarks.landmark, with_visibility=True)
    world = _xyz(result.pose_world_landmarks.landmark)
    return Landmarks(
        pose_px=normalized_to_px(pose[:, :2], size),
        pose_world_m=world,
        visibility=np.clip(pose[:, 3], 0.0, 1.0),
        face_px=_points_px(result.face_landmarks, size),
        left_hand_px=_points_px(result.left_hand_landmarks, size),
        right_hand_px=_points_px(result.right_hand_landmarks, size),
    )


def _xyz(landmarks, with_visibility: bool = False) -> np.ndarray:
    if with_visibility:
        return np.array([(p.x, p.y, p.z, p.visibility) for p in landmarks], dtype=np.float64)
    return np.array([(p.x, p.y, p.z) for p in landmarks], dtype=np.float64)


def _points_px(landmark_list, size) -> Optional[np.ndarray]:
    if landmark_list is None:
        return None
    xy = np.array([(p.x, p.y) for p in landmark_list.landmark], dtype=np.float64)
    return normalized_to_px(xy, size)


def _sequence(poses: list, size, fps: float, K: np.ndarray, meta: dict) -> PoseSequence:
    """Stack per-frame poses (None = nobody) into a one-person PoseSequence."""
    seq = PoseSequence.empty(1, len(poses), size, fps, K=K, meta=meta)
    if not any(p is not None for p in poses):
        return seq
    arrays = {name: np.array(getattr(seq, name)) for name in ("joints3d", "kp2d", "kp2d_score",
                                                                "bbox")}
    for t, pose in enumerate(poses):
        if pose is None:
            continue
        arrays["joints3d"][0, t] = pose.joints3d
        arrays["kp2d"][0, t] = pose.kp2d
        arrays["kp2d_score"][0, t] = pose.kp2d_score
        arrays["bbox"][0, t] = pose.bbox
    return seq.replace(**arrays)
