"""Which points the camera solve matches, and with which weighting (docs/pipeline.md §9.1).

The reference character's 2D OpenPose points (pixels) are matched with the driving person's
OpenPose-18 3D joints (mm) of one frame:

* "feet" variant, when both knees and both ankles are valid in both: the neck plus those four,
  weighted w₀ = 1 for the neck and w = 4 for the others (the reference's "down" solver);
* otherwise the "body" variant: the neck plus the valid head, shoulders and elbows, weighted
  w₀ = 8, w = 1 (the reference's "central" solver).

Hips and wrists are never used. Where the reference uses the neck even when the reference
image's neck is invalid, we use the shoulder midpoint if both shoulders are valid and otherwise
leave the neck out (its weight goes nowhere: the reference would match a stale coordinate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scail_protocol import joints as J
from scail_protocol.overlay import BODY_MIN_SCORE

NECK = J.OPENPOSE18["neck"]
UPPER = (0, 2, 3, 5, 6)     # head ("nose" slot), shoulders, elbows
LOWER = (9, 10, 12, 13)     # knees, ankles
SHOULDERS = (J.OPENPOSE18["right_shoulder"], J.OPENPOSE18["left_shoulder"])
FEET, BODY = "feet", "body"
WEIGHTS = {FEET: (1.0, 4.0), BODY: (8.0, 1.0)}  # variant -> (neck weight, weight of the others)


@dataclass(frozen=True)
class Correspondences:
    """Matched points of one solve.

    Attributes:
        variant: "feet" or "body".
        indices: (N,) OpenPose-18 indices used, neck first when it is used.
        points3d: (N, 3) driving joints, camera frame, mm.
        targets: (N, 2) reference image points, pixels.
        weights: (N,) weight of each point's squared error.
    """

    variant: str
    indices: tuple
    points3d: np.ndarray
    targets: np.ndarray
    weights: np.ndarray


def reference_points(kp2d_body: np.ndarray, score_body: np.ndarray) -> np.ndarray:
    """(18, 2) reference OpenPose points in pixels, NaN where not valid (score ≤ 0.3, §2.4).

    An invalid neck becomes the shoulder midpoint when both shoulders are valid (DWPose's neck
    is that midpoint anyway).
    """
    points = np.array(kp2d_body, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(points).all(-1) & (np.asarray(score_body, np.float64) > BODY_MIN_SCORE)
    points[~valid] = np.nan
    if not valid[NECK] and valid[list(SHOULDERS)].all():
        points[NECK] = points[list(SHOULDERS)].mean(0)
    return points


def select(reference_body_px: np.ndarray, driving_op18_mm: np.ndarray) -> Correspondences:
    """Pick the variant and the matched points (docs/pipeline.md §9.1).

    Args:
        reference_body_px: (18, 2) reference points from :func:`reference_points`; NaN = invalid.
        driving_op18_mm: (18, 3) driving OpenPose-18 joints (one frame), mm; NaN = missing.

    Returns:
        The correspondences (possibly fewer than the solve needs; the caller checks).
    """
    ok = np.isfinite(reference_body_px).all(-1) & np.isfinite(driving_op18_mm).all(-1)
    if ok[list(LOWER)].all():
        variant, others = FEET, LOWER
    else:
        variant, others = BODY, tuple(i for i in UPPER if ok[i])
    indices = ((NECK,) if ok[NECK] else ()) + tuple(others)
    neck_weight, weight = WEIGHTS[variant]
    weights = np.array([neck_weight if i == NECK else weight for i in indices], np.float64)
    idx = list(indices)
    return Correspondences(variant=variant, indices=indices,
                           points3d=np.asarray(driving_op18_mm, np.float64)[idx].reshape(-1, 3),
                           targets=np.asarray(reference_body_px, np.float64)[idx].reshape(-1, 2),
                           weights=weights)
