"""Named anatomical angles -> SMPL-24 local joint rotations of the synthetic figure.

Motions are authored as curves of a few named angles (degrees) over time; this module turns them
into the (T, 24, 4) local quaternions of :mod:`.skeleton` (body frame: X = the figure's left,
Y = behind, Z = up). Angles are given for each side with the same meaning (a positive elbow angle
bends either elbow); right-side rotations are the left-side ones mirrored.

Angles (degrees; missing ones take :data:`STAND`):

* ``heading``: the whole figure's turn about the vertical, 0 = facing -Y, positive = turning to
  its left. ``pelvis_tilt`` (+ = upper body forward), ``pelvis_roll`` (+ = upper body to its
  left), ``pelvis_yaw`` (twist on top of heading).
* ``spine_bend`` / ``spine_side`` / ``spine_twist``: spread evenly over spine1..3;
  ``neck_bend`` / ``neck_side`` / ``neck_twist``: spread over the neck and head joints.
* Per side (prefix ``l_`` / ``r_``): ``collar_raise``; ``arm_e`` (elevation of the upper arm from
  hanging, 90 = horizontal, negative = behind in the swing plane), ``arm_s`` (swing plane:
  0 = out to the side, 90 = forward, > 90 = across the body), ``arm_twist`` (+ = internal
  rotation), ``elbow`` (flexion), ``wrist`` (flexion); ``hip_flex`` (+ = thigh forward),
  ``hip_abd`` (+ = leg out to the side), ``hip_twist``, ``knee`` (flexion), ``ankle``
  (+ = toes up), ``toe`` (+ = toes up).
"""

from __future__ import annotations

import numpy as np
from scail_protocol.joints import SMPL24

from scail_protocol.rotations import chain, mirror_left_to_right, rot_x, rot_y, rot_z

STAND = {  # a relaxed standing pose: arms hanging just clear of the torso, elbows soft
    "l_arm_e": 8.0, "r_arm_e": 8.0, "l_elbow": 12.0, "r_elbow": 12.0,
}
SIDE_ANGLES = ("collar_raise", "arm_e", "arm_s", "arm_twist", "elbow", "wrist",
               "hip_flex", "hip_abd", "hip_twist", "knee", "ankle", "toe")
CENTRE_ANGLES = ("heading", "pelvis_tilt", "pelvis_roll", "pelvis_yaw", "spine_bend",
                 "spine_side", "spine_twist", "neck_bend", "neck_side", "neck_twist")
ANGLE_NAMES = CENTRE_ANGLES + tuple(f"{s}_{a}" for s in ("l", "r") for a in SIDE_ANGLES)
_SPINE = ("spine1", "spine2", "spine3")
_NECK_SHARE = {"neck": 0.6, "head": 0.4}


def angle_curves(angles: dict, num_frames: int) -> dict:
    """Every angle of :data:`ANGLE_NAMES` as a (T,) float64 array of degrees.

    Args:
        angles: name -> scalar or (T,) degrees; unknown names raise ``ValueError``.
        num_frames: T.
    """
    unknown = sorted(set(angles) - set(ANGLE_NAMES))
    if unknown:
        raise ValueError(f"unknown angle name(s) {unknown}; valid: {', '.join(ANGLE_NAMES)}")
    out = {}
    for name in ANGLE_NAMES:
        value = angles.get(name, STAND.get(name, 0.0))
        out[name] = np.broadcast_to(np.asarray(value, np.float64), (num_frames,)).copy()
    return out


def _arm(e, s, twist):
    # Swing-twist arm: hang (R_y 90), raise by e in the plane chosen by s, and undo the twist the
    # swing introduces so that a hanging arm is the same whatever s (no flip when s changes).
    return chain(rot_z(-s), rot_y(np.pi / 2 - e), rot_x(-s + twist))


def _side_rotations(a: dict, prefix: str) -> dict:
    """Left-side-meaning rotations of one side's joints (radians in, quaternions out)."""
    r = {k: np.radians(a[f"{prefix}_{k}"]) for k in SIDE_ANGLES}
    return {
        "collar": rot_y(-r["collar_raise"]),
        "shoulder": _arm(r["arm_e"], r["arm_s"], r["arm_twist"]),
        "elbow": rot_z(-r["elbow"]),
        "wrist": rot_y(r["wrist"]),
        "hip": chain(rot_x(-r["hip_flex"]), rot_y(-r["hip_abd"]), rot_z(r["hip_twist"])),
        "knee": rot_x(r["knee"]),
        "ankle": rot_x(-r["ankle"]),
        "foot": rot_x(-r["toe"]),
    }


def local_rotations(angles: dict, num_frames: int) -> np.ndarray:
    """(T, 24, 4) float64 local joint quaternions (w, x, y, z) for the named angles.

    Args:
        angles: see the module docstring; scalar or (T,) degrees each.
        num_frames: T.
    """
    a = angle_curves(angles, num_frames)
    rad = {k: np.radians(v) for k, v in a.items() if k in CENTRE_ANGLES}
    q = np.zeros((num_frames, 24, 4))
    q[..., 0] = 1.0
    q[:, SMPL24["pelvis"]] = chain(rot_z(rad["heading"] + rad["pelvis_yaw"]),
                                   rot_x(rad["pelvis_tilt"]), rot_y(rad["pelvis_roll"]))
    spine = chain(rot_x(rad["spine_bend"] / 3), rot_y(rad["spine_side"] / 3),
                  rot_z(rad["spine_twist"] / 3))
    for name in _SPINE:
        q[:, SMPL24[name]] = spine
    for name, share in _NECK_SHARE.items():
        q[:, SMPL24[name]] = chain(rot_x(share * rad["neck_bend"]), rot_y(share * rad["neck_side"]),
                                   rot_z(share * rad["neck_twist"]))
    for side, prefix in (("left", "l"), ("right", "r")):
        rotations = _side_rotations(a, prefix)
        for joint, quat in rotations.items():
            q[:, SMPL24[f"{side}_{joint}"]] = quat if side == "left" else mirror_left_to_right(quat)
    return q
