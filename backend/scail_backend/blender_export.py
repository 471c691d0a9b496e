"""``scail-pose export``: a PoseSequence to BVH or FBX through Blender as a Python module (bpy).

The work is the Blender add-on's (import, grounding, Blender's own exporters); this module only
finds the add-on, runs it in an empty factory-settings scene and picks the frames. The add-on is
looked up in ``$SCAIL_ADDON_DIR``, then beside this package in a source checkout
(``<repo>/blender_addon``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import sys
from pathlib import Path

import numpy as np
from scail_protocol.errors import ScailError

log = logging.getLogger(__name__)

ADDON_PACKAGE = "scail_pose_studio"  # the extension id (as Blender names it)
ADDON_ENV = "SCAIL_ADDON_DIR"
SUFFIXES = (".bvh", ".fbx")


def addon_dir() -> Path:
    """The add-on's folder.

    Raises:
        ScailError: neither ``$SCAIL_ADDON_DIR`` nor the source checkout has it.
    """
    candidates = [os.environ.get(ADDON_ENV)] if os.environ.get(ADDON_ENV) else []
    candidates.append(Path(__file__).resolve().parents[2] / "blender_addon")
    for folder in candidates:
        if folder and (Path(folder) / "__init__.py").is_file():
            return Path(folder)
    raise ScailError(f"the Blender add-on was not found (set {ADDON_ENV} to the blender_addon "
                     f"folder of a SCAIL Pose Studio checkout)")


@contextlib.contextmanager
def registered_addon():
    """The add-on package, imported and registered for the ``with`` block.

    When this call imported it, it is unregistered and forgotten at the end: a registered add-on
    keeps bpy 4.5's interpreter from exiting (it hangs at exit). An add-on that was already
    loaded (by Blender, or a caller) is used as it is and left registered.

    Raises:
        ScailError: bpy is not installed, or the add-on is not found.
    """
    try:
        import bpy  # noqa: F401
    except ImportError:
        raise ScailError("export needs Blender's Python module: pip install "
                         "'scail-pose-studio[synth]' (bpy 4.5, Python 3.11)") from None
    module = sys.modules.get(ADDON_PACKAGE)
    if module is not None:
        yield module
        return
    folder = addon_dir()
    spec = importlib.util.spec_from_file_location(ADDON_PACKAGE, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[ADDON_PACKAGE] = module
    try:
        spec.loader.exec_module(module)
        module.register()
        try:
            yield module
        finally:
            module.unregister()
    finally:
        for name in [n for n in sys.modules if n == ADDON_PACKAGE
                     or n.startswith(ADDON_PACKAGE + ".")]:
            del sys.modules[name]


def export_file(poses, output, *, person: int = 0, first=None, last=None, ground: bool = True,
                exact: bool = True) -> Path:
    """Write the motion of a PoseSequence file as ``.bvh`` (one person) or ``.fbx``.

    Args:
        poses: the PoseSequence ``.npz``.
        output: ``.bvh`` or ``.fbx`` path.
        person: which person goes into a BVH (an FBX holds everyone when None).
        first, last: sequence frames to write (0-based, inclusive; default: all).
        ground: stand the take on a floor at Z = 0 facing -Y first (else camera frame).
        exact: exact per-frame bone lengths (bone translations are exported).

    Returns:
        The written path.

    Raises:
        ScailError: bad suffix, person or frame range, bpy missing, or the export failed.
    """
    output = Path(output)
    if output.suffix.lower() not in SUFFIXES:
        raise ScailError(f"-o must end in .bvh or .fbx, got {output.name}")
    with registered_addon() as addon:
        return _export(addon, poses, output, person, first, last, ground, exact)


def _export(addon, poses, output: Path, person, first, last, ground: bool, exact: bool) -> Path:
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    context = bpy.context
    result = addon.headless.import_motion_file(str(poses), exact=exact, ground=ground,
                                               context=context)
    armatures = sorted(result.armatures, key=lambda o: int(o[addon.armature.PERSON_PROP]))
    people = [int(o[addon.armature.PERSON_PROP]) for o in armatures]
    if output.suffix.lower() == ".bvh" and person is None:
        person = 0
    if person is not None:
        if person not in people:
            among = (f"the people with complete frames are {', '.join(map(str, people))}"
                     if people else "nobody has a complete frame")
            raise ScailError(f"no person {person} to export in {poses}: {among}; pick one "
                             f"with --person")
        armatures = [armatures[people.index(person)]]
    scene = context.scene
    start = scene.frame_start if first is None else scene.frame_start + int(first)
    end = scene.frame_end if last is None else scene.frame_start + int(last)
    if first is not None and not scene.frame_start <= start <= scene.frame_end:
        raise ScailError(f"--first {first} is outside the take's frames "
                         f"0..{scene.frame_end - scene.frame_start}")
    if end > scene.frame_end:
        log.warning("--last %s is past the take's last frame %d; writing up to it", last,
                    scene.frame_end - scene.frame_start)
        end = scene.frame_end
    if end < start:
        raise ScailError(f"empty frame range {first}..{last}")
    _warn_missing_frames(addon, armatures, start - scene.frame_start, end - scene.frame_start,
                         output)
    chatter = io.StringIO()  # Blender's exporters print their temporary file's name
    with contextlib.redirect_stdout(chatter):
        written = addon.export_formats.export_armatures(output, armatures, scene=scene,
                                                        frame_start=start, frame_end=end)
    log.debug("Blender's exporter: %s", chatter.getvalue().strip())
    return written


def _warn_missing_frames(addon, armatures, first: int, last: int, output: Path) -> None:
    """One warning per person missing on some of the frames written: BVH and FBX have no
    "missing" frame, so Blender writes the nearest keyed pose there. Reads the joints each
    armature keeps from its import."""
    for obj in armatures:
        joints = np.asarray(obj["_scail_joints3d"], np.float32).reshape(-1, 24, 3)
        missing = np.flatnonzero(~np.isfinite(joints[first:last + 1]).all(axis=(1, 2)))
        if len(missing):
            log.warning("person %d is missing on %d of the %d frames written to %s (first: frame "
                        "%d); %s has no missing frames, so they hold the nearest pose",
                        int(obj[addon.armature.PERSON_PROP]), len(missing), last - first + 1,
                        output.name, first + int(missing[0]), output.suffix.lower()[1:].upper())
