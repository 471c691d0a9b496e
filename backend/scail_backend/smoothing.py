"""Temporal cleanup of estimated poses: a One Euro filter over every joint and 2D point.

The One Euro filter (Casiez, Roussel and Vogel, CHI 2012) is a first-order low-pass filter whose
cutoff frequency rises with the signal's speed: at rest it smooths hard (``min_cutoff_hz``), in
fast motion it opens up (``+ beta * speed``) so the lag stays small. The speed is itself the
low-passed derivative (cutoff ``d_cutoff_hz``). Each step, for a sample x at rate ``fps``
(primes: the previous frame's values):

    alpha(f) = 1 / (1 + fps / (2π f))                  smoothing factor of cutoff f (Hz)
    dx̂ = dx̂' + alpha(d_cutoff) · ((x − x') · fps − dx̂')    filtered velocity
    f   = min_cutoff + beta · |dx̂| / size               adaptive cutoff
    x̂  = x̂' + alpha(f) · (x − x̂')                      filtered value

Choices of this implementation:

* A point (a 3D joint or a 2D keypoint) is filtered as a vector: its coordinates share one
  cutoff, driven by the point's speed, so a joint moving diagonally lags the same on every axis.
* Speed is measured in person sizes per second (``size`` = the median over the clip of the
  diagonal of the box around that person's points, in the array's own unit), so one ``beta``
  serves millimetres and pixels, near and far people alike.
* Missing data stays missing: a NaN point comes out NaN and the filter restarts on that point
  when it reappears (no state bridges a gap). ``fill_gaps_frames=N`` first fills interior gaps of
  up to N frames by linear interpolation (off by default: it invents data).
* ``zero_lag=True`` (the default: extraction is offline) runs the causal filter forward, then
  backward over the forward result (as ``filtfilt`` does for linear filters): the two lags
  cancel; a constant-speed ramp comes out exactly.
* 3D joints are filtered as image position (u, v) plus depth z (:func:`smooth_joints`): the
  projection with the 2D points' own parameters, so the drawn capsules and the 2D overlay stay
  registered, and the depth, which a monocular estimate gets far less steadily, 5x harder at
  rest (``DEPTH_CUTOFF_RATIO``).

Strengths: ``smooth_sequence(seq, strength=...)`` takes a name (:data:`STRENGTHS`) or a number in
[0, 1] (0 = off) and maps it onto the parameters by :func:`params_for_strength`. Smoothing is off
unless asked for (parity with the reference, which does none).

Measured with ``bench/accuracy.py --smooth`` (MediaPipe on the synthetic library, 8 motions x 3
cameras; exact truth; "Accel" = acceleration error of the camera-frame joints, i.e. jitter):

    16 fps, 1368 frames   PA-MPJPE 48.1 -> 47.9 mm   2D 4.57 -> 4.64 px   Accel 8.7 -> 3.4 m/s²
     8 fps,  684 frames   PA-MPJPE 48.0 -> 48.2 mm   2D 4.54 -> 4.78 px   Accel 4.3 -> 2.4 m/s²

for the default ("medium"). The synthetic clips are clean renders, so the estimate's error is
mostly steady bias that no filter removes; what smoothing buys there is the jitter: Accel falls
by 50-70 % on every motion at 16 fps (35-60 % at 8 fps) while the PA-MPJPE of each motion moves
by at most ~1 mm either way. The causal filter alone was worse at every strength tried (+0.5 to
+1.9 mm, +0.15 to +1.25 px against forward-backward), hence ``ZERO_LAG``. Filtering x, y, z
alike instead of image position and depth removed less jitter at the same accuracy (Accel 4.9
instead of 3.4 m/s² at 16 fps), or cost 0.7 mm and 0.5 px for the same jitter. "strong" costs
~1.3 mm and 0.4 px at 16 fps. On the real dance clips (../shared/examples, no truth) "medium"
takes the 2D body points' frame-to-frame acceleration from ~15 to ~6.6 px/frame².
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Optional, Union

import numpy as np

from scail_protocol.sequence import PoseSequence, people_count

log = logging.getLogger(__name__)

FILTER_NAME = "one_euro"
D_CUTOFF_HZ = 1.0            # cutoff of the velocity estimate (Casiez et al.'s suggested 1 Hz)
# Strength 0+ .. 1 spans these geometrically (see the module docstring for the measurements):
# "medium" (0.5) = 5 Hz at rest and beta 2.1 for the image, 1 Hz at rest for the depth, the best
# trade-off measured on the synthetic library; 1 = 1 Hz / 0.2 Hz, visibly sluggish.
IMAGE_MIN_CUTOFF_HZ = (25.0, 1.0)   # image position's rest cutoff, strength 0+ .. 1
BETA_RANGE = (10.0, 0.45)           # Hz per (person size / s), strength 0+ .. 1
DEPTH_CUTOFF_RATIO = 0.2            # depth rest cutoff / image rest cutoff
ZERO_LAG = True                     # forward-backward: measured better than forward only
STRENGTHS = {"light": 0.25, "medium": 0.5, "strong": 0.75}
DEFAULT_STRENGTH = "medium"
OFF_NAMES = ("off", "none")
MIN_SIZE = 1e-6              # a person whose points have no extent: speed is not normalised

Strength = Union[str, float, int, None]


@dataclass(frozen=True)
class OneEuroParams:
    """Parameters of the One Euro filter.

    Attributes:
        min_cutoff_hz: cutoff at rest, Hz (> 0); lower = smoother when still.
        beta: cutoff increase per unit of speed, Hz per (person size / s) (>= 0); higher = less
            lag in fast motion.
        d_cutoff_hz: cutoff of the velocity estimate, Hz (> 0).
    """

    min_cutoff_hz: float
    beta: float
    d_cutoff_hz: float = D_CUTOFF_HZ

    def __post_init__(self):
        for name in ("min_cutoff_hz", "d_cutoff_hz"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of Hz, got {value!r}")
        if not (isinstance(self.beta, (int, float)) and math.isfinite(self.beta)
                and self.beta >= 0):
            raise ValueError(f"beta must be a non-negative number, got {self.beta!r}")


# --- strengths ---------------------------------------------------------------------------------

def parse_strength(value: Strength) -> Optional[float]:
    """A smoothing strength as a number in (0, 1], or None for "off".

    Args:
        value: None, "off"/"none", a name of :data:`STRENGTHS` ("light", "medium", "strong";
            "default" = :data:`DEFAULT_STRENGTH`), a number in [0, 1] (0 = off) or its text.

    Raises:
        ValueError: anything else (unknown name, out of range, NaN, a bool), with the choices.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in OFF_NAMES:
            return None
        if text == "default":
            text = DEFAULT_STRENGTH
        if text in STRENGTHS:
            return STRENGTHS[text]
        try:
            value = float(text)
        except ValueError:
            raise ValueError(_strength_help(value)) from None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(_strength_help(value))
    number = float(value)
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ValueError(_strength_help(value))
    return None if number == 0.0 else number


