"""The Blender camera of an imported take: reproduces the sequence's intrinsics K exactly.

The camera sits at the origin looking down +Y (``scail_protocol.camera.BLENDER_CAMERA_EULER``);
the settings (sensor fit, lens, shift, pixel aspect, resolution) come from
``scail_protocol.camera.blender_camera_from_K``. This module only copies them onto Blender data
and reads them back; the maths lives in ``scail_protocol.camera``.
"""

from __future__ import annotations

import logging
import os

import bpy
import numpy as np
from mathutils import Euler
from scail_protocol import camera as C
from scail_protocol.errors import ScailError, VideoError

log = logging.getLogger(__name__)

# The scene's render settings :func:`apply_settings` writes (part of the projection).
RENDER_SETTINGS = ("resolution_x", "resolution_y", "resolution_percentage", "pixel_aspect_x",
                   "pixel_aspect_y")


def create_camera(seq, collection, scene, *, name: str = "SCAIL Camera", video_path=None,
                  start_frame: int = 1):
    """A camera object reproducing ``seq.K`` for ``seq.size``, made the scene's camera.

    Also sets the scene's render resolution and pixel aspect (they are part of the projection).

    Args:
        seq: the PoseSequence (uses ``K`` and ``size``).
        collection: where to link the camera object.
        scene: the scene whose render settings and camera are set.
        name: object and data name.
        video_path: optional driving video shown as the camera background (centre-cropped to
            the frame, as the backend crops it), its first frame on ``start_frame``.
        start_frame: scene frame of sequence frame 0.

    Returns:
        The camera object.

    Raises:
        VideoError: ``video_path`` is given but Blender cannot open it (the camera object is
            removed; ``armature.import_sequence`` puts the scene's settings back).
    """
    settings = C.blender_camera_from_K(seq.K, seq.height, seq.width)
    data = bpy.data.cameras.new(name)
    obj = bpy.data.objects.new(name, data)
    try:
        apply_settings(data, scene, settings)
        obj.rotation_euler = Euler(C.BLENDER_CAMERA_EULER, "XYZ")
        collection.objects.link(obj)
        scene.camera = obj
        if video_path:
            set_background_video(data, video_path, start_frame)
    except BaseException:
        remove_camera(obj)
        raise
    return obj


def apply_settings(data, scene, settings: C.BlenderCamera) -> None:
    """Copy ``BlenderCamera`` settings onto camera data and the scene's render settings."""
    data.type = "PERSP"
    data.sensor_fit = settings.sensor_fit
    data.sensor_width = settings.sensor_width_mm
    data.lens = settings.lens_mm
    data.shift_x = settings.shift_x
    data.shift_y = settings.shift_y
    data.clip_start = 0.01
    data.clip_end = 1000.0
    render = scene.render
    render.resolution_x = settings.resolution_x
    render.resolution_y = settings.resolution_y
    render.resolution_percentage = 100
    render.pixel_aspect_x = settings.pixel_aspect_x
    render.pixel_aspect_y = settings.pixel_aspect_y


def read_K(obj, scene, height: int, width: int) -> np.ndarray:
    """(3, 3) float64 intrinsics of a camera object for an H x W image (inverse of the above).

    The pixel aspect is the scene's (Blender keeps it in the render settings, not the camera).
    """
    data = obj.data
    if data.type != "PERSP" or data.sensor_fit != "HORIZONTAL":
        raise ScailError(f"camera {obj.name!r} must be a perspective camera with horizontal sensor "
                         f"fit (got {data.type}, {data.sensor_fit}); re-import the take")
    scene_render = scene.render
    settings = C.BlenderCamera(
        resolution_x=int(width), resolution_y=int(height), sensor_fit=data.sensor_fit,
        sensor_width_mm=data.sensor_width, lens_mm=data.lens, shift_x=data.shift_x,
        shift_y=data.shift_y, pixel_aspect_x=scene_render.pixel_aspect_x,
        pixel_aspect_y=scene_render.pixel_aspect_y)
    return C.K_from_blender_camera(settings)


def world_to_reference(obj) -> np.ndarray:
    """(4, 4) matrix taking Blender world points into the frame where the camera mapping holds.

    Identity while the camera stays where import put it; if the artist moved it, world points
    are re-expressed as if the camera were back at the origin looking down +Y, so that
    ``scail_protocol.camera.blender_to_camera`` still gives camera-frame millimetres.
    """
    reference = Euler(C.BLENDER_CAMERA_EULER, "XYZ").to_matrix().to_4x4()
    return np.array(reference @ obj.matrix_world.inverted(), dtype=np.float64)


def set_background_video(data, video_path, start_frame: int) -> None:
    """Show a movie as the camera's background, centre-cropped, starting on ``start_frame``."""
    path = os.fspath(video_path)
    if not os.path.isfile(path):
        raise VideoError(f"driving video not found: {path}")
    try:
        clip = bpy.data.movieclips.load(path, check_existing=True)
    except RuntimeError as e:
        raise VideoError(f"Blender cannot open the driving video {path}: {e}") from None
    clip.frame_start = int(start_frame)
    data.show_background_images = True
    background = data.background_images.new()
    background.source = "MOVIE_CLIP"
    background.clip = clip
    background.frame_method = "CROP"
    background.alpha = 1.0
    background.display_depth = "BACK"


def remove_camera(obj) -> None:
    """Delete a camera object, its data and its background movie clips (undo a failed import)."""
    data = obj.data
    clips = [bg.clip for bg in data.background_images if bg.clip is not None] if data else []
    bpy.data.objects.remove(obj)
    if data is not None and data.users == 0:
        bpy.data.cameras.remove(data)
    for clip in clips:
        if clip.users == 0:
            bpy.data.movieclips.remove(clip)
