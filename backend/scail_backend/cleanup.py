"""Cleanup steps, PoseSequence -> PoseSequence: gap filling and foot locking.

Both are off by default (parity with the reference, which does neither) and run after tracking,
in the order :func:`clean_sequence` applies them: fill gaps, whole-take fit (``take_fit``, also
off by default), smooth (``smoothing``), lock feet (last, so nothing moves a pinned foot again).

**Gap filling** (:func:`fill_sequence_gaps`): every point (3D joint, 2D point, box corner,
score) missing for at most ``max_frames`` frames between two frames where it is present is
interpolated linearly; longer gaps, and gaps at the start or end of the clip, stay missing.

**Foot locking** (:func:`lock_feet`): a foot in contact with the ground stays put.

1. The ground is a plane fitted, per person, to the lowest foot of every frame (robustly: feet
   in the air are dropped and the plane refitted), in the camera frame; with too few frames it
   is the level plane (up = −y) through the lowest feet.
2. A foot (SMPL ``left_foot``/``right_foot``, the toe base) is in contact where its height above
   that plane is below ``contact_height_mm`` and its speed along the plane (from positions
   averaged over ``speed_window`` frames) is below ``contact_speed_mm_s``; runs shorter than
   ``min_contact_frames`` are ignored and one-frame breaks are bridged.
3. During a contact the foot is pinned to its mean position over the contact; the pin fades in
   and out over ``blend_frames`` frames either side (cosine ramp). The ankle moves with the foot
   and the knee is solved again by two-bone IK from the hip (thigh and shin keep their lengths,
   the knee stays in its bending plane). The 2D knee, ankle and foot points move by the
   projection of their 3D displacement.

Measured (tests/backend/test_cleanup.py, a synthetic 30 fps walk with 12 mm jitter plus 15 mm
drift on every joint): the foot's sliding while in contact falls by ~90 %, and the error of the
other frames grows by well under 10 mm.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from scail_protocol import joints as J
from scail_protocol.camera import project
from scail_protocol.runs import bridge_gaps, drop_short_runs, true_runs
from scail_protocol.sequence import PoseSequence, people_count

log = logging.getLogger(__name__)

DEFAULT_FILL_GAP_FRAMES = 8    # `--fill-gaps` alone: half a second at 16 fps
MIN_PLANE_FRAMES = 10          # fewer frames with feet: level ground instead of a fitted plane
PLANE_AIR_MM = 60.0            # lowest feet higher than this above the plane are in the air
PLANE_ITERATIONS = 3

# SMPL-24 chains of each leg: hip, knee, ankle, foot; OpenPose-18 / whole-body 2D points that
# move with the knee, the ankle (and with it the foot points).
LEGS = {
    "left": dict(hip=J.SMPL24["left_hip"], knee=J.SMPL24["left_knee"],
                 ankle=J.SMPL24["left_ankle"], foot=J.SMPL24["left_foot"],
                 knee_2d=(J.OPENPOSE18["left_knee"],),
                 ankle_2d=(J.OPENPOSE18["left_ankle"], 18, 19, 20)),
    "right": dict(hip=J.SMPL24["right_hip"], knee=J.SMPL24["right_knee"],
                  ankle=J.SMPL24["right_ankle"], foot=J.SMPL24["right_foot"],
                  knee_2d=(J.OPENPOSE18["right_knee"],),
                  ankle_2d=(J.OPENPOSE18["right_ankle"], 21, 22, 23)),
}


@dataclass(frozen=True)
class FootLockParams:
    """When a foot counts as planted, and how the pin is blended.

    Attributes:
        contact_height_mm: highest foot (toe base) above the ground plane that can be planted.
        contact_speed_mm_s: fastest foot speed along the ground that can be planted.
        min_contact_frames: shorter contacts are ignored.
        blend_frames: frames over which the pin fades in before and out after a contact.
        speed_window: frames averaged before the speed is measured (noise would otherwise
            read as speed).
    """

    contact_height_mm: float = 80.0
    contact_speed_mm_s: float = 400.0
    min_contact_frames: int = 3
    blend_frames: int = 3
    speed_window: int = 5

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"foot lock parameter {name} must be a non-negative number, "
                                 f"got {value!r}")


# --- gap filling ---------------------------------------------------------------------------------

def parse_fill_gaps(value) -> int:
    """A gap length in frames (>= 0; 0 = off) from an int or its text.

    Raises:
        ValueError: not a non-negative integer.
    """
    try:
        frames = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        frames = -1
    if isinstance(value, bool) or frames < 0:
        raise ValueError(f"gap length must be a whole number of frames >= 0, got {value!r:.40}")
    return frames


def fill_sequence_gaps(seq: PoseSequence, max_frames: int) -> PoseSequence:
    """Interpolate every point missing for at most ``max_frames`` frames (see module docstring).

    Args:
        seq: the sequence (after tracking: a person slot is one identity).
        max_frames: longest gap filled, frames; 0 returns ``seq`` unchanged.

    Returns:
        The filled sequence; ``meta["cleanup"]["fill_gaps"]`` says how much was filled.
    """
    from .smoothing import fill_gaps

    max_frames = parse_fill_gaps(max_frames)
    if max_frames == 0 or seq.num_frames < 3:
        return seq
    P, T = seq.num_people, seq.num_frames
    joints = fill_gaps(seq.joints3d, max_frames)
    kp = fill_gaps(seq.kp2d, max_frames)
    box = fill_gaps(seq.bbox.reshape(P, T, 2, 2), max_frames).reshape(P, T, 4)
    score = fill_gaps(seq.kp2d_score[..., None], max_frames)[..., 0]
    score = np.where(np.isfinite(kp).all(-1), score, np.nan)
    kp = np.where(np.isfinite(score)[..., None], kp, np.nan)
    before = seq.present()
    out = seq.replace(joints3d=joints.astype(np.float32), kp2d=kp.astype(np.float32),
                      kp2d_score=score.astype(np.float32), bbox=box.astype(np.float32))
    frames = int((out.present() & ~before).sum())
    points = int((np.isfinite(joints).all(-1) & ~np.isfinite(seq.joints3d).all(-1)).sum())
    log.info("filled gaps of up to %d frames: %d person-frames, %d 3D joints", max_frames,
             frames, points)
    return _with_cleanup_meta(out, "fill_gaps", dict(max_frames=max_frames,
                                                     filled_person_frames=frames,
                                                     filled_joints=points))


# --- foot locking: ground and contacts -----------------------------------------------------------

def ground_plane(feet_mm: np.ndarray) -> np.ndarray:
    """The ground under one person as (a, b, c) of y = a·x + b·z + c (camera frame, mm, y down).

    Args:
        feet_mm: (T, F, 3) foot points of the person over the clip (camera frame, mm); NaN =
            missing.

    Returns:
        (3,) float64; a level plane (a = b = 0) when fewer than ``MIN_PLANE_FRAMES`` frames
        have a foot.
    """
    feet = np.asarray(feet_mm, np.float64)
    y = np.where(np.isfinite(feet).all(-1), feet[..., 1], -np.inf)
    lowest = np.argmax(y, axis=1)                              # y down: the lowest foot
    has = np.isfinite(y.max(1))
    pts = feet[np.arange(len(feet)), lowest][has]              # (n, 3)
    if len(pts) == 0:
        return np.array([0.0, 0.0, 0.0])
    if len(pts) < MIN_PLANE_FRAMES:
        return np.array([0.0, 0.0, float(np.percentile(pts[:, 1], 90))])
    keep = np.ones(len(pts), bool)
    coef = np.array([0.0, 0.0, float(np.median(pts[:, 1]))])
    for _ in range(PLANE_ITERATIONS):
        A = np.column_stack([pts[keep, 0], pts[keep, 2], np.ones(keep.sum())])
        coef, *_ = np.linalg.lstsq(A, pts[keep, 1], rcond=None)
        height = _height(pts, coef)
        new_keep = height < PLANE_AIR_MM
        if new_keep.sum() < MIN_PLANE_FRAMES or (new_keep == keep).all():
            break
        keep = new_keep
    return coef


def _height(points: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Signed height above the plane (mm, positive = above, i.e. towards −y)."""
    a, b, c = coef
    return (a * points[..., 0] + b * points[..., 2] + c - points[..., 1]) / math.sqrt(
        a * a + b * b + 1.0)


