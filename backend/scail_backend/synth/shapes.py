"""Closed surface meshes as numpy arrays: ellipsoids and tapered capsules.

Every builder returns ``(verts, faces)``: verts (N, 3) float64 in the caller's frame (metres),
faces a list of vertex-index tuples (quads, and triangles at the poles), outward facing
(counter-clockwise seen from outside).
"""

from __future__ import annotations

import numpy as np

SEGMENTS = 20      # vertices around every ring
ELLIPSOID_RINGS = 12  # latitude bands of an ellipsoid
CAP_RINGS = 5      # latitude bands of each capsule end
BODY_RINGS = 4     # bands along a capsule's straight part


def _orthonormal_frame(axis: np.ndarray, up_hint=None):
    """(u, v, w): w along axis, u as close to up_hint as possible, right-handed."""
    w = axis / np.linalg.norm(axis)
    hint = np.array((0.0, 0.0, 1.0) if up_hint is None else up_hint, np.float64)
    if abs(np.dot(hint, w)) > 0.95:
        hint = np.array((0.0, 1.0, 0.0)) if abs(w[1]) < 0.9 else np.array((1.0, 0.0, 0.0))
    u = hint - np.dot(hint, w) * w
    u /= np.linalg.norm(u)
    return u, np.cross(w, u), w


def _lathe(axial: np.ndarray, radius: np.ndarray, segments: int):
    """A surface of revolution about +Z in unit coordinates.

    ``axial``/``radius`` list the profile from the bottom pole (radius 0) to the top pole
    (radius 0). Returns verts as (N, 3) with (cos φ·r, sin φ·r, axial) and faces.
    """
    phi = np.linspace(0.0, 2.0 * np.pi, segments, endpoint=False)
    inner = slice(1, len(axial) - 1)
    rings = np.stack([np.cos(phi)[None] * radius[inner, None],
                      np.sin(phi)[None] * radius[inner, None],
                      np.broadcast_to(axial[inner, None], (len(axial) - 2, segments))], axis=-1)
    verts = np.concatenate([[(0.0, 0.0, axial[0])], rings.reshape(-1, 3),
                            [(0.0, 0.0, axial[-1])]])
    num_rings = len(axial) - 2
    top = len(verts) - 1
    faces = []
    for k in range(segments):
        k1 = (k + 1) % segments
        faces.append((0, 1 + k1, 1 + k))
        for ring in range(num_rings - 1):
            a, b = 1 + ring * segments, 1 + (ring + 1) * segments
            faces.append((a + k, a + k1, b + k1, b + k))
        last = 1 + (num_rings - 1) * segments
        faces.append((last + k, last + k1, top))
    return verts, faces


def ellipsoid(center, radii, rotation=None, keep=None, rings: int = ELLIPSOID_RINGS,
              segments: int = SEGMENTS):
    """An ellipsoid, optionally cut to the faces whose vertices all pass ``keep``.

    Args:
        center: (3,) metres.
        radii: (3,) semi-axes along the (rotated) x, y, z, metres.
        rotation: optional (3, 3) matrix applied to the axes.
        keep: optional function of (N, 3) unit-sphere directions (before scaling) -> (N,) bool;
            faces with a vertex outside are dropped (e.g. a hair cap), leaving an open surface.
        rings, segments: tessellation.
    """
    theta = np.linspace(-np.pi / 2, np.pi / 2, rings + 1)
    unit, faces = _lathe(np.sin(theta), np.cos(theta), segments)
    if keep is not None:
        inside = np.asarray(keep(unit), bool)
        faces = [f for f in faces if inside[list(f)].all()]
        used = np.unique(np.concatenate([np.asarray(f) for f in faces]))
        remap = -np.ones(len(unit), np.int64)
        remap[used] = np.arange(len(used))
        unit = unit[used]
        faces = [tuple(int(remap[i]) for i in f) for f in faces]
    verts = unit * np.asarray(radii, np.float64)
    if rotation is not None:
        verts = verts @ np.asarray(rotation, np.float64).T
    return verts + np.asarray(center, np.float64), faces


def capsule(a, b, radius_a: float, radius_b: float, aspect: float = 1.0, up_hint=None,
            segments: int = SEGMENTS):
    """A tapered capsule: radius_a at ``a``, radius_b at ``b``, round ends.

    Args:
        a, b: (3,) end centres, metres (distinct).
        radius_a, radius_b: end radii, metres.
        aspect: cross-section width / height; the height axis is the one nearest ``up_hint``.
        up_hint: (3,) direction for the cross-section's height axis (default +Z).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    length = float(np.linalg.norm(b - a))
    if length <= 0:
        raise ValueError("capsule ends must differ")
    cap = np.linspace(-np.pi / 2, 0.0, CAP_RINGS + 1)
    body = np.linspace(0.0, 1.0, BODY_RINGS + 1)[1:-1]
    axial = np.concatenate([radius_a * np.sin(cap), body * length,
                            length + radius_b * np.sin(-cap[::-1])])
    radius = np.concatenate([radius_a * np.cos(cap), radius_a + body * (radius_b - radius_a),
                             radius_b * np.cos(cap[::-1])])
    unit, faces = _lathe(axial, radius, segments)
    u, v, w = _orthonormal_frame(b - a, up_hint)
    verts = a + unit[:, :1] * u + unit[:, 1:2] * aspect * v + unit[:, 2:3] * w
    return verts, faces


def loft(z, half_width, half_depth, centre_y, segments: int = SEGMENTS):
    """A closed tube of elliptical rings along +Z, capped by a pole at each end.

    Args:
        z: (K,) increasing ring heights, metres; the first and last rings are closed by poles
            at those heights (give them small widths for a rounded end).
        half_width, half_depth: (K,) ring semi-axes along x and y, metres.
        centre_y: (K,) ring centres' y, metres (x = 0).
    """
    z = np.asarray(z, np.float64)
    inner = np.concatenate([[0.0], np.ones(len(z)), [0.0]])
    axial = np.concatenate([[z[0]], z, [z[-1]]])
    unit, faces = _lathe(axial, inner, segments)
    ring = np.concatenate([[0], np.repeat(np.arange(len(z)), segments), [len(z) - 1]])
    verts = np.stack([unit[:, 0] * np.asarray(half_width)[ring],
                      unit[:, 1] * np.asarray(half_depth)[ring] + np.asarray(centre_y)[ring],
                      unit[:, 2]], axis=-1)
    return verts, faces
