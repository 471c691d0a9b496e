"""The capsule scene of the conditioning render: which limbs, where, what colour, how shaded.

Shared by the backend's taichi renderer and the Blender-side renderer so that both draw the same
thing (docs/pipeline.md §6). All geometry is in the OpenCV camera frame, millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import joints as J
from .palette import limb_colors_rgb8, shader_rgba

CAPSULE_RADIUS_MM = 21.5  # docs/pipeline.md §6.2

# Shading (docs/pipeline.md §6.4): RGB = base·(AMBIENT + DIFFUSE·n·l)·k + SPECULAR·spec^SHININESS·k.
AMBIENT = 0.3
DIFFUSE = 0.7
SPECULAR = 0.5
SHININESS = 32.0

# Depth attenuation constants (docs/pipeline.md §6.3).
ZNEAR_MM = 0.1
ZFAR_MIN_MM = 10000.0
ZFAR_MAX_MM = 25000.0
DEPTH_FAR_PAD_MM = 6000.0
DEPTH_FAR_MAX_MM = 20000.0

# Ray-marching constants of the reference algorithm (used by the test oracle only).
MARCH_MAX_STEPS = 300
MARCH_HIT_MM = 1e-3
MARCH_MIN_STEP_MM = 1e-4
MARCH_NORMAL_STEP_MM = 1e-3


@dataclass(frozen=True)
class DepthRange:
    """Depth constants of one render call, from the z-range of all its capsule endpoints (mm).

    k(z) = clip(1 − (z − depth_near) / (depth_far − znear), 0, 1) dims far capsules.
    """

    znear: float
    zfar: float
    depth_near: float
    depth_far: float

    @classmethod
    def from_z_range(cls, z_min: float, z_max: float) -> "DepthRange":
        """Constants for endpoints spanning [z_min, z_max] mm (docs/pipeline.md §6.3)."""
        return cls(
            znear=ZNEAR_MM,
            zfar=float(np.clip(z_max, ZFAR_MIN_MM, ZFAR_MAX_MM)),
            depth_near=float(max(z_min, ZNEAR_MM)),
            depth_far=float(min(z_max + DEPTH_FAR_PAD_MM, DEPTH_FAR_MAX_MM)),
        )

    def attenuation(self, z_mm):
        """Depth factor k for camera-frame depths z (mm)."""
        return np.clip(1.0 - (np.asarray(z_mm) - self.depth_near) / (self.depth_far - self.znear),
                       0.0, 1.0)


@dataclass(frozen=True)
class CapsuleScene:
    """Capsules of one frame in draw order (earlier wins exact depth ties).

    Attributes:
        starts: (N, 3) float32 segment start points, camera frame, mm.
        ends: (N, 3) float32 segment end points, camera frame, mm.
        colors: (N, 4) float32 shader RGBA (RGB/300 + 0.15, alpha 0.8).
        person: (N,) int32 index of the person each capsule belongs to.
        limb: (N,) int32 limb index into ``joints.OPENPOSE18_LIMBS``.
    """

    starts: np.ndarray
    ends: np.ndarray
    colors: np.ndarray
    person: np.ndarray
    limb: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)


def frame_capsules(joints_op18_mm: np.ndarray) -> CapsuleScene:
    """Capsules of every person of one frame.

    A limb is drawn only when both endpoints are present (finite). People are appended in order,
    each in the reference draw order; with one person the default palette is used, with several
    the pastel/saturated palettes of the multi-person path (docs/pipeline.md §10).

    Args:
        joints_op18_mm: (P, 18, 3) OpenPose-18 joints, camera frame, mm; NaN = missing.
    """
    joints = np.asarray(joints_op18_mm, dtype=np.float32)
    if joints.ndim != 3 or joints.shape[1:] != (18, 3):
        raise ValueError(f"joints must be (P, 18, 3), got {joints.shape}")
    num_people = joints.shape[0]
    limbs = np.asarray(J.OPENPOSE18_LIMBS)[list(J.LIMB_DRAW_ORDER)]
    order = np.asarray(J.LIMB_DRAW_ORDER)
    starts, ends = joints[:, limbs[:, 0]], joints[:, limbs[:, 1]]  # (P, L, 3)
    drawn = np.isfinite(starts).all(-1) & np.isfinite(ends).all(-1)  # (P, L)
    palettes = np.stack([shader_rgba(limb_colors_rgb8(p, num_people))[order]
                         for p in range(num_people)]) if num_people else np.zeros((0, len(order), 4))
    person = np.broadcast_to(np.arange(num_people)[:, None], drawn.shape)
    limb = np.broadcast_to(order[None, :], drawn.shape)
    return CapsuleScene(
        starts=starts[drawn].astype(np.float32),
        ends=ends[drawn].astype(np.float32),
        colors=palettes[drawn].astype(np.float32),
        person=person[drawn].astype(np.int32),
        limb=limb[drawn].astype(np.int32),
    )


def drawn_endpoint_z_range(joints_op18_mm: np.ndarray):
    """(z_min, z_max) in mm over the endpoints of every drawn limb, or None if nothing is drawn.

    Args:
        joints_op18_mm: (..., 18, 3) OpenPose-18 joints of any number of frames and people.
    """
    joints = np.asarray(joints_op18_mm, dtype=np.float64).reshape(-1, 18, 3)
    limbs = np.asarray(J.OPENPOSE18_LIMBS)
    starts, ends = joints[:, limbs[:, 0]], joints[:, limbs[:, 1]]
    drawn = np.isfinite(starts).all(-1) & np.isfinite(ends).all(-1)
    if not drawn.any():
        return None
    z = np.concatenate([starts[drawn][:, 2], ends[drawn][:, 2]])
    return float(z.min()), float(z.max())
