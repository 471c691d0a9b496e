"""Import a PoseSequence as one SMPL-24 armature per person (plus the camera of the take).

Plain functions: they take a PoseSequence and Blender targets, return what they created and
raise on failure, leaving nothing half-built behind. Operators and ``headless`` call them.

Frames: sequence frame ``t`` is scene frame ``start_frame + t``. Only frames on which all 24
joints of a person are present get keys; F-curves interpolate linearly across a gap and hold
before the first and after the last key. Export turns an untouched gap back into missing data.
The rig maths (rest pose, twist convention, exact bone lengths) is in ``rigmath``.

What an armature keeps (custom properties; names starting with ``_`` are hidden in the UI) so
that :mod:`export` can rebuild the full sequence later, even from a saved .blend:
``scail_person``, ``scail_track_id``, ``scail_frame_start``, ``scail_fps``, ``scail_size`` (H, W),
``scail_camera`` (the camera object), ``scail_exact``, ``_scail_K`` (9), ``_scail_meta`` (JSON) and
the person's source arrays ``_scail_joints3d`` (T*24*3, camera mm), ``_scail_kp2d`` (T*134*2),
``_scail_kp2d_score`` (T*134), ``_scail_bbox`` (T*4), all float32 with NaN = missing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import bpy
import numpy as np
from scail_protocol import blender_rig
from scail_protocol import camera as C
from scail_protocol.errors import SequenceError
from scail_protocol.sequence import people_count

from . import anim, reports, rigmath
from . import camera as camera_mod

log = logging.getLogger(__name__)

DEFAULT_START_FRAME = 1  # Blender's own default first frame
PERSON_PROP = "scail_person"  # marks an armature made by this add-on


@dataclass
class ImportResult:
    """What :func:`import_sequence` created.

    Attributes:
        armatures: one armature object per imported person, in person order.
        camera: the camera object reproducing ``K``.
        actions: the actions (one per person), each on an NLA track of its armature.
        skipped: indices of people with no frame where all 24 joints are present.
        scene_state: the scene's settings before the import (a :class:`SceneState`), which
            :func:`remove_imported` puts back; None leaves the scene as it is.
    """

    armatures: list = field(default_factory=list)
    camera: object = None
    actions: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    scene_state: object = None


@dataclass
class SceneState:
    """The scene settings an import changes (camera, resolution, pixel aspect, fps, frame
    range, current frame), captured so that a failed import can put them back."""

    scene: object
    camera: object
    render: dict
    frames: dict

    RENDER = (*camera_mod.RENDER_SETTINGS, "fps", "fps_base")
    FRAMES = ("frame_start", "frame_end", "frame_current")

    @classmethod
    def capture(cls, scene) -> "SceneState":
        return cls(scene=scene, camera=scene.camera,
                   render={k: getattr(scene.render, k) for k in cls.RENDER},
                   frames={k: getattr(scene, k) for k in cls.FRAMES})

    def restore(self) -> None:
        """Put the captured settings back (a camera deleted since is left unset)."""
        scene = self.scene
        for key, value in self.render.items():
            setattr(scene.render, key, value)
        # Blender moves the other end along when start > end: start, end, start reaches any.
        scene.frame_start = self.frames["frame_start"]
        scene.frame_end = self.frames["frame_end"]
        scene.frame_start = self.frames["frame_start"]
        try:
            scene.camera = self.camera
        except ReferenceError:  # the artist's camera no longer exists
            scene.camera = None
        scene.frame_set(self.frames["frame_current"])


def import_sequence(seq, collection, *, scene, name: str = "SCAIL", video_path=None,
                    exact: bool = True, start_frame: int = DEFAULT_START_FRAME,
                    report=None) -> ImportResult:
    """Build one armature per person, a matching camera, and set the scene's fps and range.

    Args:
        seq: the PoseSequence to import.
        collection: collection to link the new objects into (must be in the view layer).
        scene: scene whose fps, frame range, resolution and camera are set.
        name: prefix of the new objects, armatures and actions.
        video_path: optional driving video, shown as the camera background.
        exact: key every bone's head so that export reproduces the joints exactly (see
            ``rigmath``); False keeps rigid bones of the median lengths.
        start_frame: scene frame of sequence frame 0.
        report: ``report(type_set, message)`` for warnings (an operator's ``self.report``);
            None: shown in the status bar and Info log all the same (``reports.to_user``; the
            timer's imports have no operator).

    Returns:
        An :class:`ImportResult`.

    Frames of a person on which some but not all joints are present are left unkeyed; one
    warning per person says how many.

    Raises:
        SequenceError: nobody in the sequence has a complete frame.
        VideoError: ``video_path`` is given but cannot be opened.

    A failed import removes what it made and puts the scene's camera, resolution, pixel
    aspect, fps and frame range back as they were.
    """
    report = report or _to_user
    result = ImportResult(scene_state=SceneState.capture(scene))
    try:
        result.camera = camera_mod.create_camera(seq, collection, scene, name=f"{name} Camera",
                                                 video_path=video_path, start_frame=start_frame)
        for person in range(seq.num_people):
            made = _import_person(seq, person, collection, name=name, exact=exact,
                                  start_frame=start_frame, camera_obj=result.camera)
            if made is None:
                result.skipped.append(person)
                continue
            result.armatures.append(made[0])
            result.actions.append(made[1])
        if not result.armatures:
            raise SequenceError(f"no person in the poses has a frame with all 24 joints "
                                f"({people_count(seq.num_people)}, {seq.num_frames} frames); "
                                f"there is no motion to bring into Blender")
        set_scene_timing(scene, seq.fps, start_frame, seq.num_frames)
    except BaseException:
        remove_imported(result)
        raise
    for person in range(seq.num_people):
        track = int(seq.track_id[person])
        if person in result.skipped:
            report({"WARNING"}, f"person {person} (track {track}) has no complete frame and was "
                                f"skipped")
            continue
        partial = incomplete_frames(seq, person)
        if partial:
            frames = f"{partial} frame" if partial == 1 else f"{partial} frames"
            report({"WARNING"}, f"{frames} of person {person} (track {track}) had missing joints "
                                f"and were left unkeyed")
    return result


def incomplete_frames(seq, person: int) -> int:
    """Frames on which some but not all 24 joints of a person are present (left unkeyed)."""
    finite = np.isfinite(seq.joints3d[person]).all(axis=-1)  # (T, 24)
    return int(np.count_nonzero(finite.any(axis=1) & ~finite.all(axis=1)))


def set_scene_timing(scene, fps: float, start_frame: int, num_frames: int) -> None:
    """Scene frame rate (exact, via fps_base for fractional rates) and frame range."""
    rounded = max(1, int(round(fps)))
    scene.render.fps = rounded
    scene.render.fps_base = rounded / float(fps)
    scene.frame_start = int(start_frame)
    scene.frame_end = int(start_frame) + max(int(num_frames), 1) - 1
    scene.frame_set(int(start_frame))


def remove_imported(result: ImportResult) -> None:
    """Delete everything an import created and put the scene's settings back (used to roll
    back a failed import)."""
    for obj in result.armatures:
        remove_armature(obj)
    result.armatures.clear()
    for action in result.actions:
        try:
            unused = action.users == 0
        except ReferenceError:  # already removed with its armature
            continue
        if unused:
            bpy.data.actions.remove(action)
    result.actions.clear()
    if result.camera is not None:
        camera_mod.remove_camera(result.camera)
        result.camera = None
    if result.scene_state is not None:
        result.scene_state.restore()
        result.scene_state = None


def remove_armature(obj) -> None:
    """Delete an armature object, its armature data and actions no one else uses."""
    data = obj.data
    anim_data = obj.animation_data
    actions = {s.action for t in anim_data.nla_tracks for s in t.strips} if anim_data else set()
    bpy.data.objects.remove(obj)
    if data is not None and data.users == 0:
        bpy.data.armatures.remove(data)
    for action in actions:
        if action is not None and action.users == 0:
            bpy.data.actions.remove(action)


def _import_person(seq, person, collection, *, name, exact, start_frame, camera_obj):
    """Armature + keyed action of one person, or None when no frame is complete."""
    joints_m = C.camera_to_blender(seq.joints3d[person])  # (T, 24, 3) Blender metres
    present = np.isfinite(joints_m).all(axis=(1, 2))
    if not present.any():
        return None
    track = int(seq.track_id[person])
    label = f"{name} {track}" if seq.num_people > 1 else name
    lengths = rigmath.median_bone_lengths(joints_m[present])
    root = np.median(joints_m[present, rigmath.ROOT], axis=0)
    heads, tails = rigmath.rest_skeleton(lengths, root)
    obj = build_armature(label, collection, heads, tails, connect=not exact)
    try:
        rest = rest_matrices(obj)
        quat, loc = rigmath.pose_from_joints(joints_m[present], rest, exact=exact)
        frames = start_frame + np.flatnonzero(present)
        channels = anim.new_action(f"{label} take", obj)
        names = rigmath.bone_names()
        for j, bone in enumerate(names):
            path = f'pose.bones["{bone}"]'
            anim.key_curves(channels, bone, f"{path}.rotation_quaternion", frames, quat[:, j])
            if exact or j == rigmath.ROOT:
                anim.key_curves(channels, bone, f"{path}.location", frames, loc[:, j])
        anim.push_to_nla(obj, channels, f"{label} take")
        _store_source(obj, seq, person, start_frame=start_frame, camera_obj=camera_obj,
                      exact=exact)
    except BaseException:
        remove_armature(obj)
        raise
    return obj, channels.action


def build_armature(name: str, collection, heads: np.ndarray, tails: np.ndarray, *,
                   connect: bool = False):
    """An armature object with the SMPL-24 bones at the given rest heads and tails.

    Args:
        name: object and armature data name.
        collection: where to link the object (it must be in the active view layer, since bones
            can only be created in edit mode).
        heads, tails: (24, 3) armature space, metres (from ``rigmath.rest_skeleton``).
        connect: connect each bone to its parent's tail where the two meet.

    Returns:
        The armature object (object mode, rotation mode quaternion on every pose bone).
    """
    names = rigmath.bone_names()
    connected = {j for j, parent in enumerate(rigmath.PARENTS)
                 if connect and parent >= 0 and rigmath.axis_child(parent) == j}
    obj = blender_rig.build_armature(name, collection, heads, tails, names, rigmath.PARENTS,
                                     connected=connected)
    obj.data.display_type = "STICK"
    obj.show_in_front = True
    return obj


def rest_matrices(obj) -> np.ndarray:
    """(24, 4, 4) float64 rest matrices (``Bone.matrix_local``) in SMPL joint order."""
    bones = obj.data.bones
    names = rigmath.bone_names()
    flat = np.empty(len(bones) * 16, dtype=np.float32)
    bones.foreach_get("matrix_local", flat)
    by_name = {b.name: i for i, b in enumerate(bones)}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise SequenceError(f"armature {obj.name!r} lacks the SMPL-24 bone(s) {', '.join(missing)}")
    # foreach_get returns Blender's column-major matrices: transpose each.
    matrices = flat.reshape(-1, 4, 4).transpose(0, 2, 1).astype(np.float64)
    return matrices[[by_name[n] for n in names]]


def _store_source(obj, seq, person, *, start_frame, camera_obj, exact) -> None:
    """Keep what export needs on the armature object (see the module docstring)."""
    obj[PERSON_PROP] = int(person)
    obj["scail_track_id"] = int(seq.track_id[person])
    obj["scail_frame_start"] = int(start_frame)
    obj["scail_fps"] = float(seq.fps)
    obj["scail_size"] = [int(seq.height), int(seq.width)]
    obj["scail_camera"] = camera_obj
    obj["scail_exact"] = bool(exact)
    obj["_scail_K"] = np.asarray(seq.K, dtype=np.float64).ravel()
    obj["_scail_meta"] = json.dumps(seq.meta, sort_keys=True)
    for field_name in ("joints3d", "kp2d", "kp2d_score", "bbox"):
        obj[f"_scail_{field_name}"] = np.ascontiguousarray(getattr(seq, field_name)[person]).ravel()


def _to_user(kind, message) -> None:
    """An import's warning without an operator to report it (``reports.warn``)."""
    is_warning = "WARNING" in kind or "ERROR" in kind
    reports.warn(message, logging.WARNING if is_warning else logging.INFO)


def scail_armatures(scene, *, selected_first: bool = False) -> list:
    """Armature objects of this add-on in ``scene``, ordered by person index then name.

    With ``selected_first``, only the selected ones when any is selected (so that one take of a
    scene holding several can be exported or rendered on its own).
    """
    found = [o for o in scene.objects if o.type == "ARMATURE" and PERSON_PROP in o]
    if selected_first and any(o.select_get() for o in found):
        found = [o for o in found if o.select_get()]
    return sorted(found, key=lambda o: (int(o[PERSON_PROP]), o.name))
