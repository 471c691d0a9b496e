"""MediaPipe Holistic landmarks of one frame -> SMPL-24 camera-frame joints, whole-body-134 points.

The 3D recipe (docs/estimators.md):

1. MediaPipe's world landmarks are metres around the hip centre (x right, y down, z away), seen
   from a crop centred on the hips: their z axis is the camera ray through the hip centre, not
   the optical axis. They are first turned so that it is (:func:`ray_rotation`); then one
   translation t places them in the camera frame: the t whose projection under K best matches
   the image landmarks, solved in closed form (linear least squares, visibility-weighted;
   :func:`solve_root_translation`). Measured on the synthetic library's tuning bodies (average,
   child; bench/accuracy.py), the turn took PA-MPJPE from 44.5 to 43.6 mm (front view 46.7 ->
   45.2, 35° view 42.4 -> 41.9); turning the other way made it 46.7.
2. Each joint is then anchored on its 2D landmark: the 2D point is back-projected through K at the
   depth the fit gives that joint. The picture the renderer draws (a projection) then lands where
   MediaPipe saw the body, while depth and scale come from the fit.
3. SMPL joints that MediaPipe lacks or places differently (hips, pelvis, spine, neck, collars,
   shoulders, head, ankles, feet, hands) are affine combinations of landmarks
   (``mediapipe_tables``): a landmark plus multiples of the person's own trunk, hip and shoulder
   widths, so they scale with the person; used for the 2D anchor and the 3D depth alike.

Pixel convention: MediaPipe's normalised x, y span the image edges; ours put the centre of the
top-left pixel at (0, 0), so u = x·W − 0.5, v = y·H − 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np

from scail_protocol import joints as J
from scail_protocol.camera import MIN_DEPTH_MM, backproject

from . import mediapipe_tables as T

MM_PER_M = 1000.0
MIN_FIT_WEIGHT = 0.05        # every landmark counts a little, even when MediaPipe calls it hidden
MIN_BODY_DEPTH_MM = 300.0    # a fit that puts any joint nearer than this is rejected (fallback)
FACE_SCORE = 1.0             # face mesh points carry no confidence of their own: presence = 1
HAND_SCORE = 1.0             # likewise for hand landmarks
BOX_MIN_SCORE = 0.5          # points that shape the person box
BOX_PAD_FRACTION = 0.1       # box grows by this fraction of its size on each side


@dataclass(frozen=True)
class Landmarks:
    """MediaPipe Holistic output for one frame, as arrays.

    Attributes:
        pose_px: (33, 2) float64 image landmarks, pixels (centre of top-left pixel = (0, 0)).
        pose_world_m: (33, 3) float64 world landmarks, metres, hip-centred, x right, y down.
        visibility: (33,) float64 in [0, 1].
        face_px: (468, 2) float64 face mesh, pixels; None when no face was found.
        left_hand_px, right_hand_px: (21, 2) float64 hand landmarks (subject's left/right),
            pixels; None when that hand was not found.
    """

    pose_px: np.ndarray
    pose_world_m: np.ndarray
    visibility: np.ndarray
    face_px: Optional[np.ndarray] = None
    left_hand_px: Optional[np.ndarray] = None
    right_hand_px: Optional[np.ndarray] = None


@dataclass(frozen=True)
class FramePose:
    """One person in one frame in the PoseSequence layout (float32).

    Attributes:
        joints3d: (24, 3) SMPL-24 joints, mm, OpenCV camera frame.
        kp2d: (134, 2) whole-body points, pixels; NaN = missing.
        kp2d_score: (134,) confidences in [0, 1]; NaN where the point is missing.
        bbox: (4,) x1, y1, x2, y2 pixels.
        root_mm: (3,) the fitted translation of MediaPipe's hip centre, mm.
    """

    joints3d: np.ndarray
    kp2d: np.ndarray
    kp2d_score: np.ndarray
    bbox: np.ndarray
    root_mm: np.ndarray


def normalized_to_px(xy: np.ndarray, size) -> np.ndarray:
    """(N, 2) MediaPipe normalised coordinates -> pixels (centre of top-left pixel = (0, 0))."""
    height, width = size
    return np.asarray(xy, dtype=np.float64) * (width, height) - 0.5


def solve_root_translation(points_mm: np.ndarray, uv_px: np.ndarray, K: np.ndarray,
                           weights: Optional[np.ndarray] = None) -> np.ndarray:
    """The translation t (mm) that best projects ``points + t`` onto ``uv`` under K.

    Linear least squares on the projection equations multiplied through by depth: with
    (a, b) = ((u − cx)/fx, (v − cy)/fy), each point gives tx − a·tz = a·Z − X and
    ty − b·tz = b·Z − Y.

    Args:
        points_mm: (N, 3) points, mm, camera-aligned axes (x right, y down, z forward).
        uv_px: (N, 2) their image positions, pixels.
        K: (3, 3) intrinsics (no skew).
        weights: (N,) non-negative weights (e.g. visibility); None = all 1.

    Returns:
        (3,) float64 translation, mm; NaN if fewer than 2 points carry weight.
    """
    points = np.asarray(points_mm, dtype=np.float64)
    uv = np.asarray(uv_px, dtype=np.float64)
    w = np.ones(len(points)) if weights is None else np.asarray(weights, dtype=np.float64)
    ok = np.isfinite(points).all(1) & np.isfinite(uv).all(1) & (w > 0)
    if ok.sum() < 2:
        return np.full(3, np.nan)
    points, uv, w = points[ok], uv[ok], np.sqrt(w[ok])
    a = (uv[:, 0] - K[0, 2]) / K[0, 0]
    b = (uv[:, 1] - K[1, 2]) / K[1, 1]
    n = len(points)
    A = np.zeros((2 * n, 3))
    A[:n, 0], A[:n, 2] = 1.0, -a
    A[n:, 1], A[n:, 2] = 1.0, -b
    rhs = np.concatenate([a * points[:, 2] - points[:, 0], b * points[:, 2] - points[:, 1]])
    ww = np.concatenate([w, w])
    t, *_ = np.linalg.lstsq(A * ww[:, None], rhs * ww, rcond=None)
    return t


def translation_from_scale(points_mm: np.ndarray, uv_px: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Fallback translation from apparent size: depth = f · 3D spread / 2D spread.

    Used when the least-squares fit is degenerate (nearly collinear points, joints behind the
    camera). Returns (3,) float64 mm, NaN if the 2D points have no spread.
    """
    points = np.asarray(points_mm, dtype=np.float64)
    uv = np.asarray(uv_px, dtype=np.float64)
    spread3d = np.sqrt(((points[:, :2] - points[:, :2].mean(0)) ** 2).sum(1).mean())
    spread2d = np.sqrt(((uv - uv.mean(0)) ** 2).sum(1).mean())
    if not spread2d > 0:
        return np.full(3, np.nan)
    focal = 0.5 * (K[0, 0] + K[1, 1])
    centre_depth = focal * spread3d / spread2d  # the centroid's distance from the camera
    return backproject(uv.mean(0), centre_depth, K) - points.mean(0)


def ray_rotation(uv_px: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(3, 3) float64 rotation that turns the optical axis (0, 0, 1) onto the camera ray through
    pixel ``uv_px`` (the smallest such turn, about the axis perpendicular to both).

    MediaPipe's world landmarks face the hip-centred crop they were estimated from, so
    ``R @ world`` puts them in camera-aligned axes, with R the rotation for the hips' pixel.
    """
    ray = np.linalg.solve(K, np.array([uv_px[0], uv_px[1], 1.0], dtype=np.float64))
    ray /= np.linalg.norm(ray)
    axis = np.array([-ray[1], ray[0], 0.0])  # (0, 0, 1) x ray
    cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]],
                      [-axis[1], axis[0], 0.0]])
    return np.eye(3) + cross + cross @ cross / (1.0 + ray[2])


def camera_aligned_world_mm(lm: "Landmarks", K: np.ndarray) -> np.ndarray:
    """(33, 3) float64 world landmarks in mm, turned from MediaPipe's hip-ray axes into the
    camera's axes (:func:`ray_rotation` at the image hip midpoint); still hip-centred."""
    hips_px = 0.5 * (lm.pose_px[T.LEFT_HIP] + lm.pose_px[T.RIGHT_HIP])
    world_mm = np.asarray(lm.pose_world_m, dtype=np.float64) * MM_PER_M
    if not np.isfinite(hips_px).all():
        return world_mm
    return world_mm @ ray_rotation(hips_px, K).T


@lru_cache(maxsize=None)
def _matrices():
    """Combination matrices and score masks of the tables (built once)."""
    return {
        "smpl": T.combination_matrix(T.SMPL24_FROM_MEDIAPIPE, T.NUM_POSE),
        "body": T.combination_matrix(T.OPENPOSE18_FROM_MEDIAPIPE + T.FEET_FROM_MEDIAPIPE,
                                     T.NUM_POSE),
        "body_mask": T.source_mask(T.OPENPOSE18_FROM_MEDIAPIPE + T.FEET_FROM_MEDIAPIPE,
                                   T.NUM_POSE),
        "face": np.asarray(T.FACE68_FROM_FACEMESH, dtype=np.int64),
    }


def smpl24_joints(lm: Landmarks, K: np.ndarray) -> tuple:
    """SMPL-24 camera-frame joints of one frame, anchored on the 2D landmarks.

    Returns:
        (joints_mm, root_mm): (24, 3) float64 joints, mm, OpenCV camera frame; (3,) the fitted
        translation of MediaPipe's hip centre, mm.
    """
    world_mm = camera_aligned_world_mm(lm, K)
    weights = np.clip(lm.visibility, MIN_FIT_WEIGHT, 1.0)
    t = solve_root_translation(world_mm, lm.pose_px, K, weights)
    if not np.isfinite(t).all() or (world_mm[:, 2] + t[2]).min() < MIN_BODY_DEPTH_MM:
        t = translation_from_scale(world_mm, lm.pose_px, K)
    M = _matrices()["smpl"]
    depth_mm = M @ world_mm[:, 2] + t[2]
    anchor_px = M @ lm.pose_px
    joints = backproject(anchor_px, np.maximum(depth_mm, MIN_DEPTH_MM), K)
    return joints, t


def wholebody134(lm: Landmarks) -> tuple:
    """Whole-body-134 2D points and scores of one frame (OpenPose-18, feet, face, hands).

    Returns:
        (kp2d_px, score): (134, 2) float64 pixels and (134,) float64 in [0, 1]; NaN = missing
        (no small toes in MediaPipe; face or hands not found).
    """
    m = _matrices()
    kp = np.full((J.NUM_WHOLEBODY, 2), np.nan)
    score = np.full(J.NUM_WHOLEBODY, np.nan)
    body = slice(J.BODY.start, J.FEET.stop)
    kp[body] = m["body"] @ lm.pose_px
    body_score = np.where(m["body_mask"], lm.visibility[None, :], np.inf).min(1)
    score[body] = np.where(np.isfinite(body_score), np.clip(body_score, 0.0, 1.0), np.nan)
    if lm.face_px is not None:
        kp[J.FACE] = lm.face_px[m["face"]]
        score[J.FACE] = FACE_SCORE
    for part, hand in ((J.LEFT_HAND, lm.left_hand_px), (J.RIGHT_HAND, lm.right_hand_px)):
        if hand is not None:
            kp[part] = hand
            score[part] = HAND_SCORE
    return kp, score


def person_box(kp_px: np.ndarray, score: np.ndarray) -> np.ndarray:
    """(4,) x1, y1, x2, y2 pixels around the confident points, padded; not clipped to the image
    (like the reference's detector boxes). NaN when there is no point at all."""
    finite = np.isfinite(kp_px).all(1)
    confident = finite & (np.nan_to_num(score, nan=0.0) >= BOX_MIN_SCORE)
    points = kp_px[confident] if confident.any() else kp_px[finite]
    if not len(points):
        return np.full(4, np.nan)
    low, high = points.min(0), points.max(0)
    pad = (high - low) * BOX_PAD_FRACTION
    return np.concatenate([low - pad, high + pad])


def map_frame(lm: Landmarks, K: np.ndarray) -> FramePose:
    """Everything the PoseSequence needs from one frame's landmarks."""
    joints, root = smpl24_joints(lm, K)
    kp, score = wholebody134(lm)
    return FramePose(joints3d=joints.astype(np.float32), kp2d=kp.astype(np.float32),
                     kp2d_score=score.astype(np.float32),
                     bbox=person_box(kp, score).astype(np.float32),
                     root_mm=root)
