"""Retarget an SMPL-24 take onto a character rig: baked keys in the rig's own action, on an NLA track.

The source is an armature made by SCAIL import (grounded or not, edited or not): its posed bones
are evaluated on every frame in bulk (``export``'s F-curve path, or the depsgraph for rigs with
constraints). The maths is ``scail_protocol.retarget`` (all frames at once, numpy); this module
reads Blender data into arrays and writes the result back with ``foreach_set``. The source is
never changed.

What the target gets: a new action (one slot for the target on Blender 4.4+) with
``rotation_quaternion`` keys on every mapped bone and on the bones above them (which stay at
their rest pose relative to their parents), ``location`` keys on the root-motion bone (the bone
mapped to the pelvis unless the map names one), pushed onto a new NLA track. An action the
target had active is pushed down to a track of its own first, so nothing of it is lost. Keyed
bones are switched to quaternion rotation.

Rigs with constraints: the transfer first assumes plain parenting (all frames at once). Mapped
bones that hang under constrained helpers (a generated Rigify rig's FK controls sit under MCH
bones that copy the hips, chest or torso) are then re-solved against the parent matrices Blender
evaluates, group by group in dependency order (``scail_protocol.retarget.evaluation_passes``):
each pass sets every frame once and reads all pose matrices in bulk. Limb IK/FK switches
(Rigify's ``IK_FK`` properties) are set to FK, so the FK controls the map names are the ones
that drive the limbs.

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
from scail_protocol.rotations import make_continuous, matrix_to_quat

from . import anim, bonemaps, export, rigmath
from .armature import PERSON_PROP, rest_matrices

log = logging.getLogger(__name__)

TRACK_NAME = "SCAIL retarget"
SMPL_INDEX = {name: j for j, name in enumerate(bonemaps.BONE_KEYS)}
FK_SWITCH_PROP = "IK_FK"  # Rigify's limb switch on the limbs' parent controls
FK_VALUE = 1.0  # Rigify: 0 = IK, 1 = FK


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
        passes: evaluations of the whole take used to re-solve bones under constrained
            helpers (0 for plain rigs).
        fk_switches: the pose bones whose IK/FK switch was set to FK.
    """

    action: object
    strip: object
    frames: np.ndarray
    bone_map: dict
    leg_ratio: float
    contacts: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), bool))
    unreachable: int = 0
    passes: int = 0
    fk_switches: tuple = ()


