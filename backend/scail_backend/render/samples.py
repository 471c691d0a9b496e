"""Procedural sample poses: a plausible walking human, for tests, benchmarks and demos.

The one procedural skeleton (``scail_protocol.skeleton``) walks (arms swinging, one forearm
crossing in front of the chest, torso turned towards the camera by a yaw angle) about 3.5 m in
front of the camera. Whole-body 2D points (body, feet, 68 face landmarks, 2 x 21 hand points) are
projected from the same 3D skeleton, so the capsule render and the overlay line up like real data.
Nothing here is estimated from video; it only has to *look* like a person.
"""

from __future__ import annotations

import numpy as np

from scail_protocol import joints as J
from scail_protocol.camera import project
from scail_protocol.contract import DEFAULT_RESOLUTION, OUTPUT_FPS
from scail_protocol.rotations import quat_apply, quat_conj, quat_mul, rot_x, rot_y, rot_z
from scail_protocol.sequence import PoseSequence
from scail_protocol.skeleton import bone_offsets_mm, forward_kinematics

DEFAULT_SIZE = DEFAULT_RESOLUTION  # (H, W), landscape
DEFAULT_DISTANCE_MM = 3500.0    # pelvis depth of the first person
PERSON_SPACING_MM = 1500.0      # each further person stands this much deeper ...
PERSON_LATERAL_MM = (0.0, 650.0, -700.0, 350.0)  # ... and this far to the side
STEP_PERIOD_S = 1.1             # one full gait cycle
VISIBLE_SCORE = 0.9
HIDDEN_SCORE = 0.2              # below the 0.3 visibility threshold of the overlay

# The body frame here: x = subject's left, y down, z backwards (the subject faces the camera,
# i.e. -z); the bones are those of the one procedural skeleton (scail_protocol.skeleton), whose
# rest pose has the arms out sideways: the shoulders turn them down (_ARMS_DOWN).
_ARMS_DOWN = {16: rot_z(np.pi / 2), 17: rot_z(-np.pi / 2)}  # left, right shoulder


def _arm_down(angle_x, out_z, side: int):
    """Shoulder rotation: the arm hung down, ``out_z`` away from the body, swung by ``angle_x``."""
    return quat_mul(rot_x(angle_x), quat_mul(rot_z(out_z), _ARMS_DOWN[side]))


def _in_rest_frame(q, side: int):
    """A rotation written for a hanging arm, as the local rotation of a T-pose arm's joint."""
    down = _ARMS_DOWN[side]
    return quat_mul(quat_conj(down), quat_mul(q, down))


def _local_rotations(phase: np.ndarray) -> np.ndarray:
    """(T, 24, 4) joint rotations (quaternions) of the gait at phases (radians); forward swing
    is -z."""
    T = len(phase)
    rot = np.zeros((T, 24, 4))
    rot[..., 0] = 1.0
    swing = 0.45 * np.sin(phase)
    rot[:, 1] = rot_x(swing)                      # left hip forward when swing > 0
    rot[:, 2] = rot_x(-swing)
    rot[:, 4] = rot_x(-0.6 * np.clip(np.sin(phase - 1.2), 0, None))   # knees bend backwards
    rot[:, 5] = rot_x(-0.6 * np.clip(np.sin(phase + np.pi - 1.2), 0, None))
    rot[:, 3] = rot_y(0.12 * np.sin(phase))       # torso counter-rotation
    rot[:, 16] = _arm_down(-0.35 * np.sin(phase), -0.25, 16)          # left arm, slightly out
    rot[:, 17] = _arm_down(0.35 * np.sin(phase), 0.25, 17)
    # Left forearm folds across the chest and back (self-occlusion); right elbow bends gently.
    fold = 0.5 + 0.5 * np.sin(0.5 * phase)
    rot[:, 18] = _in_rest_frame(quat_mul(rot_y(0.9 * fold), rot_x(1.9 * fold)), 16)
    rot[:, 19] = _in_rest_frame(rot_x(0.35 + 0.15 * np.sin(phase)), 17)
    rot[:, 15] = rot_y(0.25 * np.sin(0.3 * phase))  # head looks around a little
    return rot


