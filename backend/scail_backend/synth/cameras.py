"""Camera set-ups of the synthetic clips, and the stage -> camera transform.

The Blender camera always sits where :mod:`scail_protocol.camera` puts an imported sequence's
camera: at the Blender origin, looking down +Y (``BLENDER_CAMERA_EULER``), with the settings of
``blender_camera_from_K``. A set-up is realised by placing the *stage* (the floor, the figure and
its props, authored in the body frame of :mod:`.skeleton`) in front of that camera, so Blender
world coordinates are camera coordinates and ``blender_to_camera`` gives the OpenCV frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scail_protocol.camera import DEFAULT_FOV_DEG, intrinsics_from_fov
from scail_protocol.errors import ScailError


@dataclass(frozen=True)
class CameraSetup:
    """Where the camera stands relative to the figure's starting spot (stage origin)."""

    name: str
    distance_m: float       # horizontal distance from the stage origin
    height_m: float         # camera height above the floor
    yaw_deg: float          # azimuth: 0 = in front of the figure, 90 = at its left side
    target_height_m: float  # the camera looks at this point above the stage origin
    fov_deg: float = DEFAULT_FOV_DEG  # across the larger image side
    description: str = ""


LIBRARY = {setup.name: setup for setup in (
    CameraSetup("front", 4.8, 1.05, 0.0, 1.05, description="eye-level, straight on"),
    CameraSetup("side_left", 5.2, 1.05, 90.0, 1.05, description="profile from the figure's left"),
    CameraSetup("three_quarter", 4.8, 1.25, 35.0, 1.0, description="front-left three-quarter view"),
    CameraSetup("high", 4.4, 2.8, -25.0, 0.9, description="looking down from 2.8 m, front-right"),
    CameraSetup("low", 4.6, 0.35, 15.0, 1.05, description="looking up from knee height"),
    CameraSetup("wide", 3.1, 1.1, -10.0, 1.0, 78.0, description="close, wide-angle lens (78°)"),
)}
CAMERAS = tuple(LIBRARY)


def get_camera(name: str) -> CameraSetup:
    """The camera set-up called ``name`` (one of :data:`CAMERAS`)."""
    try:
        return LIBRARY[name]
    except KeyError:
        raise ScailError(f"unknown camera {name!r}; choose one of: {', '.join(CAMERAS)}") from None


def camera_position_m(setup: CameraSetup) -> np.ndarray:
    """(3,) camera centre in the stage frame, metres."""
    yaw = math.radians(setup.yaw_deg)
    return np.array((setup.distance_m * math.sin(yaw), -setup.distance_m * math.cos(yaw),
                     setup.height_m))


def stage_to_world(setup: CameraSetup) -> np.ndarray:
    """(4, 4) rigid transform: stage frame (metres) -> Blender world with the camera at the origin
    looking down +Y, +Z up in the image (so x = image right)."""
    centre = camera_position_m(setup)
    forward = np.array((0.0, 0.0, setup.target_height_m)) - centre
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    rotation = np.stack([right, forward, up])  # rows: world x, y, z expressed in the stage frame
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = -rotation @ centre
    return out


def intrinsics(setup: CameraSetup, size) -> np.ndarray:
    """(3, 3) K of the set-up for an (H, W) image (principal point at the centre)."""
    height, width = size
    return intrinsics_from_fov(height, width, setup.fov_deg)
