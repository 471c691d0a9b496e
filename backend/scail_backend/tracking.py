"""Identities across frames: per-frame detections of several people become stable tracks.

Any estimator hands over a :class:`PoseSequence` whose person slots are, frame by frame, just
the people it detected in that frame, in no particular order (``mediapipe`` and ``nlf`` alike).
:func:`track_people` turns those slots into identities:

1. **Duplicates** in one frame (two slots on the same body: boxes overlapping by more than
   ``DUPLICATE_IOU``, points closer than ``DUPLICATE_POINT_DIST`` and depths within
   ``DUPLICATE_DEPTH``) keep the more confident one.
2. **Matching** frame to frame with the Hungarian algorithm
   (``scipy.optimize.linear_sum_assignment``). A track predicts where its points and box will be
   (constant velocity, damped while it is lost); the cost of giving a detection to a track is the
   mean distance between corresponding points (2D body points and projected 3D joints) in units
   of the track's height, plus box overlap and relative depth terms (:func:`match_cost`). Pairs
   whose point distance is beyond the gate are never matched; the gate widens while a track is
   lost (people move further the longer they are hidden).
3. **Re-identification**: a track that finds no detection stays "lost" for up to ``max_lost_s``
   seconds and keeps competing for detections, so a dancer hidden behind another for a moment,
   or two dancers crossing, keep their identities.
4. Tracks seen on fewer than ``min_track_frames`` frames (or ``min_track_s`` seconds) are
   dropped as spurious (a detector's blip on a poster or in a crowd); the rest are
   **ordered** largest first (mean box area, the reference's "largest box" rule, §10) or left
   to right, and ``max_people`` keeps the most prominent ones (sum over frames of box height),
   with one log line naming what was dropped. ``track_id`` is the final order, 0, 1, ...

Measured (tests/backend/test_tracking.py): synthetic 2- and 3-person scenes with crossings, a
person hidden for 10 frames and a person entering late keep every identity on every frame.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import List, Optional

import numpy as np

from scail_protocol import joints as J
from scail_protocol.camera import project
from scail_protocol.sequence import PoseSequence, people_count

log = logging.getLogger(__name__)

ORDERS = ("size", "left_to_right")
DEFAULT_ORDER = "size"        # docs/pipeline.md §10: the largest person is person 0
DUPLICATE_IOU = 0.6           # same-frame slots overlapping this much, with points this close
DUPLICATE_POINT_DIST = 0.08   # (person heights) and depths this close (fraction; where known)
DUPLICATE_DEPTH = 0.05        # are one person found twice (two people crossing differ in depth)
MIN_SCALE_PX = 8.0            # heights below this are treated as this (no division blow-up)
VELOCITY_DAMPING = 0.8        # per lost frame, a lost track's predicted velocity shrinks so
_BODY = slice(J.BODY.start, J.FEET.stop)  # 2D points used for matching (body + feet)


@dataclass(frozen=True)
class TrackerParams:
    """How detections are linked.

    Attributes:
        gate: largest mean point distance, in person heights, of a match in consecutive frames.
        gate_growth: how much the gate widens per frame a track has been lost (heights/frame).
        max_gate: the widest gate, person heights.
        max_lost_s: how long a track that sees nothing stays matchable, seconds.
        min_track_frames: tracks present on fewer frames are dropped as spurious ...
        min_track_s: ... or present for less than this many seconds (whichever is more
            frames), except a track present on every frame of a short clip.
        box_weight: weight of (1 - IoU) of predicted and detected boxes in the cost.
        depth_weight: weight of the relative depth difference |Δz| / z in the cost.
    """

    gate: float = 0.5
    gate_growth: float = 0.08
    max_gate: float = 1.5
    max_lost_s: float = 1.5
    min_track_frames: int = 3
    min_track_s: float = 0.3
    box_weight: float = 0.5
    depth_weight: float = 1.0

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"tracker parameter {name} must be a non-negative number, "
                                 f"got {value!r}")


@dataclass
class _Detections:
    """Features of the detections (slots) of one frame, n of them."""

    slot: np.ndarray     # (n,) slot index in the input sequence
    points: np.ndarray   # (n, N, 2) px, NaN = missing
    box: np.ndarray      # (n, 4) px
    depth: np.ndarray    # (n,) mm, NaN = unknown
    score: np.ndarray    # (n,) mean confidence


@dataclass
class _Track:
    points: np.ndarray
    box: np.ndarray
    depth: float
    velocity: np.ndarray        # (N, 2) px/frame of the points
    box_velocity: np.ndarray    # (4,) px/frame
    last_frame: int
    slots: dict                 # frame -> input slot

    def predict(self, frame: int) -> tuple:
        """(points, box) expected at ``frame`` (constant velocity, damped while lost)."""
        gap = frame - self.last_frame
        steps = sum(VELOCITY_DAMPING ** k for k in range(gap))
        return self.points + steps * self.velocity, self.box + steps * self.box_velocity

    @property
    def height(self) -> float:
        return max(float(self.box[3] - self.box[1]), MIN_SCALE_PX)


# --- features ------------------------------------------------------------------------------------

def detection_points(seq: PoseSequence) -> np.ndarray:
    """(P, T, N, 2) points used for matching: 2D body + feet points, then the projected 3D
    joints (pixels; NaN = missing). Either half may be all NaN (a 3D-only or 2D-only estimator)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        joints_px = project(seq.joints3d.astype(np.float64), seq.K)
    joints_px = np.where(np.isfinite(joints_px).all(-1, keepdims=True), joints_px, np.nan)
    return np.concatenate([seq.kp2d[:, :, _BODY].astype(np.float64), joints_px], axis=2)