def _along_ground(points: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Points with their component along the plane's normal removed (mm)."""
    a, b, _ = coef
    n = np.array([-a, 1.0, -b]) / math.sqrt(a * a + b * b + 1.0)
    return points - (points @ n)[..., None] * n


def contacts(foot_mm: np.ndarray, coef: np.ndarray, fps: float,
             params: FootLockParams) -> np.ndarray:
    """(T,) bool: frames where one foot is planted (see module docstring).

    Args:
        foot_mm: (T, 3) the foot joint over the clip (camera frame, mm); NaN = missing.
        coef: the ground plane of :func:`ground_plane`.
        fps: frames per second.
    """
    foot = np.asarray(foot_mm, np.float64)
    present = np.isfinite(foot).all(-1)
    averaged = _moving_average(foot, max(int(params.speed_window), 1))
    flat = _along_ground(averaged, coef)
    speed = np.full(len(foot), np.inf)
    if len(foot) >= 3:
        speed[1:-1] = np.linalg.norm(flat[2:] - flat[:-2], axis=-1) * fps / 2.0
        speed[0] = np.linalg.norm(flat[1] - flat[0]) * fps
        speed[-1] = np.linalg.norm(flat[-1] - flat[-2]) * fps
    speed = np.nan_to_num(speed, nan=np.inf)
    with np.errstate(invalid="ignore"):
        low = _height(foot, coef) < params.contact_height_mm
        slow = speed < params.contact_speed_mm_s
    planted = present & low & slow
    planted = bridge_gaps(planted, 1) & present
    return drop_short_runs(planted, int(params.min_contact_frames))


def _moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over time of (T, C), ignoring NaN; NaN stays NaN.

    Any T works, 0 included, and windows longer than the clip (the average is then over the
    frames there are).
    """
    if window <= 1 or len(x) == 0:
        return x.copy()
    ok = np.isfinite(x).all(-1)
    values = np.where(ok[:, None], x, 0.0)
    kernel = np.ones(window)
    # numpy's mode="same" is centred this way too, but returns max(T, window) values
    centre = slice((window - 1) // 2, (window - 1) // 2 + len(x))
    total = np.stack([np.convolve(values[:, c], kernel, mode="full")[centre]
                      for c in range(x.shape[1])], -1)
    count = np.convolve(ok.astype(np.float64), kernel, mode="full")[centre]
    out = total / np.maximum(count, 1.0)[:, None]
    return np.where(ok[:, None], out, np.nan)


# --- foot locking: pins and IK -------------------------------------------------------------------

def pin_offsets(foot_mm: np.ndarray, planted: np.ndarray, blend_frames: int) -> np.ndarray:
    """(T, 3) displacement that pins the foot during each contact and fades in and out.

    Each contact's pin is the mean foot position over it; within ``blend_frames`` before and
    after, the displacement towards the pin is weighted by a cosine ramp. Where ramps of two
    contacts overlap the larger weight wins.
    """
    foot = np.asarray(foot_mm, np.float64)
    T = len(foot)
    offset = np.zeros((T, 3))
    weight = np.zeros(T)
    for start, stop in true_runs(planted):
        pin = np.nanmean(foot[start:stop], axis=0)
        lo, hi = max(start - blend_frames, 0), min(stop + blend_frames, T)
        t = np.arange(lo, hi)
        ramp = np.ones(len(t))
        before, after = t < start, t >= stop
        ramp[before] = _cosine((t[before] - (start - blend_frames - 1)) / (blend_frames + 1))
        ramp[after] = _cosine(((stop + blend_frames) - t[after]) / (blend_frames + 1))
        target = pin[None] - foot[t]
        usable = np.isfinite(target).all(-1)
        better = usable & (ramp > weight[t])
        offset[t[better]] = ramp[better, None] * target[better]
        weight[t[better]] = ramp[better]
    return offset


def _cosine(x: np.ndarray) -> np.ndarray:
    """Smooth 0 -> 1 ramp for x in [0, 1]."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def two_bone_knee(hip: np.ndarray, knee: np.ndarray, ankle_new: np.ndarray,
                  thigh_mm: np.ndarray, shin_mm: np.ndarray) -> tuple:
    """Knee (and the ankle, pulled in when out of reach) for a moved ankle, hip fixed.

    Args:
        hip, knee: (T, 3) original hip and knee (mm).
        ankle_new: (T, 3) wanted ankle (mm).
        thigh_mm, shin_mm: (T,) bone lengths to keep.

    Returns:
        (knee_new, ankle_new): (T, 3) each; the knee stays in the plane of hip, old knee and
        new ankle, on the old knee's side.
    """
    to_ankle = ankle_new - hip
    dist = np.linalg.norm(to_ankle, axis=-1)
    reach = np.maximum(thigh_mm + shin_mm - 1e-3, 1e-3)
    short = np.abs(thigh_mm - shin_mm) + 1e-3
    dist_c = np.clip(dist, short, reach)
    axis = to_ankle / np.maximum(dist, 1e-9)[:, None]
    ankle = hip + axis * dist_c[:, None]
    # distance along the hip->ankle axis to the knee's foot point, and the knee's offset from it
    along = (thigh_mm ** 2 - shin_mm ** 2 + dist_c ** 2) / (2.0 * dist_c)
    off = np.sqrt(np.maximum(thigh_mm ** 2 - along ** 2, 0.0))
    bend = knee - hip
    bend = bend - (bend * axis).sum(-1, keepdims=True) * axis
    norm = np.linalg.norm(bend, axis=-1, keepdims=True)
    bend = np.where(norm > 1e-6, bend / np.maximum(norm, 1e-9), _any_perpendicular(axis))
    return hip + along[:, None] * axis + off[:, None] * bend, ankle


