"""Retargeting maths (numpy only): SMPL-24 bone orientations onto another skeleton, all frames at once.

Frames and units: everything here is in *world* space (Blender axes, Z up, metres), rotations as
(..., 3, 3) matrices acting on column vectors. Bone matrices follow Blender: a bone's rest matrix
has its head in the last column and its axis (head -> tail) as column 1 (local Y). Skeletons list
every parent before its children.

The transfer (per mapped bone ``b`` driven by source bone ``s``)::

    delta_s(t) = S_s(t) @ S0_s.T             # source rotation away from its canonical rest
    C_b        = arc(F @ y(T0_b) -> y(S0_s)) # turn the target's rest bone onto the source's
    W_b(t)     = delta_s(t) @ C_b @ F @ T0_b # the target bone's posed world orientation

``S0`` is the source rest pose in its canonical placement (facing -Y, left +X, Z up: the SMPL
armature's own rest), ``T0`` the target's rest in world and ``F`` the yaw turning the target's
rest to face -Y. ``C_b`` is what compensates rest-pose differences: a T-pose source drives an
A-pose target because each target bone is first turned onto the source's rest direction; rolls
do not matter because the transfer happens in world space, never in bone-local axes. Bones with
no source keep their rest orientation relative to their parent.

Root motion: the pelvis moves by the source's displacement times the leg-length ratio
(target thigh + shin over source thigh + shin), starting where the target stands. The location
keys may go on a bone above the pelvis (a rig's root-of-motion control, Rigify's ``torso``); the
point that follows the source's pelvis is then the head of a "pelvis point" bone.

Rigs whose mapped bones hang under constrained helpers (Rigify's FK controls under MCH bones)
are not plain parent chains, so the local rotations computed here are only a first guess there:
:func:`evaluation_passes` says which bones must be re-solved against the parent matrices Blender
evaluates, and in which order (the add-on does the evaluating).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import joints as J
from .errors import ScailError
from .rotations import make_continuous, matrix_to_quat
from .runs import true_runs

PELVIS = J.SMPL24["pelvis"]
LEGS = ((J.SMPL24["left_hip"], J.SMPL24["left_knee"], J.SMPL24["left_ankle"]),
        (J.SMPL24["right_hip"], J.SMPL24["right_knee"], J.SMPL24["right_ankle"]))  # thigh, shin, foot
CONTACT_BLEND_FRAMES = 4  # the foot eases into / out of its planted position over this many frames
_EPS = 1e-9


class RetargetError(ScailError):
    """The bone map or the target skeleton cannot be retargeted onto."""


@dataclass(frozen=True)
class Skeleton:
    """Rest pose of an armature in world space.

    Attributes:
        names: bone names (N,).
        parents: (N,) int, index of each bone's parent, -1 for roots; parents come first.
        rest: (N, 4, 4) float64 rest matrices in world space (``matrix_world @ Bone.matrix_local``
            with the object's uniform scale divided out of the rotation), metres.
        lengths: (N,) float64 bone lengths in world units, metres.
        scale: the object's uniform scale (world units per armature unit).
    """

    names: tuple
    parents: np.ndarray
    rest: np.ndarray
    lengths: np.ndarray
    scale: float = 1.0

    @property
    def heads(self) -> np.ndarray:
        return self.rest[:, :3, 3]

    def tails(self) -> np.ndarray:
        return self.heads + self.rest[:, :3, 1] * self.lengths[:, None]


def shortest_arc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations turning directions ``a`` onto ``b`` by the smallest angle.

    Args:
        a, b: (..., 3) non-zero vectors (any length; broadcast).

    Note:
        Opposite vectors have no unique shortest arc: they turn by pi about an axis
        perpendicular to ``a`` (the one nearest to +Z x a, else +X x a).
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a, b = np.broadcast_arrays(a / np.linalg.norm(a, axis=-1, keepdims=True),
                               b / np.linalg.norm(b, axis=-1, keepdims=True))
    axis = np.cross(a, b)
    c = np.sum(a * b, axis=-1)
    opposite = c < -1 + 1e-9
    if np.any(opposite):
        fallback = np.cross(a, np.array([0.0, 0.0, 1.0]))
        weak = np.linalg.norm(fallback, axis=-1) < 1e-6
        fallback[weak] = np.cross(a[weak], np.array([1.0, 0.0, 0.0]))
        fallback /= np.linalg.norm(fallback, axis=-1, keepdims=True)
        axis = np.where(opposite[..., None], fallback, axis)
    k = np.zeros(axis.shape + (3,))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -axis[..., 2], axis[..., 1], -axis[..., 0]
    k = k - np.swapaxes(k, -1, -2)
    # Rodrigues with |axis| = sin: R = I + K + K^2 / (1 + cos); the antiparallel case uses a unit
    # axis and angle pi: R = I + 2 K^2.
    factor = np.where(opposite, 2.0, 1.0 / np.maximum(1.0 + c, _EPS))
    out = np.eye(3) + np.where(opposite[..., None, None], 0.0, k) + factor[..., None, None] * k @ k
    return out


def yaw_to_face_minus_y(left: np.ndarray) -> np.ndarray:
    """(3, 3) rotation about +Z turning a character whose left is ``left`` to face -Y (left +X)."""
    flat = np.array([left[0], left[1], 0.0], np.float64)
    if np.linalg.norm(flat) < 1e-9:
        raise RetargetError("the target's hips are not side by side in its rest pose; cannot "
                            "tell which way it faces")
    return shortest_arc(flat, np.array([1.0, 0.0, 0.0]))


def rest_corrections(source_rest: np.ndarray, target: Skeleton, mapping: np.ndarray,
                     facing: np.ndarray) -> np.ndarray:
    """(N, 3, 3) per target bone: ``C_b @ F`` (module docstring); ``F`` alone where unmapped.

    Args:
        source_rest: (24, 3, 3) source canonical rest orientations.
        target: the target skeleton.
        mapping: (N,) int source bone of each target bone, -1 = none.
        facing: (3, 3) the yaw ``F``.
    """
    out = np.broadcast_to(facing, (len(mapping), 3, 3)).copy()
    mapped = np.flatnonzero(mapping >= 0)
    if len(mapped):
        target_axis = target.rest[mapped, :3, 1] @ facing.T
        source_axis = source_rest[mapping[mapped], :, 1]
        out[mapped] = shortest_arc(target_axis, source_axis) @ facing
    return out


def transfer_orientations(source_world: np.ndarray, source_rest: np.ndarray, target: Skeleton,
                          mapping: np.ndarray, facing: np.ndarray) -> np.ndarray:
    """(T, N, 3, 3) posed world orientations of the mapped target bones (others: NaN).

    Args:
        source_world: (T, 24, 3, 3) posed world orientations of the SMPL bones.
        source_rest: (24, 3, 3) their canonical rest orientations (facing -Y).
        target, mapping, facing: as in :func:`rest_corrections`.
    """
    T = source_world.shape[0]
    out = np.full((T, len(mapping), 3, 3), np.nan)
    corrections = rest_corrections(source_rest, target, mapping, facing)
    for b in np.flatnonzero(mapping >= 0):
        s = mapping[b]
        fixed = source_rest[s].T @ corrections[b] @ target.rest[b, :3, :3]
        out[:, b] = source_world[:, s] @ fixed
    return out


@dataclass
class Pose:
    """A posed skeleton on T frames, world space.

    Attributes:
        rotations: (T, N, 3, 3) posed world orientations.
        heads: (T, N, 3) posed bone heads, metres.
        quats: (T, N, 4) pose-bone quaternions (w, x, y, z), each relative to the bone's rest
            as carried by its posed parent (Blender's ``rotation_quaternion``), sign-continuous.
        root_location: (T, 3) pose-bone location of ``root`` in its rest space, armature units.
    """

    rotations: np.ndarray
    heads: np.ndarray
    quats: np.ndarray
    root_location: np.ndarray


def pose_skeleton(target: Skeleton, desired: np.ndarray, root: int, root_head: np.ndarray,
                  bones=None, point: int | None = None) -> Pose:
    """Forward kinematics of ``target`` with the given world orientations and root position.

    Args:
        target: the skeleton.
        desired: (T, N, 3, 3) world orientations; bones whose entry is NaN keep their rest
            orientation relative to their parent (identity quaternion).
        root: index of the bone that carries the root motion (its ``location``).
        root_head: (T, 3) world position of the head of ``point``, metres.
        bones: indices to evaluate (parents first, ``point`` among them); default all. Others
            are left at zero.
        point: the bone whose head follows ``root_head`` (default ``root``); ``root`` or one
            of its descendants.

    Raises:
        RetargetError: ``point`` does not hang under ``root``.
    """
    point = root if point is None else point
    if point != root:
        below = _descendants(target.parents, root)
        if not below[point]:
            raise RetargetError(f"the pelvis point {target.names[point]!r} does not hang under "
                                f"the root-motion bone {target.names[root]!r}")
        # Place the root as if the point were rigid to it, then translate by what is left over.
        goal = root_head
        root_head = goal + (target.heads[root] - target.heads[point])
    T, N = desired.shape[:2]
    rot = np.zeros((T, N, 3, 3))
    heads = np.zeros((T, N, 3))
    quats = np.zeros((T, N, 4))
    quats[..., 0] = 1.0
    root_location = np.zeros((T, 3))
    R0, h0 = target.rest[:, :3, :3], target.heads
    for b in range(N) if bones is None else bones:
        p = target.parents[b]
        if p < 0:
            carried = np.broadcast_to(R0[b], (T, 3, 3))
            carried_head = np.broadcast_to(h0[b], (T, 3))
        else:
            carried = rot[:, p] @ (R0[p].T @ R0[b])
            carried_head = heads[:, p] + (rot[:, p] @ (R0[p].T @ (h0[b] - h0[p])))
        mapped = np.isfinite(desired[0, b, 0, 0])
        rot[:, b] = desired[:, b] if mapped else carried
        if b == root:
            heads[:, b] = root_head
            root_carried = carried
            root_location[:] = np.einsum("tji,tj->ti", carried, root_head - carried_head)
        else:
            heads[:, b] = carried_head
        if mapped:
            quats[:, b] = matrix_to_quat(np.swapaxes(carried, -1, -2) @ rot[:, b])
    if point != root:
        shift = goal - heads[:, point]
        moved = below.copy()
        if bones is not None:
            moved &= np.isin(np.arange(N), list(bones))
        heads[:, moved] += shift[:, None]
        root_location += np.einsum("tji,tj->ti", root_carried, shift)
    return Pose(rot, heads, make_continuous(quats, axis=0), root_location / target.scale)


def _descendants(parents: np.ndarray, bone: int) -> np.ndarray:
    """(N,) bool: ``bone`` and everything below it (parents listed before children)."""
    out = np.zeros(len(parents), bool)
    out[bone] = True
    for b in range(bone + 1, len(parents)):
        out[b] = parents[b] >= 0 and out[parents[b]]
    return out


def evaluation_passes(parents: np.ndarray, mapped: np.ndarray, constrained: np.ndarray,
                      targets: dict, *, root: int, point: int) -> tuple:
    """On which evaluation pass each mapped bone must be re-solved against Blender's own matrices.

    :func:`pose_skeleton` is exact for a mapped bone when every bone between it and its nearest
    mapped ancestor is carried rigidly by its parent. A bone under a constrained helper (or not
    inheriting rotation) is not: its local rotation has to be solved against its parent's
    *evaluated* matrix, which is final only once every mapped bone it depends on (through
    parents and constraint targets) is final. Bones that depend on the same set of solved
    bones share a pass, so a rig needs as many evaluations of the whole take as the longest
    chain of such dependencies (4 for a generated Rigify rig), not one per bone.

    Args:
        parents: (N,) int parent of each bone, -1 for roots (parents first).
        mapped: (N,) bool, bones driven by an SMPL bone.
        constrained: (N,) bool, bones not carried rigidly by their parent (constraints, no
            inherited rotation).
        targets: {bone: iterable of bones its constraints read} (same armature only).
        root: the bone carrying the root motion (``location``).
        point: the bone whose head follows the source's pelvis (``root`` or below it).

    Returns:
        (solve (N,) int, root_pass int): the pass (1, 2, ...) on which each mapped bone is
        re-solved, 0 where :func:`pose_skeleton` is already exact (and for unmapped bones);
        the pass on which the root location is re-solved, 0 when it is exact already.

    Note:
        A dependency cycle through constraints (which Blender would report too) is cut where
        it is found; the bones on it are solved as if it were not there.
    """
    parents = np.asarray(parents)
    N = len(parents)
    solve = np.zeros(N, int)
    final = np.full(N, -1)  # pass after which a bone's evaluated orientation is right

    def nearest_mapped(b):
        x = parents[b]
        plain = not constrained[b]
        while x >= 0 and not mapped[x]:
            plain &= not constrained[x]
            x = parents[x]
        return x, plain

    def depends_on(b) -> set:
        """Mapped bones whose motion changes where ``b``'s parent carries it."""
        out, seen = set(), set()
        stack = [parents[b], *targets.get(b, ())]
        while stack:
            x = stack.pop()
            if x < 0 or x in seen or x == b:
                continue
            seen.add(x)
            if mapped[x]:
                out.add(x)
                continue
            stack += [parents[x], *targets.get(x, ())]
        return out

    def final_pass(b, visiting=()) -> int:
        if final[b] >= 0:
            return final[b]
        if b in visiting:
            return 0
        above, plain = nearest_mapped(b)
        if plain:
            final[b] = final_pass(above, (*visiting, b)) if above >= 0 else 0
        else:
            deps = depends_on(b)
            solve[b] = 1 + max((final_pass(d, (*visiting, b)) for d in deps), default=0)
            final[b] = solve[b]
        return final[b]

    for b in np.flatnonzero(mapped):
        final_pass(b)
    chain, x = [], point
    while x >= 0 and x != root:
        chain.append(x)
        x = parents[x]
    if x != root:
        raise RetargetError("the pelvis point does not hang under the root-motion bone")
    chain.append(root)
    exact = not any(constrained[c] for c in chain) and not any(solve[c] for c in chain if mapped[c])
    if exact:
        return solve, 0
    deps = depends_on(point) | ({point} if mapped[point] and point != root else set())
    return solve, 1 + max((final_pass(d) for d in deps), default=0)


def leg_length(heads: np.ndarray, legs) -> float:
    """Mean over the given legs of |hip -> knee| + |knee -> ankle| (heads (N, 3) metres)."""
    total = [np.linalg.norm(heads[k] - heads[h]) + np.linalg.norm(heads[a] - heads[k])
             for h, k, a in legs]
    return float(np.mean(total))


def root_trajectory(source_root: np.ndarray, *, ratio: float, target_start: np.ndarray,
                    source_floor_z: float, target_floor_z: float, in_place: bool) -> np.ndarray:
    """(T, 3) world positions of the target's root bone head.

    The height above the floor is the source's times ``ratio``; the horizontal path is the
    source's displacement from its first frame times ``ratio``, starting at ``target_start``
    (or staying there with ``in_place``).

    Args:
        source_root: (T, 3) source pelvis, world, metres.
        ratio: target leg length / source leg length.
        target_start: (3,) where the target's root stands at rest (world).
        source_floor_z, target_floor_z: the floor heights the two stand on.
    """
    out = np.empty_like(source_root, dtype=np.float64)
    out[:, 2] = target_floor_z + ratio * (source_root[:, 2] - source_floor_z)
    if in_place:
        out[:, :2] = target_start[:2]
    else:
        out[:, :2] = target_start[:2] + ratio * (source_root[:, :2] - source_root[0, :2])
    return out


def planted_targets(points: np.ndarray, contact: np.ndarray, floor_z: float,
                    blend_frames: int = CONTACT_BLEND_FRAMES) -> tuple:
    """Where a planted foot point should be, and how strongly, on every frame.

    During a contact run the point stays at the run's mean horizontal position on ``floor_z``;
    on the ``blend_frames`` frames around a run the weight ramps linearly to 0.

    Args:
        points: (T, 3) the foot point (ball of the foot), world, metres.
        contact: (T,) bool.
        floor_z: the height the point has when planted.

    Returns:
        (goal (T, 3), weight (T,)) with weight 1 on contact frames, 0 far from them.
    """
    T = len(points)
    goal = np.array(points, np.float64)
    weight = np.zeros(T)
    for start, stop in true_runs(contact):
        plant = np.array([*points[start:stop, :2].mean(axis=0), floor_z])
        lo, hi = max(0, start - blend_frames), min(T, stop + blend_frames)
        frames = np.arange(lo, hi)
        distance = np.maximum(start - frames, frames - (stop - 1)).clip(min=0)
        w = 1.0 - distance / (blend_frames + 1.0)
        stronger = w > weight[lo:hi]
        weight[lo:hi] = np.where(stronger, w, weight[lo:hi])
        goal[lo:hi] = np.where(stronger[:, None], plant, goal[lo:hi])
    goal = weight[:, None] * goal + (1.0 - weight[:, None]) * points
    return goal, weight


def two_bone_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray,
                goal: np.ndarray) -> tuple:
    """Rotations of the thigh and shin (world, about their heads) that put the ankle at ``goal``.

    The knee stays in the plane through hip, goal and the current knee; an unreachable goal
    straightens the leg toward it.

    Args:
        hip, knee, ankle: (T, 3) current positions, metres.
        goal: (T, 3) wanted ankle positions.

    Returns:
        (thigh_turn, shin_turn): (T, 3, 3) world rotations; the new thigh orientation is
        ``thigh_turn @ thigh`` and the new shin orientation ``shin_turn @ thigh_turn @ shin``.
    """
    l1 = np.linalg.norm(knee - hip, axis=-1)
    l2 = np.linalg.norm(ankle - knee, axis=-1)
    d = goal - hip
    dist = np.linalg.norm(d, axis=-1)
    reach = np.clip(dist, np.abs(l1 - l2) + 1e-6, l1 + l2 - 1e-6)
    u = d / np.maximum(dist, _EPS)[:, None]
    bend = (knee - hip) - np.sum((knee - hip) * u, -1, keepdims=True) * u
    bend_norm = np.linalg.norm(bend, axis=-1)
    fallback = np.cross(u, np.cross(ankle - hip, u))  # straight leg: keep the old bend plane
    bend = np.where(bend_norm[:, None] > 1e-6, bend, fallback)
    bend /= np.maximum(np.linalg.norm(bend, axis=-1), _EPS)[:, None]
    cos_a = np.clip((l1 ** 2 + reach ** 2 - l2 ** 2) / (2 * l1 * reach), -1.0, 1.0)
    new_knee = hip + l1[:, None] * (cos_a[:, None] * u + np.sqrt(1 - cos_a ** 2)[:, None] * bend)
    new_ankle = hip + reach[:, None] * u
    thigh_turn = shortest_arc(knee - hip, new_knee - hip)
    carried_shin = np.einsum("tij,tj->ti", thigh_turn, ankle - knee)
    shin_turn = shortest_arc(carried_shin, new_ankle - new_knee)
    return thigh_turn, shin_turn
