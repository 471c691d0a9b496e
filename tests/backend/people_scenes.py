"""Synthetic scenes of several people for the tracking and cleanup tests.

A person is a fixed adult skeleton (SMPL-24, mm) swinging its arms, whose pelvis follows a
given path in the camera frame (x right, y down, z forward, mm). :func:`detections` turns the
true people into what an estimator hands over: per-frame person slots in shuffled order, with
people hidden where asked, 2D points projected through K.
"""

from __future__ import annotations

import numpy as np

from scail_protocol import joints as J
from scail_protocol.camera import intrinsics_from_fov, project
from scail_protocol.sequence import PoseSequence

SIZE = (512, 896)
K = intrinsics_from_fov(*SIZE)

# Rest offsets from the parent joint (mm, camera frame, person facing the camera).
REST_OFFSETS_MM = np.array([
    (0, 0, 0), (90, 80, 0), (-90, 80, 0), (0, -110, 0), (0, 400, 0), (0, 400, 0), (0, -130, 0),
    (0, 420, 0), (0, 420, 0), (0, -60, 0), (0, 60, -120), (0, 60, -120), (0, -210, 0),
    (70, -90, 0), (-70, -90, 0), (0, -110, 0), (120, 10, 0), (-120, 10, 0), (0, 260, 0),
    (0, 260, 0), (0, 250, 0), (0, 250, 0), (0, 80, 0), (0, 80, 0)], dtype=np.float64)


def rest_joints() -> np.ndarray:
    """(24, 3) the standing skeleton with its pelvis at the origin (mm)."""
    out = np.zeros((24, 3))
    for j, parent in enumerate(J.SMPL24_PARENTS):
        if parent >= 0:
            out[j] = out[parent] + REST_OFFSETS_MM[j]
    return out


def person(path_mm: np.ndarray, *, phase: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """(T, 24, 3) joints of one person whose pelvis follows ``path_mm`` (T, 3), arms swinging."""
    T = len(path_mm)
    joints = np.repeat(rest_joints()[None] * scale, T, axis=0)
    swing = 120.0 * np.sin(0.4 * np.arange(T) + phase)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        for name in ("elbow", "wrist", "hand"):
            joints[:, J.SMPL24[f"{side}_{name}"], 2] += sign * swing * (
                1.0 if name == "elbow" else 2.0)
    return joints + np.asarray(path_mm, np.float64)[:, None, :]


def line(T: int, start, stop) -> np.ndarray:
    """(T, 3) straight path from ``start`` to ``stop`` (mm)."""
    s = np.linspace(0.0, 1.0, T)[:, None]
    return np.asarray(start, np.float64) * (1 - s) + np.asarray(stop, np.float64) * s


def detections(truth: np.ndarray, visible: np.ndarray, *, seed: int = 0, fps: float = 16.0,
               noise_px: float = 1.0, duplicate=None) -> tuple:
    """What an estimator would report for these people.

    Args:
        truth: (P, T, 24, 3) true joints, mm.
        visible: (P, T) bool, False = hidden that frame.
        duplicate: optional (person, frame): that person is reported twice in that frame.

    Returns:
        (seq, identity): the PoseSequence of per-frame slots (shuffled each frame) and
        (slots, T) int, the true person in each slot (-1 = empty).
    """
    rng = np.random.default_rng(seed)
    P, T = truth.shape[:2]
    slots = P + (1 if duplicate else 0)
    seq = PoseSequence.empty(slots, T, SIZE, fps, K=K)
    arrays = {name: np.array(getattr(seq, name)) for name in ("joints3d", "kp2d", "kp2d_score",
                                                                "bbox")}
    identity = np.full((slots, T), -1)
    for t in range(T):
        people = [p for p in range(P) if visible[p, t]]
        if duplicate and duplicate[1] == t and visible[duplicate[0], t]:
            people.append(duplicate[0])
        for slot, p in zip(rng.permutation(slots)[:len(people)], people):
            joints = truth[p, t]
            body = project(J.smpl24_to_openpose18(joints).astype(np.float64), K)
            feet = project(joints[[10, 10, 7, 11, 11, 8]], K)
            kp = np.full((J.NUM_WHOLEBODY, 2), np.nan)
            kp[J.BODY] = body + rng.normal(0, noise_px, body.shape)
            kp[J.FEET] = feet + rng.normal(0, noise_px, feet.shape)
            score = np.where(np.isfinite(kp).all(-1), 0.9, np.nan)
            pts = kp[np.isfinite(kp).all(-1)]
            arrays["joints3d"][slot, t] = joints
            arrays["kp2d"][slot, t] = kp
            arrays["kp2d_score"][slot, t] = score
            arrays["bbox"][slot, t] = np.concatenate([pts.min(0), pts.max(0)])
            identity[slot, t] = p
    return seq.replace(**arrays), identity


def identities_of(tracked: PoseSequence, truth: np.ndarray) -> np.ndarray:
    """(P', T) the true person nearest to each tracked person and frame (-1 = absent)."""
    out = np.full((tracked.num_people, tracked.num_frames), -1)
    for p in range(tracked.num_people):
        for t in range(tracked.num_frames):
            joints = tracked.joints3d[p, t]
            if np.isfinite(joints).all():
                out[p, t] = int(np.argmin(np.abs(truth[:, t] - joints).sum((-1, -2))))
    return out


# --- a walk with known foot contacts (foot locking) -----------------------------------------------

THIGH_MM, SHIN_MM = 430.0, 420.0
HIP_ABOVE_ANKLE_MM = 770.0
ANKLE_ABOVE_FOOT_MM = 60.0    # the ankle sits above the toe base ...
ANKLE_BEHIND_FOOT_MM = 130.0  # ... and behind it
FOOT_ABOVE_GROUND_MM = 40.0


def walk(fps: float = 30.0, seconds: float = 3.0, *, stride_mm: float = 900.0,
         cycle_s: float = 1.0, stance: float = 0.6, pitch_deg: float = 10.0) -> tuple:
    """A person walking to the right across the image, seen by a camera pitched down.

    Returns:
        (joints, contact): (T, 24, 3) true joints (camera frame, mm) and (T, 2) bool, whether
        the left / right foot is planted.
    """
    T = int(round(fps * seconds))
    t = np.arange(T) / fps
    speed = stride_mm / cycle_s
    ground_y = 1500.0                                   # world frame: y down, ground at +1500
    pelvis = np.stack([-1200 + speed * t, np.full(T, ground_y - FOOT_ABOVE_GROUND_MM -
                                                  ANKLE_ABOVE_FOOT_MM - HIP_ABOVE_ANKLE_MM - 80),
                       np.full(T, 4000.0)], -1)
    joints = np.repeat(rest_joints()[None], T, axis=0) + pelvis[:, None]
    contact = np.zeros((T, 2), bool)
    for k, (side, z_off, phase) in enumerate((("left", 90.0, 0.0), ("right", -90.0, 0.5))):
        cycle = (t / cycle_s + phase) % 1.0
        n = np.floor(t / cycle_s + phase)
        planted = cycle < stance
        # planted: fixed where it landed, the ankle as far ahead of the pelvis at landing as it
        # is behind at take-off; swinging: moves on to the next landing spot
        land_x = (-1200 + stride_mm * (n - phase) + 0.5 * stance * stride_mm
                  + ANKLE_BEHIND_FOOT_MM)
        swing = np.clip((cycle - stance) / (1 - stance), 0, 1)
        foot_x = np.where(planted, land_x, land_x + stride_mm * (0.5 - 0.5 * np.cos(np.pi * swing)))
        lift = np.where(planted, 0.0, 90.0 * np.sin(np.pi * swing))
        foot = np.stack([foot_x, ground_y - FOOT_ABOVE_GROUND_MM - lift,
                         np.full(T, 4000.0 + z_off)], -1)
        ankle = foot + [-ANKLE_BEHIND_FOOT_MM, -ANKLE_ABOVE_FOOT_MM, 0.0]
        hip = joints[:, J.SMPL24[f"{side}_hip"]].copy()
        hip[:, 2] = 4000.0 + z_off
        joints[:, J.SMPL24[f"{side}_hip"]] = hip
        joints[:, J.SMPL24[f"{side}_knee"]] = _knee(hip, ankle)
        joints[:, J.SMPL24[f"{side}_ankle"]] = ankle
        joints[:, J.SMPL24[f"{side}_foot"]] = foot
        contact[:, k] = planted
    pitch = np.deg2rad(pitch_deg)  # the camera looks down: rotate the world about x
    R = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)],
                  [0, np.sin(pitch), np.cos(pitch)]])
    centre = np.array([0.0, 0.0, 4000.0])
    return (joints - centre) @ R.T + centre, contact