def _face_template_mm() -> np.ndarray:
    """(68, 3) iBUG-68 landmarks in the head frame (mm), roughly on a face 9 cm in front."""
    pts = np.zeros((68, 3))
    theta = np.linspace(0.0, np.pi, 17)
    pts[0:17] = np.stack([-70 * np.cos(theta), -5 + 80 * np.sin(theta),
                          -60 - 30 * np.sin(theta)], -1)
    brow = np.linspace(0.0, 1.0, 5)
    pts[17:22] = np.stack([-60 + 45 * brow, -45 - 8 * np.sin(np.pi * brow), np.full(5, -88)], -1)
    pts[22:27] = np.stack([15 + 45 * brow, -45 - 8 * np.sin(np.pi * brow), np.full(5, -88)], -1)
    pts[27:31] = np.stack([np.zeros(4), np.linspace(-30, 15, 4), np.linspace(-100, -115, 4)], -1)
    pts[31:36] = np.stack([np.linspace(-18, 18, 5), np.full(5, 22), np.full(5, -100)], -1)
    eye = np.linspace(0, 2 * np.pi, 7)[:-1] + np.pi
    for start, cx in ((36, -32), (42, 32)):
        pts[start:start + 6] = np.stack([cx + 14 * np.cos(eye), -25 + 5 * np.sin(eye),
                                         np.full(6, -90)], -1)
    outer = np.linspace(0, 2 * np.pi, 13)[:-1] + np.pi
    inner = np.linspace(0, 2 * np.pi, 9)[:-1] + np.pi
    pts[48:60] = np.stack([28 * np.cos(outer), 45 + 12 * np.sin(outer), np.full(12, -88)], -1)
    pts[60:68] = np.stack([18 * np.cos(inner), 45 + 5 * np.sin(inner), np.full(8, -88)], -1)
    return pts


def _hand_points_mm(wrist, hand, side_axis, mirror: float) -> np.ndarray:
    """(T, 21, 3) Hand-21 points (mm) built around the wrist -> hand direction."""
    along = hand - wrist
    along /= np.linalg.norm(along, axis=-1, keepdims=True)
    lateral = side_axis - np.sum(side_axis * along, -1, keepdims=True) * along
    lateral /= np.linalg.norm(lateral, axis=-1, keepdims=True) + 1e-9
    normal = np.cross(along, lateral)
    out = np.zeros(wrist.shape[:-1] + (21, 3))
    out[..., 0, :] = wrist
    # (base along, base lateral, direction along, direction lateral) per finger, thumb first.
    fingers = ((25, -25, 0.5, -0.85), (80, -22, 1, -0.1), (85, -5, 1, 0), (80, 12, 1, 0.1),
               (72, 27, 1, 0.25))
    for f, (b_al, b_lat, d_al, d_lat) in enumerate(fingers):
        base = wrist + b_al * along + mirror * b_lat * lateral
        direction = d_al * along + mirror * d_lat * lateral + 0.35 * normal
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
        for k, reach in enumerate((0.0, 40.0, 65.0, 85.0)):
            out[..., 1 + 4 * f + k, :] = base + reach * direction
    return out