def detection_boxes(seq: PoseSequence, points: np.ndarray) -> np.ndarray:
    """(P, T, 4) boxes: the sequence's own, else the box around the points; NaN = absent."""
    boxes = seq.bbox.astype(np.float64)
    finite = np.isfinite(points).all(-1, keepdims=True)
    with np.errstate(all="ignore"):
        low = np.where(finite, points, np.inf).min(2)
        high = np.where(finite, points, -np.inf).max(2)
    around = np.concatenate([low, high], -1)
    around = np.where(np.isfinite(around).all(-1, keepdims=True), around, np.nan)
    return np.where(np.isfinite(boxes).all(-1, keepdims=True), boxes, around)


def _frame_detections(seq, points, boxes, t: int) -> _Detections:
    present = np.isfinite(boxes[:, t]).all(-1) & np.isfinite(points[:, t]).all(-1).any(-1)
    slots = np.flatnonzero(present)
    return _Detections(slot=slots, points=points[slots, t], box=boxes[slots, t],
                       depth=_nan_median(seq.joints3d[slots, t, :, 2]),
                       score=np.nan_to_num(_nan_mean(seq.kp2d_score[slots, t, _BODY]), nan=0.5))


def _nan_median(values: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring NaN; NaN where all are NaN (no warning)."""
    values = np.asarray(values, np.float64)
    out = np.full(values.shape[:-1], np.nan)
    some = np.isfinite(values).any(-1)
    if some.any():
        out[some] = np.nanmedian(values[some], axis=-1)
    return out


def _nan_mean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN where all are NaN (no warning)."""
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    count = finite.sum(-1)
    total = np.where(finite, values, 0.0).sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


# --- costs ---------------------------------------------------------------------------------------

def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) intersection over union of boxes (n, 4) and (m, 4), x1 y1 x2 y2."""
    a = np.asarray(a, np.float64)[:, None]
    b = np.asarray(b, np.float64)[None]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / (area_a + area_b - inter)
    return np.nan_to_num(iou, nan=0.0)


def point_distance(a: np.ndarray, b: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(n, m) mean distance between corresponding points of (n, N, 2) and (m, N, 2), divided by
    ``scale`` (n,) (px); inf where the two share no point."""
    diff = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))          # (n, m, N)
    both = np.isfinite(diff)
    count = both.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(both, diff, 0.0).sum(-1) / count
    return np.where(count > 0, mean / np.asarray(scale, np.float64)[:, None], np.inf)


