"""A plain studio backdrop (floor and wall) drawn behind the rendered figure, in numpy.

The figure is rendered on a transparent film; compositing it here keeps the render's alpha as an
exact foreground mask and costs nothing per frame.
"""

from __future__ import annotations

import numpy as np
from scail_protocol.camera import CAMERA_TO_BLENDER

WALL_SRGB8 = (204, 208, 212)
FLOOR_SRGB8 = (170, 164, 154)
FLOOR_FAR_SRGB8 = (188, 184, 178)  # the floor lightens toward the horizon
FLOOR_FADE_M = 12.0                 # distance over which it does
HORIZON_BLEND = 0.035               # |ray slope| over which floor and wall blend (a soft cove)


def backdrop(stage_to_world: np.ndarray, camera_height_m: float, K: np.ndarray, size) -> np.ndarray:
    """The backdrop seen by the camera.

    Args:
        stage_to_world: (4, 4) from :func:`.cameras.stage_to_world`.
        camera_height_m: camera height above the floor (z = 0 of the stage), metres.
        K: (3, 3) intrinsics.
        size: (H, W) pixels.

    Returns:
        (H, W, 3) float32 sRGB in [0, 1].
    """
    height, width = size
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    rays_world = rays_cam @ CAMERA_TO_BLENDER.T
    rays_stage = rays_world @ stage_to_world[:3, :3]  # R^T applied to row vectors
    slope = rays_stage[..., 2] / np.linalg.norm(rays_stage[..., :2], axis=-1).clip(1e-9)
    with np.errstate(divide="ignore"):
        distance = np.where(slope < 0, camera_height_m / -slope, np.inf)
    far = np.clip(distance / FLOOR_FADE_M, 0.0, 1.0)[..., None]
    floor = (1.0 - far) * np.array(FLOOR_SRGB8) + far * np.array(FLOOR_FAR_SRGB8)
    wall_weight = np.clip(0.5 + slope / (2.0 * HORIZON_BLEND), 0.0, 1.0)[..., None]
    image = wall_weight * np.array(WALL_SRGB8) + (1.0 - wall_weight) * floor
    return (image / 255.0).astype(np.float32)


def composite(rgba: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Lay a straight-alpha render over the backdrop.

    Args:
        rgba: (H, W, 4) uint8 render (straight alpha, as Blender writes PNG).
        background: (H, W, 3) float32 sRGB in [0, 1].

    Returns:
        (H, W, 3) uint8 RGB.
    """
    colour = rgba[..., :3].astype(np.float32) / 255.0
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    out = colour * alpha + background * (1.0 - alpha)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