def _knee(hip: np.ndarray, ankle: np.ndarray) -> np.ndarray:
    """Knee in front of the hip->ankle line (towards +x), by the law of cosines."""
    d = ankle - hip
    dist = np.linalg.norm(d, axis=-1, keepdims=True)
    axis = d / dist
    along = (THIGH_MM ** 2 - SHIN_MM ** 2 + dist ** 2) / (2 * dist)
    off = np.sqrt(np.maximum(THIGH_MM ** 2 - along ** 2, 0.0))
    forward = np.array([1.0, 0.0, 0.0])
    bend = forward - (axis @ forward)[:, None] * axis
    bend /= np.linalg.norm(bend, axis=-1, keepdims=True)
    return hip + along * axis + off * bend


def jittered(joints: np.ndarray, *, seed: int = 0, white_mm: float = 12.0,
             drift_mm: float = 15.0) -> np.ndarray:
    """Joints with estimator-like error: white noise plus a slow drift on every joint (mm)."""
    rng = np.random.default_rng(seed)
    T = len(joints)
    white = rng.normal(0, white_mm, joints.shape)
    slow = np.cumsum(rng.normal(0, 1, joints.shape), axis=0)
    kernel = np.ones(9) / 9
    slow = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), 0, slow)
    slow -= slow.mean(0)
    slow *= drift_mm / max(slow.std(), 1e-9)
    return joints + white + slow[:T]


def walk_sequence(joints: np.ndarray, fps: float) -> PoseSequence:
    """A one-person PoseSequence of these joints, 2D body points projected."""
    T = len(joints)
    seq = PoseSequence.empty(1, T, SIZE, fps, K=K)
    kp = np.full((1, T, J.NUM_WHOLEBODY, 2), np.nan)
    kp[0, :, J.BODY] = project(J.smpl24_to_openpose18(joints).astype(np.float64), K)
    kp[0, :, J.FEET] = project(joints[:, [10, 10, 7, 11, 11, 8]], K)
    score = np.where(np.isfinite(kp).all(-1), 0.9, np.nan)
    return seq.replace(joints3d=joints[None].astype(np.float32), kp2d=kp.astype(np.float32),
                       kp2d_score=score.astype(np.float32))
