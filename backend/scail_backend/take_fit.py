"""Whole-take fit: one skeleton per person for the whole take, posed to match the 2D evidence.

A per-frame estimate (the CPU default's mapping of MediaPipe, or any estimator) gives each frame
its own bone lengths and its own guess of each limb's depth. This step refines a person's take
as one sparse nonlinear least-squares problem over every frame at once, solved by
Levenberg–Marquardt with an analytic sparse Jacobian and a banded Cholesky solve of the normal
equations (:func:`_solve_damped`). (``scipy.optimize.least_squares`` solves the same problem, but
its sparse mode goes through LSMR, which took over 10x longer on these banded systems.) Unknowns: the camera-frame joints
``X`` (T, 24, 3) in mm and one length per SMPL-24 bone, the left and right sides sharing one.
Residuals, each divided by its scale (:class:`FitParams`):

* reprojection — ``√w · (π(X) − uv₀)``: the joints land on the 2D positions the estimate
  projects to (``π`` = pinhole through ``K``), weighted by the visibility ``w`` of the matching
  2D keypoint (``kp2d_score``);
* bone length — ``|X_j − X_parent| − L_bone``: one rigid skeleton for the take;
* shape prior — ``(X_j − X_pelvis) − (X₀_j − X₀_pelvis)``: the estimate's own 3D pose, weakly
  (it resolves each limb's front/back ambiguity);
* temporal prior — the acceleration ``X_{t+1} − 2X_t + X_{t−1}`` (per frame², scaled to the
  take's fps);
* anchors — the pelvis depth and each bone length, weakly, towards the estimate's own values
  (the robust median over the take for the lengths): they fix the overall scale, which the 2D
  evidence alone cannot;
* still feet — ``X_t − X_{t−1}`` of a foot whose 2D point holds still (:func:`still_feet`):
  a planted foot stays put in 3D too. Without it the per-frame depth swings where the estimate's
  limb depths do (MediaPipe pushed a squat seen from the front 0.6 m back and forth), and the
  planted feet slide with it.

Given a bone's two image points and its length, the depth difference of its ends is determined
up to sign; the fit therefore turns "a depth guess per frame" into "one length per bone for the
take", the sign coming from the estimate. Before the fit, the arms' depths are set that way
(:func:`arm_depths`): MediaPipe states the hand's depth relative to the shoulder better than
each bone's, so each arm's sides come from the whole arm (:func:`arm_sides`), the depths from
the bone lengths where that side is clear (:func:`foreshortened_depths`), smoothed in time.
A thigh that points well out of the image plane gets its side from anatomy
(:func:`thigh_sides`): MediaPipe flattens a thigh pointing at the camera. Frames where a person is missing stay missing and break the temporal prior; long takes are
solved in overlapping windows (:data:`WINDOW_FRAMES`) blended linearly, so memory stays bounded.

Measured with ``bench/accuracy.py --bodies all --fit`` (see the README's accuracy table).
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import asdict, dataclass, replace
from typing import Optional

import numpy as np
from scipy import sparse

from scail_protocol.joints import OPENPOSE18, SMPL24, SMPL24_NAMES, SMPL24_PARENTS
from scail_protocol.runs import drop_short_runs, true_runs
from scail_protocol.sequence import PoseSequence, people_count

log = logging.getLogger(__name__)

NUM_JOINTS = 24
WINDOW_FRAMES = 240       # frames solved together; longer runs are split
WINDOW_OVERLAP = 16       # frames shared by neighbouring windows (blended linearly)
REFERENCE_FPS = 16.0      # the temporal scale below is per frame² at this rate
MIN_WEIGHT = 0.05         # a 2D point never counts for less than this (scores of 0 happen)
MIN_DEPTH_MM = 1.0        # a joint nearer than this is not in front of the camera
STILL_FEET = (SMPL24["left_foot"], SMPL24["right_foot"])
STILL_TRUNKS_PER_S = 0.25  # a foot slower than this in 2D holds still (trunk lengths per second)
STILL_MIN_FRAMES = 3       # ... for at least this many frames in a row


@dataclass(frozen=True)
class FitParams:
    """Scales of the residuals (a residual of this size costs 1).

    Attributes:
        reprojection_px: 2D error, pixels.
        bone_mm: deviation of a frame's bone from the take's length, mm.
        shape_mm: deviation from the estimate's own root-relative pose, mm.
        accel_mm: acceleration per frame² at 16 fps, mm (scaled by (16 / fps)² for other rates).
        depth_mm: deviation of the pelvis depth from the estimate's, mm.
        length_mm: deviation of a bone length from the estimate's robust median, mm.
        max_iterations: Levenberg–Marquardt iterations per window.
        foreshortening_min: an arm bone's depth comes from its length and 2D foreshortening
            (:func:`foreshortened_depths`) in frames where the estimate puts its ends more than
            this fraction of its length apart in depth; None turns the whole arm step
            (:func:`arm_depths`) off.
        arm_depth_gain: the estimate's hand depth relative to the shoulder, times this, picks
            each arm's sides (:func:`arm_sides`); None keeps each bone's own side.
        arm_smoothing_s: the arm bones' depth offsets are smoothed in time over this many
            seconds (Gaussian sigma); None or 0 turns it off.
        thigh_out_of_plane: a thigh pointing out of the image plane by more than this sine
            (from its length and 2D length) gets its side from the body's facing
            (:func:`thigh_sides`); None turns that off.
        still_foot_mm: a foot whose 2D point holds still (:func:`still_feet`) moves at most
            about this far in 3D between two such frames, mm; None turns the term off.
    """

    reprojection_px: float = 2.0
    bone_mm: float = 8.0
    shape_mm: float = 40.0
    accel_mm: float = 40.0
    depth_mm: float = 300.0
    length_mm: float = 40.0
    max_iterations: int = 5
    foreshortening_min: Optional[float] = 0.3
    arm_depth_gain: Optional[float] = 1.6
    arm_smoothing_s: Optional[float] = 0.1
    thigh_out_of_plane: Optional[float] = 0.5
    still_foot_mm: Optional[float] = 5.0


DEFAULT_PARAMS = FitParams()

# The 2D keypoint whose score weighs each SMPL joint's reprojection (OpenPose-18 names).
_SCORE_SOURCE = {
    "pelvis": ("left_hip", "right_hip"), "spine1": ("left_hip", "right_hip"),
    "spine2": ("left_shoulder", "right_shoulder", "left_hip", "right_hip"),
    "spine3": ("left_shoulder", "right_shoulder"), "neck": ("neck",),
    "head": ("nose",), "left_collar": ("left_shoulder",), "right_collar": ("right_shoulder",),
    "left_foot": ("left_ankle",), "right_foot": ("right_ankle",),
    "left_hand": ("left_wrist",), "right_hand": ("right_wrist",),
}


def _bone_groups() -> np.ndarray:
    """(24,) index of each bone's shared length (left and right share one); -1 for the root."""
    group, names = np.full(NUM_JOINTS, -1), {}
    for j in range(1, NUM_JOINTS):
        key = SMPL24_NAMES[j].replace("left_", "").replace("right_", "")
        group[j] = names.setdefault(key, len(names))
    return group