def match_cost(track_points, track_boxes, track_depth, det: _Detections, scale,
               params: TrackerParams) -> tuple:
    """(cost, distance): (n, m) matching cost and the point distance (person heights) of n
    predicted tracks against m detections."""
    dist = point_distance(track_points, det.points, scale)
    iou = box_iou(track_boxes, det.box)
    with np.errstate(invalid="ignore", divide="ignore"):
        dz = np.abs(np.asarray(track_depth)[:, None] - det.depth[None]) / np.maximum(
            np.asarray(track_depth)[:, None], 1.0)
    dz = np.nan_to_num(dz, nan=0.0, posinf=0.0)
    cost = dist + params.box_weight * (1.0 - iou) + params.depth_weight * np.minimum(dz, 1.0)
    return cost, dist


# --- per-frame duplicates ------------------------------------------------------------------------

def _drop_duplicates(det: _Detections) -> _Detections:
    """Keep the more confident of two slots on the same body."""
    n = len(det.slot)
    if n < 2:
        return det
    scale = np.maximum(det.box[:, 3] - det.box[:, 1], MIN_SCALE_PX)
    with np.errstate(invalid="ignore", divide="ignore"):
        dz = np.abs(det.depth[:, None] - det.depth[None]) / np.maximum(det.depth[:, None], 1.0)
    same = (box_iou(det.box, det.box) > DUPLICATE_IOU) & \
        (point_distance(det.points, det.points, scale) < DUPLICATE_POINT_DIST) & \
        ~(np.nan_to_num(dz, nan=0.0) > DUPLICATE_DEPTH)
    keep = np.ones(n, bool)
    for i in np.argsort(-det.score, kind="stable"):
        if keep[i]:
            others = same[i].copy()
            others[i] = False
            keep &= ~others
    if keep.all():
        return det
    return _Detections(det.slot[keep], det.points[keep], det.box[keep], det.depth[keep],
                       det.score[keep])


# --- tracking ------------------------------------------------------------------------------------

def link(seq: PoseSequence, params: TrackerParams = TrackerParams()) -> List[dict]:
    """Link the sequence's slots into tracks.

    Returns:
        One ``{frame: slot}`` dict per track, in order of creation.
    """
    from scipy.optimize import linear_sum_assignment

    points = detection_points(seq)
    boxes = detection_boxes(seq, points)
    max_lost = max(1, int(round(params.max_lost_s * seq.fps)))
    active: List[_Track] = []
    finished: List[_Track] = []
    for t in range(seq.num_frames):
        det = _drop_duplicates(_frame_detections(seq, points, boxes, t))
        still = [tr for tr in active if t - tr.last_frame <= max_lost]
        finished += [tr for tr in active if t - tr.last_frame > max_lost]
        active = still
        matched_det = set()
        if active and len(det.slot):
            predicted = [tr.predict(t) for tr in active]
            scale = np.array([tr.height for tr in active])
            cost, dist = match_cost(np.stack([p for p, _ in predicted]),
                                    np.stack([b for _, b in predicted]),
                                    np.array([tr.depth for tr in active]), det, scale, params)
            gate = np.array([min(params.gate + params.gate_growth * (t - tr.last_frame - 1),
                                 params.max_gate) for tr in active])
            allowed = dist <= gate[:, None]
            big = 1e6
            rows, cols = linear_sum_assignment(np.where(allowed, cost, big))
            for r, c in zip(rows, cols):
                if allowed[r, c]:
                    _update(active[r], det, c, t)
                    matched_det.add(c)
        for c in range(len(det.slot)):
            if c not in matched_det:
                active.append(_new_track(det, c, t))
    return [tr.slots for tr in finished + active]


def _new_track(det: _Detections, c: int, t: int) -> _Track:
    return _Track(points=det.points[c].copy(), box=det.box[c].copy(), depth=float(det.depth[c]),
                  velocity=np.zeros_like(det.points[c]), box_velocity=np.zeros(4),
                  last_frame=t, slots={t: int(det.slot[c])})


def _update(track: _Track, det: _Detections, c: int, t: int) -> None:
    gap = max(t - track.last_frame, 1)
    points = det.points[c]
    velocity = (points - track.points) / gap
    # a point missing on either side keeps the old velocity; a new point gets none
    velocity = np.where(np.isfinite(velocity), velocity,
                        np.where(np.isfinite(track.velocity), track.velocity, 0.0))
    track.velocity = 0.5 * track.velocity + 0.5 * velocity
    track.box_velocity = 0.5 * track.box_velocity + 0.5 * (det.box[c] - track.box) / gap
    # points the detection lacks keep their predicted position, so partial views still match
    predicted, _ = track.predict(t)
    track.points = np.where(np.isfinite(points), points, predicted)
    track.box = det.box[c].copy()
    if np.isfinite(det.depth[c]):
        track.depth = float(det.depth[c])
    track.last_frame = t
    track.slots[t] = int(det.slot[c])