def _person_points(t: np.ndarray, person: int) -> tuple:
    """Joints (T, 24, 3) mm and whole-body 3D points (T, 134, 3) mm of one walking person."""
    phase = 2 * np.pi * t / STEP_PERIOD_S + 1.7 * person
    depth = DEFAULT_DISTANCE_MM + PERSON_SPACING_MM * person
    lateral = PERSON_LATERAL_MM[person % len(PERSON_LATERAL_MM)]
    root = np.stack([lateral + 120 * np.sin(0.4 * phase),
                     -120 + 15 * np.cos(2 * phase),
                     depth + 200 * np.sin(0.25 * phase)], -1)
    yaw = np.full(len(t), -0.5 + 0.9 * person) + 0.2 * np.sin(0.2 * phase)
    local = _local_rotations(phase)
    local[:, 0] = quat_mul(rot_y(yaw), local[:, 0])
    rot, pos = forward_kinematics(local, root, bone_offsets_mm())
    head_rot = rot[:, 15]
    wb = np.full((len(t), J.NUM_WHOLEBODY, 3), np.nan)
    body = wb[:, J.BODY]
    for op, smpl in enumerate(J.OPENPOSE18_FROM_SMPL24[:14]):
        body[:, op] = pos[:, smpl]
    head_offsets = {0: (0, 25, -95), 14: (-32, -10, -80), 15: (32, -10, -80),
                    16: (-75, 0, 0), 17: (75, 0, 0)}
    for op, offset in head_offsets.items():
        body[:, op] = pos[:, 15] + quat_apply(head_rot, np.asarray(offset, np.float64))
    body[:, 1] = 0.5 * (pos[:, 16] + pos[:, 17])  # DWPose neck: midpoint of the shoulders
    wb[:, J.BODY] = body
    foot_offsets = ((7, 10, (-20, 20, -60)), (7, 10, (30, 20, -30)), (7, 7, (0, 60, 50)),
                    (8, 11, (20, 20, -60)), (8, 11, (-30, 20, -30)), (8, 8, (0, 60, 50)))
    for k, (rot_joint, anchor, offset) in enumerate(foot_offsets):
        wb[:, J.FEET.start + k] = pos[:, anchor] + quat_apply(rot[:, rot_joint],
                                                              np.asarray(offset, np.float64))
    wb[:, J.FACE] = pos[:, 15, None] + quat_apply(head_rot[:, None], _face_template_mm()[None])
    side = quat_apply(rot[:, 0], np.array([1.0, 0.0, 0.0]))  # subject's left, camera frame
    wb[:, J.LEFT_HAND] = _hand_points_mm(pos[:, 20], pos[:, 22], side, 1.0)
    wb[:, J.RIGHT_HAND] = _hand_points_mm(pos[:, 21], pos[:, 23], side, -1.0)
    return pos, wb, head_rot


def walking_sequence(num_frames: int = 8, size=DEFAULT_SIZE, *, num_people: int = 1,
                     fps: float = float(OUTPUT_FPS)) -> PoseSequence:
    """A deterministic sequence of ``num_people`` walking people.

    Args:
        num_frames: T >= 0.
        size: (H, W) image size in pixels; K is the 55° default for it.
        num_people: P >= 0; person p stands 1.5·p m deeper than the first (3.5 m).
        fps: frame rate of the sequence.

    Returns:
        A PoseSequence with SMPL-24 joints (mm, camera frame), whole-body 2D points projected
        with K (scores 0.9; the ear turned away from the camera 0.2), boxes and track ids 0..P-1.
    """
    height, width = (int(v) for v in size)
    seq = PoseSequence.empty(num_people, num_frames, (height, width), fps,
                             meta={"estimator": "samples.walking_sequence"})
    K = seq.K
    t = np.arange(num_frames) / float(fps)
    joints, kp2d, score, bbox = (np.array(a) for a in (seq.joints3d, seq.kp2d, seq.kp2d_score,
                                                         seq.bbox))
    for p in range(num_people):
        pos, wb, head_rot = _person_points(t, p)
        joints[p] = pos
        kp2d[p] = project(wb, K)
        score[p] = np.where(np.isfinite(kp2d[p]).all(-1), VISIBLE_SCORE, np.nan)
        facing = quat_apply(head_rot, np.array([1.0, 0.0, 0.0]))[:, 2]  # > 0: left ear away
        score[p, :, 17] = np.where(facing > 0.35, HIDDEN_SCORE, score[p, :, 17])
        score[p, :, 16] = np.where(facing < -0.35, HIDDEN_SCORE, score[p, :, 16])
        body = kp2d[p][:, J.BODY]
        bbox[p] = np.concatenate([np.nanmin(body, 1) - 20, np.nanmax(body, 1) + 20], -1)
    return seq.replace(joints3d=joints, kp2d=kp2d, kp2d_score=score, bbox=bbox)

