"""A marching, turning, drifting person on a known floor, filmed by a tilted camera.

Ground truth for grounding and retargeting: the world has its floor on Z = 0, the balls of the
feet touch it exactly while planted, and the camera looks down at the person from a known pitch
and roll. The take is returned the way an estimator would give it (camera-frame millimetres).
"""

from __future__ import annotations

import math

import numpy as np
from rigs import _OFFSETS_M
from scail_protocol import camera as C
from scail_protocol import joints as J
from scail_protocol.sequence import PoseSequence

FPS = 30.0
STEP_HZ = 0.9  # steps per second of each foot
DRIFT_M_S = 0.15  # the body drifts sideways this fast (a planted foot slides this fast)


def _rot(axis: str, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def world_joints(num_frames: int, *, turn_deg: float = 40.0) -> tuple:
    """(T, 24, 3) world joints (metres, Z up, floor Z = 0) and (T, 2) bool planted balls."""
    t = np.arange(num_frames) / FPS
    phase = 2 * np.pi * STEP_HZ * t
    lift = np.stack([np.maximum(np.sin(phase), 0), np.maximum(-np.sin(phase), 0)], -1)  # (T, 2)
    joints = np.zeros((num_frames, 24, 3))
    for i in range(num_frames):
        local = {}
        rot = {0: np.eye(3)}
        for j, p in enumerate(J.SMPL24_PARENTS):
            if p < 0:
                local[j] = np.zeros(3)
                continue
            r = rot[p]
            name = J.SMPL24_NAMES[p]
            side = 0 if name.startswith("left") else 1
            if name.endswith("_hip"):
                r = r @ _rot("x", -0.2 - 0.9 * lift[i, side])  # thigh forward (-Y), knees soft
            elif name.endswith("_knee"):
                r = r @ _rot("x", 0.4 + 1.6 * lift[i, side])
            elif name.endswith("_shoulder"):
                r = r @ _rot("x", 0.4 * math.sin(phase[i] + (np.pi if side else 0)))
            rot[j] = r
            local[j] = local[p] + r @ _OFFSETS_M[j]
        joints[i] = np.array([local[j] for j in range(24)])
    yaw = np.radians(turn_deg) * np.sin(2 * np.pi * t / (num_frames / FPS))
    balls = list((J.SMPL24["left_foot"], J.SMPL24["right_foot"]))
    for i in range(num_frames):
        joints[i] = joints[i] @ _rot("z", yaw[i]).T
        joints[i, :, 2] -= joints[i, balls, 2].min()
        joints[i, :, 0] += DRIFT_M_S * t[i]
    planted = joints[:, balls, 2] < 1e-9
    return joints, planted


def filmed_sequence(num_frames: int = 90, *, pitch_deg: float = 14.0, roll_deg: float = 4.0,
                    camera_at=(0.3, -3.5, 1.5), size=(160, 96)) -> tuple:
    """The take seen from a tilted camera: (PoseSequence, world joints, planted, take_from_world).

    ``take_from_world`` (4, 4) maps world points into the take's Blender frame (the camera at
    the origin looking down +Y), the frame import puts the armature in.
    """
    world, planted = world_joints(num_frames)
    # Camera looking along +Y, pitched down and rolled: take = R^T (world - c).
    cam_rot = _rot("y", math.radians(roll_deg)) @ _rot("x", -math.radians(pitch_deg))
    take_from_world = np.eye(4)
    take_from_world[:3, :3] = cam_rot.T
    take_from_world[:3, 3] = -cam_rot.T @ np.asarray(camera_at, float)
    take = world @ take_from_world[:3, :3].T + take_from_world[:3, 3]
    joints_mm = C.blender_to_camera(take).astype(np.float32)[None]
    height, width = size
    K = C.intrinsics_from_fov(height, width)
    kp2d = np.full((1, num_frames, J.NUM_WHOLEBODY, 2), np.nan, np.float32)
    kp2d[0, :, :14] = C.project(joints_mm[0][:, list(J.OPENPOSE18_FROM_SMPL24[:14])], K)
    score = np.where(np.isfinite(kp2d[..., 0]), 0.9, np.nan).astype(np.float32)
    bbox = np.concatenate([np.nanmin(kp2d[:, :, :14], axis=2), np.nanmax(kp2d[:, :, :14], axis=2)], -1)
    seq = PoseSequence(fps=FPS, size=(height, width), K=K, joints3d=joints_mm, kp2d=kp2d,
                       kp2d_score=score, bbox=bbox, track_id=np.array([1]),
                       meta={"estimator": "synthetic-walk"})
    return seq, world, planted, take_from_world
