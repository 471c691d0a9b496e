"""How the 2D overlay follows an aligned camera (docs/pipeline.md §9.3, §9.5): pure numpy.

When the 3D skeleton is re-projected with the alignment camera K₁ (``camera.aligned_intrinsics``)
instead of the estimation camera K₀, the reference moves the 2D overlay (face, cheek points, hands)
with it:

* the face is scaled about its nose tip (Face-68 landmark 30) and the 24 body/feet points about
  the body's point 0 by one factor, the ratio of the reference character's face size to the
  driving face's, clipped to [0.8, 1.5] (§9.3);
* face and body points move by the projected displacement of the SMPL head joint, the left hand by
  the left wrist's, the right hand by the right wrist's (§9.5);
* each hand is scaled about its wrist by (m, m·s) in (x, y) (§9.5, commit 7bde33f).

Differences from the reference, all for missing data (NaN here, (−1, −1) or zero there): a missing
joint moves nothing (the reference does the same for z ≤ 0.01); a missing scaling centre (nose tip,
body point 0, wrist) leaves that part unscaled instead of scaling about (−1, −1) (§14.11); the
face-size means use the visible landmarks only. The displacement is measured between the joints
*before* any 3D change and *after* it (``joints_before``/``joints_after``), so it also carries the
overlay along when the bones themselves were adapted; with unchanged joints it is exactly the
reference's Δ = proj_K₁(J) − proj_K₀(J).

Pixel coordinates throughout (x = column, y = row), as in ``PoseSequence.kp2d``.
"""

from __future__ import annotations

import numpy as np

from . import joints as J
from .camera import project

FACE_SCALE_MIN = 0.8           # docs/pipeline.md §9.3: the face scale is clipped to [0.8, 1.5]
FACE_SCALE_MAX = 1.5
MIN_FACE_SIZE = 1e-6           # docs/pipeline.md §9.3: a smaller driving face size gives scale 1.0
BODY_AND_FEET = slice(0, 24)   # the reference's "24 body candidate points" (OpenPose-18 + feet)
HEAD_JOINT = J.SMPL24["head"]            # 15: moves the face and the body points
LEFT_WRIST_JOINT = J.SMPL24["left_wrist"]    # 20: moves the left hand
RIGHT_WRIST_JOINT = J.SMPL24["right_wrist"]  # 21: moves the right hand


def joint_displacement(joints_before: np.ndarray, K_before: np.ndarray,
                       joints_after: np.ndarray, K_after: np.ndarray) -> np.ndarray:
    """Image displacement of joints: proj_{K_after}(after) − proj_{K_before}(before).

    Args:
        joints_before, joints_after: (..., 3) camera frame, mm; NaN = missing.
        K_before, K_after: (3, 3) intrinsics.

    Returns:
        (..., 2) float64 pixels; (0, 0) wherever either projection is missing (NaN joint or
        a joint at or behind the camera), as the reference does for z ≤ 0.01.
    """
    delta = project(joints_after, K_after) - project(joints_before, K_before)
    return np.where(np.isfinite(delta).all(-1, keepdims=True), delta, 0.0)


def scale_about(points: np.ndarray, center: np.ndarray, scale_xy) -> np.ndarray:
    """Scale points about a centre: (p − c)·(sx, sy) + c.

    Args:
        points: (..., N, 2) pixels; NaN points stay NaN.
        center: (..., 2) pixels, one per point set; where it is NaN the points are returned
            unchanged (no centre, no scaling).
        scale_xy: scalar or (sx, sy).

    Returns:
        (..., N, 2) float64.
    """
    points = np.asarray(points, dtype=np.float64)
    center = np.asarray(center, dtype=np.float64)[..., None, :]
    scaled = (points - center) * np.asarray(scale_xy, dtype=np.float64) + center
    return np.where(np.isfinite(center).all(-1, keepdims=True), scaled, points)


def face_size(face_px: np.ndarray, size) -> float:
    """Mean distance from the nose tip (landmark 30) to the other visible face landmarks.

    Measured in the reference's normalised units (x / W, y / H; §9.3), so the ratio of two face
    sizes at the same image size equals the reference's.

    Args:
        face_px: (68, 2) pixels; NaN = not visible.
        size: (H, W).

    Returns:
        The mean distance, or NaN when the nose tip or every other landmark is missing.
    """
    height, width = (float(v) for v in size)
    face = np.asarray(face_px, dtype=np.float64) / (width, height)
    tip = face[J.FACE68_NOSE_TIP]
    others = np.delete(face, J.FACE68_NOSE_TIP, axis=0)
    distances = np.linalg.norm(others - tip, axis=-1)
    distances = distances[np.isfinite(distances)]
    return float(distances.mean()) if distances.size else float("nan")


def face_scale(face_driving_px: np.ndarray, face_reference_px: np.ndarray, size) -> float:
    """The reference's face scale: reference face size / driving face size, clipped to
    [0.8, 1.5] (§9.3); 1.0 when either face (or its nose tip) is missing or the driving face
    is degenerate."""
    driving = face_size(face_driving_px, size)
    reference = face_size(face_reference_px, size)
    if not (np.isfinite(driving) and np.isfinite(reference)) or driving < MIN_FACE_SIZE:
        return 1.0
    return float(np.clip(reference / driving, FACE_SCALE_MIN, FACE_SCALE_MAX))


def move_overlay(kp2d: np.ndarray, joints_before: np.ndarray, K_before: np.ndarray,
                 joints_after: np.ndarray, K_after: np.ndarray, *, face_scale_factor: float,
                 hand_scale_xy) -> np.ndarray:
    """The 2D whole-body points after alignment (docs/pipeline.md §9.3 and §9.5).

    Args:
        kp2d: (..., 134, 2) whole-body points, pixels; NaN = missing.
        joints_before: (..., 24, 3) SMPL-24 joints the points were estimated with, mm.
        K_before: (3, 3) their intrinsics (K₀).
        joints_after: (..., 24, 3) the joints that are rendered (equal to ``joints_before``
            unless the bones were adapted), mm.
        K_after: (3, 3) the rendering intrinsics (K₁).
        face_scale_factor: scale of the face about landmark 30 and of the 24 body/feet points
            about body point 0 (:func:`face_scale`).
        hand_scale_xy: (sx, sy) scale of each hand about its wrist; the reference's (m, m·s).

    Returns:
        (..., 134, 2) float32 moved points; missing points stay missing.
    """
    out = np.array(kp2d, dtype=np.float64)
    body, face = out[..., BODY_AND_FEET, :], out[..., J.FACE, :]
    body = scale_about(body, body[..., 0, :], face_scale_factor)
    face = scale_about(face, face[..., J.FACE68_NOSE_TIP, :], face_scale_factor)
    delta = joint_displacement(joints_before, K_before, joints_after, K_after)
    head = delta[..., HEAD_JOINT, :][..., None, :]
    out[..., BODY_AND_FEET, :] = body + head
    out[..., J.FACE, :] = face + head
    for hand, joint in ((J.LEFT_HAND, LEFT_WRIST_JOINT), (J.RIGHT_HAND, RIGHT_WRIST_JOINT)):
        points = out[..., hand, :] + delta[..., joint, :][..., None, :]
        out[..., hand, :] = scale_about(points, points[..., J.HAND21_WRIST, :], hand_scale_xy)
    return out.astype(np.float32)
