"""The add-on's work as plain functions, for the operators and for scripts and ``blender -b``.

Each function builds its job (``jobs``) and runs it through ``client.launch``: to the end with
``blocking=True`` (the default here, and what background mode needs: it has no timers), or
stepped by the UI's timer with ``blocking=False`` (what the operators do when Blender has a
UI). The job and its completion are the same either way. Example::

    blender -b scene.blend --python-expr "import bpy; bpy.ops.scail.import_motion(filepath='poses.npz'); bpy.ops.scail.render_conditioning(filepath='out.mp4', renderer='BLENDER')"

or, from Python with the extension enabled::

    from bl_ext.user_default.scail_pose_studio import headless
    headless.import_motion_file("poses.npz")
    headless.render_conditioning("rendered.mp4", renderer="BLENDER")
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import bpy
from scail_protocol.contract import POSES_SUFFIX
from scail_protocol.errors import OutputError, VideoError
from scail_protocol.outputs import check_output_file
from scail_protocol.sequence import PoseSequence

from . import armature, client, export, grounding, jobs, menus, prefs, render

log = logging.getLogger(__name__)

RENDERERS = ("BLENDER", "BACKEND")


def import_motion_file(path, *, video_path=None, exact: bool = True, ground: bool = False,
                       context=None, report=None) -> armature.ImportResult:
    """Import a PoseSequence ``.npz`` (no backend) into the context's scene and collection.

    ``ground``: stand the take on a floor plane at Z = 0 facing -Y, camera moved along
    (``grounding.ground_import``).

    Raises:
        SequenceError: the file is missing or fails validation (or, grounding, has no feet).
        VideoError: ``video_path`` is given but cannot be opened.
    """
    context = context or bpy.context
    seq = PoseSequence.load(path)
    result = armature.import_sequence(seq, context.collection, scene=context.scene,
                                      name=take_name(path), video_path=video_path or None,
                                      exact=exact, report=report)
    if ground:
        grounding.ground_or_remove(result, seq, collection=context.collection, name=take_name(path))
    return result


def import_video(video_path, *, reference_path=None, estimator: str = "auto", resolution="DEFAULT",
                 smoothing: float = 0.0, use_align: bool = False, exact: bool = True,
                 ground: bool = False, cleanup=None, settings=None, context=None, progress=None,
                 report=None, blocking: bool = True):
    """Extract the motion of a video on the backend, then import it as armatures.

    Args:
        video_path: the driving video (a local file; uploaded when the backend cannot read it).
        reference_path: reference image for ``use_align``.
        estimator, resolution, smoothing, use_align: as in the panel (see
            ``scail_protocol.conversation.extract_options``).
        exact: exact bone lengths (see ``rigmath``).
        ground: stand the take on a floor at Z = 0 facing -Y (``grounding.ground_import``).
        cleanup: the backend's people/cleanup options, a dict from
            ``scail_protocol.conversation.cleanup_field`` (None = every person found, no gap
            filling, no foot locking).
        settings: ``prefs.BackendSettings`` (default: the add-on preferences).
        progress: optional ``progress(stage, done, total)``.
        blocking: run to the end here (True) or from the UI's timer (False: returns None).

    Returns:
        the ``armature.ImportResult`` (blocking), else None.

    Raises:
        VideoError: the video (or reference image) does not exist (before contacting the
            backend).
        ServerTimeout: the backend does not answer (the message names the address).
        ScailError: the backend refused or failed the job (its message).
    """
    check_inputs(video_path, reference_path if use_align else None)
    context = context or bpy.context
    backend = client.backend(settings or prefs.backend_settings(context))
    job = jobs.import_video(backend, video_path, reference_path=reference_path,
                            estimator=estimator, resolution=resolution, smoothing=smoothing,
                            use_align=use_align, cleanup=cleanup, progress=progress,
                            on_hello=client.show_hello)  # the panel learns what it can run
    scene_name, collection_name = context.scene.name, context.collection.name

    def build(seq):  # on the main thread, perhaps from the timer: find the targets again
        scene = bpy.data.scenes.get(scene_name) or bpy.context.scene
        collection = bpy.data.collections.get(collection_name) or scene.collection
        result = client.in_window_context(
            armature.import_sequence, seq, collection, scene=scene, video_path=video_path,
            name=take_name(video_path), exact=exact, report=report)
        if ground:
            grounding.ground_or_remove(result, seq, collection=collection,
                                       name=take_name(video_path))
        return result

    return client.launch(job, on_done=build, blocking=blocking)


def check_inputs(video_path, reference_path=None) -> None:
    """Check, before anything is uploaded, that the video (and reference image) can be sent.

    Raises:
        VideoError: no video chosen, the video or reference image is not a file, or either is a
            poses file (``.npz``: imported with the add-on's own import, not extracted).
    """
    if not video_path:
        raise VideoError("no video chosen: pick the driving video first")
    if not os.path.isfile(video_path):
        raise VideoError(f"video not found: {video_path}")
    if Path(video_path).suffix.lower() == POSES_SUFFIX:
        raise VideoError(f"{video_path} is a poses file, not a video: use {import_motion_menu()} "
                         f"to import it")
    if reference_path is not None and not os.path.isfile(reference_path):
        raise VideoError(f"reference image not found: {reference_path}")
    if reference_path is not None and Path(reference_path).suffix.lower() == POSES_SUFFIX:
        raise VideoError(f"reference image {reference_path} is a poses file, not an image: "
                         f"choose a picture of the character")


def import_motion_menu() -> str:
    """Where an artist finds the poses-file import: ``File > Import > SCAIL poses (.npz)``."""
    return "File > Import > " + dict(menus.IMPORT_ENTRIES)["scail.import_motion"]


def output_path(path) -> Path:
    """The absolute path an output goes to.

    ``//`` is relative to the saved .blend file, as everywhere in Blender; any other relative
    path is relative to the current folder. Reports name the absolute path this returns.

    Raises:
        OutputError: a ``//`` path while the .blend is not saved (it would land in whatever
            folder Blender was started from).
    """
    text = os.fspath(path)
    if text.startswith("//"):
        if not bpy.data.filepath:
            raise OutputError(f"cannot write {text}: it is relative to the .blend file, which is "
                              f"not saved; save the .blend first, or choose an absolute output "
                              f"path")
        text = bpy.path.abspath(text)
    return Path(os.path.abspath(text))


def take_inputs(armatures) -> list:
    """The files a take was made from that the add-on knows: the driving videos shown behind
    its cameras. An output must never be written over one of them."""
    found = []
    for obj in armatures:
        camera = obj.get("scail_camera")
        data = getattr(camera, "data", None)
        for background in getattr(data, "background_images", ()):
            clip = background.clip
            if clip is not None and clip.filepath:
                found.append(os.path.abspath(bpy.path.abspath(clip.filepath)))
    return list(dict.fromkeys(found))


def export_motion_file(path, *, context=None, report=None) -> Path:
    """Write the scene's SCAIL armatures (edited) as a PoseSequence ``.npz``.

    Args:
        path: the ``.npz`` to write (``//`` = relative to the saved .blend); replaced
            atomically, so re-exporting an edited take over its own file is fine.

    Returns:
        The absolute path written.

    Raises:
        OutputError: checked before any work: ``path`` does not end in ``.npz``, is a driving
            video of the take, is a folder, its folder is missing or cannot be written, or it is
            ``//``-relative while the .blend is not saved; or writing failed.
        SequenceError: no SCAIL armature in the scene, or the take cannot be exported.
    """
    context = context or bpy.context
    targets = take_armatures(context)
    path = check_output_file(output_path(path), take_inputs(targets), what="output",
                             suffix=POSES_SUFFIX)
    return export.export_sequence(targets, scene=context.scene, report=report).save(path)


def take_armatures(context=None) -> list:
    """The take the scene's export and render work on: its selected SCAIL armatures, or all of
    them if none is selected."""
    context = context or bpy.context
    return armature.scail_armatures(context.scene, selected_first=True)


def export_scene(context=None, report=None) -> PoseSequence:
    """The edited take of the scene: its selected SCAIL armatures, or all of them if none is."""
    context = context or bpy.context
    return export.export_sequence(take_armatures(context), scene=context.scene, report=report)


def render_conditioning(path, renderer: str = "BLENDER", *, overlay: bool = True, settings=None,
                        context=None, progress=None, report=None, blocking: bool = True):
    """Render the scene's SCAIL armatures to the conditioning ``.mp4``.

    Args:
        path: the ``.mp4`` to write (``//`` = relative to the saved .blend file).
        renderer: 'BLENDER' (Cycles here, frame by frame) or 'BACKEND' (the backend's taichi
            renderer, downloaded).
        overlay: draw the 2D overlay (the backend always draws it).
        blocking: run to the end here (True) or from the UI's timer (False: returns None).

    The take is the scene's selected SCAIL armatures, or all of them when none is selected.

    Returns:
        the absolute path written (blocking), else None.

    Raises:
        OutputError: checked before any work: ``path`` does not end in ``.mp4``, is a driving
            video of the take, is a folder, its folder is missing or cannot be written, or it is
            ``//``-relative while the .blend is not saved.
        SequenceError: no SCAIL armature in the scene.
        RenderError, ScailError: rendering or the backend failed.
    """
    if renderer not in RENDERERS:
        raise ValueError(f"renderer must be 'BLENDER' or 'BACKEND', got {renderer!r}")
    context = context or bpy.context
    targets = take_armatures(context)
    path = render.check_output(output_path(path), take_inputs(targets))
    seq = export.export_sequence(targets, scene=context.scene, report=report)
    if renderer == "BLENDER":
        # Blocking: the whole take as one Cycles job; from the timer: runs of ~0.5 s each.
        steps = render.conditioning_steps(seq, path, overlay=overlay,
                                          job_seconds=None if blocking else render.JOB_SECONDS)
        job = jobs.local("render", steps, progress=progress)
    else:
        backend = client.backend(settings or prefs.backend_settings(context))
        job = jobs.render_on_backend(backend, seq, path, progress=progress)
    return client.launch(job, blocking=blocking)


def take_name(path) -> str:
    """Object name prefix for a take: the file name without extension (max 40 characters)."""
    return Path(str(path)).stem[:40] or "SCAIL"
