"""Export edited armatures back to a PoseSequence by forward kinematics.

The joints are the posed bone heads, evaluated on every frame of the take in bulk: each F-curve
is evaluated once per frame (``FCurve.evaluate``, so any interpolation the artist used counts)
and the hierarchy is composed with numpy (``rigmath.forward_kinematics``). Rigs with bone
constraints or drivers cannot be evaluated that way; they go through Blender's depsgraph
(``scene.frame_set`` per frame), which is slower but exact.

The 2D face and hands follow the 3D edits as the reference moves its overlay after alignment
(docs/pipeline.md §9.5): with Δ_j = project(J_j after, K now) − project(J_j before, K at import),
body, feet and face points move by Δ of the head (SMPL 15), the left hand by Δ of the left
wrist (20), the right hand by Δ of the right wrist (21). Δ is 0 where either end is missing or
lies behind the camera. Boxes and scores are kept.

Frames: the scene's frame range (start, end, step), as every Blender render and export does,
within the take's own frames ``scail_frame_start`` .. ``scail_frame_start + T − 1`` (as
imported); with a step of n the sequence's fps is the take's fps / n, so timing is kept. A frame
that was missing at import stays missing unless the artist keyed something on it.
"""

from __future__ import annotations

import json
import logging

import bpy
import numpy as np
from mathutils import Euler, Quaternion
from scail_protocol import camera as C
from scail_protocol import joints as J
from scail_protocol.errors import SequenceError
from scail_protocol.sequence import PoseSequence

from . import anim, rigmath
from . import camera as camera_mod
from .armature import PERSON_PROP, rest_matrices

log = logging.getLogger(__name__)

HEAD, LEFT_WRIST, RIGHT_WRIST = J.SMPL24["head"], J.SMPL24["left_wrist"], J.SMPL24["right_wrist"]
MIN_SHIFT_DEPTH_MM = 0.01  # docs/pipeline.md §9.5: joints nearer than this do not move the overlay
_KEY_TOLERANCE = 0.5  # a key within half a frame of a frame counts as on it
_BODY_AND_FEET = slice(J.BODY.start, J.FEET.stop)


def export_sequence(armatures, *, scene, use_depsgraph=None, report=None) -> PoseSequence:
    """The PoseSequence shown by armatures that :mod:`armature` imported (possibly edited).

    Args:
        armatures: armature objects with the ``scail_*`` properties of an import; they must
            come from the same take (same size, frame count and start frame).
        scene: the scene to evaluate (the depsgraph path changes its current frame and restores it).
        use_depsgraph: force (True) or forbid (False) the slow frame-by-frame path; None picks
            it only for rigs with constraints or drivers.
        report: ``report(type_set, message)`` for warnings.

    Returns:
        A PoseSequence with one person per armature (ordered by their ``scail_person``),
        joints3d from the bones (camera frame, mm), kp2d shifted with the head and wrists.

    Raises:
        SequenceError: no armature, armatures from different takes, or one lacking its data.
    """
    armatures = sorted(armatures, key=lambda o: (int(o.get(PERSON_PROP, 0)), o.name))
    if not armatures:
        raise SequenceError("no SCAIL armature to export: import a take first")
    sources = [_source_of(obj) for obj in armatures]
    _check_same_take(armatures, sources)
    bpy.context.view_layer.update()  # object matrices of moved cameras and armatures
    first = sources[0]
    height, width = first["size"]
    camera_obj = first["camera"]
    K_now = camera_mod.read_K(camera_obj, scene, height, width) if camera_obj else first["K"]
    to_reference = camera_mod.world_to_reference(camera_obj) if camera_obj else np.eye(4)
    frames = scene_frames(scene, first["frame_start"], first["num_frames"])
    _report_trimmed(frames, first, scene, report)
    sources = [_select_frames(src, frames - src["frame_start"]) for src in sources]
    joints, kp2d = [], []
    for obj, src in zip(armatures, sources):
        heads_world = _posed_heads_world(obj, scene, frames, use_depsgraph)  # (T, 24, 3) m
        heads_ref = heads_world @ to_reference[:3, :3].T + to_reference[:3, 3]
        after = C.blender_to_camera(heads_ref).astype(np.float32)
        after[~_present_frames(obj, src, frames)] = np.nan
        joints.append(after)
        kp2d.append(shift_overlay(src["kp2d"], src["joints3d"], after, src["K"], K_now))
    step = max(int(scene.frame_step), 1)
    meta = dict(first["meta"], edited_in="blender",
                scene_frames=[int(frames[0]), int(frames[-1]), step])
    return PoseSequence(
        fps=first["fps"] / step, size=(height, width), K=K_now,
        joints3d=np.stack(joints), kp2d=np.stack(kp2d),
        kp2d_score=np.stack([s["kp2d_score"] for s in sources]),
        bbox=np.stack([s["bbox"] for s in sources]),
        track_id=np.array([s["track_id"] for s in sources], dtype=np.int64), meta=meta)


