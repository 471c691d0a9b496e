"""The floor under a take and the rigid move that stands it on Blender's ground (numpy only).

A take comes out of the estimator in the camera's frame: in Blender axes (``camera.camera_to_blender``)
the subject stands 2-5 m in front of the origin, its feet about 1 m below it, tilted by however the
camera was tilted. Grounding finds the floor from the feet and returns one rigid transform that
puts the floor on Z = 0, the subject's median position over the origin and its median facing
along -Y (its left along +X). The add-on applies the same transform to the armature *and* the
camera, so the picture does not change.

Frames and units: joints are (T, 24, 3) Blender axes (X right, Y forward from the camera, Z up),
metres; NaN = missing. Up is +Z of that frame only as a first guess: the floor's own normal wins
wherever the contacts span enough of the floor to define it.

Contacts: a foot (SMPL ``left_foot`` / ``right_foot``, the ball of the foot) is in contact on a
frame when it is within ``CONTACT_HEIGHT_M`` of the floor and moves slower than
``CONTACT_SPEED_M_S``. The floor is the least-squares plane through the contact points (SVD),
refit twice as the contacts are re-detected against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import joints as J
from .errors import SequenceError

FOOT_JOINTS = (J.SMPL24["left_foot"], J.SMPL24["right_foot"])  # balls of the feet (10, 11)
ANKLE_JOINTS = (J.SMPL24["left_ankle"], J.SMPL24["right_ankle"])  # (7, 8)
HIP_JOINTS = (J.SMPL24["left_hip"], J.SMPL24["right_hip"])  # (1, 2)
ROOT = J.SMPL24["pelvis"]
CONTACT_HEIGHT_M = 0.05  # a planted ball of the foot sits within a few cm of the lowest level
CONTACT_SPEED_M_S = 0.6  # walking swing feet move at 2-5 m/s; planted ones at ~0 plus noise
LOW_PERCENTILE = 5.0  # the floor level of the first guess: robust against a few sunk frames
MIN_SPREAD_STD_M = 0.03  # contacts spread less (std, 2nd direction) than this fix no tilt
MAX_TILT_DEG = 45.0  # a fitted normal further than this from the first guess is not a floor
FIT_ROUNDS = 3
_UP_GUESS = np.array([0.0, 0.0, 1.0])  # an upright camera's up, in Blender axes


@dataclass(frozen=True)
class Floor:
    """A floor plane and the feet that touch it.

    Attributes:
        normal: (3,) float64 unit normal (pointing up, toward the subject), same frame as the joints.
        point: (3,) float64 a point of the plane, metres.
        contacts: (T, 2) bool, left / right ball of the foot in contact on each frame.
        fitted: True when the normal comes from the plane fit, False when the contacts were too
            few or too clustered and the first-guess up direction was kept (only the height fitted).
    """

    normal: np.ndarray
    point: np.ndarray
    contacts: np.ndarray
    fitted: bool

    def height(self, points_m: np.ndarray) -> np.ndarray:
        """Signed height above the floor of (..., 3) points, metres."""
        return (np.asarray(points_m, np.float64) - self.point) @ self.normal


def detect_contacts(joints_m: np.ndarray, fps: float, up=_UP_GUESS, floor_level=None) -> np.ndarray:
    """(T, 2) bool: is the left / right ball of the foot planted on each frame?

    Args:
        joints_m: (T, 24, 3) metres, any frame; NaN = missing (never in contact).
        fps: frames per second (for the speed test).
        up: (3,) unit up direction of that frame.
        floor_level: height (along ``up``) of the floor; default: the ``LOW_PERCENTILE``-th
            percentile of each foot's height over the take.
    """
    feet = np.asarray(joints_m, np.float64)[:, list(FOOT_JOINTS)]  # (T, 2, 3)
    height = feet @ np.asarray(up, np.float64)
    if floor_level is None:
        finite = np.isfinite(height)
        if not finite.any():
            return np.zeros(height.shape, dtype=bool)
        floor_level = np.percentile(height[finite], LOW_PERCENTILE)
    speed = foot_speed(feet, fps)
    with np.errstate(invalid="ignore"):
        return (height - floor_level < CONTACT_HEIGHT_M) & (speed < CONTACT_SPEED_M_S)


def foot_speed(points_m: np.ndarray, fps: float) -> np.ndarray:
    """(T, ...) speed of (T, ..., 3) points in m/s (central differences; NaN where missing)."""
    p = np.asarray(points_m, np.float64)
    if len(p) < 2:
        return np.zeros(p.shape[:-1])
    velocity = np.gradient(p, axis=0) * float(fps)
    return np.linalg.norm(velocity, axis=-1)


def fit_floor(joints_m: np.ndarray, fps: float) -> Floor:
    """The floor under a take: a plane fitted to the feet while they are planted.

    Args:
        joints_m: (T, 24, 3) float, Blender axes, metres; NaN = missing.
        fps: frames per second of the take.

    Returns:
        A :class:`Floor`.

    Raises:
        SequenceError: no frame has a foot joint.
    """
    joints = np.asarray(joints_m, np.float64)
    feet = joints[:, list(FOOT_JOINTS)]
    if not np.isfinite(feet).all(axis=-1).any():
        raise SequenceError("no frame has a foot joint; cannot find the floor")
    normal, level, fitted = _UP_GUESS.copy(), None, False
    contacts = np.zeros(feet.shape[:2], dtype=bool)
    for _ in range(FIT_ROUNDS):
        contacts = detect_contacts(joints, fps, normal, level)
        if not contacts.any():  # nothing stands still: fall back to the lowest level
            contacts = detect_contacts(joints, np.inf, normal, level) & np.isfinite(feet[..., 0])
        points = feet[contacts]
        normal, fitted = _plane_normal(points, normal)
        level = float(np.median(points @ normal))
    return Floor(normal=normal, point=normal * level, contacts=contacts, fitted=fitted)


def _plane_normal(points: np.ndarray, guess: np.ndarray) -> tuple:
    """Least-squares plane normal of (n, 3) points, oriented like ``guess``; or ``guess``."""
    if len(points) < 3:
        return guess, False
    centred = points - points.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    if s[1] / np.sqrt(len(points)) < MIN_SPREAD_STD_M:  # std along the 2nd axis
        return guess, False
    normal = vt[2] * np.sign(vt[2] @ guess or 1.0)
    if normal @ _UP_GUESS < np.cos(np.radians(MAX_TILT_DEG)):
        return guess, False
    return normal, True


def facing_direction(joints_m: np.ndarray, up) -> np.ndarray:
    """(3,) unit median forward direction of the subject, perpendicular to ``up``.

    Forward = left × up, with left the direction right hip -> left hip: for up = +Z and left =
    +X it is -Y. Frames are averaged as unit vectors (a circular mean).

    Raises:
        SequenceError: no frame has both hips.
    """
    joints = np.asarray(joints_m, np.float64)
    up = np.asarray(up, np.float64)
    left = joints[:, HIP_JOINTS[0]] - joints[:, HIP_JOINTS[1]]
    left = left - (left @ up)[:, None] * up
    ok = np.isfinite(left).all(axis=-1)
    norms = np.linalg.norm(left[ok], axis=-1)
    good = norms > 1e-6
    if not good.any():
        raise SequenceError("no frame has both hips; cannot tell which way the subject faces")
    mean_left = (left[ok][good] / norms[good, None]).sum(axis=0)
    if np.linalg.norm(mean_left) < 1e-9:  # turned round evenly: take the first frame
        mean_left = left[ok][good][0]
    mean_left /= np.linalg.norm(mean_left)
    return np.cross(mean_left, up)


def grounding_matrix(joints_m: np.ndarray, floor: Floor) -> np.ndarray:
    """(4, 4) rigid transform taking the take's frame to the grounded world.

    In the grounded world the floor is Z = 0 (its normal +Z), the subject's median facing is -Y
    and the median pelvis position over the take is over the origin.

    Args:
        joints_m: (T, 24, 3) metres, the frame the floor was fitted in; NaN = missing.
        floor: from :func:`fit_floor`.

    Raises:
        SequenceError: no frame has the pelvis, or none has both hips.
    """
    joints = np.asarray(joints_m, np.float64)
    up = floor.normal
    forward = facing_direction(joints, up)
    left = np.cross(up, forward)
    # Rows: the world axes X (left), Y (backward = -forward), Z (up) expressed in the take's frame.
    rotation = np.stack([left, -forward, up])
    root = joints[:, ROOT]
    root = root[np.isfinite(root).all(axis=-1)]
    if not len(root):
        raise SequenceError("no frame has the pelvis; cannot place the take")
    centre = np.median(root, axis=0)
    centre = centre - floor.height(centre) * up  # its foot on the floor
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = -rotation @ centre
    return matrix


def apply_matrix(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(..., 3) points moved by a (4, 4) affine matrix (NaN stays NaN)."""
    m = np.asarray(matrix, np.float64)
    return np.asarray(points, np.float64) @ m[:3, :3].T + m[:3, 3]
