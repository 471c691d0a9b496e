"""Accuracy of estimated SMPL-24 joints against exact ground truth (numpy only).

Every function works on (..., J, 3) camera-frame joints in millimetres (or (..., J, 2) pixels)
and returns per-joint errors, NaN where either side is missing, so that callers can pool them
over frames, clips and joint groups as they like.
"""

from __future__ import annotations

import numpy as np
from scail_protocol.joints import SMPL24

ROOT = SMPL24["pelvis"]  # MPJPE aligns the estimate's pelvis onto the truth's

JOINT_GROUPS = {  # disjoint groups of SMPL-24 joints for PCK
    "torso": ("pelvis", "left_hip", "right_hip", "spine1", "spine2", "spine3", "left_collar",
              "right_collar", "left_shoulder", "right_shoulder"),
    "head": ("neck", "head"),
    "arms": ("left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand"),
    "legs": ("left_knee", "right_knee", "left_ankle", "right_ankle", "left_foot", "right_foot"),
}
GROUP_INDICES = {name: tuple(SMPL24[j] for j in joints) for name, joints in JOINT_GROUPS.items()}


def _check_pair(pred: np.ndarray, truth: np.ndarray, dims: int):
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    if pred.shape != truth.shape or pred.shape[-1] != dims or pred.ndim < 2:
        raise ValueError(f"pred and truth must both be (..., J, {dims}), got {pred.shape} and "
                         f"{truth.shape}")
    return pred, truth