BONE_GROUP = _bone_groups()
NUM_LENGTHS = int(BONE_GROUP.max()) + 1
PARENTS = np.array(SMPL24_PARENTS)
# Bones placed by :func:`foreshortened_depths` (named by their child joint; parents come first).
# Measured on the tuning bodies (average, child), the arms gain ~1.2 mm PA-MPJPE; the legs lose
# ~0.2 mm (MediaPipe's sign for a thigh pointing at the camera is often wrong).
ARM_BONES = tuple(SMPL24[n] for n in ("left_elbow", "right_elbow", "left_wrist", "right_wrist",
                                      "left_hand", "right_hand"))
# (hip, knee, ankle, foot) of each leg.
LEGS = tuple(tuple(SMPL24[f"{side}_{j}"] for j in ("hip", "knee", "ankle", "foot"))
             for side in ("left", "right"))
FACING_SMOOTHING_FRAMES = 2.0  # Gaussian sigma of the body's facing direction over time
# (shoulder, elbow, wrist, hand) of each arm.
ARMS = tuple(tuple(SMPL24[f"{side}_{j}"] for j in ("shoulder", "elbow", "wrist", "hand"))
             for side in ("left", "right"))


def joint_weights(kp2d_score: np.ndarray) -> np.ndarray:
    """(T, 24) reprojection weights of the SMPL joints from (T, 134) keypoint scores.

    A joint with a same-named OpenPose-18 point takes its score; the others take the mean of
    the points listed in ``_SCORE_SOURCE``. Missing scores count as 1 (the estimate placed the
    joint from 2D evidence we cannot weigh), and no weight is below :data:`MIN_WEIGHT`.
    """
    score = np.asarray(kp2d_score, np.float64)
    out = np.empty(score.shape[:-1] + (NUM_JOINTS,))
    for j, name in enumerate(SMPL24_NAMES):
        sources = score[..., [OPENPOSE18[s] for s in _SCORE_SOURCE.get(name, (name,))]]
        given = np.isfinite(sources)
        total = np.where(given, sources, 0.0).sum(-1)
        count = given.sum(-1)
        out[..., j] = np.where(count > 0, total / np.maximum(count, 1), 1.0)
    return np.clip(out, MIN_WEIGHT, 1.0)


@dataclass
class _Problem:
    """One window of one person: targets, priors, and the fixed sparsity pattern."""

    K: np.ndarray
    uv0: np.ndarray       # (T, 24, 2) px
    sqrt_w: np.ndarray    # (T, 24)
    rel0: np.ndarray      # (T, 24, 3) root-relative estimate, mm
    root_z0: np.ndarray   # (T,) mm
    lengths0: np.ndarray  # (NUM_LENGTHS,) mm
    params: FitParams
    accel_scale: float    # mm per frame² at this fps
    still_steps: tuple = (np.zeros(0, int), np.zeros(0, int))  # (frame t, foot joint): t-1 -> t

    @property
    def frames(self) -> int:
        return self.uv0.shape[0]


def _index(t: np.ndarray, j: np.ndarray, c) -> np.ndarray:
    return (t * NUM_JOINTS + j) * 3 + c


