"""BVH and FBX of an armature's motion through Blender's own exporters (io_anim_bvh, io_scene_fbx).

Whatever animates the armature is exported as Blender evaluates it on each frame (NLA tracks,
constraints and all): an imported SMPL take, or a character rig after :mod:`retarget`. The frames
are the scene's frame range unless a range is given. FBX keeps the object's transform; BVH has
none, so the armature's placement (a grounded take's) is applied to a temporary copy first. Blender's default axes are used both ways
(BVH and FBX files are Y up; Blender's own importers turn them back to Z up).

Both add-ons ship with Blender and are on by default; they are enabled here when a script or a
factory-settings session turned them off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

import addon_utils
import bpy
from bpy_extras.io_utils import axis_conversion
from scail_protocol.errors import ScailError

log = logging.getLogger(__name__)

FORMATS = {".bvh": "io_anim_bvh", ".fbx": "io_scene_fbx"}  # file suffix -> Blender add-on
# Blender (Z up, -Y forward) -> BVH (Y up, +Z forward): the inverse of the BVH importer's default.
_BVH_FROM_BLENDER = axis_conversion(from_forward="-Z", from_up="Y").to_4x4().inverted()


class ExportError(ScailError):
    """A BVH/FBX export cannot run or failed."""


def export_armatures(path, armatures, *, scene=None, frame_start=None, frame_end=None) -> Path:
    """Write the motion of armature objects as ``.bvh`` (one armature) or ``.fbx`` (one or more).

    Args:
        path: the file to write; its suffix picks the format. Written to a temporary sibling
            and renamed, so a failed export leaves no partial file.
        armatures: armature objects (BVH takes exactly one).
        scene: the scene to evaluate (default: the context's).
        frame_start, frame_end: scene frames to export (default: the scene's range).

    Returns:
        The written path.

    Raises:
        ExportError: unknown suffix, no armature (or several for BVH), empty frame range, or
            the exporter failed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ExportError(f"cannot export {path.name}: the file must end in .bvh or .fbx")
    armatures = [a for a in armatures if a is not None]
    if not armatures or any(a.type != "ARMATURE" for a in armatures):
        raise ExportError("nothing to export: select an armature (an imported take or a "
                          "retargeted rig)")
    if suffix == ".bvh" and len(armatures) != 1:
        raise ExportError(f"BVH holds one skeleton; {len(armatures)} armatures are selected "
                          f"(select one, or export .fbx)")
    scene = scene or bpy.context.scene
    start = scene.frame_start if frame_start is None else int(frame_start)
    end = scene.frame_end if frame_end is None else int(frame_end)
    if end < start:
        raise ExportError(f"empty frame range {start}..{end}")
    ensure_exporter(suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.stem}.") as tmp:
        partial = Path(tmp) / path.name
        if suffix == ".bvh":
            with _placed_copy(armatures[0], scene) as copy, _selected([copy]), \
                    _frame_range(scene, start, end):
                _run(bpy.ops.export_anim.bvh, filepath=str(partial), frame_start=start,
                     frame_end=end, root_transform_only=False, rotate_mode="NATIVE")
        else:
            with _selected(armatures), _frame_range(scene, start, end):
                _run(bpy.ops.export_scene.fbx, filepath=str(partial), use_selection=True,
                     object_types={"ARMATURE"}, add_leaf_bones=False, bake_anim=True,
                     bake_anim_use_all_actions=False, bake_anim_use_nla_strips=False,
                     bake_anim_force_startend_keying=True, bake_anim_simplify_factor=0.0,
                     bake_anim_step=1.0)
        if not partial.is_file():
            raise ExportError(f"Blender's exporter wrote nothing for {path.name}")
        os.replace(partial, path)
    return path


def ensure_exporter(suffix: str) -> None:
    """Enable Blender's BVH or FBX add-on if it is off.

    Raises:
        ExportError: this Blender does not have it.
    """
    module = FORMATS[suffix]
    loaded, enabled = addon_utils.check(module)
    if enabled:
        return
    if addon_utils.enable(module, default_set=True) is None:
        raise ExportError(f"Blender's {module} add-on is missing; cannot write {suffix} files")


def _run(operator, **options) -> None:
    try:
        result = operator(**options)
    except RuntimeError as e:
        raise ExportError(f"Blender's exporter failed: {str(e).strip().splitlines()[-1]}") from None
    if "FINISHED" not in result:
        raise ExportError(f"Blender's exporter did not finish ({', '.join(result)})")


@contextlib.contextmanager
def _selected(objects):
    """Select exactly ``objects`` (first one active) and restore the selection afterwards."""
    view_layer = bpy.context.view_layer
    previous_active = view_layer.objects.active
    previous = [o for o in view_layer.objects if o.select_get()]
    if bpy.context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    for obj in previous:
        obj.select_set(False)
    for obj in objects:
        obj.select_set(True)
    view_layer.objects.active = objects[0]
    try:
        yield
    finally:
        for obj in objects:
            obj.select_set(False)
        for obj in previous:
            if obj.name in view_layer.objects:
                obj.select_set(True)
        view_layer.objects.active = previous_active


@contextlib.contextmanager
def _placed_copy(obj, scene):
    """A temporary copy of an armature with its object location and rotation, and the turn to
    BVH's Y-up axes, applied to its rest pose (Blender's BVH exporter writes armature space as
    it is, while BVH files, and Blender's BVH importer, are Y up). The copy shares the
    animation; it and its data are deleted on exit.

    Note:
        The object's scale is not applied (pose-bone locations would not follow it); a scaled
        rig's BVH is in its armature units.
    """
    copy = obj.copy()
    copy.data = obj.data.copy()
    copy.matrix_world = _BVH_FROM_BLENDER @ obj.matrix_world
    scene.collection.objects.link(copy)
    try:
        with _selected([copy]):
            bpy.ops.object.transform_apply(location=True, rotation=True, scale=False)
        yield copy
    finally:
        data = copy.data
        bpy.data.objects.remove(copy)
        if data.users == 0:
            bpy.data.armatures.remove(data)


@contextlib.contextmanager
def _frame_range(scene, start: int, end: int):
    """Temporarily set the scene's frame range (the FBX exporter reads it from the scene)."""
    saved = scene.frame_start, scene.frame_end, scene.frame_current
    scene.frame_start, scene.frame_end = start, end
    try:
        yield
    finally:
        scene.frame_start, scene.frame_end = saved[0], saved[1]
        scene.frame_set(saved[2])
