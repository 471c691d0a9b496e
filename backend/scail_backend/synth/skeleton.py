"""The synthetic figure's SMPL-24 skeleton: rest joint positions and forward kinematics.

Body frame (used by every synth module): metres, Blender axes, X = the figure's own left,
Y = behind it, Z = up; the figure faces -Y, the soles of its shoes rest on z = 0 and the
pelvis joint is above the origin. The rest pose is SMPL's T-pose (arms out along ±X, palms down).

The average figure's joints are the one procedural skeleton, :mod:`scail_protocol.skeleton`
(the ground truth *is* these joints); this module reshapes them per body type and poses them.

Local joint rotations follow SMPL: ``q[j]`` is expressed in the body frame of the rest pose, and
the global rotation is ``G[j] = G[parent[j]] · q[j]`` (``G[pelvis] = q[pelvis]``).
"""

from __future__ import annotations

import numpy as np
from scail_protocol import skeleton
from scail_protocol.joints import SMPL24_PARENTS
from scail_protocol.rotations import quat_apply

from . import bodies

NUM_JOINTS = skeleton.NUM_JOINTS


def _average_rest_joints() -> np.ndarray:
    return skeleton.rest_joints_m()  # the one procedural skeleton (scail_protocol.skeleton)


def rest_joints(body=None) -> np.ndarray:
    """(24, 3) float64 rest-pose joint positions, body frame, metres (SMPL-24 order).

    ``body``: a :mod:`.bodies` body type or its name; None = the average figure.
    """
    body = bodies.get_body(body)
    joints = _average_rest_joints()
    if body.is_default:
        return joints
    return bodies.reshape_joints(joints, _bone_matrices(body), body)


def _bone_matrices(body) -> np.ndarray:
    return bodies.bone_matrices(_average_rest_joints(), _average_rest_tails(), body)


def reshape_rest_points(points: np.ndarray, bones: np.ndarray, weights=None, body=None) -> np.ndarray:
    """Average-figure rest points (N, 3) carried by ``bones`` -> the same points on ``body``.

    ``bones`` is (N,) or (N, K) with ``weights`` (N, K); see :mod:`.bodies`. Metres, body frame.
    """
    body = bodies.get_body(body)
    points = np.asarray(points, np.float64)
    if body.is_default:
        return points
    return bodies.reshape_points(points, bones, weights, _average_rest_joints(), rest_joints(body),
                                 _bone_matrices(body), body)


def rest_tails(body=None) -> np.ndarray:
    """(24, 3) float64 bone tails of the rest pose, body frame, metres.

    A bone starts at its joint and ends at its main child joint, or at a fixed point for the
    leaves (head, hands, feet).
    """
    return reshape_rest_points(_average_rest_tails(), np.arange(NUM_JOINTS), body=body)


def _average_rest_tails() -> np.ndarray:
    return skeleton.rest_tails_m()


def forward_kinematics(local_quats: np.ndarray, root_m: np.ndarray, body=None):
    """Global joint rotations and positions of posed frames.

    Args:
        local_quats: (T, 24, 4) local rotations (w, x, y, z), SMPL convention (module docstring).
        root_m: (T, 3) pelvis joint positions, body/stage frame, metres.
        body: the body type whose rest skeleton is posed (None = average).

    Returns:
        (global_quats (T, 24, 4), joints_m (T, 24, 3)) float64.
    """
    rest = rest_joints(body)
    offsets = rest - rest[np.maximum(np.asarray(SMPL24_PARENTS), 0)]
    return skeleton.forward_kinematics(local_quats, root_m, offsets)


def pose_points(global_quats: np.ndarray, joints_m: np.ndarray, bone: np.ndarray,
                rest_points_m: np.ndarray, body=None) -> np.ndarray:
    """Posed positions of points rigidly attached to bones.

    Args:
        global_quats: (T, 24, 4) from :func:`forward_kinematics`.
        joints_m: (T, 24, 3) from :func:`forward_kinematics`.
        bone: (N,) int joint index each point moves with.
        rest_points_m: (N, 3) rest-pose positions of ``body``, body frame, metres.
        body: the body type posed (None = average).

    Returns:
        (T, N, 3) float64 posed positions, metres.
    """
    bone = np.asarray(bone, dtype=np.int64)
    offsets = np.asarray(rest_points_m, np.float64) - rest_joints(body)[bone]
    return joints_m[:, bone] + quat_apply(global_quats[:, bone], offsets[None])