def scene_frames(scene, take_start: int, take_frames: int) -> np.ndarray:
    """Scene frames to export: the scene's range and step, within the take's own frames.

    Args:
        scene: its ``frame_start``, ``frame_end`` and ``frame_step`` choose the frames.
        take_start, take_frames: the take's first scene frame and its number of frames.

    Returns:
        (n,) int64 ascending scene frame numbers, n >= 1.

    Raises:
        SequenceError: the scene's range holds no frame of the take.
    """
    step = max(int(scene.frame_step), 1)
    frames = np.arange(int(scene.frame_start), int(scene.frame_end) + 1, step, dtype=np.int64)
    frames = frames[(frames >= take_start) & (frames < take_start + take_frames)]
    if not len(frames):
        raise SequenceError(f"the scene's frame range {scene.frame_start}-{scene.frame_end} holds "
                            f"no frame of the take ({take_start}-{take_start + take_frames - 1}); "
                            f"set the range in the Output properties or the Timeline")
    return frames


def _select_frames(src: dict, index: np.ndarray) -> dict:
    """A source dict (see :func:`_source_of`) cut to the take-frame indices ``index``."""
    out = dict(src)
    for key in ("joints3d", "kp2d", "kp2d_score", "bbox"):
        out[key] = src[key][index]
    return out


def shift_overlay(kp2d_px, before_mm, after_mm, K_before, K_after) -> np.ndarray:
    """Move the 2D whole-body points with the head and wrists (docs/pipeline.md §9.5).

    Args:
        kp2d_px: (T, 134, 2) float32 pixels; NaN = missing.
        before_mm, after_mm: (T, 24, 3) SMPL-24 joints before and after the edit, camera frame,
            mm; NaN = missing.
        K_before, K_after: (3, 3) intrinsics of the two projections.

    Returns:
        (T, 134, 2) float32 shifted points (missing points stay NaN).
    """
    out = np.array(kp2d_px, dtype=np.float64)
    for joint, parts in ((HEAD, (_BODY_AND_FEET, J.FACE)), (LEFT_WRIST, (J.LEFT_HAND,)),
                         (RIGHT_WRIST, (J.RIGHT_HAND,))):
        delta = _displacement(before_mm[:, joint], after_mm[:, joint], K_before, K_after)
        for part in parts:
            out[:, part] += delta[:, None, :]
    return out.astype(np.float32)


