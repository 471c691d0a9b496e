"""The embedded default estimator: MediaPipe Holistic (``mediapipe==0.10.21``), CPU, no download.

0.10.21 is the last MediaPipe release whose wheel carries the legacy ``solutions`` models; only
``model_complexity=1`` is bundled (0 and 2 try to download their models and fail offline), so it
is the only one offered. Video mode (``static_image_mode=False``) tracks the person between frames
and smooths the landmarks.

Holistic finds one person per image; several are found by a search (``person_search``): a
cascade of video-mode graphs, each run on the frame with the people found before it painted
over (a deeper graph that has found nobody for ``REST_AFTER_FRAMES`` frames looks every
``RESTING_EVERY_FRAMES`` frames only: on a one-person clip the second search cost a quarter of
the CPU time); crops around the previous frame's people that the cascade missed; and, where nobody was
found (and every ``SCAN_EVERY_FRAMES`` frames), square tiles of the frame, each searched as a
cascade of its own, which find people too small for the full frame (after MediaPipe's
224-pixel detector downscale); while still nobody is found, every ``FINE_SCAN_EVERY_FRAMES``
frames, tiles half that size. Crops and tiles run in a static-image graph. The result's person slots are the people found in each frame, in
no particular order: ``scail_backend.tracking`` links them into identities.

MediaPipe's landmark smoothing filters run in real time (cutoffs in Hz), but the ``solutions``
API stamps every frame 1/30 s after the previous one, whatever the video's rate; frames are
stamped here at the video's own rate instead (:func:`_process_at`). Measured on the synthetic
library (bench/accuracy.py): at 8 fps the 2D error fell from 5.0 to 4.5 px and the PA-MPJPE from
48.8 to 48.0 mm; at 16 fps 4.7 -> 4.6 px, PA-MPJPE unchanged; at 30 fps nothing changes.

The mapping onto SMPL-24 and whole-body-134 is in ``mediapipe_mapping``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
from typing import Iterable, Optional

import numpy as np

from scail_protocol.camera import intrinsics_from_fov
from scail_protocol.errors import EstimatorError
from scail_protocol.sequence import PoseSequence

from ..progress import ProgressFn, no_progress
from . import person_search as S
from .base import ESTIMATE_STAGE, Estimator
from .mediapipe_mapping import Landmarks, map_frame, normalized_to_px

log = logging.getLogger(__name__)

MODEL_COMPLEXITY = 1             # the only Holistic model bundled in mediapipe 0.10.21
MIN_DETECTION_CONFIDENCE = 0.5   # MediaPipe's defaults
MIN_TRACKING_CONFIDENCE = 0.5
SOLUTION_FRAME_STEP_US = 33333   # what mediapipe.solutions adds to its clock per process() call
MAX_CASCADE = 6          # most people the full-frame cascade looks for in one frame
REST_AFTER_FRAMES = 32   # a deeper cascade graph that found nobody this many frames in a row ...
RESTING_EVERY_FRAMES = 4  # ... looks this often only (measured on dance_a: the second graph
                          # cost 34 of 125 ms CPU per frame)
SCAN_EVERY_FRAMES = 16   # tiles are searched this often (and whenever nobody is followed)
FINE_SCAN_EVERY_FRAMES = 8  # while nobody is found, half-size tiles too, this often
FINE_TILE_FRACTION = 0.5    # their side, as a fraction of the frame's short side
MIN_RELATIVE_HEIGHT = 0.3       # a find shorter than this x the tallest person of the frame
                                # is ignored (a seated crowd behind dancers: ~0.17 on `duet`)
SCAN_MIN_RELATIVE_HEIGHT = 0.5  # the same for tile finds, which see the crowd more often
SCAN_MIN_VISIBILITY = 0.85      # mean landmark visibility a tile find needs: small people found
                                # in tiles score 0.97-0.99; a "person" on a squirrel's head in a
                                # reference image scored 0.72


CPU_ONLY = ("mediapipe runs on the CPU only, so it cannot honour --device cuda; use the nlf "
            "estimator for CUDA, or --device auto / cpu")


def _asks_for_cuda(device: Optional[str]) -> bool:
    return (device or "auto").lower() == "cuda"


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
    """SMPL-24 + whole-body-134 from MediaPipe Holistic, several people, CPU.

    Options:
        max_people_per_frame: most people looked for in one frame (default ``MAX_CASCADE``);
            1 = the single-person behaviour of MediaPipe alone.
        search_small: also search crops around the previous frame's people and tiles of the
            frame (small and partly hidden people); False = full-frame cascade only.
    """

    name = "mediapipe"
    label = "MediaPipe (embedded, CPU)"
    needs_weights = False

    @classmethod
    def availability(cls, *, weights_dir=None, device: Optional[str] = None):
        """Runs wherever ``mediapipe`` is installed, on the CPU: ``device`` "cuda" is refused
        (so that ``--device cuda`` never runs on the CPU unannounced); ``weights_dir`` does
        not apply."""
        import importlib.util

        if _asks_for_cuda(device):
            return False, CPU_ONLY
        if importlib.util.find_spec("mediapipe") is None:
            return False, ("the mediapipe package is not installed here; install the project's "
                           "dependencies (pip install -e .)")
        return True, ""

    def __init__(self, *, weights_dir=None, device: Optional[str] = None,
                 min_detection_confidence: float = MIN_DETECTION_CONFIDENCE,
                 min_tracking_confidence: float = MIN_TRACKING_CONFIDENCE,
                 smooth_landmarks: bool = True, max_people_per_frame: int = MAX_CASCADE,
                 search_small: bool = True):
        if _asks_for_cuda(device):
            raise EstimatorError(CPU_ONLY)
        if int(max_people_per_frame) < 1:
            raise EstimatorError(f"max_people_per_frame must be >= 1, got {max_people_per_frame}")
        self.max_people_per_frame = int(max_people_per_frame)
        self.search_small = bool(search_small)
        self.device = "cpu"
        self.version = f"mediapipe {mediapipe_version()} holistic complexity {MODEL_COMPLEXITY}"
        self._options = dict(static_image_mode=False, model_complexity=MODEL_COMPLEXITY,
                             smooth_landmarks=smooth_landmarks, refine_face_landmarks=False,
                             enable_segmentation=True,  # the silhouette painted over a find
                             min_detection_confidence=min_detection_confidence,
                             min_tracking_confidence=min_tracking_confidence)
        self._cascade = []   # video-mode graphs: graph k sees the frame with k people painted
        self._static = None  # static-image graph for crops and tiles
        self._closed = False

    def _graph(self, k: Optional[int]) -> "_Graph":
        """Cascade graph ``k`` (video mode), or the static-image graph for ``k`` None."""
        if self._closed:
            raise EstimatorError("this mediapipe estimator has been closed")
        if k is None:
            if self._static is None:
                self._static = _Graph(dict(self._options, static_image_mode=True))
            return self._static
        while len(self._cascade) <= k:
            self._cascade.append(_Graph(self._options))
        return self._cascade[k]

    def estimate(self, frames: Iterable[np.ndarray], *, size, fps: float,
                 K: Optional[np.ndarray] = None, total: Optional[int] = None,
                 progress: Optional[ProgressFn] = None) -> PoseSequence:
        """See :meth:`Estimator.estimate`. Person slots hold each frame's people in no
        particular order (``tracking.track_people`` links them); P = the most found in a
        frame (at least 1)."""
        progress = progress or no_progress
        height, width = (int(v) for v in size)
        K = intrinsics_from_fov(height, width) if K is None else np.asarray(K, dtype=np.float64)
        for graph in self._cascade + [self._static]:
            if graph is not None:
                graph.reset()
        search = _PeopleSearch(self, (height, width), step_us=max(1, round(1e6 / float(fps))))
        poses = []
        progress(ESTIMATE_STAGE, 0, total or 0)
        for frame in frames:
            if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                raise EstimatorError(f"frame {len(poses)} is {frame.shape} {frame.dtype}, "
                                     f"expected ({height}, {width}, 3) uint8 RGB")
            poses.append([map_frame(find.lm, K) for find in search.find(frame)])
            # total 0 = unknown (a frame count estimated from the duration may run short)
            progress(ESTIMATE_STAGE, len(poses), total if total and total >= len(poses) else 0)
        progress(ESTIMATE_STAGE, len(poses), len(poses))
        counts = np.array([len(p) for p in poses], dtype=np.int64)
        log.info("mediapipe found a person in %d of %d frames (up to %d in one frame)",
                 int((counts > 0).sum()), len(poses), int(counts.max(initial=0)))
        full = int((counts >= self.max_people_per_frame).sum())
        if full and self.max_people_per_frame > 1:
            log.info("the people search stopped at its limit of %d people on %d frames; more "
                     "may be present", self.max_people_per_frame, full)
        return _sequence(poses, (height, width), fps, K, self.describe())

    def close(self) -> None:
        for graph in self._cascade + [self._static]:
            if graph is not None:
                graph.close()
        self._cascade, self._static = [], None
        self._closed = True


class _Graph:
    """One Holistic graph, stamped at the video's own rate (see :func:`_process_at`).

    MediaPipe starts a graph's calculators on worker threads when the graph is built or reset,
    and they chatter on stderr as they start; building (or resetting) the graph and its first
    frame therefore run inside one :func:`_native_stderr_silenced` window, with no Python work
    in between for the chatter to slip through. The landmark calculators start only when a
    first person is found, so frames stay silenced until then.
    """

    def __init__(self, options: dict):
        self._options = options
        self._solution = None
        self._last_frame = None
        self._starting = True   # the next frame builds (or restarts) the graph
        self._quiet = True      # nobody found since it started: its landmark stages may chatter

    def run(self, image: np.ndarray, frame_index: int, step_us: int):
        """Holistic's result for ``image``, seen as frame ``frame_index`` of the video."""
        gap = 1 if self._last_frame is None else max(1, frame_index - self._last_frame)
        self._last_frame = frame_index
        if not self._quiet:
            return _process_at(self._solution, image, gap * step_us)
        with _native_stderr_silenced():
            if self._starting:
                if self._solution is None:
                    self._solution = _import_mediapipe().solutions.holistic.Holistic(
                        **self._options)
                else:
                    self._solution.reset()
                self._starting = False
            result = _process_at(self._solution, image, gap * step_us)
        self._quiet = getattr(result, "pose_landmarks", None) is None
        return result

    def reset(self) -> None:
        """Forget the video so far; the graph restarts with its next frame."""
        self._last_frame = None
        self._starting = self._quiet = True

    def close(self) -> None:
        if self._solution is not None:
            self._solution.close()


