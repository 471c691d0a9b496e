"""Beyond the reference (off by default): give the driving skeleton the reference character's
proportions, feet kept on the ground.

The reference only moves the camera, so a short or stylised character (a squirrel, a penguin) is
drawn with the dancer's long limbs. Here each SMPL-24 bone is rescaled by how much longer or
shorter it is, *relative to the rest of the body*, in the reference character than in the dancer:

    rᵦ = (L_ref,ᵦ / ΣL_ref) / (L_drv,ᵦ / ΣL_drv)       (sums over the bones known in both)

so the overall size is left to the camera solve. L_drv is the median length over the clip,
L_ref the length in the reference image (its estimated 3D pose), counted only where both ends
are seen in the image (2D score > 0.3; an estimator's guess of a hidden leg is not a
proportion). A bone unknown in the reference takes its mirror bone's ratio, else 1; ratios are
clipped to [0.5, 2]. Each frame is rebuilt
from the pelvis outwards keeping every bone's direction. Then the skeleton is moved so that the
lowest foot stays where it was (a soft choice between the ankles and feet, by height in the image
frame, so the support foot neither slides nor sinks; the ankles stand in where the feet are
missing); a frame with neither keeps its pelvis in place.
"""

from __future__ import annotations

import warnings

import numpy as np

from scail_protocol import joints as J
from scail_protocol.overlay import BODY_MIN_SCORE

RATIO_MIN, RATIO_MAX = 0.5, 2.0
FOOT_JOINTS = (J.SMPL24["left_foot"], J.SMPL24["right_foot"])     # ground contact ...
ANKLE_JOINTS = (J.SMPL24["left_ankle"], J.SMPL24["right_ankle"])  # ... or, without feet, these
FOOT_SOFTNESS_MM = 20.0   # height difference over which the support foot hands over
PARENTS = np.array(J.SMPL24_PARENTS)
_MIRROR = {i: J.SMPL24[n.replace("left", "@").replace("right", "left").replace("@", "right")]
           for i, n in enumerate(J.SMPL24_NAMES)}


# SMPL-24 joints without an OpenPose point are seen when all these OpenPose points are.
_SEEN_WITH = {"pelvis": (8, 11), "spine1": (8, 11), "spine2": (2, 5, 8, 11),
              "spine3": (2, 5), "left_collar": (1, 5), "right_collar": (1, 2),
              "left_foot": (13,), "right_foot": (10,), "left_hand": (7,), "right_hand": (4,)}


def seen_joints(body_score: np.ndarray) -> np.ndarray:
    """(24,) bool: SMPL-24 joints whose image position is seen, from the (18,) OpenPose body
    scores of the same image (score > 0.3, docs/pipeline.md §2.4)."""
    with np.errstate(invalid="ignore"):
        op_seen = np.asarray(body_score, np.float64)[:18] > BODY_MIN_SCORE
    seen = np.zeros(24, bool)
    for op, smpl in enumerate(J.OPENPOSE18_FROM_SMPL24):
        if smpl != J.MISSING:
            seen[smpl] = op_seen[op]
    for name, ops in _SEEN_WITH.items():
        seen[J.SMPL24[name]] = op_seen[list(ops)].all()
    return seen


def bone_lengths(joints_mm: np.ndarray) -> np.ndarray:
    """(..., 24) length of the bone ending at each joint (NaN for the root or missing ends)."""
    joints = np.asarray(joints_mm, dtype=np.float64)
    lengths = np.linalg.norm(joints - joints[..., np.maximum(PARENTS, 0), :], axis=-1)
    lengths[..., PARENTS < 0] = np.nan
    return lengths