def retarget(source, target, bone_map="auto", *, scene=None, frame_start=None, frame_end=None,
             in_place: bool = False, use_foot_contacts: bool = True, report=None,
             progress=None) -> RetargetResult:
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
        progress: optional ``progress("retarget", done, total)``, called once per evaluated
            frame and after each step (one overall count that only grows; ``total`` is known
            from the first call).

    Returns:
        A :class:`RetargetResult`.

    Raises:
        ScailError (RetargetError, BoneMapError): the source is not a SCAIL armature, the target
            is not an armature or not in the scene while its constraints need evaluating, the
            map lacks required bones, or the frame range is empty.
    """
    report = report or _log_report
    scene = scene or bpy.context.scene
    _check_objects(source, target)
    names = [b.name for b in target.data.bones]
    bone_map = resolve_map(bone_map, target)
    bonemaps.check_map(bone_map, names)
    frames = take_frames(source, frame_start, frame_end)
    skeleton = skeleton_of(target)
    index = {n: i for i, n in enumerate(names)}
    mapping = np.full(len(names), -1)
    for key, bone in bone_map.items():
        if key in SMPL_INDEX:
            mapping[index[bone]] = SMPL_INDEX[key]
    root, point = (index[bone_map.get(k, bone_map["pelvis"])] for k in bonemaps.EXTRA_KEYS)
    solve, root_pass = _evaluation_plan(target, skeleton, mapping, root, point)
    passes = max(int(solve.max(initial=0)), root_pass)
    if passes and target.name not in scene.objects:
        raise R.RetargetError(f"{target.name} must be in the scene {scene.name!r}: its "
                              f"constraints are evaluated there")
    evaluations = passes + (1 if export.needs_depsgraph(source) else 0)
    counter = _Counter(progress, len(frames) * evaluations + len(_STEPS))
    src_rot, src_heads = source_pose(source, scene, frames, tick=counter.step)
    src_rest = rest_matrices(source)
    solved = _solve(source, skeleton, mapping, bone_map, index, src_rot, src_heads, src_rest,
                    fps=scene.render.fps / scene.render.fps_base, in_place=in_place,
                    use_contacts=use_foot_contacts, root=root, point=point)
    pose, ratio, contacts, unreachable, desired, goal = solved
    counter.step()  # "solve"
    if unreachable:
        report({"WARNING"}, f"a planted foot was out of reach on {unreachable} frame(s); the leg "
                            f"was straightened toward it")
    bones = _keyed_bones(skeleton, mapping, (root, point))
    _warn_own_constraints(target, skeleton, mapping, report)
    switches = use_fk(target, report)
    action, strip, curves = bake(target, pose, bones, root, frames, switches=switches,
                                 name=f"{target.name} from {source.name}")
    counter.step()  # "bake"
    if passes:
        refine(target, scene, frames, curves, desired, solve, root=root, point=point,
               goal=goal if root_pass else None, root_pass=root_pass, tick=counter.step)
        report({"INFO"}, f"{np.count_nonzero(solve)} bone(s) of {target.name} hang under "
                         f"constrained helpers; solved them on {passes} evaluation pass(es)")
    return RetargetResult(action=action, strip=strip, frames=frames, bone_map=dict(bone_map),
                          leg_ratio=ratio, contacts=contacts, unreachable=unreachable,
                          passes=passes, fk_switches=tuple(switches))


_STEPS = ("solve", "bake")  # the steps counted once each besides the evaluated frames


class _Counter:
    """One retarget's overall progress: ``progress("retarget", done, total)`` as it grows."""

    def __init__(self, progress, total: int):
        self.progress, self.done, self.total = progress, 0, max(int(total), 1)
        if progress is not None:
            progress("retarget", 0, self.total)

    def step(self) -> None:
        self.done = min(self.done + 1, self.total)
        if self.progress is not None:
            self.progress("retarget", self.done, self.total)


def _solve(source, skeleton, mapping, bone_map, index, src_rot, src_heads, src_rest, *, fps,
           in_place, use_contacts, root, point):
    """The target's pose on all frames (maths only).

    Returns:
        (Pose, leg ratio, contacts, unreachable frames, desired (T, N, 3, 3) world orientations
        of the mapped bones, (T, 3) world goal of the pelvis point).
    """
    legs_t = [tuple(index[bone_map[k]] for k in (f"{s}_hip", f"{s}_knee")) for s in ("left", "right")]
    ankles = [bone_map.get(f"{s}_ankle") for s in ("left", "right")]
    src_rest_heads = src_rest[:, :3, 3] * _uniform_scale(source)
    ratio = _leg_ratio(skeleton, legs_t, ankles, index) / R.leg_length(src_rest_heads, R.LEGS)
    facing = R.yaw_to_face_minus_y(_target_left(skeleton, legs_t))
    desired = R.transfer_orientations(src_rot, src_rest[:, :3, :3], skeleton, mapping, facing)
    # Heights are measured from the balls of the feet (SMPL left/right_foot joints), which the
    # grounded floor passes through; the target's from its feet's tails at rest.
    src_ball = src_heads[:, list(G.FOOT_JOINTS)]
    contacts = G.detect_contacts(src_heads, fps)
    src_floor = _floor_level(src_ball, contacts)
    src_ball_rest = src_rest_heads[list(G.FOOT_JOINTS), 2].mean()
    src_hip_height = src_rest_heads[R.PELVIS, 2] - src_ball_rest
    tgt_ball_rest = _target_ball_rest(skeleton, ankles, index, legs_t)
    tgt_hip_height = skeleton.heads[point, 2] - tgt_ball_rest
    goal = R.root_trajectory(
        src_heads[:, R.PELVIS], ratio=ratio, target_start=skeleton.heads[point],
        source_floor_z=src_floor,
        target_floor_z=tgt_ball_rest + (tgt_hip_height - ratio * src_hip_height),
        in_place=in_place)
    bones = _keyed_bones(skeleton, mapping, (root, point))
    pose = R.pose_skeleton(skeleton, desired, root, goal, bones, point=point)
    unreachable = 0
    if use_contacts and all(ankles):
        for side, (thigh, shin) in enumerate(legs_t):
            chain = (thigh, shin, index[ankles[side]])
            unreachable += _plant_foot(pose, desired, skeleton, chain, contacts[:, side],
                                       tgt_ball_rest)
        pose = R.pose_skeleton(skeleton, desired, root, goal, bones, point=point)
    return pose, ratio, contacts, unreachable, desired, goal


