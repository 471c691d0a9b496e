"""Rig maths of the SMPL-24 armature, numpy only (no bpy): rest skeleton, joints -> bone poses, FK.

Frames and units: everything here is in the armature's space, metres, Blender axes (Z up; the
imported subject faces -Y, its left is +X). ``rest`` matrices are Blender's ``Bone.matrix_local``:
(4, 4) with the bone's head in the last column and its axis (head -> tail) as column 1 (local Y).

Bone ``j`` has its head at SMPL joint ``j``. A pose bone's basis is Blender's
``Translation(location) @ Rotation(quaternion)``; its posed matrix is
``M_j = M_parent @ inv(rest_parent) @ rest_j @ basis_j`` (full rotation and scale inheritance).

Twist convention (joint positions do not fix a bone's spin about its own axis):

* Bones with one child (limbs, spine, neck, collars) take the *shortest-arc* rotation that turns
  the bone's axis, as carried by its posed parent, onto the direction to the child: zero twist
  relative to the parent.
* The two branching bones take their spin from a second direction: the pelvis from the line
  right hip -> left hip, spine3 from right collar -> left collar (see ``SPIN_REFERENCE``).
* Leaf bones (feet, head, hands) have no child and keep the identity rotation (they follow
  their parent).

Bone lengths: the rest pose uses each bone's median length over the take. With ``exact=True``
every bone's head is also keyed (a location in the bone's rest space) so that the posed heads
reproduce the input joints exactly even though the estimated lengths vary from frame to frame;
with ``exact=False`` only the root moves and every bone keeps its median length.
"""

from __future__ import annotations

import numpy as np
from scail_protocol import joints as J
from scail_protocol.errors import SequenceError
from scail_protocol.rotations import make_continuous, matrix_to_quat, quat_to_matrix

NUM_JOINTS = len(J.SMPL24_NAMES)
PARENTS = J.SMPL24_PARENTS
ROOT = 0

# The child whose direction sets a branching bone's axis (others keep their parent's axis).
_BRANCH_AXIS_CHILD = {0: 3, 9: 12}  # pelvis -> spine1, spine3 -> neck
# Spin reference of the branching bones: a (from, to) joint pair whose direction fixes the twist.
SPIN_REFERENCE = {0: (2, 1), 9: (14, 13)}  # right_hip -> left_hip, right_collar -> left_collar

# Rest-pose template: direction of each joint from its parent in a T-pose facing -Y (Blender
# axes, subject's left = +X). Only directions: lengths come from the take. Our own template.
_REST_DIRECTIONS = (
    (0.0, 0.0, 0.0),      # 0 pelvis (root; placed at the take's median pelvis)
    (0.55, 0.0, -0.85),   # 1 left_hip
    (-0.55, 0.0, -0.85),  # 2 right_hip
    (0.0, 0.0, 1.0),      # 3 spine1
    (0.0, 0.0, -1.0),     # 4 left_knee
    (0.0, 0.0, -1.0),     # 5 right_knee
    (0.0, 0.0, 1.0),      # 6 spine2
    (0.0, 0.0, -1.0),     # 7 left_ankle
    (0.0, 0.0, -1.0),     # 8 right_ankle
    (0.0, 0.0, 1.0),      # 9 spine3
    (0.0, -0.95, -0.3),   # 10 left_foot
    (0.0, -0.95, -0.3),   # 11 right_foot
    (0.0, 0.0, 1.0),      # 12 neck
    (0.6, 0.0, 0.8),      # 13 left_collar
    (-0.6, 0.0, 0.8),     # 14 right_collar
    (0.0, 0.0, 1.0),      # 15 head
    (1.0, 0.0, 0.0),      # 16 left_shoulder
    (-1.0, 0.0, 0.0),     # 17 right_shoulder
    (1.0, 0.0, 0.0),      # 18 left_elbow
    (-1.0, 0.0, 0.0),     # 19 right_elbow
    (1.0, 0.0, 0.0),      # 20 left_wrist
    (-1.0, 0.0, 0.0),     # 21 right_wrist
    (1.0, 0.0, 0.0),      # 22 left_hand
    (-1.0, 0.0, 0.0),     # 23 right_hand
)
MIN_BONE_LENGTH_M = 1e-3  # shorter median bones (degenerate data) are drawn at this length
_EPS = 1e-12


def children_of(joint: int) -> tuple:
    """Indices of the joints whose parent is ``joint``."""
    return tuple(j for j, p in enumerate(PARENTS) if p == joint)


def axis_child(joint: int) -> int:
    """The child joint the bone points at, or -1 for a leaf bone."""
    kids = children_of(joint)
    if not kids:
        return -1
    return _BRANCH_AXIS_CHILD.get(joint, kids[0])