def _displacement(before, after, K_before, K_after) -> np.ndarray:
    """(T, 2) pixel shift of one joint; 0 where it is missing or too near on either side."""
    before = np.asarray(before, dtype=np.float64)
    after = np.asarray(after, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        usable = (before[:, 2] > MIN_SHIFT_DEPTH_MM) & (after[:, 2] > MIN_SHIFT_DEPTH_MM)
    delta = C.project(after, K_after) - C.project(before, K_before)
    return np.where(usable[:, None] & np.isfinite(delta), delta, 0.0)


def _source_of(obj) -> dict:
    """The import-time data kept on an armature (see ``armature`` module docstring)."""
    try:
        height, width = (int(v) for v in obj["scail_size"])
        K = np.asarray(obj["_scail_K"], dtype=np.float64).reshape(3, 3)
        joints3d = np.asarray(obj["_scail_joints3d"], dtype=np.float32).reshape(-1, 24, 3)
        T = joints3d.shape[0]
        src = {
            "size": (height, width), "K": K, "joints3d": joints3d, "num_frames": T,
            "kp2d": np.asarray(obj["_scail_kp2d"], np.float32).reshape(T, J.NUM_WHOLEBODY, 2),
            "kp2d_score": np.asarray(obj["_scail_kp2d_score"], np.float32).reshape(T, J.NUM_WHOLEBODY),
            "bbox": np.asarray(obj["_scail_bbox"], np.float32).reshape(T, 4),
            "fps": float(obj["scail_fps"]), "frame_start": int(obj["scail_frame_start"]),
            "track_id": int(obj["scail_track_id"]), "meta": json.loads(obj["_scail_meta"]),
            "camera": obj.get("scail_camera"),
        }
    except (KeyError, ValueError, TypeError) as e:
        raise SequenceError(f"armature {obj.name!r} lacks the data of a SCAIL import ({e}); "
                            f"only armatures made by SCAIL import can be exported") from None
    return src


def _check_same_take(armatures, sources) -> None:
    takes = {}
    for obj, src in zip(armatures, sources):
        takes.setdefault((src["size"], src["num_frames"], src["frame_start"]), []).append(obj.name)
    if len(takes) > 1:
        listed = "; ".join(", ".join(names) for names in takes.values())
        raise SequenceError(f"the armatures come from {len(takes)} different takes ({listed}): "
                            f"select the armatures of one take")
    by_track = {}
    for obj, src in zip(armatures, sources):
        by_track.setdefault(src["track_id"], []).append(obj.name)
    twice = next((names for names in by_track.values() if len(names) > 1), None)
    if twice:
        raise SequenceError(f"{' and '.join(twice)} are the same person (one take imported "
                            f"{len(twice)} times?): select the armatures of one import")


def _report_trimmed(frames, src, scene, report) -> None:
    """Say so when the scene's frame range leaves out frames of the take."""
    first, last = src["frame_start"], src["frame_start"] + src["num_frames"] - 1
    if frames[0] == first and frames[-1] == last:
        return
    message = (f"exporting frames {frames[0]}-{frames[-1]} of the take's {first}-{last}: the "
               f"scene's frame range is {scene.frame_start}-{scene.frame_end}; widen it in the "
               f"Output properties or the Timeline for the whole take")
    if report is not None:
        report({"WARNING"}, message)
    else:
        log.warning(message)


def _present_frames(obj, src, frames) -> np.ndarray:
    """(T,) bool: present at import, or carrying a key now (the artist filled a gap)."""
    present = np.isfinite(src["joints3d"]).all(axis=(1, 2))
    if present.all():
        return present
    source = anim.curve_source(obj)
    keyed = anim.key_frames(source)
    if keyed.size:
        action_frames = source.action_frames(frames)
        nearest = np.abs(action_frames[:, None] - keyed[None, :]).min(axis=1) \
            if len(frames) * keyed.size <= 4_000_000 else _nearest_distance(action_frames, keyed)
        present |= (nearest <= _KEY_TOLERANCE) & source.covers(frames)
    return present


def _nearest_distance(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    idx = np.clip(np.searchsorted(sorted_keys, values), 1, len(sorted_keys) - 1)
    lo, hi = sorted_keys[idx - 1], sorted_keys[np.minimum(idx, len(sorted_keys) - 1)]
    return np.minimum(np.abs(values - lo), np.abs(values - hi))


# --- evaluation ---------------------------------------------------------------------------------

def _posed_heads_world(obj, scene, frames, use_depsgraph) -> np.ndarray:
    """(T, 24, 3) float64 posed bone heads in world space, metres, SMPL order."""
    if use_depsgraph is None:
        use_depsgraph = needs_depsgraph(obj)
    if use_depsgraph:
        heads = _heads_by_depsgraph(obj, scene, frames)
    else:
        rest = rest_matrices(obj)
        basis = _basis_from_curves(obj, frames)
        heads = rigmath.forward_kinematics(rest, basis)[..., :3, 3]
    world = np.array(obj.matrix_world, dtype=np.float64)
    return heads @ world[:3, :3].T + world[:3, 3]


def needs_depsgraph(obj) -> bool:
    """True when the pose is not a function of the bones' own F-curves alone."""
    if any(pb.constraints for pb in obj.pose.bones):
        return True
    anim_data = obj.animation_data
    return bool(anim_data and anim_data.drivers)


def _heads_by_depsgraph(obj, scene, frames) -> np.ndarray:
    names = rigmath.bone_names()
    order = [obj.pose.bones.find(n) for n in names]
    n_bones = len(obj.pose.bones)
    flat = np.empty(n_bones * 3, dtype=np.float32)
    out = np.empty((len(frames), rigmath.NUM_JOINTS, 3))
    current = scene.frame_current
    try:
        for i, frame in enumerate(frames.tolist()):
            scene.frame_set(int(frame))
            obj.pose.bones.foreach_get("head", flat)
            out[i] = flat.reshape(n_bones, 3)[order]
    finally:
        scene.frame_set(current)
    return out


def _basis_from_curves(obj, frames) -> np.ndarray:
    """(T, 24, 4, 4) pose-bone basis matrices on the given scene frames from the F-curves.

    Channels without an F-curve keep the pose bone's current value. Rotation modes: quaternion,
    the six Euler orders and axis-angle, as Blender converts them.
    """
    source = anim.curve_source(obj)
    action_frames = source.action_frames(frames)
    T = len(frames)
    quats = np.empty((T, rigmath.NUM_JOINTS, 4))
    locs = np.empty((T, rigmath.NUM_JOINTS, 3))
    scales = np.empty((T, rigmath.NUM_JOINTS, 3))
    for j, name in enumerate(rigmath.bone_names()):
        pose_bone = obj.pose.bones[name]
        path = f'pose.bones["{name}"]'

        def channel(prop, size, _pb=pose_bone, _path=path):
            static = getattr(_pb, prop)
            cols = []
            for i in range(size):
                fcurve = source.fcurves.get((f"{_path}.{prop}", i))
                usable = fcurve is not None and not fcurve.mute
                cols.append(anim.evaluate(fcurve, action_frames) if usable
                            else np.full(T, static[i]))
            return np.stack(cols, axis=-1)

        locs[:, j] = channel("location", 3)
        scales[:, j] = channel("scale", 3)
        quats[:, j] = _rotation_as_quat(pose_bone.rotation_mode, channel)
    return rigmath.basis_matrices(quats, locs, scales)


def _rotation_as_quat(mode: str, channel) -> np.ndarray:
    """(T, 4) quaternions of a pose bone's rotation channels in its rotation mode."""
    if mode == "QUATERNION":
        return channel("rotation_quaternion", 4)
    if mode == "AXIS_ANGLE":
        values = channel("rotation_axis_angle", 4)
        return np.array([Quaternion(v[1:], v[0]) for v in values.tolist()])
    values = channel("rotation_euler", 3)
    return np.array([Euler(v, mode).to_quaternion() for v in values.tolist()])

