"""``PoseSequence``: the one value that flows between every stage, and its ``.npz`` file.

A sequence holds P people over T frames. Arrays are person-major ``(P, T, ...)``; missing data is
NaN (never zero). Reference-style views (OpenPose-18 3D arrays, DWPose dicts) are computed on
demand by methods and are never stored.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import joints as J
from . import outputs
from .camera import intrinsics_from_fov
from .errors import SequenceError

SCHEMA_VERSION = 1
FILE_KIND = "scail_pose_sequence"
MAX_SIDE_PX = 16384  # larger images are rejected as absurd

_FLOAT_FIELDS = {  # name -> trailing shape after (P, T)
    "joints3d": (24, 3),
    "kp2d": (J.NUM_WHOLEBODY, 2),
    "kp2d_score": (J.NUM_WHOLEBODY,),
    "bbox": (4,),
}
ARRAY_FIELDS = ("fps", "size", "K", "joints3d", "kp2d", "kp2d_score", "bbox", "track_id")


@dataclass(frozen=True, eq=False)
class PoseSequence:
    """Poses of P people over T frames of one video.

    Attributes:
        fps: frames per second of the source, > 0.
        size: (H, W) image size in pixels that ``K``, ``kp2d`` and ``bbox`` refer to.
        K: (3, 3) float64 pinhole intrinsics the 3D joints were estimated with (pixels).
        joints3d: (P, T, 24, 3) float32 SMPL-24 joints, millimetres, OpenCV camera frame
            (x right, y down, z forward); NaN = missing.
        kp2d: (P, T, 134, 2) float32 whole-body points in pixels (centre of the top-left pixel is
            (0, 0)): OpenPose-18 body, 6 feet, 68 face, 21 left hand, 21 right hand; NaN = missing.
        kp2d_score: (P, T, 134) float32 confidences in [0, 1]; NaN where the point is missing.
        bbox: (P, T, 4) float32 person box x1, y1, x2, y2 in pixels; NaN = no box that frame.
        track_id: (P,) int64 identity of each person, stable across frames.
        meta: JSON-serialisable dict: estimator, its version, source, alignment parameters, ...

    Arrays are stored read-only; derive a changed sequence with :meth:`replace`.
    """

    fps: float
    size: tuple
    K: np.ndarray
    joints3d: np.ndarray
    kp2d: np.ndarray
    kp2d_score: np.ndarray
    bbox: np.ndarray
    track_id: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        fps = _check_fps(self.fps)
        size = _check_size(self.size)
        K = _check_K(self.K)
        arrays = {name: _as_float32(name, getattr(self, name)) for name in _FLOAT_FIELDS}
        num_people, num_frames = _check_people_frames(arrays)
        track_id = _check_track_id(self.track_id, num_people)
        _check_values(arrays)
        meta = _check_meta(self.meta)
        for name, value in dict(arrays, K=K, track_id=track_id).items():
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "fps", fps)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "meta", meta)

    # --- shape ---------------------------------------------------------------------------------

    @property
    def num_people(self) -> int:
        return self.joints3d.shape[0]

    @property
    def num_frames(self) -> int:
        return self.joints3d.shape[1]

    @property
    def height(self) -> int:
        return self.size[0]

    @property
    def width(self) -> int:
        return self.size[1]

    def __repr__(self) -> str:
        return (f"PoseSequence(people={self.num_people}, frames={self.num_frames}, "
                f"size={self.height}x{self.width}, fps={self.fps:g}, "
                f"estimator={self.meta.get('estimator')!r})")

    # --- construction --------------------------------------------------------------------------

    @classmethod
    def empty(cls, num_people: int, num_frames: int, size, fps: float, K=None,
              meta: dict | None = None) -> "PoseSequence":
        """A sequence with every joint, point and box missing (NaN); K defaults to FOV 55°."""
        height, width = _check_size(size)
        P, T = int(num_people), int(num_frames)
        nan = np.float32(np.nan)
        return cls(
            fps=fps,
            size=(height, width),
            K=intrinsics_from_fov(height, width) if K is None else K,
            joints3d=np.full((P, T, 24, 3), nan, np.float32),
            kp2d=np.full((P, T, J.NUM_WHOLEBODY, 2), nan, np.float32),
            kp2d_score=np.full((P, T, J.NUM_WHOLEBODY), nan, np.float32),
            bbox=np.full((P, T, 4), nan, np.float32),
            track_id=np.arange(P, dtype=np.int64),
            meta=dict(meta or {}),
        )

    def replace(self, **changes) -> "PoseSequence":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def frames(self, start: int, stop: int) -> "PoseSequence":
        """The sub-sequence of frames [start, stop) (all people)."""
        if not 0 <= start <= stop <= self.num_frames:
            raise SequenceError(f"frame range [{start}, {stop}) outside 0..{self.num_frames}")
        return self.replace(**{name: getattr(self, name)[:, start:stop] for name in _FLOAT_FIELDS})

    def people(self, indices) -> "PoseSequence":
        """The sequence restricted to the given person indices (in that order)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_people):
            raise SequenceError(f"person indices {idx.tolist()} outside 0..{self.num_people - 1}")
        changes = {name: getattr(self, name)[idx] for name in _FLOAT_FIELDS}
        return self.replace(track_id=self.track_id[idx], **changes)

    # --- views ---------------------------------------------------------------------------------

    def openpose18_3d(self) -> np.ndarray:
        """(P, T, 18, 3) float32 reference OpenPose-18 3D array (mm); eyes/ears NaN (§5)."""
        return J.smpl24_to_openpose18(self.joints3d)

    def present(self) -> np.ndarray:
        """(P, T) bool: the person has at least one 3D joint or 2D point in that frame."""
        has3d = np.isfinite(self.joints3d).all(-1).any(-1)
        has2d = np.isfinite(self.kp2d).all(-1).any(-1)
        return has3d | has2d

    # --- file ----------------------------------------------------------------------------------

    def save(self, path) -> Path:
        """Write the sequence as a versioned ``.npz`` (atomically: temporary file, then rename)."""
        path = Path(path)
        meta = dict(self.meta, schema_version=SCHEMA_VERSION, kind=FILE_KIND)
        arrays = {name: np.asarray(getattr(self, name)) for name in ARRAY_FIELDS}
        arrays["fps"] = np.float64(self.fps)
        arrays["size"] = np.asarray(self.size, dtype=np.int64)
        arrays["meta"] = np.asarray(json.dumps(meta, sort_keys=True))
        # Compressed in memory first: numpy leaves its ZipFile open when a write fails (a full
        # disk), and its later clean-up would print a traceback; a plain write fails cleanly.
        packed = io.BytesIO()
        np.savez_compressed(packed, **arrays)
        write_atomically(path, lambda f: f.write(packed.getbuffer()))
        return path

    @classmethod
    def load(cls, path) -> "PoseSequence":
        """Read and validate a sequence written by :meth:`save`.

        Raises:
            SequenceError: the file is missing, not an npz, truncated, of another schema version,
                or any field fails validation (the message names the field).
        """
        path = Path(path)
        if not path.is_file():
            raise SequenceError(f"pose file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {name: npz[name] for name in npz.files}
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
            why = e if zipfile.is_zipfile(path) else "it is not an .npz archive"
            raise SequenceError(f"{path} is not a readable PoseSequence .npz ({why})") from None
        return cls.from_arrays(data, source=str(path))

    @classmethod
    def from_arrays(cls, data: dict, source: str = "arrays") -> "PoseSequence":
        """Build from the arrays of the file format (also what the wire carries)."""
        missing = [name for name in ARRAY_FIELDS + ("meta",) if name not in data]
        if missing:
            raise SequenceError(f"{source}: missing field(s) {', '.join(missing)}")
        meta = _parse_meta(data["meta"], source)
        version = meta.get("schema_version")
        if version != SCHEMA_VERSION:
            raise SequenceError(f"{source}: schema_version {version!r} is not supported "
                                f"(this build reads version {SCHEMA_VERSION})")
        for name in _FLOAT_FIELDS:
            if data[name].dtype != np.float32:
                raise SequenceError(f"{source}: {name} must be float32, got {data[name].dtype}")
        meta = {k: v for k, v in meta.items() if k not in ("schema_version", "kind")}
        fps, size = np.asarray(data["fps"]), np.asarray(data["size"])
        if fps.shape != () or size.shape != (2,):
            raise SequenceError(f"{source}: fps must be a scalar and size (H, W), "
                                f"got shapes {fps.shape} and {size.shape}")
        return cls(fps=float(fps), size=tuple(int(v) for v in size), K=data["K"],
                   joints3d=data["joints3d"], kp2d=data["kp2d"], kp2d_score=data["kp2d_score"],
                   bbox=data["bbox"], track_id=data["track_id"], meta=meta)

    def to_arrays(self) -> dict:
        """The file format's arrays (``meta`` as a JSON string), for the wire."""
        meta = dict(self.meta, schema_version=SCHEMA_VERSION, kind=FILE_KIND)
        return {"fps": np.float64(self.fps), "size": np.asarray(self.size, dtype=np.int64),
                "K": self.K, "joints3d": self.joints3d, "kp2d": self.kp2d,
                "kp2d_score": self.kp2d_score, "bbox": self.bbox, "track_id": self.track_id,
                "meta": np.asarray(json.dumps(meta, sort_keys=True))}


def people_count(n: int) -> str:
    """``n`` people in words for messages: "1 person", "3 people"."""
    return f"{n} person" if n == 1 else f"{n} people"


def write_atomically(path, write) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place
    (see :func:`scail_protocol.outputs.write_atomically`; kept here for existing callers).

    Raises:
        OutputError: the folder is missing, the disk is full, ...; nothing is left behind.
    """
    return outputs.write_atomically(path, write)


# --- validation helpers ----------------------------------------------------------------------------

def _check_fps(fps) -> float:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise SequenceError(f"fps must be a number, got {fps!r}") from None
    if not math.isfinite(value) or value <= 0 or value > 1000:
        raise SequenceError(f"fps must be in (0, 1000], got {value}")
    return value


def _check_size(size) -> tuple:
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise SequenceError(f"size must be (H, W) integers, got {size!r}") from None
    if not (0 < height <= MAX_SIDE_PX and 0 < width <= MAX_SIDE_PX):
        raise SequenceError(f"size must be within 1..{MAX_SIDE_PX} on each side, got {height}x{width}")
    return height, width


def _check_K(K) -> np.ndarray:
    K = np.array(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all():
        raise SequenceError(f"K must be a finite (3, 3) matrix, got shape {K.shape}")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], (0.0, 0.0, 1.0)):
        raise SequenceError(f"K must have positive focal lengths and last row (0, 0, 1), got {K.tolist()}")
    return K


def _as_float32(name: str, value) -> np.ndarray:
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.floating):
        raise SequenceError(f"{name} must be a float array, got {array.dtype}")
    return np.array(array, dtype=np.float32)


def _check_people_frames(arrays: dict) -> tuple:
    first = arrays["joints3d"]
    if first.ndim != 4 or first.shape[2:] != _FLOAT_FIELDS["joints3d"]:
        raise SequenceError(f"joints3d must be (P, T, 24, 3) float32, got {first.shape}")
    num_people, num_frames = first.shape[:2]
    for name, trailing in _FLOAT_FIELDS.items():
        expected = (num_people, num_frames) + trailing
        if arrays[name].shape != expected:
            raise SequenceError(f"{name} must be {expected} float32 to match joints3d, "
                                f"got {arrays[name].shape}")
    return num_people, num_frames


def _check_track_id(track_id, num_people: int) -> np.ndarray:
    ids = np.asarray(track_id)
    if not np.issubdtype(ids.dtype, np.integer) or ids.shape != (num_people,):
        raise SequenceError(f"track_id must be ({num_people},) integers, got {ids.shape} {ids.dtype}")
    if len(set(ids.tolist())) != num_people:
        raise SequenceError(f"track_id must be unique, got {ids.tolist()}")
    return np.array(ids, dtype=np.int64)


def _check_values(arrays: dict) -> None:
    for name, array in arrays.items():
        if np.isinf(array).any():
            raise SequenceError(f"{name} contains infinite values; use NaN for missing data")
    for name in ("joints3d", "kp2d", "bbox"):
        nan = np.isnan(arrays[name])
        if (nan.any(-1) & ~nan.all(-1)).any():
            raise SequenceError(f"{name} has partly-NaN entries; a missing point is NaN in every coordinate")
    zero_joints = (arrays["joints3d"] == 0).all(-1)
    if zero_joints.any():
        p, t, j = np.argwhere(zero_joints)[0]
        raise SequenceError(f"joints3d[{p}, {t}, {j}] is (0, 0, 0): missing joints must be NaN, "
                            f"not zero")
    score = arrays["kp2d_score"]
    if ((score < 0) | (score > 1)).any():
        raise SequenceError("kp2d_score must lie in [0, 1] (NaN = missing)")


def _check_meta(meta) -> dict:
    if not isinstance(meta, dict):
        raise SequenceError(f"meta must be a dict, got {type(meta).__name__}")
    try:
        return json.loads(json.dumps(meta))
    except (TypeError, ValueError) as e:
        raise SequenceError(f"meta must be JSON-serialisable: {e}") from None


def _parse_meta(raw, source: str) -> dict:
    try:
        meta = json.loads(str(np.asarray(raw)[()]))
    except (TypeError, ValueError) as e:
        raise SequenceError(f"{source}: meta is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("kind") != FILE_KIND:
        raise SequenceError(f"{source}: not a PoseSequence file (meta.kind != {FILE_KIND!r})")
    return meta