def _warn_own_constraints(target, skeleton, mapping, report) -> None:
    """Warn about mapped bones with constraints of their own: what they show is what the
    constraints make of the baked keys."""
    pose_bones = target.pose.bones
    own = [skeleton.names[b] for b in np.flatnonzero(mapping >= 0)
           if _active_constraints(pose_bones[skeleton.names[b]])]
    if own:
        names = ", ".join(own[:4]) + (" ..." if len(own) > 4 else "")
        report({"WARNING"}, f"{len(own)} mapped bone(s) of {target.name} have constraints of "
                            f"their own ({names}); they may not follow the take exactly")


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


def _keyed_bones(skeleton, mapping, extra=()) -> list:
    """Mapped bones (and ``extra`` ones) and all their ancestors, parents first."""
    keep = np.zeros(len(mapping), bool)
    for b in [*np.flatnonzero(mapping >= 0).tolist(), *extra]:
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


def source_pose(source, scene, frames, tick=None) -> tuple:
    """Posed world orientations (T, 24, 3, 3) and heads (T, 24, 3) metres of a SCAIL armature.

    ``tick()`` is called after each frame Blender evaluates (only for sources that need the
    depsgraph: constraints, drivers).
    """
    if export.needs_depsgraph(source):
        posed = _posed_by_depsgraph(source, scene, frames, tick)
    else:
        basis = export._basis_from_curves(source, frames)
        posed = rigmath.forward_kinematics(rest_matrices(source), basis)
    world = np.array(source.matrix_world, dtype=np.float64)
    posed = world @ posed
    rot = posed[..., :3, :3] / _uniform_scale(source)
    return rot, posed[..., :3, 3]


def _posed_by_depsgraph(obj, scene, frames, tick=None) -> np.ndarray:
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
            if tick is not None:
                tick()
    finally:
        scene.frame_set(current)
    return out


