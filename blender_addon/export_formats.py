"""BVH and FBX of an armature's motion through Blender's own exporters (io_anim_bvh, io_scene_fbx).

Whatever animates the armature is exported as Blender evaluates it on each frame (NLA tracks,
constraints and all): an imported SMPL take, or a character rig after :mod:`retarget`. The frames
are the scene's frame range unless a range is given. FBX keeps the object's transform; BVH has
none, so the armature's placement (a grounded take's) is applied to a temporary copy first.
Blender's default axes are used both ways (BVH and FBX files are Y up; Blender's own importers
turn them back to Z up).

The output is checked before any work and moved in whole, by the rules every output of the
project follows (``scail_protocol.outputs``, as ``scail-pose export -o``).

Both add-ons ship with Blender and are on by default; they are enabled here when a script or a
factory-settings session turned them off.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shutil
import sys
import tempfile
from pathlib import Path

import addon_utils
import bpy
from bpy_extras.io_utils import axis_conversion
from scail_protocol.errors import OutputError, ScailError
from scail_protocol.outputs import (atomic_path, check_output_file, describe_os_error,
                                    is_write_error, output_error)

from .headless import output_path

log = logging.getLogger(__name__)

FORMATS = {".bvh": "io_anim_bvh", ".fbx": "io_scene_fbx"}  # file suffix -> Blender add-on
# Blender (Z up, -Y forward) -> BVH (Y up, +Z forward): the inverse of the BVH importer's default.
_BVH_FROM_BLENDER = axis_conversion(from_forward="-Z", from_up="Y").to_4x4().inverted()


class ExportError(ScailError):
    """A BVH/FBX export cannot run or failed."""


def export_armatures(path, armatures, *, scene=None, frame_start=None, frame_end=None) -> Path:
    """Write the motion of armature objects as ``.bvh`` (one armature) or ``.fbx`` (one or more).

    Args:
        path: the file to write; its suffix picks the format (``//`` = relative to the saved
            .blend). Its folder must exist and be writable: that is checked before any work.
            Blender's exporter writes into a private temporary folder; the file is then moved
            in atomically, so a failed export leaves no partial file.
        armatures: armature objects (BVH takes exactly one).
        scene: the scene to evaluate (default: the context's).
        frame_start, frame_end: scene frames to export (default: the scene's range).

    Returns:
        The absolute path written.

    Raises:
        ExportError: unknown suffix, ``path`` is a folder, its folder is missing or cannot be
            written (one line: ``cannot write PATH: ...``), ``path`` is ``//``-relative while
            the .blend is not saved, no armature (or several for BVH), empty frame range, or
            the exporter failed (one line; an OS error such as a full disk names the file,
            the cause and what to do).
        KeyboardInterrupt: a stop signal arrived during the export (Ctrl-C; SIGTERM and
            SIGHUP under ``scail-pose``); nothing is left behind.
    """
    path = _checked_output(path)
    suffix = path.suffix.lower()
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
    with _private_folder(path) as tmp:
        partial = Path(tmp) / path.name  # the exporters name the file inside after it
        if suffix == ".bvh":
            with _placed_copy(armatures[0], scene) as copy, _selected([copy]), \
                    _frame_range(scene, start, end):
                _run(bpy.ops.export_anim.bvh, path, filepath=str(partial), frame_start=start,
                     frame_end=end, root_transform_only=False, rotate_mode="NATIVE")
        else:
            with _selected(armatures), _frame_range(scene, start, end):
                _run(bpy.ops.export_scene.fbx, path, filepath=str(partial), use_selection=True,
                     object_types={"ARMATURE"}, add_leaf_bones=False, bake_anim=True,
                     bake_anim_use_all_actions=False, bake_anim_use_nla_strips=False,
                     bake_anim_force_startend_keying=True, bake_anim_simplify_factor=0.0,
                     bake_anim_step=1.0)
        if not partial.is_file():
            raise ExportError(f"Blender's exporter wrote nothing for {path.name}")
        try:
            with atomic_path(path) as temp:
                shutil.copyfile(partial, temp)
        except OutputError as e:
            raise ExportError(str(e)) from None
        except OSError as e:  # any other OS error while moving the file in
            raise ExportError(str(output_error(path, e))) from None
    return path


def _checked_output(path) -> Path:
    """The absolute output path, checked as ``scail-pose export -o`` checks it.

    Raises:
        ExportError: the suffix is not .bvh or .fbx, or ``outputs.check_output_file`` refuses
            the path (a folder, a missing or unwritable folder), or ``//`` with an unsaved .blend.
    """
    try:
        path = output_path(path)
    except OutputError as e:
        raise ExportError(str(e)) from None
    try:  # a folder, or another suffix, is answered with a name that ends in .bvh or .fbx
        return check_output_file(path, what="output", suffix=tuple(FORMATS))
    except OutputError as e:
        raise ExportError(str(e)) from None


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


def _run(operator, path: Path, **options) -> None:
    """Run one of Blender's exporters on ``options["filepath"]`` for the output ``path``.

    Blender prints an exception of the exporter (a traceback) and raises RuntimeError with
    it as text; that print is held back here and the error said in one line instead. A stop
    that landed inside the exporter (Ctrl-C, or SIGTERM under ``scail-pose``, whose handler
    raises there and Blender swallows) is raised again as what it was.

    Raises:
        KeyboardInterrupt: a stop signal arrived while the exporter ran (``Terminated`` for
            SIGTERM/SIGHUP under ``scail-pose``).
        ExportError: the exporter failed or did not finish; its temporary file could not be
            written (``cannot write PATH: no space left on the device in the temporary folder
            ...``).
    """
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            result = operator(**options)
    except RuntimeError as e:
        log.debug("Blender's exporter: %s", printed.getvalue().strip())
        _raise_if_stopped(str(e))
        raise _exporter_error(str(e), path) from None
    sys.stderr.write(printed.getvalue())  # what a finished exporter said (warnings) still shows
    _raise_if_stopped("")
    if "FINISHED" not in result:
        raise ExportError(f"Blender's exporter did not finish ({', '.join(result)})")


_ERRNO_LINE = re.compile(r"\[Errno (\d+)\] ([^:]+)")


def _raise_if_stopped(error: str) -> None:
    """Raise the stop whose first raise Blender swallowed: as ``scail_backend.signals`` recorded
    it when that is loaded (the CLI), else a KeyboardInterrupt the exporter's error names."""
    signals = sys.modules.get("scail_backend.signals")
    if signals is not None:
        signals.raise_if_stopped()
    if _cause(error) == "KeyboardInterrupt":
        raise KeyboardInterrupt


def _cause(error: str) -> str:
    """The exception of Blender's operator error, on one line: the text after the traceback's
    (indented) frames, less the ``Location: ...`` line Blender adds."""
    lines = [line for line in error.strip().splitlines() if not line.startswith("Location:")]
    frames = [i for i, line in enumerate(lines) if line[:1].isspace()]
    text = " ".join(line.strip() for line in lines[frames[-1] + 1 if frames else 0:])
    return text.removeprefix("Error:").strip().removeprefix("Python:").strip()


def _exporter_error(error: str, path: Path) -> ExportError:
    """One line for a failed exporter: an OS error on its temporary file says so and what to
    do; anything else is the exporter's own exception line."""
    cause = _cause(error)
    found = _ERRNO_LINE.search(cause)
    if found is None:
        return ExportError(f"Blender's exporter failed for {path.name}: {cause or 'no reason'}")
    os_error = OSError(int(found.group(1)), found.group(2).strip())
    advice = ("free some space there or set TMPDIR to a folder with room"
              if is_write_error(os_error) else "set TMPDIR to a folder it can write in")
    return ExportError(f"cannot write {path}: {describe_os_error(os_error)} in the temporary "
                       f"folder {tempfile.gettempdir()} (Blender's exporter writes there first); "
                       f"{advice}")


@contextlib.contextmanager
def _private_folder(path: Path):
    """A new private folder in the system's temporary folder for the exporter, deleted on exit.

    Raises:
        ExportError: it cannot be made (full disk, permissions), one line.
    """
    try:
        folder = tempfile.TemporaryDirectory(prefix="scail_export_")
    except OSError as e:
        raise ExportError(f"cannot write {path}: no temporary folder can be made in "
                          f"{tempfile.gettempdir()} ({describe_os_error(e)}); set TMPDIR to a "
                          f"folder it can write in") from None
    with folder as name:
        yield name


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