def _residuals(x: np.ndarray, pb: _Problem) -> np.ndarray:
    T, p = pb.frames, pb.params
    X = x[: T * 72].reshape(T, NUM_JOINTS, 3)
    L = x[T * 72:]
    fx, fy, cx, cy = pb.K[0, 0], pb.K[1, 1], pb.K[0, 2], pb.K[1, 2]
    z = X[..., 2]
    uv = np.stack([fx * X[..., 0] / z + cx, fy * X[..., 1] / z + cy], -1)
    r_proj = (pb.sqrt_w[..., None] * (uv - pb.uv0) / p.reprojection_px).ravel()
    d = X[:, 1:] - X[:, PARENTS[1:]]
    r_bone = ((np.linalg.norm(d, axis=-1) - L[BONE_GROUP[1:]]) / p.bone_mm).ravel()
    r_shape = (((X[:, 1:] - X[:, :1]) - pb.rel0[:, 1:]) / p.shape_mm).ravel()
    r_accel = ((X[2:] - 2.0 * X[1:-1] + X[:-2]) / pb.accel_scale).ravel()
    r_depth = (X[:, 0, 2] - pb.root_z0) / p.depth_mm
    r_len = (L - pb.lengths0) / p.length_mm
    ts, js = pb.still_steps
    r_still = ((X[ts, js] - X[ts - 1, js]) / (p.still_foot_mm or 1.0)).ravel()
    return np.concatenate([r_proj, r_bone, r_shape, r_accel, r_depth, r_len, r_still])


def _jacobian(x: np.ndarray, pb: _Problem) -> sparse.csr_matrix:
    T, p = pb.frames, pb.params
    X = x[: T * 72].reshape(T, NUM_JOINTS, 3)
    nx = T * 72
    fx, fy = pb.K[0, 0], pb.K[1, 1]
    rows, cols, vals = [], [], []
    row = 0
    # reprojection: rows (t, j, u|v)
    t, j = np.meshgrid(np.arange(T), np.arange(NUM_JOINTS), indexing="ij")
    t, j = t.ravel(), j.ravel()
    Xf = X.reshape(-1, 3)
    s = pb.sqrt_w.ravel() / p.reprojection_px
    z = Xf[:, 2]
    ru, rv = row + 2 * np.arange(T * NUM_JOINTS), row + 2 * np.arange(T * NUM_JOINTS) + 1
    rows += [ru, ru, rv, rv]
    cols += [_index(t, j, 0), _index(t, j, 2), _index(t, j, 1), _index(t, j, 2)]
    vals += [s * fx / z, -s * fx * Xf[:, 0] / z ** 2, s * fy / z, -s * fy * Xf[:, 1] / z ** 2]
    row += 2 * T * NUM_JOINTS
    # bone length: rows (t, bone)
    tb, jb = np.meshgrid(np.arange(T), np.arange(1, NUM_JOINTS), indexing="ij")
    tb, jb = tb.ravel(), jb.ravel()
    d = X[tb, jb] - X[tb, PARENTS[jb]]
    unit = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9) / p.bone_mm
    rb = row + np.arange(len(tb))
    for c in range(3):
        rows += [rb, rb]
        cols += [_index(tb, jb, c), _index(tb, PARENTS[jb], c)]
        vals += [unit[:, c], -unit[:, c]]
    rows.append(rb)
    cols.append(nx + BONE_GROUP[jb])
    vals.append(np.full(len(rb), -1.0 / p.bone_mm))
    row += len(tb)
    # shape prior: rows (t, j>=1, c)
    for c in range(3):
        rs = row + (np.arange(len(tb)) * 3 + c)
        rows += [rs, rs]
        cols += [_index(tb, jb, c), _index(tb, np.zeros_like(jb), c)]
        vals += [np.full(len(rs), 1.0 / p.shape_mm), np.full(len(rs), -1.0 / p.shape_mm)]
    row += 3 * len(tb)
    # acceleration: rows (t in 1..T-2, j, c)
    if T >= 3:
        ta, ja, ca = np.meshgrid(np.arange(1, T - 1), np.arange(NUM_JOINTS), np.arange(3),
                                 indexing="ij")
        ta, ja, ca = ta.ravel(), ja.ravel(), ca.ravel()
        ra = row + np.arange(len(ta))
        for dt, coef in ((-1, 1.0), (0, -2.0), (1, 1.0)):
            rows.append(ra)
            cols.append(_index(ta + dt, ja, ca))
            vals.append(np.full(len(ra), coef / pb.accel_scale))
        row += len(ta)
    # pelvis depth anchor
    rd = row + np.arange(T)
    rows.append(rd)
    cols.append(_index(np.arange(T), np.zeros(T, int), 2))
    vals.append(np.full(T, 1.0 / p.depth_mm))
    row += T
    # length anchors
    rl = row + np.arange(NUM_LENGTHS)
    rows.append(rl)
    cols.append(nx + np.arange(NUM_LENGTHS))
    vals.append(np.full(NUM_LENGTHS, 1.0 / p.length_mm))
    row += NUM_LENGTHS
    # still feet: rows (step, c)
    ts, js = pb.still_steps
    for c in range(3):
        rc = row + np.arange(len(ts)) * 3 + c
        rows += [rc, rc]
        cols += [_index(ts, js, c), _index(ts - 1, js, c)]
        vals += [np.full(len(ts), 1.0 / (p.still_foot_mm or 1.0)),
                 np.full(len(ts), -1.0 / (p.still_foot_mm or 1.0))]
    row += 3 * len(ts)
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(row, nx + NUM_LENGTHS))


