"""Synthetic takes for the add-on tests: a plausible moving skeleton with its 2D points.

Joints are built by forward kinematics from smooth random joint rotations, so bone lengths are
those of an adult (mm) plus a small per-frame jitter, as an estimator's output has.
"""

from __future__ import annotations

import numpy as np
from scail_protocol import joints as J
from scail_protocol.camera import intrinsics_from_fov, project
from scail_protocol.sequence import PoseSequence

# Rest offsets of each joint from its parent, camera frame (x right, y down, z forward), mm,
# for a person facing the camera (their left is on the image's right, +x).
_OFFSETS_MM = np.array([
    (0, 0, 0), (-90, 80, 0), (90, 80, 0), (0, -110, 0), (0, 380, 0), (0, 380, 0), (0, -130, 0),
    (0, 400, 0), (0, 400, 0), (0, -60, 0), (0, 60, -120), (0, 60, -120), (0, -210, 0),
    (-70, -90, 0), (70, -90, 0), (0, -90, 0), (-120, 10, 0), (120, 10, 0), (-260, 0, 0),
    (260, 0, 0), (-250, 0, 0), (250, 0, 0), (-80, 0, 0), (80, 0, 0)], dtype=np.float64)
_OFFSETS_MM[:, 0] *= -1  # the table above is written for a person facing away


def _rotations(angles: np.ndarray) -> np.ndarray:
    """(..., 3) rotation vectors -> (..., 3, 3) matrices (Rodrigues)."""
    theta = np.linalg.norm(angles, axis=-1, keepdims=True)[..., None]
    k = np.divide(angles, np.maximum(theta[..., 0], 1e-12))
    K = np.zeros(angles.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    K = K - np.swapaxes(K, -1, -2)
    return np.eye(3) + np.sin(theta) * K + (1 - np.cos(theta)) * K @ K


def make_joints(num_frames: int, seed: int = 0, *, jitter_mm: float = 2.0,
                depth_mm: float = 3500.0) -> np.ndarray:
    """(T, 24, 3) float32 camera-frame joints (mm) of one moving person."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames)[:, None]
    freq = rng.uniform(0.02, 0.15, (1, 24, 3))
    phase = rng.uniform(0, 2 * np.pi, (1, 24, 3))
    amp = rng.uniform(0.1, 0.6, (1, 24, 3))
    angles = amp * np.sin(freq * t[..., None] + phase)  # (T, 24, 3)
    rot = _rotations(angles)
    offsets = _OFFSETS_MM[None] * (1 + rng.normal(0, jitter_mm / 300.0, (num_frames, 24, 1)))
    world_rot = np.empty_like(rot)
    joints = np.empty((num_frames, 24, 3))
    root = np.stack([300 * np.sin(0.01 * t[:, 0]), 100 + 20 * np.sin(0.05 * t[:, 0]),
                     depth_mm + 400 * np.cos(0.013 * t[:, 0])], -1)
    for j, p in enumerate(J.SMPL24_PARENTS):
        if p < 0:
            world_rot[:, j], joints[:, j] = rot[:, j], root
        else:
            world_rot[:, j] = world_rot[:, p] @ rot[:, j]
            joints[:, j] = joints[:, p] + np.einsum("tij,tj->ti", world_rot[:, p], offsets[:, j])
    return joints.astype(np.float32)


def make_sequence(num_frames: int = 40, num_people: int = 1, *, seed: int = 0,
                  size=(224, 128), gaps=()) -> PoseSequence:
    """A PoseSequence of ``num_people`` moving people with 2D points projected from the 3D.

    ``gaps``: (person, start, stop) frame ranges where that person is missing (NaN).
    """
    height, width = size
    K = intrinsics_from_fov(height, width)
    joints = np.stack([make_joints(num_frames, seed + p, depth_mm=3500 + 600 * p)
                       for p in range(num_people)])
    joints[:, :, :, 0] += (np.arange(num_people) - (num_people - 1) / 2)[:, None, None] * 700
    rng = np.random.default_rng(seed)
    kp2d = np.full((num_people, num_frames, J.NUM_WHOLEBODY, 2), np.nan, np.float32)
    body = project(joints[:, :, list(J.OPENPOSE18_FROM_SMPL24[:14])], K)
    kp2d[:, :, :14] = body
    head = project(joints[:, :, J.SMPL24["head"]], K)
    for part, anchor in ((J.FACE, head), (slice(14, 18), head),
                         (J.LEFT_HAND, project(joints[:, :, J.SMPL24["left_wrist"]], K)),
                         (J.RIGHT_HAND, project(joints[:, :, J.SMPL24["right_wrist"]], K))):
        n = part.stop - part.start
        kp2d[:, :, part] = anchor[:, :, None, :] + rng.normal(0, 6, (1, 1, n, 2))
    kp2d[:, :, J.FEET] = project(joints[:, :, [10, 10, 7, 11, 11, 8]], K)
    score = np.where(np.isfinite(kp2d[..., 0]), 0.9, np.nan).astype(np.float32)
    bbox = np.concatenate([np.nanmin(kp2d, axis=2), np.nanmax(kp2d, axis=2)], -1)
    for person, start, stop in gaps:
        for array in (joints, kp2d, score, bbox):
            array[person, start:stop] = np.nan
    return PoseSequence(fps=30.0, size=(height, width), K=K, joints3d=joints, kp2d=kp2d,
                        kp2d_score=score, bbox=bbox, track_id=np.arange(num_people) + 1,
                        meta={"estimator": "synthetic-test"})