@dataclasses.dataclass(frozen=True)
class _Find:
    """One person found: landmarks in frame pixels, and MediaPipe's silhouette of them in the
    searched window (bool, window-sized; None without one) with the window's top-left pixel."""

    lm: Landmarks
    silhouette: Optional[np.ndarray] = None
    origin: tuple = (0, 0)

    @property
    def height(self) -> float:
        return S.body_height_px(self.lm.pose_px)


class _PeopleSearch:
    """The people of each frame of one video (see the module docstring for the search)."""

    def __init__(self, estimator: MediaPipeHolisticEstimator, size, step_us: int):
        self._est, self._size, self._step_us = estimator, tuple(size), step_us
        self._previous = []   # boxes of the people found in the previous frame
        self._frame = -1
        self._idle = {}       # cascade graph k -> frames in a row it has found nobody new

    def _resting(self, k: int) -> bool:
        """Whether cascade graph ``k`` (k >= 1) skips this frame: after finding nobody for
        :data:`REST_AFTER_FRAMES` frames in a row it looks on every :data:`RESTING_EVERY_FRAMES`
        th frame only, so a one-person clip does not pay for a second full search each frame;
        someone who walks in is still found within that many frames."""
        return (k > 0 and self._idle.get(k, 0) >= REST_AFTER_FRAMES
                and self._frame % RESTING_EVERY_FRAMES != 0)

    def find(self, frame: np.ndarray) -> list:
        """Every person found in ``frame`` (RGB uint8 at the working size), as ``_Find``s."""
        self._frame += 1
        work, mask = frame.copy(), np.zeros(frame.shape[:2], np.uint8)
        found = []
        limit = self._est.max_people_per_frame
        for k in range(limit):  # the cascade: graph k sees the k people found so far painted
            if self._resting(k):
                break
            result = self._est._graph(k).run(work, self._frame, self._step_us)
            new = _find(result, self._size, (0, 0))
            if new is None or self._repeat(new, mask):
                self._idle[k] = self._idle.get(k, 0) + 1
                break
            self._idle[k] = 0
            if not self._accept(new, found, work, mask):
                break  # the crowd behind: what a deeper search finds is smaller still
        if self._est.search_small:
            for box in self._previous:  # crops where people were a frame ago
                if len(found) >= limit:
                    break
                if S.box_covered(box, [_box(f.lm) for f in found], mask):
                    continue
                new = self._in_window(work, S.crop_around(box, self._size))
                if new is not None and not self._repeat(new, mask):
                    self._accept(new, found, work, mask)
            if self._frame % SCAN_EVERY_FRAMES == 0 or not found:
                self._scan(work, mask, found, limit, S.tiles(self._size))
            if not found and self._frame % FINE_SCAN_EVERY_FRAMES == 0:
                side = int(FINE_TILE_FRACTION * min(self._size))
                self._scan(work, mask, found, limit, S.tiles(self._size, side=side))
        self._previous = [_box(f.lm) for f in found]
        return found

    @staticmethod
    def _repeat(new: "_Find", mask: np.ndarray) -> bool:
        return S.mostly_covered(mask, new.lm.pose_px, new.lm.visibility)

    @staticmethod
    def _paint(new: "_Find", work: np.ndarray, mask: np.ndarray) -> None:
        S.paint_body(work, mask, new.lm.pose_px, silhouette=new.silhouette, origin=new.origin)

    def _accept(self, new: "_Find", found: list, work: np.ndarray, mask: np.ndarray,
                min_relative: float = MIN_RELATIVE_HEIGHT) -> bool:
        """Keep a find (painting it over), unless it is far smaller than the tallest person;
        returns whether it was kept."""
        self._paint(new, work, mask)  # painted either way: not found again
        tallest = max((f.height for f in found), default=0.0)
        if new.height < min_relative * tallest:
            return False
        found.append(new)
        return True

    def _in_window(self, image: np.ndarray, window) -> Optional["_Find"]:
        """The person found in a window of ``image`` (static graph), in frame pixels."""
        x0, y0, x1, y1 = window
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        result = self._est._graph(None).run(crop, self._frame, self._step_us)
        return _find(result, crop.shape[:2], (x0, y0))

    def _scan(self, work: np.ndarray, mask: np.ndarray, found: list, limit: int,
              windows: list) -> None:
        """Search windows of the (painted) frame, each as a cascade of its own; new people
        are added to ``found`` and painted."""
        for window in windows:
            while len(found) < limit:
                new = self._in_window(work, window)
                if new is None or self._repeat(new, mask):
                    break
                if float(np.mean(new.lm.visibility)) < SCAN_MIN_VISIBILITY:
                    self._paint(new, work, mask)
                    break
                if not self._accept(new, found, work, mask, SCAN_MIN_RELATIVE_HEIGHT):
                    break