def bone_names() -> tuple:
    """Readable bone names derived from ``SMPL24_NAMES``: 'left_hip' -> 'Hip.L', 'spine1' -> 'Spine1'.

    The '.L' / '.R' suffixes are Blender's own, so X-mirror editing and pose flipping work.
    """
    names = []
    for name in J.SMPL24_NAMES:
        side, _, rest = name.partition("_")
        if side in ("left", "right") and rest:
            names.append(f"{rest.capitalize()}.{side[0].upper()}")
        else:
            names.append(name.capitalize())
    return tuple(names)


def rest_directions() -> np.ndarray:
    """(24, 3) float64 unit directions of each joint from its parent in the rest pose (root: 0)."""
    d = np.asarray(_REST_DIRECTIONS, dtype=np.float64)
    n = np.linalg.norm(d, axis=-1, keepdims=True)
    return np.divide(d, n, out=np.zeros_like(d), where=n > 0)


def median_bone_lengths(joints_m: np.ndarray) -> np.ndarray:
    """Median length of every bone (joint -> parent) over the frames where both ends exist.

    Args:
        joints_m: (T, 24, 3) float, metres, any frame; NaN = missing joint.

    Returns:
        (24,) float64 metres; entry 0 (the root) is 0.

    Raises:
        SequenceError: a bone has no frame with both of its joints present.
    """
    joints = np.asarray(joints_m, dtype=np.float64)
    lengths = np.zeros(NUM_JOINTS)
    for j in range(1, NUM_JOINTS):
        seg = np.linalg.norm(joints[:, j] - joints[:, PARENTS[j]], axis=-1)
        seg = seg[np.isfinite(seg)]
        if seg.size == 0:
            raise SequenceError(f"bone {J.SMPL24_NAMES[PARENTS[j]]} -> {J.SMPL24_NAMES[j]} is "
                                f"missing on every frame; cannot size the rest pose")
        lengths[j] = max(float(np.median(seg)), MIN_BONE_LENGTH_M)
    return lengths


def rest_skeleton(lengths_m: np.ndarray, root_m) -> tuple:
    """Heads and tails of the rest-pose bones (the template T-pose with the given lengths).

    Args:
        lengths_m: (24,) metres, from :func:`median_bone_lengths`.
        root_m: (3,) position of the pelvis head, armature space, metres.

    Returns:
        (heads, tails), each (24, 3) float64 metres. A bone's tail is the head of its axis
        child; a leaf bone extends along its own direction by its own length.
    """
    dirs = rest_directions()
    heads = np.zeros((NUM_JOINTS, 3))
    heads[ROOT] = np.asarray(root_m, dtype=np.float64)
    for j in range(1, NUM_JOINTS):
        heads[j] = heads[PARENTS[j]] + dirs[j] * lengths_m[j]
    tails = np.empty_like(heads)
    for j in range(NUM_JOINTS):
        child = axis_child(j)
        tails[j] = heads[child] if child >= 0 else heads[j] + dirs[j] * lengths_m[j]
    return heads, tails


# --- rotations ----------------------------------------------------------------------------------

def _shortest_arc_from_y(v: np.ndarray) -> np.ndarray:
    """(..., 3) unit vectors -> (..., 4) quaternions turning +Y onto them by the shortest arc.

    Note:
        Antiparallel input (v = -Y) has no unique shortest arc; it turns by pi about +X.
    """
    q = np.stack([1.0 + v[..., 1], v[..., 2], np.zeros_like(v[..., 0]), -v[..., 0]], -1)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    flipped = n[..., 0] < 1e-9
    q = np.divide(q, n, out=np.zeros_like(q), where=n > 1e-9)
    q[flipped] = (0.0, 1.0, 0.0, 0.0)
    return q


def _normalize(v: np.ndarray):
    """Unit vectors and a mask of the ones that had a usable length."""
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    ok = n[..., 0] > _EPS
    return np.divide(v, n, out=np.zeros_like(v), where=n > _EPS), ok


def _frame(axis_y: np.ndarray, toward_x: np.ndarray) -> np.ndarray:
    """Right-handed frames (..., 3, 3) with column 1 = axis_y and column 0 toward ``toward_x``."""
    x = toward_x - np.sum(toward_x * axis_y, -1, keepdims=True) * axis_y
    x, _ = _normalize(x)
    z = np.cross(x, axis_y)
    return np.stack([x, axis_y, z], -1)


# --- joints <-> pose ----------------------------------------------------------------------------