def _uniform_scale(obj) -> float:
    scale = np.array(obj.matrix_world.to_scale())
    if np.ptp(scale) > 1e-4 * np.abs(scale).max():
        shown = ", ".join(f"{float(s):g}" for s in scale)  # plain numbers (numpy 2 too)
        raise R.RetargetError(f"armature {obj.name!r} has a non-uniform scale ({shown}); "
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

def bake(target, pose: R.Pose, bones, root: int, frames, *, name: str, switches=()) -> tuple:
    """Key the pose into a new action of ``target`` and push it onto an NLA track.

    Args:
        switches: pose-bone names whose :data:`FK_SWITCH_PROP` is keyed at :data:`FK_VALUE`.

    Returns:
        (action, strip, curves): ``curves`` maps each keyed bone index to its F-curves,
        ``{"rotation_quaternion": [4], "location": [3] (root only)}``.
    """
    anim_data = target.animation_data or target.animation_data_create()
    if anim_data.action is not None:  # keep the artist's action: push it down first
        previous = anim.Channels(anim_data.action, getattr(anim_data, "action_slot", None), None)
        anim.push_to_nla(target, previous, anim_data.action.name)
    channels = anim.new_action(name, target)
    curves = {}
    try:
        for b in bones:
            bone_name = target.data.bones[b].name
            target.pose.bones[bone_name].rotation_mode = "QUATERNION"
            path = f'pose.bones["{bpy.utils.escape_identifier(bone_name)}"]'
            curves[b] = {"rotation_quaternion": anim.key_curves(
                channels, bone_name, f"{path}.rotation_quaternion", frames, pose.quats[:, b])}
            if b == root:
                curves[b]["location"] = anim.key_curves(channels, bone_name, f"{path}.location",
                                                        frames, pose.root_location)
        ends = frames[[0, -1]] if len(frames) > 1 else frames
        for bone_name in switches:
            path = f'pose.bones["{bpy.utils.escape_identifier(bone_name)}"]["{FK_SWITCH_PROP}"]'
            anim.key_curves(channels, bone_name, path, ends, np.full((len(ends), 1), FK_VALUE))
        strip = anim.push_to_nla(target, channels, TRACK_NAME)
    except BaseException:
        bpy.data.actions.remove(channels.action)
        raise
    return channels.action, strip, curves


def use_fk(target, report) -> list:
    """Set every limb IK/FK switch of the rig (:data:`FK_SWITCH_PROP`) to FK; their bone names."""
    switched = [pb.name for pb in target.pose.bones if FK_SWITCH_PROP in pb.keys()]
    for name in switched:
        target.pose.bones[name][FK_SWITCH_PROP] = FK_VALUE
    if switched:
        target.update_tag()  # custom properties do not tag the drivers that read them
        report({"INFO"}, f"set {FK_SWITCH_PROP} to FK ({FK_VALUE:g}) on "
                         f"{', '.join(switched)}: the FK controls drive the limbs")
    return switched


# --- rigs with constraints ---------------------------------------------------------------------

def _active_constraints(pose_bone) -> list:
    return [c for c in pose_bone.constraints if not c.mute and c.is_valid]


def _constraint_targets(pose_bone, obj) -> set:
    """Names of the bones of ``obj`` that the pose bone's constraints read."""
    out = set()
    for c in _active_constraints(pose_bone):
        pairs = [(t.target, t.subtarget) for t in getattr(c, "targets", ())
                 if hasattr(t, "subtarget")]
        pairs.append((getattr(c, "target", None), getattr(c, "subtarget", "")))
        pairs.append((getattr(c, "pole_target", None), getattr(c, "pole_subtarget", "")))
        out.update(sub for ob, sub in pairs if ob == obj and sub)
    return out


def _evaluation_plan(target, skeleton, mapping, root, point) -> tuple:
    """``scail_protocol.retarget.evaluation_passes`` for the rig: (solve (N,), root pass)."""
    index = {n: i for i, n in enumerate(skeleton.names)}
    pose_bones = target.pose.bones
    constrained = np.zeros(len(mapping), bool)
    targets = {}
    for i, name in enumerate(skeleton.names):
        pb = pose_bones[name]
        constrained[i] = bool(_active_constraints(pb)) or not pb.bone.use_inherit_rotation
        if constrained[i]:
            targets[i] = {index[t] for t in _constraint_targets(pb, target) if t in index}
    return R.evaluation_passes(skeleton.parents, mapping >= 0, constrained, targets, root=root,
                               point=point)


def refine(target, scene, frames, curves, desired, solve, *, root, point, goal=None,
           root_pass=0, tick=None) -> None:
    """Re-solve bones under constrained helpers against Blender's evaluation of the rig.

    Pass ``k`` sets every frame once and rewrites the keys of the bones with ``solve == k``
    (and, on ``root_pass``, the root location) so that they reach their wanted orientation
    (and the pelvis point its goal) under the parents Blender evaluated.

    Args:
        target: the armature object, keyed by :func:`bake` (``curves``).
        frames: (T,) the keyed scene frames.
        desired: (T, N, 3, 3) wanted world orientations of the mapped bones.
        solve: (N,) pass of each bone (0: leave as keyed).
        goal: (T, 3) world position of the pelvis point's head, metres.
        tick: optional ``tick()`` after each frame Blender evaluates.
    """
    world = np.array(target.matrix_world, dtype=np.float64)
    to_armature = np.linalg.inv(world[:3, :3]) * _uniform_scale(target)  # world -> armature
    for k in range(1, max(int(solve.max(initial=0)), root_pass) + 1):
        bones = np.flatnonzero(solve == k).tolist()
        read = bones + ([root, point] if k == root_pass else [])
        matrix, basis = _evaluate(target, scene, frames, read, tick)
        carried = matrix @ np.linalg.inv(basis)  # what the parent makes of the bone's rest
        if bones:
            parent = _nearest_rotation(carried[:, :len(bones), :3, :3])
            local = np.swapaxes(parent, -1, -2) @ (to_armature @ desired[:, bones])
            quats = make_continuous(matrix_to_quat(local), axis=0)
            for j, b in enumerate(bones):
                _rewrite(curves[b]["rotation_quaternion"], frames, quats[:, j])
        if k == root_pass:
            head = matrix[:, -1, :3, 3] @ world[:3, :3].T + world[:3, 3]
            miss = (goal - head) @ np.linalg.inv(world[:3, :3]).T  # armature units
            step = np.linalg.solve(carried[:, -2, :3, :3], miss[..., None])[..., 0]
            _rewrite(curves[root]["location"], frames, basis[:, -2, :3, 3] + step)


def _evaluate(obj, scene, frames, bones, tick=None) -> tuple:
    """(T, n, 4, 4) pose matrices and (T, n, 4, 4) basis matrices of skeleton bones ``bones``
    on every frame, from Blender's evaluation (armature space)."""
    pose_bones = obj.pose.bones
    order = [pose_bones.find(obj.data.bones[b].name) for b in bones]
    n = len(pose_bones)
    flat = np.empty(n * 16, dtype=np.float32)
    matrix = np.empty((len(frames), len(bones), 4, 4))
    basis = np.empty_like(matrix)
    current = scene.frame_current
    try:
        for i, frame in enumerate(frames.tolist()):
            scene.frame_set(int(frame))
            for out, prop in ((matrix, "matrix"), (basis, "matrix_basis")):
                pose_bones.foreach_get(prop, flat)
                out[i] = flat.reshape(n, 4, 4)[order].transpose(0, 2, 1)
            if tick is not None:
                tick()
    finally:
        scene.frame_set(current)
    return matrix, basis


def _nearest_rotation(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) the rotations nearest to ``m`` (parents with scale or shear)."""
    u, _, vt = np.linalg.svd(m)
    fix = np.ones(m.shape[:-1])
    fix[..., -1] = np.sign(np.linalg.det(u @ vt))
    return (u * fix[..., None, :]) @ vt


def _rewrite(fcurves, frames, values) -> None:
    """New values (T, k) for the keys of F-curves made by ``anim.key_curves`` on ``frames``."""
    co = np.empty((len(frames), 2), dtype=np.float32)
    co[:, 0] = frames
    for i, fcurve in enumerate(fcurves):
        co[:, 1] = values[:, i]
        fcurve.keyframe_points.foreach_set("co", co.ravel())
        fcurve.update()


def _log_report(kind, message) -> None:
    level = logging.WARNING if "WARNING" in kind or "ERROR" in kind else logging.INFO
    log.log(level, "%s", message)