def robust_lengths(joints_mm: np.ndarray) -> np.ndarray:
    """(NUM_LENGTHS,) median bone length over frames and both sides, mm, from (T, 24, 3)."""
    d = np.linalg.norm(joints_mm[:, 1:] - joints_mm[:, PARENTS[1:]], axis=-1)  # (T, 23)
    out = np.empty(NUM_LENGTHS)
    for g in range(NUM_LENGTHS):
        out[g] = np.nanmedian(d[:, BONE_GROUP[1:] == g])
    return out


def _ray_roots(ray: np.ndarray, parent: np.ndarray, length: np.ndarray) -> tuple:
    """((T,), (T,)) the near and far depths z of the points z·ray at ``length`` from ``parent``.

    Solves |z·r − P|² = L² (r = K⁻¹(u, v, 1), so z is the camera-frame depth):
    z = (r·P ∓ √((r·P)² − |r|²(|P|² − L²))) / |r|². Where the ray misses the sphere (the 2D bone
    is longer than L), both roots become the point of the ray closest to P.

    Args:
        ray: (T, 3) rays with z = 1; parent: (T, 3) mm; length: (T,) mm.
    """
    a = (ray * ray).sum(-1)
    b = (ray * parent).sum(-1)
    c = (parent * parent).sum(-1) - length ** 2
    half_gap = np.sqrt(np.maximum(b * b - a * c, 0.0)) / a
    return b / a - half_gap, b / a + half_gap


def _depth_on_ray(ray: np.ndarray, parent: np.ndarray, length: np.ndarray,
                  nearer: np.ndarray) -> np.ndarray:
    """(T,) the near root of :func:`_ray_roots` where ``nearer`` ((T,) bool), else the far one."""
    near, far = _ray_roots(ray, parent, length)
    return np.where(nearer, near, far)


def foreshortened_depths(joints_mm: np.ndarray, lengths_mm: np.ndarray, min_fraction: float,
                         bones=ARM_BONES, sides: Optional[np.ndarray] = None) -> np.ndarray:
    """The estimate with each listed bone's depth offset taken from its length and 2D length.

    A bone of length L whose image is shorter than L points out of the image plane by
    |Δz| = √(L² − |Δxy|²) (Taylor, "Reconstruction of articulated objects from point
    correspondences in a single uncalibrated image", CVIU 2000; here exactly, with perspective, by
    :func:`_depth_on_ray`), on the side the estimate gives. Where the estimate's own offset
    |z_child − z_parent| is under ``min_fraction``·L its side is a guess, so its offset is kept
    (from the possibly moved parent). Each child stays on its pixel's camera ray, so the 2D
    projection is unchanged; bones are processed parents first, so a moved elbow carries its
    wrist. ``sides`` may name another side than the estimate's (:func:`arm_sides`).

    Args:
        joints_mm: (T, 24, 3) camera-frame joints, mm, all finite, in front of the camera
            (each joint's pixel ray is its position over its depth, so K is not needed).
        lengths_mm: (NUM_LENGTHS,) the take's bone lengths, mm (:func:`robust_lengths`).
        min_fraction: the trust threshold above, a fraction of L.
        bones: child-joint indices of the bones to place, parents before children.
        sides: optional (T, 24): for each child joint, −1 (nearer the camera than its parent),
            +1 (farther) or 0 (the estimate's side).

    Returns:
        (T, 24, 3) float64 joints, mm.
    """
    X = np.array(joints_mm, np.float64)
    estimate = np.asarray(joints_mm, np.float64)
    for j in bones:
        p = PARENTS[j]
        ray = X[:, j] / X[:, j, 2:3]
        length = np.full(len(X), lengths_mm[BONE_GROUP[j]])
        offset = estimate[:, j, 2] - estimate[:, p, 2]
        side = np.sign(offset) if sides is None else np.where(sides[:, j] != 0, sides[:, j],
                                                               np.sign(offset))
        depth = _depth_on_ray(ray, X[:, p], length, nearer=side < 0)
        trusted = (np.abs(offset) > min_fraction * length) & (depth > MIN_DEPTH_MM)
        X[:, j] = ray * np.where(trusted, depth, X[:, p, 2] + offset)[:, None]
    return X


def arm_sides(joints_mm: np.ndarray, lengths_mm: np.ndarray, gain: float) -> np.ndarray:
    """(T, 24) each arm's elbow and wrist sides, chosen from the whole arm: −1 nearer than the
    parent, +1 farther, 0 elsewhere (the estimate's side).

    Each arm bone's child lies on its pixel's ray at one of two depths for the take's bone length
    (:func:`_depth_on_ray`). Of the eight side choices of upper arm, forearm and hand, the one
    whose hand lands nearest ``gain`` times the estimate's hand depth relative to the shoulder
    wins: MediaPipe states that whole-arm depth better than each bone's, though compressed
    towards a mean pose (hence the gain). Measured on the tuning bodies, where the side matters
    (|Δz| > 0.3 L), the upper arm's side is right in 90 % of frames instead of 69 %, the
    forearm's in 90 % instead of 86 %. The hand keeps the estimate's own side (right in 99 %).

    Args:
        joints_mm: (T, 24, 3) camera-frame joints, mm, all finite, in front of the camera.
        lengths_mm: (NUM_LENGTHS,) the take's bone lengths, mm.
        gain: the factor above.
    """
    X = np.asarray(joints_mm, np.float64)
    T = len(X)
    out = np.zeros((T, NUM_JOINTS))
    for shoulder, elbow, wrist, hand in ARMS:
        bones = (elbow, wrist, hand)
        rays = [X[:, j] / X[:, j, 2:3] for j in bones]
        target = X[:, shoulder, 2] + gain * (X[:, hand, 2] - X[:, shoulder, 2])
        best = np.full(T, np.inf)
        for sides in itertools.product((-1.0, 1.0), repeat=3):
            parent = X[:, shoulder]
            for j, ray, side in zip(bones, rays, sides):
                depth = _depth_on_ray(ray, parent, np.full(T, lengths_mm[BONE_GROUP[j]]),
                                      nearer=np.full(T, side < 0))
                parent = ray * np.maximum(depth, MIN_DEPTH_MM)[:, None]
            miss = (parent[:, 2] - target) ** 2
            better = miss < best
            best = np.where(better, miss, best)
            out[better, elbow], out[better, wrist] = sides[0], sides[1]
    return out


