"""Unit quaternions and rotation matrices (numpy only): the synthetic figure and the add-on's rig.

Quaternions are (..., 4) float64 in (w, x, y, z) order, the order Blender's
``rotation_quaternion`` uses. Rotations act on column vectors: ``quat_apply(q, v) = R(q) @ v``,
and ``quat_mul(a, b)`` is the rotation "first b, then a".
"""

from __future__ import annotations

import numpy as np


def axis_angle(axis, angle_rad) -> np.ndarray:
    """Rotation by ``angle_rad`` (scalar or (...)) about ``axis`` ((3,) or (..., 3), any length).

    Returns:
        (..., 4) float64 unit quaternions (w, x, y, z).
    """
    axis = np.asarray(axis, dtype=np.float64)
    norm = np.linalg.norm(axis, axis=-1, keepdims=True)
    if np.any(norm == 0):
        raise ValueError("rotation axis must be non-zero")
    half = 0.5 * np.asarray(angle_rad, dtype=np.float64)[..., None]
    return np.concatenate([np.cos(half), np.sin(half) * axis / norm], axis=-1)


def rot_x(angle_rad) -> np.ndarray:
    """Rotation about +X (quaternion, (..., 4))."""
    return axis_angle((1.0, 0.0, 0.0), angle_rad)


def rot_y(angle_rad) -> np.ndarray:
    """Rotation about +Y (quaternion, (..., 4))."""
    return axis_angle((0.0, 1.0, 0.0), angle_rad)


def rot_z(angle_rad) -> np.ndarray:
    """Rotation about +Z (quaternion, (..., 4))."""
    return axis_angle((0.0, 0.0, 1.0), angle_rad)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a·b ((..., 4), broadcast): the rotation b followed by a."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def chain(*quats) -> np.ndarray:
    """Product q1·q2·...·qn: apply qn first and q1 last (intrinsic order reads left to right)."""
    out = quats[0]
    for q in quats[1:]:
        out = quat_mul(out, q)
    return out


def quat_conj(q: np.ndarray) -> np.ndarray:
    """Inverse of unit quaternions (..., 4)."""
    return np.asarray(q, np.float64) * np.array([1.0, -1.0, -1.0, -1.0])


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions -> (..., 3, 3) rotation matrices."""
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], axis=-2)


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (w, x, y, z), w >= 0.

    Note:
        Uses the largest of the four squared components (Shepperd's method), so it is stable at
        every angle including pi.
    """
    m = np.asarray(m, dtype=np.float64)
    t = np.stack([1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2],
                  1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                  1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
                  1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1)
    pick = np.argmax(t, axis=-1)
    cands = np.stack([
        np.stack([t[..., 0], m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                  m[..., 1, 0] - m[..., 0, 1]], -1),
        np.stack([m[..., 2, 1] - m[..., 1, 2], t[..., 1], m[..., 0, 1] + m[..., 1, 0],
                  m[..., 0, 2] + m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], t[..., 2],
                  m[..., 1, 2] + m[..., 2, 1]], -1),
        np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0],
                  m[..., 1, 2] + m[..., 2, 1], t[..., 3]], -1),
    ], -2)
    q = np.take_along_axis(cands, pick[..., None, None], axis=-2)[..., 0, :]
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return q * np.where(q[..., :1] < 0, -1.0, 1.0)


def make_continuous(q: np.ndarray, axis: int = 0) -> np.ndarray:
    """Flip quaternion signs along ``axis`` so neighbours lie in one hemisphere (dot >= 0).

    Keys on every frame are interpolated component-wise by Blender; without this, q and -q
    (the same rotation) side by side would interpolate through a spin.
    """
    q = np.moveaxis(np.asarray(q, dtype=np.float64), axis, 0).copy()
    if len(q) > 1:
        dots = np.sum(q[1:] * q[:-1], axis=-1)
        flips = np.cumprod(np.where(dots < 0, -1.0, 1.0), axis=0)
        q[1:] *= flips[..., None]
    return np.moveaxis(q, 0, axis)


def quat_apply(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors: R(q) @ v for (..., 4) quaternions and (..., 3) vectors (broadcast)."""
    return np.einsum("...ij,...j->...i", quat_to_matrix(q), np.asarray(v, np.float64))


def slerp(a: np.ndarray, b: np.ndarray, weight) -> np.ndarray:
    """Spherical interpolation from ``a`` (weight 0) to ``b`` (weight 1), shortest path.

    Args:
        a, b: (..., 4) unit quaternions (broadcast).
        weight: scalar or (...) in [0, 1].
    """
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    w = np.asarray(weight, np.float64)[..., None]
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    small = sin_theta < 1e-6
    safe = np.where(small, 1.0, sin_theta)
    wa = np.where(small, 1.0 - w, np.sin((1.0 - w) * theta) / safe)
    wb = np.where(small, w, np.sin(w * theta) / safe)
    out = wa * a + wb * b
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def mirror_left_to_right(q: np.ndarray) -> np.ndarray:
    """Mirror rotations through the body's sagittal plane (x -> -x).

    A left-side joint rotation becomes the matching right-side one: the rotation vector
    (a, b, c) becomes (a, -b, -c), i.e. the quaternion (w, x, y, z) becomes (w, x, -y, -z).
    """
    return np.asarray(q, np.float64) * np.array([1.0, 1.0, -1.0, -1.0])
