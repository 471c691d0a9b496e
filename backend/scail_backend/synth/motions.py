"""The motion library of the synthetic figure: procedural joint-angle curves over time.

A motion is a function of time (seconds) giving named anatomical angles (:mod:`.anatomy`), a
root path on the floor and, for jumps, a lift. :func:`evaluate` turns it into SMPL-24 local
rotations and pelvis positions in the *stage* frame (body-frame axes, metres, floor z = 0),
standing the figure on the floor: each frame the lowest sole point touches z = 0 (plus the
lift), and feet marked as planted keep their place on the floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from scail_protocol.errors import ScailError
from scail_protocol.joints import SMPL24

from . import anatomy
from .figure import ground_contacts
from .skeleton import forward_kinematics, pose_points, rest_joints
from .timeline import integrate, keys, ramp, window

GRAVITY_M_S2 = 9.81
_SEAT_BELOW_PELVIS_M = 0.165  # pelvis joint to the underside of the thighs when seated (figure.py)


@dataclass(frozen=True)
class Prop:
    """A box in the stage frame (a stool to sit on)."""

    name: str
    center_m: tuple  # (3,) metres, stage frame
    size_m: tuple    # (3,) full extents along x, y, z, metres


@dataclass
class Script:
    """What a motion function returns for the times it is given (T frames)."""

    angles: dict                         # name -> (T,) degrees, deltas on top of anatomy.STAND
    root_xy_m: Optional[np.ndarray] = None  # (T, 2) pelvis position on the floor; None = origin
    lift_m: Optional[np.ndarray] = None     # (T,) height above standing (flight), metres
    plant: tuple = ()                    # sides whose foot stays where it was at t = 0
    stool: bool = False                  # put a stool under the lowest pelvis position


@dataclass(frozen=True)
class MotionSpec:
    name: str
    duration_s: float
    script: Callable[[np.ndarray], Script]
    description: str


@dataclass(frozen=True)
class MotionFrames:
    """An evaluated motion (T frames)."""

    local_quats: np.ndarray   # (T, 24, 4) float64, SMPL local rotations (w, x, y, z)
    root_m: np.ndarray        # (T, 3) float64 pelvis joint, stage frame, metres
    joints_m: np.ndarray      # (T, 24, 3) float64 joints, stage frame, metres
    props: tuple = field(default_factory=tuple)


def _add(*parts: dict) -> dict:
    out = {}
    for part in parts:
        for name, value in part.items():
            out[name] = out.get(name, 0.0) + value
    return out


def _scale(part: dict, weight) -> dict:
    return {name: value * weight for name, value in part.items()}


def _both(**angles) -> dict:
    """The same angle deltas on both sides (keys without the l_/r_ prefix)."""
    return {f"{s}_{k}": v for s in ("l", "r") for k, v in angles.items()}


# --- building blocks -----------------------------------------------------------------------------

def crouch(depth) -> dict:
    """Knees and hips bent with the feet flat: depth 0 = standing, 1 = deep squat."""
    tilt, hip, knee = 40.0 * depth, 130.0 * depth, 125.0 * depth
    # Foot flat: shank angle + ankle = 0, i.e. ankle = tilt - hip + knee (anatomy sign rules).
    return _add({"pelvis_tilt": tilt, "spine_bend": -12.0 * depth, "neck_bend": -24.0 * depth},
                _both(hip_flex=hip, knee=knee, ankle=tilt - hip + knee))


def gait(t: np.ndarray, period_s: float = 1.05, amount=1.0) -> dict:
    """One walking cycle pattern (legs, arms, pelvis), scaled by ``amount`` (0 = standing)."""
    phase = 2.0 * np.pi * np.asarray(t) / period_s
    out = {}
    for side, offset in (("l", 0.0), ("r", np.pi)):
        p = phase + offset
        swing = np.maximum(np.cos(p), 0.0) ** 1.5  # knee lifts while the thigh swings forward
        out.update({
            f"{side}_hip_flex": 5.0 + 22.0 * np.sin(p),
            f"{side}_knee": 6.0 + 52.0 * swing,
            f"{side}_ankle": 9.0 * np.sin(p + 0.4),
            f"{side}_arm_s": 75.0,
            f"{side}_arm_e": 2.0 - 14.0 * np.sin(p),
            f"{side}_elbow": 8.0 + 16.0 * np.maximum(-np.sin(p), 0.0),
        })
    out.update({"pelvis_yaw": 6.0 * np.sin(phase), "spine_twist": -9.0 * np.sin(phase),
                "pelvis_roll": 2.5 * np.sin(2.0 * phase), "spine_bend": 3.0})
    return _scale(out, amount)


def steps_in_place(t: np.ndarray, rate_hz: float, amount) -> dict:
    """Alternate small foot lifts (for turning on the spot), scaled by ``amount``."""
    s = np.sin(2.0 * np.pi * rate_hz * np.asarray(t))
    out = {}
    for side, lift in (("l", np.maximum(s, 0.0)), ("r", np.maximum(-s, 0.0))):
        out.update({f"{side}_hip_flex": 24.0 * lift, f"{side}_knee": 46.0 * lift,
                    f"{side}_ankle": -8.0 * lift, f"{side}_arm_e": 6.0 * lift})
    return _scale(out, amount)


def wave_arm(t: np.ndarray, up, start_s: float) -> dict:
    """Right hand raised beside the head, forearm waving side to side; ``up`` in [0, 1]."""
    wave = np.sin(2.0 * np.pi * 2.0 * (np.asarray(t) - start_s)) * ramp(t, start_s - 0.2, start_s)
    return _add(_scale({"r_arm_e": 92.0, "r_arm_s": 15.0, "r_arm_twist": -90.0, "r_elbow": 60.0,
                        "spine_side": -4.0, "neck_side": 5.0}, up),
                {"r_elbow": 26.0 * wave * up})


# --- the library ---------------------------------------------------------------------------------

def _wave(t):
    up = window(t, 0.2, 0.8, 2.4, 3.0)
    angles = _add(wave_arm(t, up, 0.8), {"neck_twist": 8.0 * np.sin(1.4 * t)})
    return Script(angles, plant=("l", "r"))


def _squat(t):
    depth = 0.5 - 0.5 * np.cos(2.0 * np.pi * t / 2.0)
    arms = _both(arm_e=80.0 * depth, arm_s=90.0, elbow=8.0 * depth)
    return Script(_add(crouch(0.95 * depth), arms), plant=("l", "r"))


def _turn(t):
    amount = window(t, 0.2, 0.5, 3.5, 3.8)
    return Script(_add({"heading": 360.0 * ramp(t, 0.3, 3.7)}, steps_in_place(t, 1.2, amount)))


_WALK_FROM_M, _WALK_TO_M = np.array((-1.4, 0.45)), np.array((1.4, -0.45))


def _walk(t):
    progress = t / 3.5
    root = _WALK_FROM_M + np.outer(progress, _WALK_TO_M - _WALK_FROM_M)
    direction = _WALK_TO_M - _WALK_FROM_M
    heading = math.degrees(math.atan2(direction[0], -direction[1]))  # facing -Y is heading 0
    return Script(_add({"heading": heading}, gait(t)), root_xy_m=root)


_TAKE_OFF_S, _LANDING_S = 1.08, 1.52


def _jump(t):
    depth = keys(t, [(0.0, 0.0), (0.3, 0.0), (0.8, 0.62), (1.06, 0.0), (1.52, 0.0), (1.68, 0.45),
                     (2.3, 0.0)])
    flight = (t > _TAKE_OFF_S) & (t < _LANDING_S)
    air_s = _LANDING_S - _TAKE_OFF_S
    lift = np.where(flight, 4.0 * (t - _TAKE_OFF_S) * (_LANDING_S - t) / air_s ** 2, 0.0)
    lift *= GRAVITY_M_S2 * air_s ** 2 / 8.0  # ballistic: peak height g·T²/8
    arms = _both(arm_s=90.0,
                 arm_e=keys(t, [(0.35, 0.0), (0.8, -50.0), (1.1, 125.0), (1.45, 115.0),
                                (1.75, 30.0), (2.3, 0.0)]),
                 elbow=keys(t, [(0.35, 0.0), (0.8, 10.0), (1.1, 0.0), (1.7, 30.0), (2.3, 0.0)]))
    toes = _both(ankle=-28.0 * window(t, 1.0, 1.14, 1.42, 1.52))
    return Script(_add(crouch(depth), arms, toes), lift_m=lift, plant=("l", "r"))


def _kick(t):
    kicks = [(0.45, 88.0), (1.75, 60.0)]  # (start s, height of the kick in hip degrees)
    hip = knee = ankle = np.zeros_like(t)
    for start, height in kicks:
        hip = hip + keys(t, [(start, 0), (start + .35, height - 18), (start + .6, height),
                             (start + .85, height - 18), (start + 1.2, 0)])
        knee = knee + keys(t, [(start, 0), (start + .35, 105), (start + .6, 8), (start + .85, 100),
                               (start + 1.2, 0)])
        ankle = ankle + keys(t, [(start + .35, 0), (start + .6, -30), (start + .85, 0)])
    guard = window(t, 0.1, 0.5, 2.6, 3.0)
    lean = hip / 88.0
    angles = _add({"r_hip_flex": hip, "r_knee": knee, "r_ankle": ankle,
                   "pelvis_tilt": -10.0 * lean, "l_knee": 10.0 * guard, "l_hip_abd": -5.0 * lean},
                  _scale(_both(arm_e=22.0, arm_s=90.0, arm_twist=25.0, elbow=70.0), guard))
    return Script(angles, plant=("l",))


def _sit(t):
    seated = keys(t, [(0.8, 0.0), (2.0, 1.0), (3.2, 1.0), (4.4, 0.0)])
    lean = keys(t, [(0.8, 0.0), (1.4, 1.0), (2.0, 0.0), (3.2, 0.0), (3.8, 1.0), (4.4, 0.0)])
    tilt, hip, knee = 35.0 * lean, 90.0 * seated + 35.0 * lean, 90.0 * seated + 20.0 * lean
    look_around = np.sin(2.0 * np.pi * (t - 2.0) / 1.2) * window(t, 2.0, 2.2, 3.0, 3.2)
    angles = _add({"pelvis_tilt": tilt, "neck_bend": -15.0 * lean,
                   "neck_twist": 25.0 * look_around},
                  _both(hip_flex=hip, knee=knee, ankle=tilt - hip + knee,
                        arm_s=90.0, arm_e=25.0 * seated + 15.0 * lean,
                        elbow=45.0 * seated + 10.0 * lean, hip_abd=6.0 * seated))
    return Script(angles, plant=("l", "r"), stool=True)


def _arms_cross(t):
    c = keys(t, [(0.5, 0.0), (1.3, 1.0), (2.8, 1.0), (3.4, 0.0)])
    breathe = 2.0 * np.sin(2.0 * np.pi * t / 1.7)
    angles = _add({"l_arm_e": 22.0 * c, "l_arm_s": 90.0 * c, "l_arm_twist": 68.0 * c,
                   "l_elbow": 96.0 * c, "r_arm_e": 12.0 * c, "r_arm_s": 90.0 * c,
                   "r_arm_twist": 62.0 * c, "r_elbow": 90.0 * c, "spine_bend": breathe,
                   "neck_bend": 6.0 * np.sin(2.0 * np.pi * t / 2.3)})
    return Script(angles, plant=("l", "r"))


_DEMO_WALK_SPEED_M_S = 0.85


def _demo(t):
    """Walks in from the left, turns to the camera, waves, then turns away to its right."""
    walking = 1.0 - ramp(t, 1.05, 1.6)
    x = -1.25 + integrate(t, lambda s: _DEMO_WALK_SPEED_M_S * (1.0 - ramp(s, 1.05, 1.6)))
    root = np.stack([x, np.zeros_like(t)], axis=-1)
    heading = keys(t, [(0.0, 90.0), (1.15, 90.0), (1.65, 0.0), (2.85, 0.0), (3.85, -100.0)])
    up = window(t, 1.6, 1.95, 2.55, 2.9)
    angles = _add({"heading": heading}, gait(t, amount=walking),
                  steps_in_place(t, 1.3, window(t, 1.1, 1.3, 1.55, 1.75) * 0.6),
                  wave_arm(t, up, 1.95),
                  steps_in_place(t - 2.85, 1.2, window(t, 2.8, 3.0, 3.7, 3.95)))
    return Script(angles, root_xy_m=root)


LIBRARY = {spec.name: spec for spec in (
    MotionSpec("wave", 3.0, _wave, "raises the right hand and waves"),
    MotionSpec("squat", 4.0, _squat, "two deep squats, arms forward"),
    MotionSpec("turn", 4.0, _turn, "turns a full circle on the spot, stepping"),
    MotionSpec("walk", 3.5, _walk, "walks diagonally across the view"),
    MotionSpec("jump", 2.5, _jump, "counter-movement jump with arm swing"),
    MotionSpec("kick", 3.0, _kick, "two front kicks with the right leg, guard up"),
    MotionSpec("sit", 5.0, _sit, "sits down on a stool, looks around, stands up"),
    MotionSpec("arms_cross", 3.5, _arms_cross, "folds the arms across the chest"),
)}
DEMO = MotionSpec("demo", 4.0, _demo, "walks in, waves, turns away (the README demo)")
MOTIONS = tuple(LIBRARY)


def get_motion(name: str) -> MotionSpec:
    """The motion called ``name`` (one of :data:`MOTIONS` or ``"demo"``)."""
    if name == DEMO.name:
        return DEMO
    try:
        return LIBRARY[name]
    except KeyError:
        raise ScailError(f"unknown motion {name!r}; choose one of: {', '.join(MOTIONS)} "
                         f"(or {DEMO.name}, the README clip)") from None


def evaluate(name: str, times_s: np.ndarray, body=None) -> MotionFrames:
    """Evaluate a motion at the given times and stand it on the floor.

    Args:
        name: a motion name (:func:`get_motion`).
        times_s: (T,) seconds from the start; times past the motion's duration hold its last pose.
        body: the body type that performs it (:mod:`.bodies`; None = average).

    Returns:
        MotionFrames in the stage frame (metres, floor z = 0).
    """
    spec = get_motion(name)
    t = np.minimum(np.asarray(times_s, np.float64), spec.duration_s)
    script = spec.script(t)
    num = len(t)
    local = anatomy.local_rotations(_add(anatomy.STAND, script.angles), num)
    root = np.zeros((num, 3))
    root[:, 2] = rest_joints(body)[SMPL24["pelvis"]][2]
    if script.root_xy_m is not None:
        root[:, :2] = script.root_xy_m
    glob, joints = forward_kinematics(local, root, body)
    bones, points = ground_contacts(body)
    contacts = pose_points(glob, joints, bones, points, body)     # (T, N, 3)
    shift = np.zeros((num, 3))
    shift[:, 2] = -contacts[..., 2].min(axis=1)
    if script.lift_m is not None:
        shift[:, 2] += script.lift_m
    if script.plant:
        anchors = [SMPL24[f"{'left' if s == 'l' else 'right'}_ankle"] for s in script.plant]
        anchor_xy = joints[:, anchors, :2].mean(axis=1)
        shift[:, :2] = anchor_xy[0] - anchor_xy
    root, joints = root + shift, joints + shift[:, None]
    props = (_stool(local, joints),) if script.stool else ()
    return MotionFrames(local, root, joints, props)


def _stool(local_quats: np.ndarray, joints_m: np.ndarray) -> Prop:
    """A stool whose top meets the thighs at the lowest pelvis position."""
    t = int(np.argmin(joints_m[:, SMPL24["pelvis"], 2]))
    pelvis = joints_m[t, SMPL24["pelvis"]]
    heading_rad = 2.0 * math.atan2(local_quats[t, 0, 3], local_quats[t, 0, 0])
    forward = np.array((math.sin(heading_rad), -math.cos(heading_rad)))
    top = pelvis[2] - _SEAT_BELOW_PELVIS_M
    center_xy = pelvis[:2] + 0.10 * forward
    centre = (float(center_xy[0]), float(center_xy[1]), top / 2.0)
    return Prop("stool", centre, (0.40, 0.40, float(top)))
