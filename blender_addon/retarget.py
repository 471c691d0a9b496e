"""Retarget an SMPL-24 take onto a character rig: baked keys in the rig's own action, on an NLA track.

The source is an armature made by SCAIL import (grounded or not, edited or not): its posed bones
are evaluated on every frame in bulk (``export``'s F-curve path, or the depsgraph for rigs with
constraints). The maths is ``scail_protocol.retarget`` (all frames at once, numpy); this module
reads Blender data into arrays and writes the result back with ``foreach_set``. The source is
never changed.

What the target gets: a new action (one slot for the target on Blender 4.4+) with
``rotation_quaternion`` keys on every mapped bone and on the bones above them (which stay at
their rest pose relative to their parents), ``location`` keys on the bone mapped to the pelvis,
pushed onto a new NLA track. An action the target had active is pushed down to a track of its own
first, so nothing of it is lost. Keyed bones are switched to quaternion rotation.

Headless (``blender -b rig.blend --python-expr ...`` with the extension enabled)::

    from bl_ext.user_default.scail_pose_studio import headless, retarget
    take = headless.import_motion_file("poses.npz").armatures[0]
    retarget.retarget(take, bpy.data.objects["Armature"], bone_map="auto")
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import bpy
import numpy as np
from scail_protocol import grounding as G
from scail_protocol import retarget as R

from . import anim, bonemaps, export, rigmath
from .armature import PERSON_PROP, rest_matrices

log = logging.getLogger(__name__)

TRACK_NAME = "SCAIL retarget"
SMPL_INDEX = {name: j for j, name in enumerate(bonemaps.BONE_KEYS)}


@dataclass
class RetargetResult:
    """What :func:`retarget` made.

    Attributes:
        action: the new action of the target.
        strip: its NLA strip.
        frames: (T,) the scene frames that were keyed.
        bone_map: the {SMPL bone: target bone} map used.
        leg_ratio: target leg length / source leg length (the root-motion scale).
        contacts: (T, 2) bool left / right foot contacts of the source (empty without the pass).
        unreachable: frames on which a planted foot was out of the leg's reach.
    """

    action: object
    strip: object
    frames: np.ndarray
    bone_map: dict
    leg_ratio: float
    contacts: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), bool))
    unreachable: int = 0


def retarget(source, target, bone_map="auto", *, scene=None, frame_start=None, frame_end=None,
             in_place: bool = False, use_foot_contacts: bool = True, report=None) -> RetargetResult:
    """Bake the motion of a SCAIL armature onto another armature.

    Args:
        source: an armature object made by SCAIL import.
        target: the character's armature object (uniform object scale).
        bone_map: {SMPL bone key: target bone name} (see ``bonemaps``), a preset id, a path to
            a saved map, or 'auto' (the best preset, else the generic matcher).
        scene: the scene whose frames are used (default: the context's).
        frame_start, frame_end: scene frames to bake (default: the take's own frames).
        in_place: drop the horizontal root motion (the character stays where it stands).
        use_foot_contacts: keep the feet planted while the source's feet touch the floor.
        report: ``report(type_set, message)`` for warnings.

    Returns:
        A :class:`RetargetResult`.

    Raises:
        ScailError (RetargetError, BoneMapError): the source is not a SCAIL armature, the target
            is not an armature, the map lacks required bones, or the frame range is empty.
    """
    report = report or _log_report
    scene = scene or bpy.context.scene
    _check_objects(source, target)
    names = [b.name for b in target.data.bones]
    bone_map = resolve_map(bone_map, target)
    bonemaps.check_map(bone_map, names)
    frames = take_frames(source, frame_start, frame_end)
    src_rot, src_heads = source_pose(source, scene, frames)
    src_rest = rest_matrices(source)
    skeleton = skeleton_of(target)
    mapping = np.full(len(names), -1)
    index = {n: i for i, n in enumerate(names)}
    for key, bone in bone_map.items():
        mapping[index[bone]] = SMPL_INDEX[key]
    solved = _solve(source, skeleton, mapping, bone_map, index, src_rot, src_heads, src_rest,
                    fps=scene.render.fps / scene.render.fps_base, in_place=in_place,
                    use_contacts=use_foot_contacts)
    pose, ratio, contacts, unreachable = solved
    if unreachable:
        report({"WARNING"}, f"a planted foot was out of reach on {unreachable} frame(s); the leg "
                            f"was straightened toward it")
    bones = _keyed_bones(skeleton, mapping)
    _warn_constraints(target, bones, report)
    root = index[bone_map["pelvis"]]
    action, strip = bake(target, pose, bones, root, frames, name=f"{target.name} from {source.name}")
    return RetargetResult(action=action, strip=strip, frames=frames, bone_map=dict(bone_map),
                          leg_ratio=ratio, contacts=contacts, unreachable=unreachable)


def _solve(source, skeleton, mapping, bone_map, index, src_rot, src_heads, src_rest, *, fps,
           in_place, use_contacts):
    """The target's pose on all frames (maths only): (Pose, leg ratio, contacts, unreachable)."""
    legs_t = [tuple(index[bone_map[k]] for k in (f"{s}_hip", f"{s}_knee")) for s in ("left", "right")]
    ankles = [bone_map.get(f"{s}_ankle") for s in ("left", "right")]
    src_rest_heads = src_rest[:, :3, 3] * _uniform_scale(source)
    ratio = _leg_ratio(skeleton, legs_t, ankles, index) / R.leg_length(src_rest_heads, R.LEGS)
    facing = R.yaw_to_face_minus_y(_target_left(skeleton, legs_t))
    desired = R.transfer_orientations(src_rot, src_rest[:, :3, :3], skeleton, mapping, facing)
    root = index[bone_map["pelvis"]]
    # Heights are measured from the balls of the feet (SMPL left/right_foot joints), which the
    # grounded floor passes through; the target's from its feet's tails at rest.
    src_ball = src_heads[:, list(G.FOOT_JOINTS)]
    contacts = G.detect_contacts(src_heads, fps)
    src_floor = _floor_level(src_ball, contacts)
    src_ball_rest = src_rest_heads[list(G.FOOT_JOINTS), 2].mean()
    src_hip_height = src_rest_heads[R.PELVIS, 2] - src_ball_rest
    tgt_ball_rest = _target_ball_rest(skeleton, ankles, index, legs_t)
    tgt_hip_height = skeleton.heads[root, 2] - tgt_ball_rest
    root_head = R.root_trajectory(
        src_heads[:, R.PELVIS], ratio=ratio, target_start=skeleton.heads[root],
        source_floor_z=src_floor,
        target_floor_z=tgt_ball_rest + (tgt_hip_height - ratio * src_hip_height),
        in_place=in_place)
    bones = _keyed_bones(skeleton, mapping)
    pose = R.pose_skeleton(skeleton, desired, root, root_head, bones)
    unreachable = 0
    if use_contacts and all(ankles):
        for side, (thigh, shin) in enumerate(legs_t):
            chain = (thigh, shin, index[ankles[side]])
            unreachable += _plant_foot(pose, desired, skeleton, chain, contacts[:, side],
                                       tgt_ball_rest)
        pose = R.pose_skeleton(skeleton, desired, root, root_head, bones)
    return pose, ratio, contacts, unreachable


def _warn_constraints(target, bones, report) -> None:
    """Warn when keyed bones or their parents are constrained: the transfer assumes plain
    parenting (a generated Rigify rig's FK controls hang under constrained MCH bones)."""
    pose_bones = target.pose.bones
    data_bones = target.data.bones
    constrained = set()
    for b in bones:
        bone = data_bones[b]
        while bone is not None:
            if pose_bones[bone.name].constraints:
                constrained.add(bone.name)
            bone = bone.parent
    if constrained:
        names = ", ".join(sorted(constrained)[:4]) + (" ..." if len(constrained) > 4 else "")
        report({"WARNING"}, f"{len(constrained)} bone(s) of {target.name} above the mapped ones "
                            f"have constraints ({names}); the baked pose assumes plain parenting "
                            f"and may differ there")


def _plant_foot(pose, desired, skeleton, chain, contact, ball_z) -> int:
    """Turn thigh and shin (in ``desired``) so the ball of the foot sits planted; returns the
    number of unreachable frames."""
    thigh, shin, foot = chain
    ball = pose.heads[:, foot] + pose.rotations[:, foot, :, 1] * skeleton.lengths[foot]
    goal, weight = R.planted_targets(ball, contact, ball_z)
    frames = np.flatnonzero(weight > 0)
    if not len(frames):
        return 0
    hip, knee, ankle = (pose.heads[frames, b] for b in chain)
    ankle_goal = ankle + (goal[frames] - ball[frames])
    thigh_turn, shin_turn = R.two_bone_ik(hip, knee, ankle, ankle_goal)
    desired[frames, thigh] = thigh_turn @ pose.rotations[frames, thigh]
    desired[frames, shin] = shin_turn @ thigh_turn @ pose.rotations[frames, shin]
    desired[frames, foot] = pose.rotations[frames, foot]
    l1 = np.linalg.norm(knee - hip, axis=-1)
    l2 = np.linalg.norm(ankle - knee, axis=-1)
    return int(np.count_nonzero(np.linalg.norm(ankle_goal - hip, axis=-1) > l1 + l2 - 1e-4))


def _floor_level(balls: np.ndarray, contacts: np.ndarray) -> float:
    """Height of the source's balls of the feet while planted (else their low percentile)."""
    z = balls[..., 2]
    planted = z[contacts & np.isfinite(z)]
    if len(planted):
        return float(np.median(planted))
    finite = z[np.isfinite(z)]
    return float(np.percentile(finite, G.LOW_PERCENTILE)) if len(finite) else 0.0


def _leg_ratio(skeleton, legs_t, ankles, index) -> float:
    """Target thigh + shin length (mean of both legs), world metres."""
    total = []
    for (hip, knee), ankle in zip(legs_t, ankles):
        shin_end = skeleton.heads[index[ankle]] if ankle else skeleton.tails()[knee]
        total.append(np.linalg.norm(skeleton.heads[knee] - skeleton.heads[hip])
                     + np.linalg.norm(shin_end - skeleton.heads[knee]))
    length = float(np.mean(total))
    if length <= 0:
        raise R.RetargetError("the target's legs have no length in its rest pose")
    return length


def _target_left(skeleton, legs_t) -> np.ndarray:
    """Right thigh head -> left thigh head at rest (world): the target's left."""
    return skeleton.heads[legs_t[0][0]] - skeleton.heads[legs_t[1][0]]


def _target_ball_rest(skeleton, ankles, index, legs_t) -> float:
    """Rest height of the target's balls of the feet (foot tails), world Z."""
    tails = skeleton.tails()
    ends = [tails[index[a]] if a else tails[shin] for a, (_, shin) in zip(ankles, legs_t)]
    return float(np.mean([e[2] for e in ends]))


def _keyed_bones(skeleton, mapping) -> list:
    """Mapped bones and all their ancestors, parents first."""
    keep = np.zeros(len(mapping), bool)
    for b in np.flatnonzero(mapping >= 0):
        while b >= 0 and not keep[b]:
            keep[b] = True
            b = skeleton.parents[b]
    return np.flatnonzero(keep).tolist()


# --- reading Blender data -----------------------------------------------------------------------

def _check_objects(source, target) -> None:
    if source is None or source.type != "ARMATURE" or PERSON_PROP not in source:
        raise R.RetargetError("the source must be an armature made by SCAIL import; import a "
                              "take first")
    if target is None or target.type != "ARMATURE":
        raise R.RetargetError("the target must be an armature (the character's rig)")
    if target == source:
        raise R.RetargetError("the source and the target are the same armature")


def resolve_map(bone_map, target) -> dict:
    """A concrete {key: bone} map from a dict, a preset id, a saved map's path or 'auto'."""
    names = [b.name for b in target.data.bones]
    if isinstance(bone_map, dict):
        return bonemaps.resolve(bone_map, names)
    if bone_map in (None, "", "auto"):
        parents = {b.name: b.parent.name if b.parent else None for b in target.data.bones}
        return bonemaps.detect(names, parents)[1]
    if bone_map == "generic":
        parents = {b.name: b.parent.name if b.parent else None for b in target.data.bones}
        return bonemaps.match_generic(names, parents)
    if bone_map in bonemaps.preset_ids():
        return bonemaps.resolve(bonemaps.load_preset(bone_map)["bones"], names)
    return bonemaps.resolve(bonemaps.load_map(bone_map), names)


def take_frames(source, frame_start=None, frame_end=None) -> np.ndarray:
    """(T,) int scene frames of the take (``scail_frame_start`` + its length), optionally cut."""
    start = int(source["scail_frame_start"])
    count = len(source["_scail_joints3d"]) // (rigmath.NUM_JOINTS * 3)
    lo = start if frame_start is None else max(start, int(frame_start))
    hi = start + count - 1 if frame_end is None else min(start + count - 1, int(frame_end))
    if hi < lo:
        raise R.RetargetError(f"frames {frame_start}..{frame_end} do not overlap the take "
                              f"({start}..{start + count - 1})")
    return np.arange(lo, hi + 1)


def source_pose(source, scene, frames) -> tuple:
    """Posed world orientations (T, 24, 3, 3) and heads (T, 24, 3) metres of a SCAIL armature."""
    if export.needs_depsgraph(source):
        posed = _posed_by_depsgraph(source, scene, frames)
    else:
        basis = export._basis_from_curves(source, frames)
        posed = rigmath.forward_kinematics(rest_matrices(source), basis)
    world = np.array(source.matrix_world, dtype=np.float64)
    posed = world @ posed
    rot = posed[..., :3, :3] / _uniform_scale(source)
    return rot, posed[..., :3, 3]


def _posed_by_depsgraph(obj, scene, frames) -> np.ndarray:
    names = rigmath.bone_names()
    order = [obj.pose.bones.find(n) for n in names]
    n_bones = len(obj.pose.bones)
    flat = np.empty(n_bones * 16, dtype=np.float32)
    out = np.empty((len(frames), rigmath.NUM_JOINTS, 4, 4))
    current = scene.frame_current
    try:
        for i, frame in enumerate(frames.tolist()):
            scene.frame_set(int(frame))
            obj.pose.bones.foreach_get("matrix", flat)
            out[i] = flat.reshape(n_bones, 4, 4).transpose(0, 2, 1)[order]
    finally:
        scene.frame_set(current)
    return out


def _uniform_scale(obj) -> float:
    scale = np.array(obj.matrix_world.to_scale())
    if np.ptp(scale) > 1e-4 * np.abs(scale).max():
        raise R.RetargetError(f"armature {obj.name!r} has a non-uniform scale {tuple(scale)}; "
                              f"apply the scale (Ctrl+A) first")
    return float(scale[0])


def skeleton_of(obj) -> R.Skeleton:
    """The rest pose of an armature object in world space (see ``scail_protocol.retarget``)."""
    bones = obj.data.bones
    n = len(bones)
    flat = np.empty(n * 16, dtype=np.float32)
    bones.foreach_get("matrix_local", flat)
    local = flat.reshape(n, 4, 4).transpose(0, 2, 1).astype(np.float64)
    scale = _uniform_scale(obj)
    world = np.array(obj.matrix_world, dtype=np.float64) @ local
    world[:, :3, :3] /= scale
    lengths = np.empty(n, dtype=np.float32)
    bones.foreach_get("length", lengths)
    index = {b.name: i for i, b in enumerate(bones)}
    parents = np.array([index[b.parent.name] if b.parent else -1 for b in bones])
    return R.Skeleton(names=tuple(b.name for b in bones), parents=parents, rest=world,
                      lengths=lengths.astype(np.float64) * scale, scale=scale)


# --- writing keys -------------------------------------------------------------------------------

def bake(target, pose: R.Pose, bones, root: int, frames, *, name: str) -> tuple:
    """Key the pose into a new action of ``target`` and push it onto an NLA track.

    Returns:
        (action, strip).
    """
    anim_data = target.animation_data or target.animation_data_create()
    if anim_data.action is not None:  # keep the artist's action: push it down first
        previous = anim.Channels(anim_data.action, getattr(anim_data, "action_slot", None), None)
        anim.push_to_nla(target, previous, anim_data.action.name, int(anim_data.action.frame_range[0]))
    channels = anim.new_action(name, target)
    try:
        for b in bones:
            bone_name = target.data.bones[b].name
            target.pose.bones[bone_name].rotation_mode = "QUATERNION"
            path = f'pose.bones["{bpy.utils.escape_identifier(bone_name)}"]'
            anim.key_curves(channels, bone_name, f"{path}.rotation_quaternion", frames,
                            pose.quats[:, b])
            if b == root:
                anim.key_curves(channels, bone_name, f"{path}.location", frames, pose.root_location)
        strip = anim.push_to_nla(target, channels, TRACK_NAME, int(frames[0]))
    except BaseException:
        bpy.data.actions.remove(channels.action)
        raise
    return channels.action, strip


def _log_report(kind, message) -> None:
    level = logging.WARNING if "WARNING" in kind or "ERROR" in kind else logging.INFO
    log.log(level, "%s", message)

