"""The synthetic figure's SMPL-24 skeleton: rest joint positions and forward kinematics.

Body frame (used by every synth module): metres, Blender axes, X = the figure's own left,
Y = behind it, Z = up; the figure faces -Y, the soles of its shoes rest on z = 0 and the
pelvis joint is above the origin. The rest pose is SMPL's T-pose (arms out along ±X, palms down).

The joints are placed where SMPL puts them on an adult of about 1.74 m (the ground truth *is*
these joints): hip joints inside the pelvis, about 0.7 of the width between the outer hip
landmarks; the neck joint a little above the shoulder line; the head joint low, at chin level,
about halfway from the shoulder line to the ears (estimator-notes.md, "SMPL joints are not
MediaPipe landmarks").

Local joint rotations follow SMPL: ``q[j]`` is expressed in the body frame of the rest pose, and
the global rotation is ``G[j] = G[parent[j]] · q[j]`` (``G[pelvis] = q[pelvis]``).
"""

from __future__ import annotations

import numpy as np
from scail_protocol.joints import SMPL24, SMPL24_NAMES, SMPL24_PARENTS

from scail_protocol.rotations import quat_apply, quat_mul

NUM_JOINTS = 24

# Left-side and centre joints of the rest pose (body frame, metres). Right joints mirror x.
_LEFT_AND_CENTRE_REST_M = {
    "pelvis": (0.0, 0.000, 0.950),
    "left_hip": (0.071, 0.004, 0.858),
    "spine1": (0.0, 0.026, 1.062),
    "left_knee": (0.104, 0.010, 0.480),
    "spine2": (0.0, 0.024, 1.196),
    "left_ankle": (0.090, 0.055, 0.082),
    "spine3": (0.0, 0.018, 1.256),
    "left_foot": (0.116, -0.072, 0.026),
    "neck": (0.0, 0.034, 1.446),
    "left_collar": (0.075, 0.032, 1.369),
    "head": (0.0, -0.012, 1.510),
    "left_shoulder": (0.196, 0.046, 1.406),
    "left_elbow": (0.452, 0.068, 1.391),
    "left_wrist": (0.714, 0.074, 1.402),
    "left_hand": (0.800, 0.080, 1.396),
}

# Where a leaf bone ends (Blender bones need a tail); left side, body frame, metres.
_LEAF_TAILS_M = {
    "head": (0.0, -0.012, 1.700),
    "left_foot": (0.118, -0.140, 0.026),
    "left_hand": (0.870, 0.080, 1.390),
}
# The child that a bone with several children points at (pelvis -> spine1, spine3 -> neck).
_MAIN_CHILD = {"pelvis": "spine1", "spine3": "neck"}


def _mirror_name(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[len("left_"):]
    return name


def _full_table(left_table: dict) -> dict:
    table = dict(left_table)
    for name, (x, y, z) in left_table.items():
        if name.startswith("left_"):
            table[_mirror_name(name)] = (-x, y, z)
    return table


def rest_joints() -> np.ndarray:
    """(24, 3) float64 rest-pose joint positions, body frame, metres (SMPL-24 order)."""
    table = _full_table(_LEFT_AND_CENTRE_REST_M)
    return np.array([table[name] for name in SMPL24_NAMES], dtype=np.float64)


def rest_tails() -> np.ndarray:
    """(24, 3) float64 bone tails of the rest pose, body frame, metres.

    A bone starts at its joint and ends at its main child joint, or at a fixed point for the
    leaves (head, hands, feet).
    """
    joints = rest_joints()
    leaf = _full_table(_LEAF_TAILS_M)
    children = {}
    for j, p in enumerate(SMPL24_PARENTS):
        if p >= 0:
            children.setdefault(p, []).append(j)
    tails = np.empty_like(joints)
    for j, name in enumerate(SMPL24_NAMES):
        if name in leaf:
            tails[j] = leaf[name]
        elif name in _MAIN_CHILD:
            tails[j] = joints[SMPL24[_MAIN_CHILD[name]]]
        else:
            (child,) = children[j]
            tails[j] = joints[child]
    return tails


def forward_kinematics(local_quats: np.ndarray, root_m: np.ndarray):
    """Global joint rotations and positions of posed frames.

    Args:
        local_quats: (T, 24, 4) local rotations (w, x, y, z), SMPL convention (module docstring).
        root_m: (T, 3) pelvis joint positions, body/stage frame, metres.

    Returns:
        (global_quats (T, 24, 4), joints_m (T, 24, 3)) float64.
    """
    local_quats = np.asarray(local_quats, np.float64)
    rest = rest_joints()
    num_frames = local_quats.shape[0]
    glob = np.empty((num_frames, NUM_JOINTS, 4))
    pos = np.empty((num_frames, NUM_JOINTS, 3))
    glob[:, 0] = local_quats[:, 0]
    pos[:, 0] = root_m
    for j in range(1, NUM_JOINTS):
        p = SMPL24_PARENTS[j]
        glob[:, j] = quat_mul(glob[:, p], local_quats[:, j])
        pos[:, j] = pos[:, p] + quat_apply(glob[:, p], rest[j] - rest[p])
    return glob, pos


def pose_points(global_quats: np.ndarray, joints_m: np.ndarray, bone: np.ndarray,
                rest_points_m: np.ndarray) -> np.ndarray:
    """Posed positions of points rigidly attached to bones.

    Args:
        global_quats: (T, 24, 4) from :func:`forward_kinematics`.
        joints_m: (T, 24, 3) from :func:`forward_kinematics`.
        bone: (N,) int joint index each point moves with.
        rest_points_m: (N, 3) rest-pose positions, body frame, metres.

    Returns:
        (T, N, 3) float64 posed positions, metres.
    """
    bone = np.asarray(bone, dtype=np.int64)
    offsets = np.asarray(rest_points_m, np.float64) - rest_joints()[bone]
    return joints_m[:, bone] + quat_apply(global_quats[:, bone], offsets[None])
