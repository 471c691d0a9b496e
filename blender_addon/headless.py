"""Synchronous entry points for scripts and ``blender -b`` (no timers, no modal operators).

Background Blender runs no timers, so these block until the work is done and raise on failure;
the operators call them when ``bpy.app.background`` is set. Example::

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
from scail_protocol import messages as M
from scail_protocol.errors import ScailError, VideoError
from scail_protocol.sequence import PoseSequence

from . import armature, export, jobs, prefs, render
from . import client as client_mod

log = logging.getLogger(__name__)


def import_motion_file(path, *, video_path=None, exact: bool = True, context=None,
                       report=None) -> armature.ImportResult:
    """Import a PoseSequence ``.npz`` (no backend) into the context's scene and collection.

    Raises:
        SequenceError: the file is missing or fails validation.
        VideoError: ``video_path`` is given but cannot be opened.
    """
    context = context or bpy.context
    seq = PoseSequence.load(path)
    return armature.import_sequence(seq, context.collection, scene=context.scene,
                                    name=take_name(path), video_path=video_path or None,
                                    exact=exact, report=report)


def import_video(video_path, *, reference_path=None, estimator: str = "auto", resolution="DEFAULT",
                 smoothing: float = 0.0, use_align: bool = False, exact: bool = True,
                 settings=None, context=None, progress=None, report=None) -> armature.ImportResult:
    """Extract the motion of a video on the backend, then import it (blocking).

    Args:
        video_path: the driving video (a local file; uploaded when the backend cannot read it).
        reference_path: reference image for ``use_align``.
        estimator, resolution, smoothing, use_align: as in the panel (see ``jobs.extract_options``).
        exact: exact bone lengths (see ``rigmath``).
        settings: ``prefs.BackendSettings`` (default: the add-on preferences).
        progress: optional ``progress(stage, done, total)``.

    Raises:
        VideoError: the video (or reference image) does not exist.
        ServerTimeout: the backend does not answer (the message names the address).
        ScailError: the backend refused or failed the job (its message).
    """
    seq = extract_sequence(video_path, reference_path=reference_path, estimator=estimator,
                           resolution=resolution, smoothing=smoothing, use_align=use_align,
                           settings=settings, progress=progress)
    context = context or bpy.context
    return armature.import_sequence(seq, context.collection, scene=context.scene,
                                    name=take_name(video_path), video_path=video_path,
                                    exact=exact, report=report)


def extract_sequence(video_path, *, reference_path=None, estimator: str = "auto",
                     resolution="DEFAULT", smoothing: float = 0.0, use_align: bool = False,
                     settings=None, progress=None) -> PoseSequence:
    """The PoseSequence the backend extracts from a video (blocking; see :func:`import_video`)."""
    check_inputs(video_path, reference_path if use_align else None)
    options = jobs.extract_options(estimator=estimator, resolution=resolution, smoothing=smoothing,
                                   use_align=use_align, reference_path=reference_path)
    with client_mod.open_client(settings or prefs.backend_settings()) as client:
        jobs.check_capabilities(client.hello(), client.address, options)
        video = Path(video_path).resolve()
        try:
            job_id = client.submit(M.EXTRACT, dict(options, video={"path": str(video)}))
        except M.ServerError as e:
            if e.code != "forbidden":
                raise
            log.info("backend cannot read %s directly (%s); uploading it", video, e)
            sha256 = client.upload(video, progress=progress)
            job_id = client.submit(M.EXTRACT, dict(options, video={"upload": sha256,
                                                                    "name": video.name}))
        result = client.wait(job_id, progress=progress)
    if result.poses is None:
        raise ScailError(f"extract job {job_id} finished without poses")
    return result.poses


def check_inputs(video_path, reference_path=None) -> None:
    """Raise VideoError naming the path when the video (or reference image) is not a file."""
    if not video_path:
        raise VideoError("no video chosen: pick the driving video first")
    if not os.path.isfile(video_path):
        raise VideoError(f"video not found: {video_path}")
    if reference_path is not None and not os.path.isfile(reference_path):
        raise VideoError(f"reference image not found: {reference_path}")


def export_motion_file(path, *, context=None, report=None) -> Path:
    """Write the scene's SCAIL armatures (edited) as a PoseSequence ``.npz``; returns the path."""
    context = context or bpy.context
    return export_scene(context, report=report).save(path)


def export_scene(context=None, report=None) -> PoseSequence:
    """The edited take of the scene: its selected SCAIL armatures, or all of them if none is."""
    context = context or bpy.context
    targets = armature.scail_armatures(context.scene, selected_first=True)
    return export.export_sequence(targets, scene=context.scene, report=report)


def render_conditioning(path, renderer: str = "BLENDER", *, overlay: bool = True, settings=None,
                        context=None, progress=None, report=None) -> Path:
    """Render the scene's SCAIL armatures to the conditioning ``.mp4`` (blocking).

    Args:
        path: the ``.mp4`` to write.
        renderer: 'BLENDER' (Cycles, here) or 'BACKEND' (the backend's taichi renderer).
        overlay: draw the 2D overlay (the backend always draws it).

    The take is the scene's selected SCAIL armatures, or all of them when none is selected.

    Raises:
        SequenceError: no SCAIL armature in the scene.
        RenderError, ScailError: rendering or the backend failed.
    """
    if renderer not in ("BLENDER", "BACKEND"):
        raise ValueError(f"renderer must be 'BLENDER' or 'BACKEND', got {renderer!r}")
    seq = export_scene(context, report=report)
    path = render.check_output(bpy.path.abspath(str(path)))
    if renderer == "BLENDER":
        return render.render_conditioning(seq, path, overlay=overlay, progress=progress)
    with client_mod.open_client(settings or prefs.backend_settings()) as client:
        job_id = client.render(seq)
        client.wait(job_id, progress=progress)
        return client.download_video(job_id, path, progress=progress)


def take_name(path) -> str:
    """Object name prefix for a take: the file name without extension (max 40 characters)."""
    return Path(str(path)).stem[:40] or "SCAIL"