def _any_perpendicular(axis: np.ndarray) -> np.ndarray:
    helper = np.where(np.abs(axis[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    v = np.cross(axis, helper)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def lock_feet(seq: PoseSequence, params: FootLockParams = FootLockParams()) -> PoseSequence:
    """Keep planted feet in place (see the module docstring).

    Args:
        seq: the sequence (camera-frame joints, mm; after tracking).
        params: contact detection and blending.

    Returns:
        The sequence with feet pinned; ``meta["cleanup"]["foot_lock"]`` records the parameters
        and how many frames each foot was planted.
    """
    joints = seq.joints3d.astype(np.float64).copy()
    kp = seq.kp2d.astype(np.float64).copy()
    planted_frames = {}
    for p in range(seq.num_people):
        feet = joints[p][:, [LEGS["left"]["foot"], LEGS["right"]["foot"]]]
        coef = ground_plane(feet)
        for side, leg in LEGS.items():
            planted = contacts(joints[p, :, leg["foot"]], coef, seq.fps, params)
            planted_frames[f"{p}:{side}"] = int(planted.sum())
            if planted.any():
                _pin_leg(joints[p], kp[p], seq.K, leg, planted, int(params.blend_frames))
    out = seq.replace(joints3d=joints.astype(np.float32), kp2d=kp.astype(np.float32))
    log.info("foot locking: %d foot-frames planted over %s", sum(planted_frames.values()),
             people_count(seq.num_people))
    return _with_cleanup_meta(out, "foot_lock", dict(asdict(params),
                                                    planted_frames=planted_frames))


def _pin_leg(joints: np.ndarray, kp: np.ndarray, K: np.ndarray, leg: dict,
             planted: np.ndarray, blend_frames: int) -> None:
    """Pin one leg of one person in place: joints (T, 24, 3) and kp (T, 134, 2)."""
    offset = pin_offsets(joints[:, leg["foot"]], planted, blend_frames)
    moved = np.flatnonzero(np.abs(offset).sum(-1) > 0)
    if not len(moved):
        return
    j = joints[moved]
    hip, knee, ankle, foot = (j[:, leg[k]] for k in ("hip", "knee", "ankle", "foot"))
    ok = np.isfinite(np.stack([hip, knee, ankle, foot])).all((0, 2))
    moved, hip, knee, ankle, foot = moved[ok], hip[ok], knee[ok], ankle[ok], foot[ok]
    d = offset[moved]
    thigh = np.linalg.norm(knee - hip, axis=-1)
    shin = np.linalg.norm(ankle - knee, axis=-1)
    knee_new, ankle_new = two_bone_knee(hip, knee, ankle + d, thigh, shin)
    foot_new = foot + (ankle_new - ankle)
    for name, old, new in (("knee", knee, knee_new), ("ankle", ankle, ankle_new)):
        shift_px = project(new, K) - project(old, K)
        shift_px = np.where(np.isfinite(shift_px), shift_px, 0.0)
        for index in leg[f"{name}_2d"]:
            kp[moved, index] += shift_px
    joints[moved, leg["knee"]] = knee_new
    joints[moved, leg["ankle"]] = ankle_new
    joints[moved, leg["foot"]] = foot_new


# --- the chain -----------------------------------------------------------------------------------

def clean_sequence(seq: PoseSequence, *, fill_gaps: int = 0, take_fit: bool = False,
                   smoothing=None, foot_lock: bool = False,
                   foot_lock_params: FootLockParams = FootLockParams()) -> PoseSequence:
    """The cleanup steps in order: fill gaps, whole-take fit, smooth, lock feet (each off by
    default).

    Args:
        seq: the sequence (after tracking).
        fill_gaps: longest gap filled, frames (0 = off).
        take_fit: refine each person's take as one skeleton (``take_fit.fit_sequence``).
        smoothing: a strength of ``smoothing.smooth_sequence`` (None/"off"/0 = off).
        foot_lock: pin planted feet.
        foot_lock_params: contact detection and blending.

    Raises:
        ValueError: a bad gap length or smoothing strength (checked before any work).
    """
    from .smoothing import parse_strength, smooth_sequence

    frames = parse_fill_gaps(fill_gaps)
    strength = parse_strength(smoothing)
    if frames:
        seq = fill_sequence_gaps(seq, frames)
    if take_fit:
        from .take_fit import fit_sequence

        seq = fit_sequence(seq)
    if strength is not None:
        seq = smooth_sequence(seq, strength=strength)
    if foot_lock:
        seq = lock_feet(seq, foot_lock_params)
    return seq


def _with_cleanup_meta(seq: PoseSequence, step: str, record: dict) -> PoseSequence:
    cleanup = dict(seq.meta.get("cleanup") or {})
    cleanup[step] = record
    return seq.replace(meta=dict(seq.meta, cleanup=cleanup))


# --- options -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CleanupOptions:
    """What happens to the estimated people before they are saved (all off by default, as the
    reference): which people are kept, gap filling and foot locking. Smoothing has its own
    option (``smoothing``).

    Attributes:
        max_people: keep at most this many people (the most prominent); None = all.
        order: person order, "size" (largest first) or "left_to_right".
        fill_gaps: longest gap filled, frames (0 = off).
        take_fit: whole-take fit, one skeleton per person for the take (``take_fit``).
        foot_lock: pin planted feet.
    """

    max_people: Optional[int] = None
    order: str = "size"
    fill_gaps: int = 0
    take_fit: bool = False
    foot_lock: bool = False

    def __post_init__(self):
        from .tracking import ORDERS

        if self.max_people is not None and (isinstance(self.max_people, bool) or
                                            not isinstance(self.max_people, int) or
                                            self.max_people < 1):
            raise ValueError(f"max_people must be a positive integer or None, "
                             f"got {self.max_people!r:.40}")
        if self.order not in ORDERS:
            raise ValueError(f"person order must be one of {', '.join(ORDERS)}, "
                             f"got {self.order!r:.40}")
        object.__setattr__(self, "fill_gaps", parse_fill_gaps(self.fill_gaps))
        for name in ("take_fit", "foot_lock"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, "
                                 f"got {getattr(self, name)!r:.40}")

    @classmethod
    def from_value(cls, value) -> "CleanupOptions":
        """Options from None (defaults), a CleanupOptions, or a dict of its fields.

        Raises:
            ValueError: unknown fields or bad values.
        """
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {f for f in cls.__dataclass_fields__}
            if unknown:
                raise ValueError(f"unknown cleanup option(s) {', '.join(sorted(unknown))}")
            return cls(**value)
        raise ValueError(f"cleanup options must be a dict, got {type(value).__name__}")

    def is_default(self) -> bool:
        return self == CleanupOptions()