def proportion_ratios(driving_mm: np.ndarray, reference_mm: np.ndarray,
                      reference_seen=None) -> np.ndarray:
    """(24,) scale of each bone (by its child joint; 1 for the root).

    Args:
        driving_mm: (..., 24, 3) driving joints over frames (and people), mm.
        reference_mm: (24, 3) reference character's joints, mm.
        reference_seen: (24,) bool, joints seen in the reference image (:func:`seen_joints`);
            None = all.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bones: never seen
        drive = np.nanmedian(bone_lengths(driving_mm).reshape(-1, 24), axis=0)
    ref = bone_lengths(reference_mm)
    if reference_seen is not None:
        seen = np.asarray(reference_seen, bool)
        ref[~(seen & seen[np.maximum(PARENTS, 0)])] = np.nan
    known = np.isfinite(drive) & np.isfinite(ref) & (drive > 0) & (ref > 0)
    ratios = np.full(24, np.nan)
    if known.any():
        ratios[known] = (ref[known] / ref[known].sum()) / (drive[known] / drive[known].sum())
    for j in np.flatnonzero(~np.isfinite(ratios)):
        ratios[j] = ratios[_MIRROR[j]]
    return np.clip(np.where(np.isfinite(ratios), ratios, 1.0), RATIO_MIN, RATIO_MAX)


def rescale_bones(joints_mm: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """Rebuild skeletons with each bone scaled by ``ratios`` (pelvis and directions kept).

    Args:
        joints_mm: (..., 24, 3) mm; NaN = missing (a joint whose parent is missing is kept
            where it is).
        ratios: (24,) from :func:`proportion_ratios`.
    """
    old = np.asarray(joints_mm, dtype=np.float64)
    new = old.copy()
    for j in range(1, 24):  # SMPL-24 lists every parent before its children
        parent = PARENTS[j]
        moved = new[..., parent, :] + (old[..., j, :] - old[..., parent, :]) * ratios[j]
        ok = np.isfinite(moved).all(-1, keepdims=True)
        new[..., j, :] = np.where(ok, moved, old[..., j, :])
    return new


def keep_feet(old_mm: np.ndarray, new_mm: np.ndarray) -> np.ndarray:
    """Translate each rebuilt skeleton so its lowest foot joint (largest camera y) is where it
    was (the ankles where both feet are missing); skeletons with neither are unchanged."""
    old, new = np.asarray(old_mm, np.float64), np.asarray(new_mm, np.float64)
    shift, found = _support_shift(old, new, FOOT_JOINTS)
    by_ankles, _ = _support_shift(old, new, ANKLE_JOINTS)
    shift = np.where(found, shift, by_ankles)
    return new + shift[..., None, :]


def _support_shift(old: np.ndarray, new: np.ndarray, joints: tuple) -> tuple:
    """((..., 3) translation putting the lowest of ``joints`` back, (..., 1) bool found)."""
    feet = list(joints)
    height = old[..., feet, 1]
    lowest = np.nanmax(np.where(np.isfinite(height), height, -np.inf), axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        weight = np.exp((height - lowest) / FOOT_SOFTNESS_MM)
    offset = old[..., feet, :] - new[..., feet, :]
    weight = np.where(np.isfinite(offset).all(-1) & np.isfinite(weight), weight, 0.0)
    total = weight.sum(-1, keepdims=True)
    shift = (weight[..., None] * np.nan_to_num(offset)).sum(-2) / np.maximum(total, 1e-12)
    return np.where(total > 0, shift, 0.0), total > 0


def adapt_bones(joints_mm: np.ndarray, reference_mm: np.ndarray, reference_seen=None) -> tuple:
    """The driving joints with the reference character's proportions, feet on the ground.

    Args:
        joints_mm: (P, T, 24, 3) driving joints, mm.
        reference_mm: (24, 3) reference character's joints, mm.
        reference_seen: (24,) bool, joints seen in the reference image; None = all.

    Returns:
        ((P, T, 24, 3) float32 adapted joints, (24,) ratios).
    """
    ratios = proportion_ratios(joints_mm, reference_mm, reference_seen)
    adapted = keep_feet(joints_mm, rescale_bones(joints_mm, ratios))
    return adapted.astype(np.float32), ratios