def arm_depths(joints_mm: np.ndarray, lengths_mm: np.ndarray, fps: float,
               params: "FitParams") -> np.ndarray:
    """The arms of one run of consecutive frames, placed before the fit.

    1. Sides from the whole arm (:func:`arm_sides`, unless ``params.arm_depth_gain`` is None).
    2. Depths from the bone lengths on those sides where the estimate's offset is clear
       (:func:`foreshortened_depths`, threshold ``params.foreshortening_min``).
    3. The elbow's and wrist's depth offsets smoothed in time (Gaussian,
       ``params.arm_smoothing_s``): per-frame offsets jitter by tens of mm, and across a short
       stretch on the wrong side the smoothed offset passes through 0, the least costly guess
       where the side is in doubt.
    4. The hand on the forearm's line in depth (the two bones' depth slopes correlate at 0.97
       on the synthetic bodies; MediaPipe's hand, from its knuckle landmarks, is noisier).

    Measured on the tuning bodies (average, child), these took the fit from 41.4 to 40.9 mm
    PA-MPJPE on the wave, walk and squat clips (front and three-quarter) and from 43.2 to 43.0
    over all eight motions (front and side). A longer smoothing (0.25 s) gained 0.4 mm more on
    the first set but cost 2 mm on jumps, whose arms swing fast. Every joint stays on its
    pixel's ray, so the 2D is unchanged.

    Args:
        joints_mm: (T, 24, 3) camera-frame joints, mm, all finite, in front of the camera; the
            frames must be consecutive (the smoothing runs across them).
        lengths_mm: (NUM_LENGTHS,) the take's bone lengths, mm.
        fps: frames per second.
        params: the fit's settings.

    Returns:
        (T, 24, 3) float64 joints, mm; only elbows, wrists and hands move.
    """
    from scipy.ndimage import gaussian_filter1d

    X = np.asarray(joints_mm, np.float64)
    sides = None if params.arm_depth_gain is None else arm_sides(X, lengths_mm,
                                                                 params.arm_depth_gain)
    X = foreshortened_depths(X, lengths_mm, params.foreshortening_min, sides=sides)
    if params.arm_smoothing_s and len(X) > 1:
        placed = X.copy()
        for _, elbow, wrist, _ in ARMS:
            for j in (elbow, wrist):
                offset = placed[:, j, 2] - placed[:, PARENTS[j], 2]
                offset = gaussian_filter1d(offset, params.arm_smoothing_s * fps, mode="nearest")
                X[:, j] = _on_ray_at(X[:, j], X[:, PARENTS[j], 2] + offset)
    for _, elbow, wrist, hand in ARMS:
        slope = (X[:, wrist, 2] - X[:, elbow, 2]) / lengths_mm[BONE_GROUP[wrist]]
        X[:, hand] = _on_ray_at(X[:, hand], X[:, wrist, 2] + slope * lengths_mm[BONE_GROUP[hand]])
    return X


def facing_directions(joints_mm: np.ndarray) -> np.ndarray:
    """(T, 3) unit direction the chest faces, camera frame: (left hip − right hip) × (neck −
    pelvis), from axes smoothed over :data:`FACING_SMOOTHING_FRAMES` (consecutive frames)."""
    from scipy.ndimage import gaussian_filter1d

    X = np.asarray(joints_mm, np.float64)
    smooth = lambda v: gaussian_filter1d(v, FACING_SMOOTHING_FRAMES, axis=0, mode="nearest")
    lateral = smooth(X[:, SMPL24["left_hip"]] - X[:, SMPL24["right_hip"]])
    lateral /= np.maximum(np.linalg.norm(lateral, axis=-1, keepdims=True), 1e-9)
    up = smooth(X[:, SMPL24["neck"]] - X[:, SMPL24["pelvis"]])
    up -= (up * lateral).sum(-1, keepdims=True) * lateral
    up /= np.maximum(np.linalg.norm(up, axis=-1, keepdims=True), 1e-9)
    return np.cross(lateral, up)


