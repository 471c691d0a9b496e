"""Synthetic takes for the add-on tests: a plausible moving skeleton with its 2D points.

Joints are built by forward kinematics of the one procedural skeleton from smooth random joint
rotations, so bone lengths are those of an adult (mm) plus a small per-frame jitter, as an
estimator's output has.
"""

from __future__ import annotations

import numpy as np
from scail_protocol import joints as J
from scail_protocol import skeleton
from scail_protocol.camera import intrinsics_from_fov, project
from scail_protocol.sequence import PoseSequence


def _quaternions(angles: np.ndarray) -> np.ndarray:
    """(..., 3) rotation vectors -> (..., 4) unit quaternions (w, x, y, z)."""
    theta = np.linalg.norm(angles, axis=-1, keepdims=True)
    axis = angles / np.maximum(theta, 1e-12)
    return np.concatenate([np.cos(theta / 2), np.sin(theta / 2) * axis], axis=-1)


def make_joints(num_frames: int, seed: int = 0, *, jitter_mm: float = 2.0,
                depth_mm: float = 3500.0) -> np.ndarray:
    """(T, 24, 3) float32 camera-frame joints (mm) of one moving person: the one procedural
    skeleton (``scail_protocol.skeleton``) facing the camera, smooth random joint rotations."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames)[:, None]
    freq = rng.uniform(0.02, 0.15, (1, 24, 3))
    phase = rng.uniform(0, 2 * np.pi, (1, 24, 3))
    amp = rng.uniform(0.1, 0.6, (1, 24, 3))
    local = _quaternions(amp * np.sin(freq * t[..., None] + phase))  # (T, 24, 4)
    offsets = skeleton.bone_offsets_mm()[None] * (
        1 + rng.normal(0, jitter_mm / 300.0, (num_frames, 24, 1)))
    root = np.stack([300 * np.sin(0.01 * t[:, 0]), 100 + 20 * np.sin(0.05 * t[:, 0]),
                     depth_mm + 400 * np.cos(0.013 * t[:, 0])], -1)
    _, joints = skeleton.forward_kinematics(local, root, offsets)
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
