"""Triangle meshes of the conditioning render's capsules, numpy only (no bpy).

A capsule of radius r around segment a-b is drawn as the union of two full spheres (at a and b)
and an open cylinder between them: the same surface as the reference's capsule SDF (reference
§6.3). The spheres are not rotated with the limb, so two capsules meeting at a joint have
identically tessellated spheres there; :func:`capsule_radii` makes the earlier capsule in draw
order very slightly larger so it wins the tie, as it does in the reference (strict "<").

Geometry is in Blender world space, metres. Every capsule has the same topology, so a whole
frame's mesh is rebuilt by writing new vertex positions only.
"""

from __future__ import annotations

import numpy as np

SPHERE_SEGMENTS = 32  # around the axis: facets deviate from the sphere by r·(1 − cos(π/32)) ≈ 0.5 %
SPHERE_RINGS = 16     # pole to pole
CYLINDER_SEGMENTS = 32
TIE_BREAK_MM = 0.005  # radius step per draw position: far below a pixel, far above float error
HIDDEN_Y_M = -1000.0  # unused capsule slots are collapsed to a point behind the camera


def _uv_sphere() -> tuple:
    """Unit sphere: (V, 3) vertices and (F, 3) triangle indices (poles included)."""
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


def _open_cylinder() -> tuple:
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


class CapsuleTemplate:
    """Topology of N capsules (two spheres + a cylinder each) and their vertex placement.

    Attributes:
        verts_per_capsule: vertices of one capsule.
        faces: (N * F, 3) int32 triangles of all capsules (indices into the N capsules' vertices).
    """

    def __init__(self, num_capsules: int):
        sphere_v, sphere_f = _uv_sphere()
        cyl_v, cyl_f = _open_cylinder()
        self.num_capsules = int(num_capsules)
        self._sphere = sphere_v
        self._cylinder = cyl_v
        self._ns, self._nc = len(sphere_v), len(cyl_v)
        one = np.concatenate([sphere_f, sphere_f + self._ns, cyl_f + 2 * self._ns])
        self.verts_per_capsule = 2 * self._ns + self._nc
        self.faces_per_capsule = len(one)
        offsets = np.arange(self.num_capsules, dtype=np.int32)[:, None, None] * self.verts_per_capsule
        self.faces = (one[None] + offsets).reshape(-1, 3)

    def vertices(self, starts_m: np.ndarray, ends_m: np.ndarray, radii_m: np.ndarray,
                 used: np.ndarray) -> np.ndarray:
        """Vertex positions of every capsule slot.

        Args:
            starts_m, ends_m: (N, 3) segment ends, Blender world, metres (ignored where unused).
            radii_m: (N,) radii, metres.
            used: (N,) bool; unused slots collapse to a point behind the camera.

        Returns:
            (N * verts_per_capsule, 3) float32.
        """
        a = np.where(used[:, None], starts_m, (0.0, HIDDEN_Y_M, 0.0))
        b = np.where(used[:, None], ends_m, (0.0, HIDDEN_Y_M, 0.0))
        r = np.where(used, radii_m, 0.0)[:, None, None]
        sphere_a = a[:, None, :] + r * self._sphere[None]
        sphere_b = b[:, None, :] + r * self._sphere[None]
        axis = b - a
        frames = _frames_along(axis)  # (N, 3, 3): columns x, y, z with z along the axis
        local = np.broadcast_to(self._cylinder, (len(a),) + self._cylinder.shape).copy()
        local[..., :2] *= r
        local[..., 2] *= np.linalg.norm(axis, axis=-1)[:, None]
        cylinder = a[:, None, :] + np.einsum("nij,nvj->nvi", frames, local)
        return np.concatenate([sphere_a, sphere_b, cylinder], axis=1).reshape(-1, 3).astype(np.float32)


def _frames_along(axis: np.ndarray) -> np.ndarray:
    """(N, 3, 3) orthonormal frames whose third column is the unit axis (any, if degenerate)."""
    length = np.linalg.norm(axis, axis=-1, keepdims=True)
    z = np.where(length > 1e-12, axis / np.maximum(length, 1e-12), (0.0, 0.0, 1.0))
    helper = np.where(np.abs(z[:, :1]) < 0.9, (1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    x = np.cross(helper, z)
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=-1)


def capsule_radii(num_slots: int, radius_mm: float) -> np.ndarray:
    """(N,) radii in metres, shrinking by TIE_BREAK_MM per slot so earlier slots win ties."""
    return (radius_mm - TIE_BREAK_MM * np.arange(num_slots)) / 1000.0