def thigh_sides(joints_mm: np.ndarray, lengths_mm: np.ndarray, min_sine: float) -> np.ndarray:
    """The estimate with each thigh that points well out of the image plane put in front.

    From its 2D length and the take's length, a thigh points out of the image plane by
    sin θ = |Δz| / L (Taylor 2000, with perspective: :func:`_depth_on_ray`). The hip extends at
    most ~30° behind the trunk (AAOS range of motion), so when θ exceeds asin(``min_sine``) and
    the body faces the camera or away from it (the two candidate knees lie at least a thigh's
    length apart along the facing direction), the knee is on the side the body faces: in front.
    MediaPipe flattens such a thigh (a squat seen from the front gives Δz ≈ 0 where the truth
    is −360 mm) and the fit alone cannot tell which side. The knee moves along its pixel's
    ray, and the ankle and foot with it (their depth offsets kept), so the 2D does not change.
    Measured on the tuning bodies, this took the fit from 40.9 to 39.7 mm PA-MPJPE (wave, walk,
    squat; front and three-quarter) and from 43.0 to 41.5 over all eight motions (front and side),
    most on kicks, sits and squats.

    Args:
        joints_mm: (T, 24, 3) camera-frame joints, mm, all finite, in front of the camera;
            consecutive frames (the facing is smoothed over them).
        lengths_mm: (NUM_LENGTHS,) the take's bone lengths, mm.
        min_sine: the sine of θ above which the side is set.

    Returns:
        (T, 24, 3) float64 joints, mm.
    """
    X = np.array(joints_mm, np.float64)
    facing = facing_directions(X)
    T = len(X)
    for hip, knee, ankle, foot in LEGS:
        length = np.full(T, lengths_mm[BONE_GROUP[knee]])
        ray = X[:, knee] / X[:, knee, 2:3]
        near, far = _ray_roots(ray, X[:, hip], length)
        apart = ((near - far) * (ray * facing).sum(-1))   # > 0: the near knee is the front one
        out_of_plane = (far - near) / 2.0 / length
        settled = (out_of_plane > min_sine) & (np.abs(apart) > length) & (near > MIN_DEPTH_MM)
        depth = np.where(apart > 0, near, far)
        shift = np.where(settled, depth - X[:, knee, 2], 0.0)
        for j in (knee, ankle, foot):
            X[:, j] = _on_ray_at(X[:, j], X[:, j, 2] + shift)
    return X


