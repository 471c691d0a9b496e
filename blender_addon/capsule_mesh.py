"""The conditioning render's capsules as rigid parts, numpy only (no bpy).

A capsule of radius r around segment a-b is drawn as the union of two full spheres (at a and b)
and an open cylinder between them: the same surface as the reference's capsule SDF (reference
§6.3). Each part is one object instancing a shared unit mesh (:func:`unit_sphere`,
:func:`unit_cylinder`) under a per-frame transform (:func:`part_transforms`), so a whole take
is keyed once and rendered as one animation: nothing is rebuilt per frame.

The spheres are never rotated, so two capsules meeting at a joint have identically tessellated
spheres there; :func:`capsule_radii` makes the earlier capsule in draw order very slightly
larger so it wins the tie, as it does in the reference (strict "<").

Geometry is in Blender world space, metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPHERE_SEGMENTS = 32  # around the axis: facets deviate from the sphere by r·(1 − cos(π/32)) ≈ 0.5 %
SPHERE_RINGS = 16     # pole to pole
CYLINDER_SEGMENTS = 32
TIE_BREAK_MM = 0.005  # radius step per draw position: far below a pixel, far above float error
HIDDEN_Y_M = -1000.0  # unused capsule slots are parked this far behind the camera (looks down +Y)
HIDDEN_LENGTH_M = 1e-6  # cylinder length of an unused slot (a zero scale has no inverse)
PARTS = ("sphere_start", "sphere_end", "cylinder")  # the three objects of one capsule slot


def unit_sphere() -> tuple:
    """Unit sphere: (V, 3) float64 vertices and (F, 3) int32 triangles (poles included)."""
    theta = np.linspace(0.0, np.pi, SPHERE_RINGS + 1)[1:-1]  # ring polar angles, poles excluded
    phi = np.linspace(0.0, 2 * np.pi, SPHERE_SEGMENTS, endpoint=False)
    ring = np.stack([np.sin(theta)[:, None] * np.cos(phi), np.sin(theta)[:, None] * np.sin(phi),
                     np.repeat(np.cos(theta)[:, None], len(phi), axis=1)], -1).reshape(-1, 3)
    verts = np.concatenate([[(0.0, 0.0, 1.0)], ring, [(0.0, 0.0, -1.0)]])
    n_rings, seg = len(theta), SPHERE_SEGMENTS
    idx = lambda r, s: 1 + r * seg + (s % seg)  # noqa: E731 - ring/segment -> vertex index
    south = len(verts) - 1
    faces = [(0, idx(0, s), idx(0, s + 1)) for s in range(seg)]
    for r in range(n_rings - 1):
        for s in range(seg):
            faces.append((idx(r, s), idx(r + 1, s), idx(r + 1, s + 1)))
            faces.append((idx(r, s), idx(r + 1, s + 1), idx(r, s + 1)))
    faces += [(idx(n_rings - 1, s), south, idx(n_rings - 1, s + 1)) for s in range(seg)]
    return verts, np.asarray(faces, dtype=np.int32)


def unit_cylinder() -> tuple:
    """Unit-radius open cylinder along +Z from z=0 to z=1: (V, 3) vertices, (F, 3) triangles."""
    phi = np.linspace(0.0, 2 * np.pi, CYLINDER_SEGMENTS, endpoint=False)
    circle = np.stack([np.cos(phi), np.sin(phi)], -1)
    verts = np.concatenate([np.c_[circle, np.zeros(len(phi))], np.c_[circle, np.ones(len(phi))]])
    n = len(phi)
    faces = []
    for s in range(n):
        t = (s + 1) % n
        faces.append((s, t, n + t))
        faces.append((s, n + t, n + s))
    return verts, np.asarray(faces, dtype=np.int32)


@dataclass(frozen=True)
class PartTransforms:
    """Object transforms of the three parts (:data:`PARTS`) of N capsule slots over T frames.

    Attributes:
        location: (T, N, 3, 3) float64, metres, Blender world (part axis second to last).
        rotation: (T, N, 3, 4) float64 unit quaternions (w, x, y, z).
        scale: (T, N, 3, 3) float64 (spheres: r, r, r; cylinder: r, r, length), metres.
    """

    location: np.ndarray
    rotation: np.ndarray
    scale: np.ndarray


def part_transforms(starts_m: np.ndarray, ends_m: np.ndarray, radii_m: np.ndarray,
                    used: np.ndarray) -> PartTransforms:
    """Transforms placing the unit meshes on every capsule slot of every frame.

    Args:
        starts_m, ends_m: (T, N, 3) segment ends, Blender world, metres (ignored where unused).
        radii_m: (N,) radius of each slot, metres.
        used: (T, N) bool; unused slots are parked behind the camera.

    Returns:
        A :class:`PartTransforms`.
    """
    used = np.asarray(used, dtype=bool)
    hidden = np.array((0.0, HIDDEN_Y_M, 0.0))
    a = np.where(used[..., None], starts_m, hidden)
    b = np.where(used[..., None], ends_m, hidden)
    axis = b - a
    length = np.linalg.norm(axis, axis=-1)
    r = np.broadcast_to(np.asarray(radii_m, dtype=np.float64), used.shape)
    location = np.stack([a, b, a], axis=-2)
    rotation = np.zeros(used.shape + (3, 4))
    rotation[..., :2, 0] = 1.0  # spheres: identity
    rotation[..., 2, :] = quaternions_from_matrices(_frames_along(axis.reshape(-1, 3))
                                                    ).reshape(used.shape + (4,))
    scale = np.repeat(r[..., None, None], 3, axis=-2).repeat(3, axis=-1)
    scale[..., 2, 2] = np.maximum(length, HIDDEN_LENGTH_M)
    return PartTransforms(location, rotation, scale)


def _frames_along(axis: np.ndarray) -> np.ndarray:
    """(N, 3, 3) orthonormal frames whose third column is the unit axis (+Z if degenerate)."""
    length = np.linalg.norm(axis, axis=-1, keepdims=True)
    z = np.where(length > 1e-12, axis / np.maximum(length, 1e-12), (0.0, 0.0, 1.0))
    helper = np.where(np.abs(z[:, :1]) < 0.9, (1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    x = np.cross(helper, z)
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=-1)


def quaternions_from_matrices(matrices: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotation matrices -> (N, 4) unit quaternions (w, x, y, z), w >= 0.

    Uses the largest of the four candidate denominators per matrix, so it is stable for every
    rotation, including half turns.
    """
    m = np.asarray(matrices, dtype=np.float64)
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    candidates = np.stack([trace, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], axis=-1)
    pick = np.argmax(candidates, axis=-1)
    q = np.empty((len(m), 4))
    for k in range(4):
        sel = pick == k
        if not sel.any():
            continue
        s = m[sel]
        if k == 0:
            t = 1.0 + trace[sel]
            q[sel] = np.stack([t, s[:, 2, 1] - s[:, 1, 2], s[:, 0, 2] - s[:, 2, 0],
                               s[:, 1, 0] - s[:, 0, 1]], -1)
        elif k == 1:
            t = 1.0 + s[:, 0, 0] - s[:, 1, 1] - s[:, 2, 2]
            q[sel] = np.stack([s[:, 2, 1] - s[:, 1, 2], t, s[:, 0, 1] + s[:, 1, 0],
                               s[:, 0, 2] + s[:, 2, 0]], -1)
        elif k == 2:
            t = 1.0 - s[:, 0, 0] + s[:, 1, 1] - s[:, 2, 2]
            q[sel] = np.stack([s[:, 0, 2] - s[:, 2, 0], s[:, 0, 1] + s[:, 1, 0], t,
                               s[:, 1, 2] + s[:, 2, 1]], -1)
        else:
            t = 1.0 - s[:, 0, 0] - s[:, 1, 1] + s[:, 2, 2]
            q[sel] = np.stack([s[:, 1, 0] - s[:, 0, 1], s[:, 0, 2] + s[:, 2, 0],
                               s[:, 1, 2] + s[:, 2, 1], t], -1)
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[:, :1] < 0, -q, q)


def capsule_radii(num_slots: int, radius_mm: float) -> np.ndarray:
    """(N,) radii in metres, shrinking by TIE_BREAK_MM per slot so earlier slots win ties."""
    return (radius_mm - TIE_BREAK_MM * np.arange(num_slots)) / 1000.0