def strength_choices() -> str:
    """What a strength may be, for messages: "light, medium, ... or a number in [0, 1]"."""
    return f"{', '.join(list(STRENGTHS) + ['default', 'off'])} or a number in [0, 1]"


def _strength_help(value) -> str:
    return f"smoothing strength must be {strength_choices()}, got {value!r:.40}"


def params_for_strength(strength: float) -> tuple:
    """``(image, depth)`` One Euro parameters of a strength in (0, 1].

    The image position's rest cutoff and beta fall geometrically over ``IMAGE_MIN_CUTOFF_HZ`` and
    ``BETA_RANGE`` as the strength goes from 0 to 1; the depth's rest cutoff is
    ``DEPTH_CUTOFF_RATIO`` times the image's.
    """
    s = float(strength)
    if not 0.0 < s <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength!r}")
    lo, hi = IMAGE_MIN_CUTOFF_HZ
    min_cutoff = lo * (hi / lo) ** s
    beta = BETA_RANGE[0] * (BETA_RANGE[1] / BETA_RANGE[0]) ** s
    return (OneEuroParams(min_cutoff_hz=min_cutoff, beta=beta),
            OneEuroParams(min_cutoff_hz=min_cutoff * DEPTH_CUTOFF_RATIO, beta=beta))