def _on_ray_at(points: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """(T, 3) points moved along their camera rays to ``depth`` (at least MIN_DEPTH_MM)."""
    return points / points[:, 2:3] * np.maximum(depth, MIN_DEPTH_MM)[:, None]


def still_feet(uv_px: np.ndarray, fps: float) -> np.ndarray:
    """(T, 2) bool: is the left / right foot's 2D point holding still on each frame?

    A foot (SMPL ``left_foot``/``right_foot``, the ball of the foot) holds still where its 2D
    point, averaged over 3 frames, moves slower than :data:`STILL_TRUNKS_PER_S` of the person's
    median 2D trunk length (pelvis to neck) per second, for at least :data:`STILL_MIN_FRAMES`
    frames in a row. With a still camera that is a planted foot (or one held still in the air):
    it does not move in 3D either, which pins the take's depth where the per-frame estimate
    lets it swing (a squat seen from the front pumped the depth by ±0.6 m). A moving camera
    moves every foot in the image, so no foot counts as still.

    Args:
        uv_px: (T, 24, 2) SMPL-24 image points, pixels, all finite.
        fps: frames per second.
    """
    from scipy.ndimage import uniform_filter1d

    uv = np.asarray(uv_px, np.float64)
    T = len(uv)
    if T < STILL_MIN_FRAMES:
        return np.zeros((T, 2), bool)
    trunk = np.median(np.linalg.norm(uv[:, SMPL24["neck"]] - uv[:, SMPL24["pelvis"]], axis=-1))
    feet = uniform_filter1d(uv[:, list(STILL_FEET)], 3, axis=0, mode="nearest")
    speed = np.linalg.norm(np.gradient(feet, axis=0), axis=-1) * float(fps)   # px/s
    still = speed < STILL_TRUNKS_PER_S * trunk
    return np.stack([drop_short_runs(still[:, k], STILL_MIN_FRAMES) for k in range(2)], -1)


def _still_steps(uv_px: np.ndarray, fps: float) -> tuple:
    """(frames t, foot joints) of every step t-1 -> t during which a foot holds still."""
    still = still_feet(uv_px, fps)
    t, k = np.nonzero(still[1:] & still[:-1])
    return t + 1, np.array(STILL_FEET)[k]


def fit_window(joints_mm: np.ndarray, weights: np.ndarray, K: np.ndarray, fps: float,
               params: FitParams = DEFAULT_PARAMS, lengths_mm: Optional[np.ndarray] = None):
    """Fit one person's consecutive frames.

    Args:
        joints_mm: (T, 24, 3) camera-frame estimate, mm, all finite, in front of the camera.
        weights: (T, 24) reprojection weights in (0, 1].
        K: (3, 3) intrinsics; fps: frames per second.
        params: residual scales.
        lengths_mm: (NUM_LENGTHS,) the take's bone lengths to anchor on (default: this window's
            robust median).

    Returns:
        ((T, 24, 3) fitted joints, mm; (NUM_LENGTHS,) fitted lengths, mm; solver result).
    """
    from scail_protocol.camera import project

    X0 = np.asarray(joints_mm, np.float64)
    lengths0 = robust_lengths(X0) if lengths_mm is None else np.asarray(lengths_mm, np.float64)
    uv0 = project(X0, K)
    pb = _Problem(K=np.asarray(K, np.float64), uv0=uv0, sqrt_w=np.sqrt(weights),
                  rel0=X0 - X0[:, :1], root_z0=X0[:, 0, 2].copy(), lengths0=lengths0,
                  params=params, accel_scale=params.accel_mm * (REFERENCE_FPS / fps) ** 2,
                  still_steps=_still_steps(uv0, fps) if params.still_foot_mm else
                  (np.zeros(0, int), np.zeros(0, int)))
    from threadpoolctl import threadpool_limits

    # One BLAS thread: the banded factorisations are small, and threads that wait on each other
    # cost several times the work on a busy machine (measured: 0.2 s vs 1-4 s for 65 frames).
    with threadpool_limits(limits=1, user_api="blas"):
        x, cost, iterations = _levenberg_marquardt(np.concatenate([X0.ravel(), lengths0]), pb)
    T = X0.shape[0]
    return x[: T * 72].reshape(T, NUM_JOINTS, 3), x[T * 72:], dict(cost=cost,
                                                                    iterations=iterations)


def _levenberg_marquardt(x: np.ndarray, pb: _Problem, tolerance: float = 1e-4) -> tuple:
    """Minimise ½|r(x)|² (Marquardt's diagonal damping); returns (x, final cost, iterations)."""
    r = _residuals(x, pb)
    cost, damping, k = 0.5 * r @ r, 1e-3, 0
    for k in range(1, pb.params.max_iterations + 1):
        J = _jacobian(x, pb)
        g = J.T @ r
        H = (J.T @ J).tocoo()
        diag = np.maximum((J.multiply(J)).sum(axis=0).A1, 1e-12)
        while True:
            step = _solve_damped(H, g, damping * diag, pb.frames * 72)
            r_new = _residuals(x + step, pb)
            cost_new = 0.5 * r_new @ r_new
            if np.isfinite(cost_new) and cost_new < cost:
                break
            damping *= 10.0
            if damping > 1e8:
                return x, cost, k
        x, r, decrease, cost = x + step, r_new, cost - cost_new, cost_new
        damping = max(damping / 5.0, 1e-9)
        if decrease < tolerance * cost:
            break
    return x, cost, k


def _solve_damped(H: sparse.coo_matrix, g: np.ndarray, damping: np.ndarray, n: int) -> np.ndarray:
    """Solve (H + diag(damping)) step = -g for the normal equations of the fit.

    The joints (the first ``n`` unknowns, frame-major) couple only within two frames of each
    other, so their block is banded (half-bandwidth 2 frames · 72 + 71) and factorised by LAPACK's
    banded Cholesky (``scipy.linalg.cholesky_banded``); the few bone lengths, which touch every
    frame, are eliminated through their Schur complement.
    """
    from scipy.linalg import cho_factor, cho_solve, cho_solve_banded, cholesky_banded

    size = H.shape[0]
    u = min(n - 1, 2 * 72 + 71)
    rows, cols, vals = H.row, H.col, H.data
    joint = (rows < n) & (cols < n) & (rows <= cols)
    band = np.zeros((u + 1, n))
    band[u + rows[joint] - cols[joint], cols[joint]] = vals[joint]
    band[u] += damping[:n]
    coupling = np.zeros((n, size - n))
    cross = (rows < n) & (cols >= n)
    np.add.at(coupling, (rows[cross], cols[cross] - n), vals[cross])
    lengths = np.zeros((size - n, size - n))
    inner = (rows >= n) & (cols >= n)
    np.add.at(lengths, (rows[inner] - n, cols[inner] - n), vals[inner])
    lengths[np.diag_indices(size - n)] += damping[n:]
    factor = (cholesky_banded(band, lower=False), False)
    a_inv = cho_solve_banded(factor, np.column_stack([-g[:n], coupling]))
    schur = lengths - coupling.T @ a_inv[:, 1:]
    step_len = cho_solve(cho_factor(schur), -g[n:] - coupling.T @ a_inv[:, 0])
    step_joints = a_inv[:, 0] - a_inv[:, 1:] @ step_len
    return np.concatenate([step_joints, step_len])


def _windows(start: int, stop: int) -> list:
    if stop - start <= WINDOW_FRAMES:
        return [(start, stop)]
    step = WINDOW_FRAMES - WINDOW_OVERLAP
    out = [(s, min(s + WINDOW_FRAMES, stop)) for s in range(start, stop - WINDOW_OVERLAP, step)]
    return out


def fit_person(joints_mm: np.ndarray, kp2d_score: np.ndarray, K: np.ndarray, fps: float,
               params: FitParams = DEFAULT_PARAMS) -> np.ndarray:
    """One person's whole take: (T, 24, 3) mm in -> fitted (T, 24, 3) float64 mm out.

    Frames with any missing joint (or a joint at or behind the camera) are left as they are;
    the others are fitted in runs of consecutive frames, with one set of bone lengths (the
    robust median of the whole take) as the anchor for every run, starting from the estimate
    with its arms' depths set by :func:`arm_depths` and its thighs' sides by
    :func:`thigh_sides` (run by run).
    """
    X = np.asarray(joints_mm, np.float64)
    out = X.copy()
    present = np.isfinite(X).all(axis=(-1, -2)) & (np.nan_to_num(X[..., 2], nan=-1.0) > 1.0).all(-1)
    if present.sum() < 1:
        return out
    weights = joint_weights(kp2d_score)
    lengths = robust_lengths(X[present])
    X = X.copy()
    for start, stop in true_runs(present):   # limbs placed run by run (they smooth over time)
        if params.foreshortening_min is not None:
            X[start:stop] = arm_depths(X[start:stop], lengths, fps, params)
        if params.thigh_out_of_plane is not None:
            X[start:stop] = thigh_sides(X[start:stop], lengths, params.thigh_out_of_plane)
    for start, stop in true_runs(present):
        acc = np.zeros((stop - start, NUM_JOINTS, 3))
        total = np.zeros(stop - start)
        for a, b in _windows(start, stop):
            fitted, _, _ = fit_window(X[a:b], weights[a:b], K, fps, params, lengths)
            ramp = np.ones(b - a)
            if a > start:
                ramp[:WINDOW_OVERLAP] = np.linspace(0.0, 1.0, WINDOW_OVERLAP + 2)[1:-1]
            if b < stop:
                ramp[-WINDOW_OVERLAP:] = np.minimum(
                    ramp[-WINDOW_OVERLAP:], np.linspace(1.0, 0.0, WINDOW_OVERLAP + 2)[1:-1])
            acc[a - start:b - start] += ramp[:, None, None] * fitted
            total[a - start:b - start] += ramp
        out[start:stop] = acc / total[:, None, None]
    return out


def _bone_names() -> list:
    """Names of the NUM_LENGTHS shared bones, parent-child without the side ("hip-knee")."""
    names = [""] * NUM_LENGTHS
    for j in range(1, NUM_JOINTS):
        strip = lambda n: n.replace("left_", "").replace("right_", "")
        names[BONE_GROUP[j]] = f"{strip(SMPL24_NAMES[PARENTS[j]])}-{strip(SMPL24_NAMES[j])}"
    return names


BONE_NAMES = _bone_names()


def _bone_spread_percent(joints_mm: np.ndarray) -> float:
    """Mean over the shared bones of how much a bone's length varies over the frames
    (standard deviation / mean, both sides pooled), percent; (T, 24, 3) finite frames in."""
    d = np.linalg.norm(joints_mm[:, 1:] - joints_mm[:, PARENTS[1:]], axis=-1)
    spread = [np.std(d[:, BONE_GROUP[1:] == g]) / max(np.mean(d[:, BONE_GROUP[1:] == g]), 1e-9)
              for g in range(NUM_LENGTHS)]
    return 100.0 * float(np.mean(spread))


def take_summary(before_mm: np.ndarray, after_mm: np.ndarray, K: np.ndarray) -> dict:
    """What the fit did to one person's take, for ``meta["take_fit"]["people"]`` (JSON-ready).

    Args:
        before_mm, after_mm: (T, 24, 3) the estimate and the fitted take, mm, camera frame.
        K: (3, 3) intrinsics.

    Returns:
        ``frames`` fitted; ``moved_px`` (median, 95th percentile) of the joints' 2D shift,
        pixels; ``moved_mm`` (median, 95th percentile) of their 3D shift, mm;
        ``bone_spread_percent`` before and after (:func:`_bone_spread_percent`: 0 for one rigid
        skeleton); ``lengths_mm``: the take's bone lengths after the fit by :data:`BONE_NAMES`.
        With no frame fitted, just ``frames`` = 0.
    """
    from scail_protocol.camera import project

    before, after = np.asarray(before_mm, np.float64), np.asarray(after_mm, np.float64)
    fitted = np.isfinite(before).all(axis=(-1, -2)) & np.isfinite(after).all(axis=(-1, -2))
    if not fitted.any():
        return {"frames": 0}
    before, after = before[fitted], after[fitted]
    px = np.linalg.norm(project(after, K) - project(before, K), axis=-1)
    mm = np.linalg.norm(after - before, axis=-1)
    r = lambda v: round(float(v), 2)
    return {"frames": int(fitted.sum()),
            "moved_px": [r(np.median(px)), r(np.percentile(px, 95))],
            "moved_mm": [r(np.median(mm)), r(np.percentile(mm, 95))],
            "bone_spread_percent": [r(_bone_spread_percent(before)),
                                    r(_bone_spread_percent(after))],
            "lengths_mm": {n: round(float(v), 1) for n, v in zip(BONE_NAMES,
                                                                  robust_lengths(after))}}


def fit_sequence(seq: PoseSequence, params: FitParams = DEFAULT_PARAMS) -> PoseSequence:
    """The sequence with every person's joints refined by the whole-take fit.

    The 2D points, scores and boxes are kept; ``meta["take_fit"]`` records the parameters, the
    time taken and, under ``people``, one :func:`take_summary` per person (in the sequence's
    person order). See the module docstring for the problem solved.
    """
    started = time.perf_counter()
    joints = np.stack([fit_person(seq.joints3d[p], seq.kp2d_score[p], seq.K, seq.fps, params)
                       for p in range(seq.num_people)]) if seq.num_people else seq.joints3d
    elapsed = time.perf_counter() - started
    people = [take_summary(seq.joints3d[p], joints[p], seq.K) for p in range(seq.num_people)]
    log.info("whole-take fit: %s x %d frames in %.2f s", people_count(seq.num_people),
             seq.num_frames, elapsed)
    for p, summary in enumerate(people):
        if summary["frames"]:
            log.debug("person %d: %d frames, joints moved %.1f px / %.0f mm (median), bone "
                      "lengths vary %.1f%% -> %.1f%%", p, summary["frames"],
                      summary["moved_px"][0], summary["moved_mm"][0],
                      *summary["bone_spread_percent"])
    meta = dict(seq.meta, take_fit=dict(asdict(params), seconds=round(elapsed, 3), people=people))
    return seq.replace(joints3d=np.asarray(joints, np.float32), meta=meta)
