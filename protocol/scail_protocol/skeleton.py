"""The one procedural SMPL-24 skeleton: an average adult's rest pose and forward kinematics.

Used wherever a plausible body is made rather than estimated: the synthetic figure
(``scail_backend.synth``), the sample walkers (``scail_backend.render.samples``) and the add-on
tests' takes. numpy only.

Body frame: metres, X = the figure's own left, Y = behind it, Z = up; the figure faces -Y, the
soles of its shoes rest on z = 0. The rest pose is SMPL's T-pose (arms out along ±X, palms down).
The joints sit where SMPL puts them on an adult of about 1.74 m: hip joints inside the pelvis,
about 0.7 of the width between the outer hip landmarks; the neck joint a little above the
shoulder line; the head joint low, at chin level (docs/pipeline.md §3).

Local rotations follow SMPL: ``q[j]`` is expressed in the body frame of the rest pose and the
global rotation is ``G[j] = G[parent[j]] · q[j]`` (``G[pelvis] = q[pelvis]``); quaternions are
(w, x, y, z) as in :mod:`scail_protocol.rotations`.
"""

from __future__ import annotations

import numpy as np

from .joints import SMPL24, SMPL24_NAMES, SMPL24_PARENTS
from .rotations import quat_apply, quat_mul

NUM_JOINTS = 24

# Left-side and centre joints of the rest pose (body frame, metres); right joints mirror x.
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


def _mirrored(left_table: dict) -> dict:
    table = dict(left_table)
    for name, (x, y, z) in left_table.items():
        if name.startswith("left_"):
            table["right_" + name[len("left_"):]] = (-x, y, z)
    return table


def rest_joints_m() -> np.ndarray:
    """(24, 3) float64 rest-pose joint positions, body frame, metres (SMPL-24 order)."""
    table = _mirrored(_LEFT_AND_CENTRE_REST_M)
    return np.array([table[name] for name in SMPL24_NAMES], dtype=np.float64)


def rest_tails_m() -> np.ndarray:
    """(24, 3) float64 bone tails of the rest pose, body frame, metres: a bone ends at its main
    child joint, or at a fixed point for the leaves (head, hands, feet)."""
    joints, leaf = rest_joints_m(), _mirrored(_LEAF_TAILS_M)
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


def facing_camera_mm(points_m: np.ndarray) -> np.ndarray:
    """Body-frame points (metres) of a figure facing the camera, in the OpenCV camera frame's
    axes (x right in the image = the figure's left, y down, z away from the camera), mm."""
    points_m = np.asarray(points_m, np.float64)
    return np.stack([points_m[..., 0], -points_m[..., 2], points_m[..., 1]], -1) * 1000.0


def bone_offsets_mm() -> np.ndarray:
    """(24, 3) rest offsets child - parent (row 0: zeros) of a figure facing the camera, camera
    axes (see :func:`facing_camera_mm`), millimetres."""
    joints = facing_camera_mm(rest_joints_m())
    offsets = np.zeros_like(joints)
    for j, p in enumerate(SMPL24_PARENTS):
        if p >= 0:
            offsets[j] = joints[j] - joints[p]
    return offsets


def forward_kinematics(local_quats: np.ndarray, root: np.ndarray, offsets: np.ndarray):
    """Global rotations and joint positions of posed frames.

    Args:
        local_quats: (T, 24, 4) local rotations (w, x, y, z), SMPL convention (module docstring),
            in the frame ``offsets`` are written in.
        root: (T, 3) pelvis positions, in the unit of ``offsets``.
        offsets: (24, 3) or (T, 24, 3) rest offsets child - parent (row 0 unused), e.g.
            :func:`bone_offsets_mm` or differences of :func:`rest_joints_m`.

    Returns:
        (global_quats (T, 24, 4), joints (T, 24, 3)) float64.
    """
    local_quats = np.asarray(local_quats, np.float64)
    offsets = np.broadcast_to(np.asarray(offsets, np.float64),
                              (local_quats.shape[0], NUM_JOINTS, 3))
    glob = np.empty(local_quats.shape[:1] + (NUM_JOINTS, 4))
    pos = np.empty(local_quats.shape[:1] + (NUM_JOINTS, 3))
    glob[:, 0], pos[:, 0] = local_quats[:, 0], root
    for j in range(1, NUM_JOINTS):
        p = SMPL24_PARENTS[j]
        glob[:, j] = quat_mul(glob[:, p], local_quats[:, j])
        pos[:, j] = pos[:, p] + quat_apply(glob[:, p], offsets[:, j])
    return glob, pos