def _find(result, size, origin) -> Optional[_Find]:
    """A ``_Find`` from a Holistic result on an image of ``size`` whose top-left pixel is frame
    pixel ``origin``; None when nobody was found."""
    lm = landmarks_from_result(result, size)
    if lm is None:
        return None
    seg = getattr(result, "segmentation_mask", None)
    silhouette = None if seg is None else np.asarray(seg) > S.SILHOUETTE_THRESHOLD
    if origin != (0, 0):
        lm = _shifted(lm, *origin)
    return _Find(lm=lm, silhouette=silhouette, origin=tuple(int(v) for v in origin))


def _shifted(lm: Landmarks, dx: float, dy: float) -> Landmarks:
    """Landmarks of a crop moved into frame pixels (crop pixel (0, 0) = frame pixel (dx, dy))."""
    shift = np.array([dx, dy], dtype=np.float64)
    moved = {name: getattr(lm, name) + shift
             for name in ("pose_px", "face_px", "left_hand_px", "right_hand_px")
             if getattr(lm, name) is not None}
    return dataclasses.replace(lm, **moved)


def _box(lm: Landmarks) -> tuple:
    """x1, y1, x2, y2 pixels around the visible pose landmarks, padded."""
    visible = lm.visibility >= S.POINT_MIN_VISIBILITY
    pts = lm.pose_px[visible] if visible.sum() >= 3 else lm.pose_px
    low, high = pts.min(0), pts.max(0)
    pad = (high - low) * 0.1
    return tuple(float(v) for v in np.concatenate([low - pad, high + pad]))


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
    Logging handlers that write to fd 2 write to the real stderr meanwhile (a copy of it), so
    other threads' records (the decoder's warnings, say) still show; other writes to stderr in
    the window are lost.
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
        with _logging_to(saved):
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


