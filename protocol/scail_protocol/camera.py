"""Pinhole camera maths: intrinsics from a field of view, projection, and the Blender mapping.

Conventions (used everywhere in the project):

* Camera frame: OpenCV — camera at the origin, x right, y down, z forward; millimetres.
* Pixel coordinates: x = column, y = row; the *centre* of the top-left pixel is (0, 0), as in
  OpenCV and the reference renderer, which casts its rays through integer pixel coordinates.
* Blender: metres, Z up. An imported sequence's camera sits at the Blender origin looking down
  +Y, so camera-frame (x, y, z) mm maps to Blender (x, z, -y) / 1000. Blender measures its image
  plane from the pixel *edges*, so a Blender camera reproducing ``K`` has its principal point half
  a pixel further right and down than ``K`` states (see :func:`blender_camera_from_K`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_FOV_DEG = 55.0  # docs/pipeline.md §3.4: NLF and the renderer assume 55° on the larger side
MIN_DEPTH_MM = 1e-3     # points nearer than this (or behind the camera) do not project

# Camera frame (mm) -> Blender world (m): (x, y, z) -> (x, z, -y) / 1000.
CAMERA_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
MM_PER_M = 1000.0
# Rotation (XYZ Euler, radians) of a Blender camera object that looks down +Y with +Z up.
BLENDER_CAMERA_EULER = (math.pi / 2.0, 0.0, 0.0)
BLENDER_SENSOR_WIDTH_MM = 36.0  # any value works; Blender's default keeps lens values familiar


def focal_from_fov(height: int, width: int, fov_deg: float = DEFAULT_FOV_DEG) -> float:
    """Focal length in pixels for a field of view spanning the larger image side."""
    return max(height, width) / (2.0 * math.tan(math.radians(fov_deg) / 2.0))


def intrinsics_from_fov(height: int, width: int, fov_deg: float = DEFAULT_FOV_DEG) -> np.ndarray:
    """Pinhole intrinsics K with square pixels and the principal point at (W/2, H/2).

    Args:
        height, width: image size in pixels.
        fov_deg: field of view across the larger side, degrees.

    Returns:
        (3, 3) float64 K = [[f, 0, W/2], [0, f, H/2], [0, 0, 1]], f in pixels.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    f = focal_from_fov(height, width, fov_deg)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def project(points_mm: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Project camera-frame points to pixels.

    u = fx·x/z + cx, v = fy·y/z + cy.

    Args:
        points_mm: (..., 3) camera frame, mm; NaN = missing.
        K: (3, 3) intrinsics.

    Returns:
        (..., 2) float64 pixels; NaN for missing points and for points with z < MIN_DEPTH_MM
        (behind or on the camera), which have no image.
    """
    points = np.asarray(points_mm, dtype=np.float64)
    if points.shape[-1] != 3:
        raise ValueError(f"points must be (..., 3), got {points.shape}")
    z = points[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        visible = z >= MIN_DEPTH_MM
        safe_z = np.where(visible, z, 1.0)
        u = K[0, 0] * points[..., 0] / safe_z + K[0, 1] * points[..., 1] / safe_z + K[0, 2]
        v = K[1, 1] * points[..., 1] / safe_z + K[1, 2]
    uv = np.stack([u, v], axis=-1)
    uv[~visible] = np.nan
    return uv


def backproject(uv_px: np.ndarray, depth_mm: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Lift pixels to camera-frame points at given depths (z), the inverse of :func:`project`.

    Args:
        uv_px: (..., 2) pixels.
        depth_mm: (...) z of each point, mm.
        K: (3, 3) intrinsics (no skew).

    Returns:
        (..., 3) float64 camera frame, mm.
    """
    uv = np.asarray(uv_px, dtype=np.float64)
    z = np.asarray(depth_mm, dtype=np.float64)
    x = (uv[..., 0] - K[0, 2]) / K[0, 0] * z
    y = (uv[..., 1] - K[1, 2]) / K[1, 1] * z
    return np.stack([x, y, z * np.ones_like(x)], axis=-1)


def camera_to_blender(points_mm: np.ndarray) -> np.ndarray:
    """Camera frame (mm, x right, y down, z forward) -> Blender world (m, Z up, camera looks +Y)."""
    return np.asarray(points_mm, dtype=np.float64) @ CAMERA_TO_BLENDER.T / MM_PER_M


def blender_to_camera(points_m: np.ndarray) -> np.ndarray:
    """Blender world (m) -> camera frame (mm); the inverse of :func:`camera_to_blender`."""
    return np.asarray(points_m, dtype=np.float64) @ CAMERA_TO_BLENDER * MM_PER_M


@dataclass(frozen=True)
class BlenderCamera:
    """Settings of a Blender camera and render output that reproduce a pinhole K.

    ``sensor_fit`` is always 'HORIZONTAL' so that ``sensor_width_mm`` spans the image width
    whatever the orientation; non-square focal lengths (fy != fx) become a pixel aspect.
    """

    resolution_x: int
    resolution_y: int
    sensor_fit: str
    sensor_width_mm: float
    lens_mm: float
    shift_x: float
    shift_y: float
    pixel_aspect_x: float
    pixel_aspect_y: float


def blender_camera_from_K(K: np.ndarray, height: int, width: int) -> BlenderCamera:
    """Blender camera settings whose projection equals ``K`` for an H x W image.

    Blender's projection (camera looking down its -Z, viewplane from the pixel edges) is
    u_edge = fx·x/z + W/2 − shift_x·W and v_edge = fy·y/z + H/2 + shift_y·W·(fx/fy) for a
    horizontal sensor fit, with fy = fx·pixel_aspect_x/pixel_aspect_y. Our pixel coordinates
    are centre-based, so u_edge = u + 0.5.
    """
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    ycor = fx / fy  # = pixel_aspect_y / pixel_aspect_x; Blender needs both >= 1
    aspect_x, aspect_y = (1.0, ycor) if ycor >= 1.0 else (1.0 / ycor, 1.0)
    return BlenderCamera(
        resolution_x=int(width),
        resolution_y=int(height),
        sensor_fit="HORIZONTAL",
        sensor_width_mm=BLENDER_SENSOR_WIDTH_MM,
        lens_mm=fx * BLENDER_SENSOR_WIDTH_MM / width,
        shift_x=(width / 2.0 - (cx + 0.5)) / width,
        shift_y=((cy + 0.5) - height / 2.0) * ycor / width,
        pixel_aspect_x=aspect_x,
        pixel_aspect_y=aspect_y,
    )


def K_from_blender_camera(cam: BlenderCamera) -> np.ndarray:
    """Intrinsics (centre-based pixels) of Blender camera settings; inverse of the above.

    Only 'HORIZONTAL' sensor fit is supported (what :func:`blender_camera_from_K` produces).
    """
    if cam.sensor_fit != "HORIZONTAL":
        raise ValueError(f"only HORIZONTAL sensor fit is supported, got {cam.sensor_fit!r}")
    width, height = cam.resolution_x, cam.resolution_y
    ycor = cam.pixel_aspect_y / cam.pixel_aspect_x
    fx = cam.lens_mm * width / cam.sensor_width_mm
    fy = fx / ycor
    cx = width / 2.0 - cam.shift_x * width - 0.5
    cy = height / 2.0 + cam.shift_y * width / ycor - 0.5
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def aligned_intrinsics(K: np.ndarray, m: float, s: float, p: float, q: float) -> np.ndarray:
    """The intrinsics of the reference's alignment camera (docs/pipeline.md §9.2).

    K₁ = [[fx·m, 0, cx + p], [0, fy·m·s, cy + q], [0, 0, 1]] for K = [[fx, 0, cx], [0, fy, cy],
    [0, 0, 1]]; with the default K (f, W/2, H/2) this is the reference's K(m, s, p, q).

    Args:
        K: (3, 3) intrinsics the 3D joints were estimated with.
        m: focal scale (dimensionless); s: extra vertical focal scale; p, q: principal-point
            shift in pixels.

    Returns:
        (3, 3) float64 K₁.
    """
    K = np.asarray(K, dtype=np.float64)
    return np.array([[K[0, 0] * m, 0.0, K[0, 2] + p],
                     [0.0, K[1, 1] * m * s, K[1, 2] + q],
                     [0.0, 0.0, 1.0]])


def alignment_parameters(K: np.ndarray, K_aligned: np.ndarray) -> tuple:
    """(m, s, p, q) with ``aligned_intrinsics(K, m, s, p, q) == K_aligned``; the inverse."""
    K, K1 = np.asarray(K, dtype=np.float64), np.asarray(K_aligned, dtype=np.float64)
    m = K1[0, 0] / K[0, 0]
    s = K1[1, 1] / (K[1, 1] * m)
    return float(m), float(s), float(K1[0, 2] - K[0, 2]), float(K1[1, 2] - K[1, 2])