def track_people(seq: PoseSequence, *, max_people: Optional[int] = None,
                 order: str = DEFAULT_ORDER, params: TrackerParams = TrackerParams()
                 ) -> PoseSequence:
    """Stable identities for the people of a sequence whose slots are per-frame detections.

    Args:
        seq: P slots x T frames; in each frame the present slots are that frame's detections,
            in any order (a slot need not be the same person from frame to frame).
        max_people: keep at most this many tracks (the most prominent: sum over frames of the
            box height); None = all. Dropped tracks are named in one INFO log line.
        order: "size" (largest mean box first, as docs/pipeline.md §10) or "left_to_right" (by mean
            box centre x).
        params: matching parameters.

    Returns:
        A sequence of P' tracks (``track_id`` = 0..P'-1 in ``order``), each frame of a track
        holding the detection linked to it, NaN where the track saw nobody;
        ``meta["tracking"]`` records the parameters, the tracks found and those dropped.

    Raises:
        ValueError: unknown ``order`` or ``max_people`` < 1.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    if max_people is not None and int(max_people) < 1:
        raise ValueError(f"max_people must be a positive integer, got {max_people!r}")
    tracks = link(seq, params)
    shortest = min(max(params.min_track_frames, int(round(params.min_track_s * seq.fps))),
                   seq.num_frames)
    short = [tr for tr in tracks if len(tr) < shortest]
    tracks = [tr for tr in tracks if len(tr) >= shortest]
    out = _gather(seq, tracks)
    found = out.num_people
    dropped = 0
    if max_people is not None and found > int(max_people):
        heights = np.nan_to_num(out.bbox[..., 3] - out.bbox[..., 1], nan=0.0).sum(1)
        keep = np.sort(np.argsort(-heights, kind="stable")[:int(max_people)])
        dropped = found - len(keep)
        log.info("found %d people, kept the %d most prominent (--max-people %d); dropped %d",
                 found, len(keep), int(max_people), dropped)
        out = out.people(keep)
    out = _ordered(out, order)
    log.info("tracking: %s over %d frames%s", people_count(out.num_people), out.num_frames,
             f"; {len(short)} track(s) shorter than {shortest} frames dropped as blips"
             if short else "")
    meta = dict(out.meta, tracking=dict(
        params=asdict(params), order=order, max_people=max_people, tracks_found=found,
        tracks_dropped=dropped, spurious_dropped=len(short), shortest_track_frames=shortest,
        detector_slots=seq.num_people))
    return out.replace(track_id=np.arange(out.num_people, dtype=np.int64), meta=meta)


def _gather(seq: PoseSequence, tracks: List[dict]) -> PoseSequence:
    """The sequence with one person per track."""
    out = PoseSequence.empty(len(tracks), seq.num_frames, seq.size, seq.fps, K=seq.K,
                             meta=seq.meta)
    fields = ("joints3d", "kp2d", "kp2d_score", "bbox")
    arrays = {name: np.array(getattr(out, name)) for name in fields}
    for p, slots in enumerate(tracks):
        frames = np.fromiter(slots.keys(), dtype=np.int64)
        which = np.fromiter(slots.values(), dtype=np.int64)
        for name in fields:
            arrays[name][p, frames] = getattr(seq, name)[which, frames]
    return out.replace(**arrays)


def _ordered(seq: PoseSequence, order: str) -> PoseSequence:
    if seq.num_people < 2:
        return seq
    box = seq.bbox.astype(np.float64)
    with np.errstate(invalid="ignore"):
        if order == "size":
            area = (box[..., 2] - box[..., 0]) * (box[..., 3] - box[..., 1])
            key = -np.nan_to_num(np.nanmean(area, axis=1), nan=0.0)
        else:
            centre = 0.5 * (box[..., 0] + box[..., 2])
            key = np.nan_to_num(np.nanmean(centre, axis=1), nan=np.inf)
    return seq.people(np.argsort(key, kind="stable"))