@contextlib.contextmanager
def _logging_to(fd: int):
    """Point the logging handlers that write to fd 2 at a copy of ``fd`` for the duration."""
    loggers = [logging.getLogger(), *(item for item in logging.Logger.manager.loggerDict.values()
                                      if isinstance(item, logging.Logger))]
    handlers = {id(h): h for lg in loggers for h in lg.handlers
                if isinstance(h, logging.StreamHandler) and _writes_to_fd2(h)}
    if not handlers:
        yield
        return
    stream = os.fdopen(os.dup(fd), "w", buffering=1, encoding=getattr(sys.stderr, "encoding",
                                                                        None) or "utf-8",
                       errors="backslashreplace")
    swapped = []
    for handler in handlers.values():
        try:
            swapped.append((handler, handler.setStream(stream)))
        except AttributeError:  # a handler whose stream is fixed (logging.lastResort's)
            continue
    try:
        yield
    finally:
        for handler, old in swapped:
            handler.setStream(old)
        stream.close()


def _writes_to_fd2(handler: logging.StreamHandler) -> bool:
    try:
        return handler.stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # not a real file (pytest's capture, say)
        return False


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
    """Stack per-frame lists of poses into a PoseSequence with one slot per person found in the
    busiest frame (at least one); slot p of frame t is the p-th person found there, or NaN."""
    slots = max([len(p) for p in poses] + [1])
    seq = PoseSequence.empty(slots, len(poses), size, fps, K=K, meta=meta)
    if not any(poses):
        return seq
    arrays = {name: np.array(getattr(seq, name)) for name in ("joints3d", "kp2d", "kp2d_score",
                                                                "bbox")}
    for t, people in enumerate(poses):
        for p, pose in enumerate(people):
            arrays["joints3d"][p, t] = pose.joints3d
            arrays["kp2d"][p, t] = pose.kp2d
            arrays["kp2d_score"][p, t] = pose.kp2d_score
            arrays["bbox"][p, t] = pose.bbox
    return seq.replace(**arrays)