def pose_from_joints(joints_m: np.ndarray, rest: np.ndarray, *, exact: bool = True) -> tuple:
    """Bone rotations and locations that pose the rig's bone heads onto the given joints.

    Args:
        joints_m: (T, 24, 3) float, armature space, metres; every joint finite (select present
            frames before calling).
        rest: (24, 4, 4) bone rest matrices in armature space (``Bone.matrix_local``).
        exact: also key non-root bone locations so that heads match the joints exactly; else only
            the root is located and bones keep their rest lengths.

    Returns:
        (quat, loc): (T, 24, 4) float64 pose-bone quaternions (w, x, y, z), sign-continuous over
        T, and (T, 24, 3) float64 pose-bone locations in each bone's rest space, metres.
    """
    X = np.asarray(joints_m, dtype=np.float64)
    if X.ndim != 3 or X.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must be (T, 24, 3), got {X.shape}")
    R, h = rest[:, :3, :3], rest[:, :3, 3]
    T = X.shape[0]
    G = np.empty((T, NUM_JOINTS, 3, 3))  # posed bone orientations, armature space
    quat = np.empty((T, NUM_JOINTS, 4))
    loc = np.zeros((T, NUM_JOINTS, 3))
    for j in range(NUM_JOINTS):  # SMPL order lists every parent before its children
        p = PARENTS[j]
        carried = np.broadcast_to(R[j], (T, 3, 3)) if p < 0 else G[:, p] @ (R[p].T @ R[j])
        G[:, j] = _posed_orientation(j, X, rest, carried)
        local = np.swapaxes(carried, -1, -2) @ G[:, j]
        quat[:, j] = matrix_to_quat(local)
        if p < 0:
            loc[:, j] = (X[:, j] - h[j]) @ R[j]
        elif exact:
            offset = np.einsum("tji,tj->ti", G[:, p], X[:, j] - X[:, p]) @ R[p].T - (h[j] - h[p])
            loc[:, j] = offset @ R[j]
    return make_continuous(quat, axis=0), loc


def _posed_orientation(j: int, X: np.ndarray, rest: np.ndarray, carried: np.ndarray) -> np.ndarray:
    """(T, 3, 3) posed orientation of bone j given the orientation its parent carries it to."""
    child = axis_child(j)
    if child < 0:
        return carried
    direction, ok = _normalize(X[:, child] - X[:, j])
    if j in SPIN_REFERENCE:
        a, b = SPIN_REFERENCE[j]
        spin, spin_ok = _normalize(X[:, b] - X[:, a])
        rest_spin, _ = _normalize(rest[b, :3, 3] - rest[a, :3, 3])
        posed = _frame(direction, spin) @ _frame(rest[j, :3, 1], rest_spin).T @ rest[j, :3, :3]
        parallel = np.abs(np.sum(direction * spin, -1)) > 1 - 1e-9
        use = ok & spin_ok & ~parallel
        if use.all():
            return posed
    else:
        use = np.zeros(len(X), dtype=bool)
    # Shortest arc in the carried frame: local +Y onto the direction expressed locally.
    local_dir = np.einsum("tji,tj->ti", carried, direction)
    swung = carried @ quat_to_matrix(_shortest_arc_from_y(local_dir))
    out = np.where(ok[:, None, None], swung, carried)
    return np.where(use[:, None, None], posed, out) if j in SPIN_REFERENCE else out


def forward_kinematics(rest: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Posed bone matrices from rest matrices and pose-bone basis matrices.

    Args:
        rest: (24, 4, 4) ``Bone.matrix_local``, armature space, metres.
        basis: (T, 24, 4, 4) pose-bone ``matrix_basis`` (location @ rotation @ scale).

    Returns:
        (T, 24, 4, 4) float64 posed matrices in armature space (``PoseBone.matrix``); the heads
        are ``[..., :3, 3]``.
    """
    T = basis.shape[0]
    out = np.empty((T, NUM_JOINTS, 4, 4))
    inv_rest = np.linalg.inv(rest)
    for j in range(NUM_JOINTS):
        p = PARENTS[j]
        if p < 0:
            out[:, j] = rest[j] @ basis[:, j]
        else:
            out[:, j] = out[:, p] @ (inv_rest[p] @ rest[j]) @ basis[:, j]
    return out


def basis_matrices(quat: np.ndarray, loc: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """(T, B, 4, 4) ``Translation(loc) @ Rotation(quat) @ Scale(scale)`` (Blender's matrix_basis)."""
    out = np.zeros(quat.shape[:-1] + (4, 4))
    rot = quat_to_matrix(quat)
    if scale is not None:
        rot = rot * np.asarray(scale)[..., None, :]
    out[..., :3, :3] = rot
    out[..., :3, 3] = loc
    out[..., 3, 3] = 1.0
    return out