def joint_errors(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(..., J) Euclidean distances between (..., J, D) point sets; NaN where either is NaN."""
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    return np.linalg.norm(pred - truth, axis=-1)


def mpjpe(pred: np.ndarray, truth: np.ndarray, root: int = ROOT) -> np.ndarray:
    """(..., J) joint errors (mm) after translating each estimate's root onto the truth's.

    Args:
        pred, truth: (..., J, 3) camera frame, mm; NaN = missing.
        root: joint index aligned (default: the pelvis).
    """
    pred, truth = _check_pair(pred, truth, 3)
    aligned = pred - pred[..., root:root + 1, :] + truth[..., root:root + 1, :]
    return joint_errors(aligned, truth)


def procrustes_align(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Similarity-align each estimate onto its truth (least squares scale, rotation, translation).

    Args:
        pred, truth: (..., J, 3); a pose with any NaN joint (in either) comes back all NaN.

    Returns:
        (..., J, 3) float64 aligned estimates.

    Note:
        Umeyama's solution; a reflection is never used (det R = +1). For degenerate poses
        (all joints collinear) the rotation is not unique but the aligned points are.
    """
    pred, truth = _check_pair(pred, truth, 3)
    shape = pred.shape
    p, t = pred.reshape(-1, shape[-2], 3), truth.reshape(-1, shape[-2], 3)
    ok = np.isfinite(p).all((1, 2)) & np.isfinite(t).all((1, 2))
    out = np.full_like(p, np.nan)
    if ok.any():
        x = p[ok] - p[ok].mean(1, keepdims=True)
        y = t[ok] - t[ok].mean(1, keepdims=True)
        u, s, vt = np.linalg.svd(np.einsum("nji,njk->nik", x, y))  # H = Xᵀ Y
        d = np.sign(np.linalg.det(np.einsum("nij,njk->nik", u, vt)))
        d = np.where(d == 0, 1.0, d)
        fix = np.ones((len(x), 3))
        fix[:, 2] = d
        rot = np.einsum("nji,nj,nkj->nik", vt, fix, u)  # R = V D Uᵀ
        scale = (s * fix).sum(1) / np.maximum((x ** 2).sum((1, 2)), 1e-12)
        out[ok] = scale[:, None, None] * np.einsum("nij,nkj->nki", rot, x) \
            + t[ok].mean(1, keepdims=True)
    return out.reshape(shape)


def pa_mpjpe(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(..., J) joint errors after Procrustes (similarity) alignment, in the truth's unit."""
    return joint_errors(procrustes_align(pred, truth), np.asarray(truth, np.float64))


def pck(errors: np.ndarray, threshold: float, joints=None) -> float:
    """Fraction of the present (finite) errors at or below ``threshold``; NaN if none present.

    Args:
        errors: (..., J) per-joint errors.
        threshold: same unit as errors.
        joints: optional joint indices to restrict to (e.g. ``GROUP_INDICES["arms"]``).
    """
    errors = np.asarray(errors, np.float64)
    if joints is not None:
        errors = errors[..., list(joints)]
    present = errors[np.isfinite(errors)]
    if present.size == 0:
        return float("nan")
    return float(np.mean(present <= threshold))


def mean_present(errors: np.ndarray) -> float:
    """Mean of the finite errors; NaN if there are none."""
    errors = np.asarray(errors, np.float64)
    present = errors[np.isfinite(errors)]
    return float(present.mean()) if present.size else float("nan")


def left_right_swapped(pred_px: np.ndarray, truth_px: np.ndarray, left: int, right: int,
                       min_separation_px: float = 10.0) -> np.ndarray:
    """Per frame, whether an estimate has a left/right pair in the opposite image order.

    Args:
        pred_px, truth_px: (T, J, 2) pixels.
        left, right: indices of the pair (e.g. the shoulders).
        min_separation_px: frames where the truth's pair is closer than this in x are not
            judged (seen side-on the order is ambiguous).

    Returns:
        (T,) float64: 1.0 swapped, 0.0 consistent, NaN not judged or missing.
    """
    truth_dx = truth_px[:, left, 0] - truth_px[:, right, 0]
    pred_dx = pred_px[:, left, 0] - pred_px[:, right, 0]
    judged = np.isfinite(truth_dx) & np.isfinite(pred_dx) & (np.abs(truth_dx) >= min_separation_px)
    swapped = (np.sign(truth_dx) != np.sign(pred_dx)).astype(np.float64)
    return np.where(judged, swapped, np.nan)


def acceleration_errors(pred: np.ndarray, truth: np.ndarray, fps: float) -> np.ndarray:
    """(T, J) per-joint acceleration errors: how much an estimate jitters beyond the truth.

    The acceleration of a trajectory is its second difference times fps²; the error is the
    distance between the estimate's and the truth's acceleration vectors (video pose papers'
    "acceleration error"). A clean, lag-free estimate scores near 0 however far off it is by a
    constant offset; frame-to-frame jitter scores high.

    Args:
        pred, truth: (T, J, D) trajectories (mm or px); NaN = missing.
        fps: frames per second.

    Returns:
        (T, J) float64 in the input unit per s²; NaN at the first and last frame and wherever
        one of the three frames involved is missing on either side.
    """
    pred, truth = _check_pair(pred, truth, np.shape(pred)[-1])
    out = np.full(pred.shape[:-1], np.nan)
    if len(pred) >= 3:
        def accel(x):
            return (x[2:] - 2.0 * x[1:-1] + x[:-2]) * float(fps) ** 2
        out[1:-1] = joint_errors(accel(pred), accel(truth))
    return out


def foot_sliding(pred: np.ndarray, truth: np.ndarray, fps: float) -> np.ndarray:
    """(T, 2) how fast the estimate's feet slide where the truth's are planted, m/s.

    The truth's floor and its planted feet (SMPL ``left_foot``/``right_foot``, the balls of the
    feet) come from :func:`scail_protocol.grounding.fit_floor`, the rule the add-on grounds takes
    with. Frame t scores the difference between the estimated and the true foot's move from
    frame t−1 to t along that floor (the part along the floor's normal is left out: a foot
    lifted in place is not sliding), times fps, wherever the true foot is planted on both
    frames. A planted foot that really creeps a little is therefore not held against the
    estimate, and an estimate off by a constant offset scores 0.

    Args:
        pred, truth: (T, 24, 3) SMPL-24 joints, camera frame (x right, y down, z forward), mm;
            NaN = missing.
        fps: frames per second.

    Returns:
        (T, 2) float64 m/s, left and right foot; NaN at frame 0, where either frame is missing
        and where the true foot is not planted on both frames.
    """
    from scail_protocol import grounding
    from scail_protocol.camera import camera_to_blender

    pred, truth = _check_pair(pred, truth, 3)
    feet = list(grounding.FOOT_JOINTS)
    out = np.full((len(pred), 2), np.nan)
    if len(pred) < 2 or not np.isfinite(truth[:, feet]).all(-1).any():
        return out
    floor = grounding.fit_floor(camera_to_blender(truth), fps)
    steps = np.diff(camera_to_blender(pred[:, feet]) - camera_to_blender(truth[:, feet]), axis=0)
    steps -= (steps @ floor.normal)[..., None] * floor.normal           # (T-1, 2, 3) m
    planted = floor.contacts[1:] & floor.contacts[:-1]
    out[1:] = np.where(planted, np.linalg.norm(steps, axis=-1) * float(fps), np.nan)
    return out