# --- the filter ----------------------------------------------------------------------------------

def _alpha(cutoff_hz, fps: float):
    """Smoothing factor of a first-order low-pass with this cutoff at this sample rate."""
    return 1.0 / (1.0 + fps / (2.0 * np.pi * cutoff_hz))


def one_euro(points: np.ndarray, fps: float, params: OneEuroParams, *,
             size: Optional[np.ndarray] = None, zero_lag: bool = False) -> np.ndarray:
    """Filter point trajectories along time with the One Euro filter.

    Args:
        points: (P, T, N, C) float, any unit (mm, px); NaN = missing (a point with any NaN
            coordinate is missing).
        fps: sample rate, frames per second (> 0).
        params: the filter's parameters.
        size: (P,) each person's size in the points' unit (speed is divided by it); None = the
            median bounding-box diagonal of each person's points (:func:`person_size`).
        zero_lag: also filter backward over the forward result (offline, no lag).

    Returns:
        (P, T, N, C) float64 filtered points; missing points stay NaN, exactly where they were.

    Note:
        The filter restarts after every gap, so a point seen for one frame between gaps comes
        out unchanged.
    """
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 4:
        raise ValueError(f"points must be (P, T, N, C), got shape {x.shape}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be positive, got {fps!r}")
    size = person_size(x) if size is None else np.asarray(size, dtype=np.float64)
    size = np.where(np.isfinite(size) & (size > MIN_SIZE), size, 1.0)
    out = _one_euro_forward(x, fps, params, size)
    if zero_lag:
        out = _one_euro_forward(out[:, ::-1], fps, params, size)[:, ::-1]
    return np.ascontiguousarray(out)


def _one_euro_forward(x: np.ndarray, fps: float, params: OneEuroParams,
                      size: np.ndarray) -> np.ndarray:
    """The causal pass over (P, T, N, C) float64; one vectorised step per frame."""
    num_people, num_frames, num_points, dims = x.shape
    out = x.copy()
    valid = np.isfinite(x).all(-1)                         # (P, T, N)
    a_d = _alpha(params.d_cutoff_hz, fps)
    inv_size = (1.0 / size)[:, None]                       # (P, 1)
    value = np.zeros((num_people, num_points, dims))       # x̂ of the previous frame
    previous = np.zeros((num_people, num_points, dims))    # x of the previous frame
    velocity = np.zeros((num_people, num_points, dims))    # dx̂ of the previous frame
    running = np.zeros((num_people, num_points), dtype=bool)
    for t in range(num_frames):
        ok = valid[:, t]
        sample = np.where(ok[..., None], x[:, t], 0.0)
        velocity = velocity + a_d * ((sample - previous) * fps - velocity)
        speed = np.sqrt((velocity * velocity).sum(-1)) * inv_size
        a = _alpha(params.min_cutoff_hz + params.beta * speed, fps)[..., None]
        value = value + a * (sample - value)
        fresh = ok & ~running                              # first frame, or back after a gap
        value = np.where(fresh[..., None], sample, value)
        velocity = np.where(ok[..., None] & ~fresh[..., None], velocity, 0.0)
        running, previous = ok, sample
        out[:, t] = np.where(ok[..., None], value, x[:, t])
    return out


def person_size(points: np.ndarray) -> np.ndarray:
    """(P,) median over frames of the diagonal of the box around each person's finite points
    (the points' unit); NaN for a person never seen.

    Args:
        points: (P, T, N, C); NaN = missing.
    """
    x = np.asarray(points, dtype=np.float64)
    finite = np.isfinite(x).all(-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        high = np.where(finite, x, -np.inf).max(2)
        low = np.where(finite, x, np.inf).min(2)
        diag = np.sqrt(((high - low) ** 2).sum(-1))        # (P, T); inf/NaN where empty
    diag = np.where(np.isfinite(diag), diag, np.nan)
    seen = np.isfinite(diag).any(1)
    result = np.full(x.shape[0], np.nan)
    if seen.any():
        result[seen] = np.nanmedian(diag[seen], axis=1)
    return result


# --- gaps ----------------------------------------------------------------------------------------

def fill_gaps(points: np.ndarray, max_frames: int) -> np.ndarray:
    """Fill interior gaps of at most ``max_frames`` missing frames by linear interpolation.

    Args:
        points: (P, T, N, C) float; NaN = missing (a point with any NaN coordinate is missing).
        max_frames: longest gap filled, frames (0 = none). Gaps at the start or the end of the
            clip (no sample on one side) are never filled.

    Returns:
        (P, T, N, C) float64; filled points are on the straight line between the samples either
        side of the gap, every other point unchanged.
    """
    x = np.asarray(points, dtype=np.float64)
    if max_frames <= 0 or x.shape[1] < 3:
        return x.copy()
    num_frames = x.shape[1]
    valid = np.isfinite(x).all(-1)                         # (P, T, N)
    index = np.arange(num_frames)[None, :, None]
    before = np.maximum.accumulate(np.where(valid, index, -1), axis=1)
    after = np.minimum.accumulate(np.where(valid, index, num_frames)[:, ::-1], axis=1)[:, ::-1]
    fill = ~valid & (before >= 0) & (after < num_frames) & (after - before - 1 <= max_frames)
    if not fill.any():
        return x.copy()
    lo, hi = np.clip(before, 0, num_frames - 1), np.clip(after, 0, num_frames - 1)
    x_lo = np.take_along_axis(x, lo[..., None], axis=1)
    x_hi = np.take_along_axis(x, hi[..., None], axis=1)
    w = ((index - before) / np.maximum(after - before, 1))[..., None]
    out = x.copy()
    out[fill] = (x_lo + w * (x_hi - x_lo))[fill]
    return out


# --- sequences -----------------------------------------------------------------------------------

def smooth_joints(joints_mm: np.ndarray, K: np.ndarray, fps: float, image: OneEuroParams,
                  depth: OneEuroParams, *, size_px: Optional[np.ndarray] = None,
                  zero_lag: bool = False) -> np.ndarray:
    """Filter camera-frame joints as image position (u, v) and depth z, then lift them back.

    The projection is filtered with ``image`` exactly as the 2D points are (same pixels, same
    person size), so the drawn skeleton and the 2D overlay stay registered; the depth, which a
    monocular estimate gets far less steadily than the image position, gets its own ``depth``
    parameters.

    Args:
        joints_mm: (P, T, J, 3) camera frame (x right, y down, z forward), mm; NaN = missing.
        K: (3, 3) intrinsics the joints project with.
        fps: frames per second.
        image, depth: filter parameters of the image position and of the depth.
        size_px: (P,) person size in pixels (see :func:`one_euro`); None = from the projection.
        zero_lag: forward-backward filtering.

    Returns:
        (P, T, J, 3) float64 mm; missing joints stay NaN. A joint with no image (behind the
        camera) keeps its input value.
    """
    from scail_protocol.camera import backproject, project

    joints = np.asarray(joints_mm, dtype=np.float64)
    uv = project(joints, K)
    if size_px is None or not np.isfinite(size_px).all():
        fallback = person_size(uv)
        size_px = fallback if size_px is None else np.where(np.isfinite(size_px), size_px,
                                                              fallback)
    uv = one_euro(uv, fps, image, size=size_px, zero_lag=zero_lag)
    z = one_euro(joints[..., 2:], fps, depth, size=person_size(joints), zero_lag=zero_lag)
    out = backproject(uv, z[..., 0], K)
    return np.where(np.isfinite(out).all(-1, keepdims=True), out, joints)


def smooth_sequence(seq: PoseSequence, *, strength: Strength = DEFAULT_STRENGTH,
                    params: Optional[tuple] = None, zero_lag: bool = ZERO_LAG,
                    fill_gaps_frames: int = 0) -> PoseSequence:
    """The sequence with its joints, 2D points and boxes filtered over time (One Euro).

    Each person is filtered independently at the sequence's fps: ``kp2d`` and ``bbox`` (two
    corner points) in pixels, and ``joints3d`` as image position plus depth
    (:func:`smooth_joints`). Scores are kept (and interpolated where gaps are filled).
    ``meta["smoothing"]`` records what was done.

    Args:
        seq: the sequence.
        strength: a name of :data:`STRENGTHS`, a number in [0, 1], or "off"/None/0 (the
            sequence is returned unchanged); ignored when ``params`` is given.
        params: explicit ``(image, depth)`` OneEuroParams instead of a strength.
        zero_lag: forward-backward filtering (offline, no lag; the default, see the module
            docstring); False = the causal filter alone.
        fill_gaps_frames: fill interior gaps of up to this many frames first (0 = never).

    Raises:
        ValueError: an unknown strength or bad parameters.
    """
    if params is None:
        value = parse_strength(strength)
        if value is None:
            return seq
        image, depth = params_for_strength(value)
    else:
        value = None
        image, depth = params
    fill = int(fill_gaps_frames)
    if fill < 0:
        raise ValueError(f"fill_gaps_frames must be >= 0, got {fill_gaps_frames!r}")
    num_people, num_frames = seq.num_people, seq.num_frames
    joints = fill_gaps(seq.joints3d, fill)
    kp = fill_gaps(seq.kp2d, fill)
    boxes = fill_gaps(seq.bbox.reshape(num_people, num_frames, 2, 2), fill)
    new_2d = np.isfinite(kp).all(-1) & ~np.isfinite(seq.kp2d).all(-1)   # (P, T, N) filled
    score = np.where(new_2d, fill_gaps(seq.kp2d_score[..., None], fill)[..., 0],
                     seq.kp2d_score)
    filled = int((np.isfinite(joints).all(-1) & ~np.isfinite(seq.joints3d).all(-1)).sum())
    meta = dict(seq.meta, smoothing=dict(
        filter=FILTER_NAME, strength=value, image=asdict(image), depth=asdict(depth),
        zero_lag=bool(zero_lag), speed_unit="person sizes per second",
        fill_gaps_frames=fill, filled_joints=filled, filled_points_2d=int(new_2d.sum())))
    size_px = person_size(kp)
    smoothed = seq.replace(
        joints3d=smooth_joints(joints, seq.K, seq.fps, image, depth, size_px=size_px,
                               zero_lag=zero_lag).astype(np.float32),
        kp2d=one_euro(kp, seq.fps, image, size=size_px, zero_lag=zero_lag).astype(np.float32),
        bbox=one_euro(boxes, seq.fps, image, size=size_px, zero_lag=zero_lag)
        .reshape(num_people, num_frames, 4).astype(np.float32),
        kp2d_score=score.astype(np.float32), meta=meta)
    log.info("smoothed %s x %d frames (%s; image: min cutoff %.2f Hz, beta %.2f; depth: "
             "min cutoff %.2f Hz, beta %.2f%s%s)", people_count(num_people), num_frames,
             FILTER_NAME, image.min_cutoff_hz, image.beta, depth.min_cutoff_hz, depth.beta,
             "; zero lag" if zero_lag else "",
             f"; filled {filled} joints in gaps of <= {fill} frames" if fill else "")
    return smoothed
