"""Render the SCAIL conditioning video inside Blender (no backend needed).

The take is rendered as one animation. Every capsule slot (person · 17 + draw position, the
limbs, order and colours of ``scail_protocol.capsules.frame_capsules``, as the backend draws
them) is three objects — two spheres and a cylinder instancing shared unit meshes
(``capsule_mesh``) — whose transforms are keyed on every frame in bulk; an unused slot is parked
behind the camera. One Cycles animation render job then draws a run of frames with one sample
per pixel through the pixel centre (box filter 0.01 px: no anti-aliasing, like the reference's
one ray per pixel); Cycles only moves instances between frames, nothing is rebuilt in Python.

An emission shader computes the reference's head-light shading itself (docs/pipeline.md §6.4):

    RGB = base·(0.3 + 0.7·max(n·l, 0))·k + 0.5·max(n·h, 0)^32·k,  l = toward the camera,
    h = normalize(view + l),  k = clip(1 − (z − depth_near)/(depth_far − znear), 0, 1)

with the depth constants over the whole take (``capsules.DepthRange``) and ``base`` the slot
object's colour. Frames are written as float EXR (scene-linear, so no view transform touches
the values), read back and truncated to uint8 like the reference, the 2D overlay is composited
per channel (``scail_protocol.overlay``), and Blender's own FFmpeg writes the H.264 ``.mp4`` at
16 fps through the sequencer, with the 'Standard' view transform, no look, exposure 0, gamma 1
and no dither so that the 8-bit values pass unchanged.

Everything happens in temporary scenes that are deleted afterwards; the artist's scene, its
render settings and its view transform are left alone. Cycles (not Workbench or EEVEE) because
its emission shader reproduces the reference shading exactly and it renders headless with no GPU.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np
from mathutils import Euler
from scail_protocol import blender_rig
from scail_protocol import camera as C
from scail_protocol import capsules
from scail_protocol.contract import HIT_ALPHA, OUTPUT_FPS, VIDEO_SUFFIX
from scail_protocol.errors import RenderError
from scail_protocol.outputs import atomic_path, check_output_file

from . import camera as camera_mod
from . import capsule_mesh, frame_io

log = logging.getLogger(__name__)

RENDER_FPS = OUTPUT_FPS  # the conditioning video's rate (scail_protocol.contract)
NUM_LIMBS = len(capsules.J.LIMB_DRAW_ORDER)
PIXEL_FILTER_WIDTH = 0.01  # Cycles' minimum: every sample goes through the pixel centre
JOB_SECONDS = 0.5  # a stepped render (the UI's timer) renders runs of about this long per step
FIRST_FRAME = 1  # scene frame of sequence frame 0 in the temporary render scene
_SCENE_NAME = "SCAIL conditioning render"
_FRAME_PATTERN = "frame_######"  # Blender replaces the #s with the frame number
BORDER_MARGIN_PX = 2.0  # render border slack beyond the capsules' projected bounds
BORDER_MIN_DEPTH_MM = 50.0  # nearer than this, a capsule's projection is unbounded: no border
_CUBE_CORNERS = np.array([(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)


def render_frames(seq, *, overlay: bool = True, job_seconds: float | None = None):
    """Yield the conditioning frames of a sequence, rendered by Blender.

    Args:
        seq: the PoseSequence (camera frame, mm; its K and size set the camera).
        overlay: composite the 2D hands/face/head overlay (docs/pipeline.md §7).
        job_seconds: None renders every frame in one Cycles job; a number renders runs of
            frames sized to take about that long each (the first run is one frame), so a caller
            stepping the generator from a UI timer gets control back often.
    Yields:
        (H, W, 4) uint8 RGBA per frame: hit pixels have alpha 204, the background is (0, 0, 0, 0).

    Raises:
        RenderError: Blender fails to render a frame.
    """
    joints = seq.openpose18_3d()  # (P, T, 18, 3) mm
    z_range = capsules.drawn_endpoint_z_range(joints)
    depth = capsules.DepthRange.from_z_range(*z_range) if z_range else None
    draw = _overlay_function() if overlay else None
    with _render_scene(seq, depth) as take:
        _key_capsules(take, joints)
        for t, rgba in _render_runs(take, joints, seq.K, job_seconds):
            if draw is not None:
                rgba = draw(seq, t, rgba)
            yield rgba


def render_conditioning(seq, out_path, *, overlay: bool = True, progress=None) -> Path:
    """Render the conditioning video of a sequence to an H.264 ``.mp4`` at 16 fps (blocking).

    Args:
        seq: the PoseSequence to draw (every frame of it: pass the scene's frame range through
            ``export.export_sequence``).
        out_path: the ``.mp4`` to write (replaced atomically; its folder must exist).
        overlay: composite the 2D overlay.
        progress: optional ``progress(stage, done, total)``; may raise ``Cancelled``.

    Returns:
        The output path.

    Raises:
        OutputError: ``out_path`` cannot take the video (see :func:`check_output`).
        RenderError: Blender fails to render or encode.
    """
    steps = conditioning_steps(seq, out_path, overlay=overlay, job_seconds=None)
    while True:
        try:
            stage, done, total = next(steps)
        except StopIteration as stop:
            return stop.value
        if progress:
            try:
                progress(stage, done, total)
            except BaseException:
                steps.close()
                raise


def conditioning_steps(seq, out_path, *, overlay: bool = True,
                       job_seconds: float | None = JOB_SECONDS):
    """Generator doing :func:`render_conditioning` in short steps (for the UI's timer).

    Yields ``(stage, done, total)`` after each frame and after encoding; returns the output
    path. Frames are rendered in runs of about ``job_seconds`` (see :func:`render_frames`), so
    no single step blocks for long. Closing it early removes its temporary files and leaves
    ``out_path`` untouched.

    Raises:
        OutputError: on the first step, before any work: ``out_path`` cannot take the video
            (see :func:`check_output`).
    """
    out_path = check_output(out_path)
    workdir = Path(tempfile.mkdtemp(prefix="scail_render_"))
    try:
        frames = render_frames(seq, overlay=overlay, job_seconds=job_seconds)
        try:
            for t, rgba in enumerate(frames):
                frame_io.write_tga(rgba[..., :3], workdir / f"frame_{t:06d}.tga")
                yield "render", t + 1, seq.num_frames
        finally:
            frames.close()
        encoded = encode_mp4(workdir, seq.num_frames, (seq.height, seq.width), workdir / "out.mp4")
        with atomic_path(out_path) as tmp:  # Blender names its own file; move it in whole
            shutil.copyfile(encoded, tmp)
        yield "encode", seq.num_frames, seq.num_frames
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out_path


def check_output(out_path, inputs=()) -> Path:
    """Check, before any work, that ``out_path`` can take the conditioning video.

    The rule of ``scail-pose render -o`` (``scail_protocol.outputs.check_output_file``): the
    name ends in ``.mp4`` (so a typo cannot put a video over a poses file), it is not one of
    ``inputs``, and its folder exists and can be written.

    Returns:
        ``out_path`` as a Path.

    Raises:
        OutputError: as above, one line saying what to do.
    """
    return check_output_file(out_path, inputs, what="output", suffix=VIDEO_SUFFIX)


# --- scene ----------------------------------------------------------------------------------------

@dataclass
class _Take:
    """The temporary render scene and what was made for it (all removed on exit)."""

    scene: object
    workdir: Path
    made: list = field(default_factory=list)  # data-blocks other than the scene's objects
    meshes: dict = field(default_factory=dict)  # "sphere" / "cylinder" -> unit mesh


@contextlib.contextmanager
def _render_scene(seq, depth):
    """A temporary Cycles scene with the take's camera, material and unit meshes; removed on
    exit."""
    take = _Take(bpy.data.scenes.new(_SCENE_NAME), Path(tempfile.mkdtemp(prefix="scail_frames_")))
    try:
        _configure_cycles(take.scene)
        _add_camera(take.scene, seq, depth)
        material = _shading_material(depth)
        take.made.append(material)
        for name, (verts, faces) in (("sphere", capsule_mesh.unit_sphere()),
                                     ("cylinder", capsule_mesh.unit_cylinder())):
            mesh = _unit_mesh(f"{_SCENE_NAME} {name}", verts, faces)
            mesh.materials.append(material)
            take.meshes[name] = mesh
            take.made.append(mesh)
        yield take
    finally:
        _remove_take(take)


def _remove_take(take: _Take) -> None:
    """Delete the render scene and every data-block made for it (objects, actions, meshes...)."""
    # Free Cycles' kept session now: a later render scene of the same name would find it.
    take.scene.render.use_persistent_data = False
    objects = list(take.scene.objects)
    made = objects + [o.data for o in objects if o.data is not None] + take.made
    made += [o.animation_data.action for o in objects
             if o.animation_data is not None and o.animation_data.action is not None]
    bpy.data.batch_remove(list(dict.fromkeys(made)))
    bpy.data.scenes.remove(take.scene)
    shutil.rmtree(take.workdir, ignore_errors=True)


def _configure_cycles(scene) -> None:
    """One pixel-centred sample, emission only, transparent film, linear float output."""
    scene.render.engine = "CYCLES"
    cycles = scene.cycles
    cycles.device = "CPU"
    cycles.samples = 1
    cycles.use_adaptive_sampling = False
    cycles.use_denoising = False
    cycles.pixel_filter_type = "BOX"
    cycles.filter_width = PIXEL_FILTER_WIDTH
    cycles.max_bounces = 0
    cycles.seed = 0
    scene.render.film_transparent = True
    scene.render.use_persistent_data = True  # keep the BVH: only instances move between frames
    scene.render.fps, scene.render.fps_base = RENDER_FPS, 1.0
    scene.world = None
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    scene.render.dither_intensity = 0.0
    settings = scene.render.image_settings
    settings.file_format = "OPEN_EXR"
    settings.color_mode = "RGBA"
    settings.color_depth = "32"
    settings.exr_codec = "NONE"


def _add_camera(scene, seq, depth) -> None:
    cam_data = bpy.data.cameras.new(_SCENE_NAME)
    cam = bpy.data.objects.new(_SCENE_NAME + " camera", cam_data)
    scene.collection.objects.link(cam)
    camera_mod.apply_settings(cam_data, scene, C.blender_camera_from_K(seq.K, seq.height,
                                                                         seq.width))
    cam_data.clip_start = capsules.ZNEAR_MM / C.MM_PER_M
    cam_data.clip_end = (depth.zfar if depth else capsules.ZFAR_MIN_MM) / C.MM_PER_M
    cam.rotation_euler = Euler(C.BLENDER_CAMERA_EULER, "XYZ")
    scene.camera = cam


def _unit_mesh(name: str, verts: np.ndarray, faces: np.ndarray):
    """A smooth-shaded triangle mesh from (V, 3) vertices and (F, 3) triangles."""
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(verts))
    mesh.vertices.foreach_set("co", verts.astype(np.float32).ravel())
    mesh.loops.add(faces.size)
    mesh.polygons.add(len(faces))
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.polygons.foreach_set("use_smooth", np.ones(len(faces), dtype=bool))
    mesh.update()
    return mesh


def _key_capsules(take: _Take, joints_op18_mm: np.ndarray) -> None:
    """Three keyed objects per capsule slot, placed on every frame of the take.

    Args:
        take: the render scene (frames FIRST_FRAME .. FIRST_FRAME + T − 1) and its unit meshes.
        joints_op18_mm: (P, T, 18, 3) OpenPose-18 joints, camera frame, mm; NaN = missing.
    """
    num_people, num_frames = joints_op18_mm.shape[:2]
    n = max(num_people, 1) * NUM_LIMBS
    starts, ends, colors, used = _slots(joints_op18_mm, n)
    radii = capsule_mesh.capsule_radii(n, capsules.CAPSULE_RADIUS_MM)
    parts = capsule_mesh.part_transforms(C.camera_to_blender(starts), C.camera_to_blender(ends),
                                         radii, used)
    frames = FIRST_FRAME + np.arange(num_frames)
    meshes = (take.meshes["sphere"], take.meshes["sphere"], take.meshes["cylinder"])
    for slot in range(n):
        for k, part in enumerate(capsule_mesh.PARTS):
            obj = bpy.data.objects.new(f"{_SCENE_NAME} {slot:03d} {part}", meshes[k])
            obj.color = colors[slot]
            obj.rotation_mode = "QUATERNION"
            take.scene.collection.objects.link(obj)
            channels = blender_rig.new_action(obj.name, obj)
            blender_rig.key_curves(channels, part, "location", frames, parts.location[:, slot, k])
            if part == "cylinder":
                blender_rig.key_curves(channels, part, "rotation_quaternion", frames,
                                       parts.rotation[:, slot, k])
                blender_rig.key_curves(channels, part, "scale", frames, parts.scale[:, slot, k])
            else:
                obj.scale = parts.scale[0, slot, k]  # a sphere's radius never changes
            blender_rig.assign_action(obj, channels)


def _slots(joints_op18_mm: np.ndarray, n: int) -> tuple:
    """Per-frame capsule ends of every slot: (T, n, 3) starts and ends (camera mm), (n, 4)
    colours, (T, n) used."""
    num_frames = joints_op18_mm.shape[1]
    order_of_limb = {limb: i for i, limb in enumerate(capsules.J.LIMB_DRAW_ORDER)}
    starts = np.zeros((num_frames, n, 3))
    ends = np.zeros((num_frames, n, 3))
    colors = np.ones((n, 4))
    used = np.zeros((num_frames, n), dtype=bool)
    for t in range(num_frames):
        frame = capsules.frame_capsules(joints_op18_mm[:, t])
        slots = np.array([p * NUM_LIMBS + order_of_limb[int(l)]
                          for p, l in zip(frame.person, frame.limb)], dtype=np.int64)
        starts[t, slots] = frame.starts
        ends[t, slots] = frame.ends
        colors[slots, :3] = frame.colors[:, :3]  # a slot's colour depends on person and limb only
        used[t, slots] = True
    return starts, ends, colors, used


def _shading_material(depth):
    """Emission material computing the reference's capsule shading (module docstring)."""
    mat = bpy.data.materials.new(_SCENE_NAME)
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True  # always on (and deprecated) from Blender 5.0
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    b = _NodeBuilder(nodes, links)
    geometry = nodes.new("ShaderNodeNewGeometry")
    base = nodes.new("ShaderNodeObjectInfo")
    # The camera looks down +Y: the head-light direction (toward the camera) is -Y in the world.
    toward_camera = b.vector((0.0, -1.0, 0.0))
    n_dot_l = b.vmath("DOT_PRODUCT", geometry.outputs["Normal"], toward_camera, out="Value")
    diffuse = b.math("MAXIMUM", n_dot_l, 0.0)
    half = b.vmath("NORMALIZE", b.vmath("ADD", geometry.outputs["Incoming"], toward_camera))
    n_dot_h = b.math("MAXIMUM", b.vmath("DOT_PRODUCT", geometry.outputs["Normal"], half,
                                        out="Value"), 0.0)
    spec = b.math("POWER", n_dot_h, capsules.SHININESS)
    k = _depth_attenuation(b, geometry, depth)
    lit = b.math("ADD", capsules.AMBIENT, b.math("MULTIPLY", diffuse, capsules.DIFFUSE))
    color = b.vmath("SCALE", base.outputs["Color"], b.math("MULTIPLY", lit, k), scale_input=True)
    highlight = b.math("MULTIPLY", b.math("MULTIPLY", spec, capsules.SPECULAR), k)
    final = b.vmath("ADD", color, b.combine(highlight))
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Strength"].default_value = 1.0
    links.new(final, emission.inputs["Color"])
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return mat


def _depth_attenuation(b, geometry, depth):
    """k = clip(1 − (z_mm − depth_near)/(depth_far − znear), 0, 1); z_mm = 1000·world y."""
    if depth is None:
        return 1.0
    position = b.separate(geometry.outputs["Position"])
    z_mm = b.math("MULTIPLY", position.outputs["Y"], C.MM_PER_M)
    ratio = b.math("DIVIDE", b.math("SUBTRACT", z_mm, depth.depth_near),
                   depth.depth_far - depth.znear)
    return b.math("SUBTRACT", 1.0, ratio, clamp=True)


class _NodeBuilder:
    """Tiny helper to wire math nodes: inputs are sockets or constants."""

    def __init__(self, nodes, links):
        self.nodes, self.links = nodes, links

    def _set(self, socket, value):
        if isinstance(value, bpy.types.NodeSocket):
            self.links.new(value, socket)
        else:
            socket.default_value = value

    def math(self, op, a, b, clamp=False):
        node = self.nodes.new("ShaderNodeMath")
        node.operation, node.use_clamp = op, clamp
        self._set(node.inputs[0], a)
        self._set(node.inputs[1], b)
        return node.outputs["Value"]

    def vmath(self, op, a, b=None, out="Vector", scale_input=False):
        node = self.nodes.new("ShaderNodeVectorMath")
        node.operation = op
        self._set(node.inputs[0], a)
        if b is not None:
            self._set(node.inputs["Scale"] if scale_input else node.inputs[1], b)
        return node.outputs[out]

    def vector(self, value):
        node = self.nodes.new("ShaderNodeCombineXYZ")
        for socket, v in zip(node.inputs, value):
            socket.default_value = v
        return node.outputs["Vector"]

    def combine(self, scalar):
        node = self.nodes.new("ShaderNodeCombineXYZ")
        for socket in node.inputs:
            self._set(socket, scalar)
        return node.outputs["Vector"]

    def separate(self, vector):
        node = self.nodes.new("ShaderNodeSeparateXYZ")
        self._set(node.inputs[0], vector)
        return node


# --- rendering ------------------------------------------------------------------------------------

def _render_runs(take: _Take, joints_op18_mm: np.ndarray, K: np.ndarray, job_seconds):
    """Yield (t, rgba) for every frame, rendering runs of frames as Cycles animation jobs."""
    scene, workdir = take.scene, take.workdir
    num_frames = joints_op18_mm.shape[1]
    t = 0
    run = num_frames if job_seconds is None else 1
    while t < num_frames:
        last = min(t + run, num_frames) - 1
        started = time.perf_counter()
        box = render_border(joints_op18_mm[:, t:last + 1], K,
                            (scene.render.resolution_y, scene.render.resolution_x))
        _set_border(scene, box)
        paths = _render_animation(scene, workdir, t, last)
        if job_seconds is not None:
            per_frame = (time.perf_counter() - started) / (last - t + 1)
            run = max(1, int(job_seconds / max(per_frame, 1e-3)))
        for frame_t, path in zip(range(t, last + 1), paths):
            rgba = read_render(path, box)
            path.unlink()
            yield frame_t, rgba
        t = last + 1


def render_border(joints_op18_mm: np.ndarray, K: np.ndarray, size):
    """Pixel box holding every capsule of some frames, or None when it may cover the frame.

    Cycles then traces only that box (the rest of the frame is transparent either way).
    Each joint's sphere lies in a cube of side 2r; the corners of the cubes, projected, bound
    the capsules (a capsule is the convex hull of its two spheres, all in front of the camera).

    Args:
        joints_op18_mm: (..., 18, 3) joints, camera frame, mm; NaN = missing.
        K: (3, 3) intrinsics.
        size: (H, W) pixels.

    Returns:
        (u_min, u_max, v_min, v_max) pixel edges clipped to the frame, or None (render it all).
    """
    height, width = size
    points = np.asarray(joints_op18_mm, dtype=np.float64).reshape(-1, 3)
    points = points[np.isfinite(points).all(axis=1)]
    if not len(points):
        return (0.0, 1.0, 0.0, 1.0)  # nothing drawn: a one-pixel box of background
    r = capsules.CAPSULE_RADIUS_MM
    if (points[:, 2] - r).min() < BORDER_MIN_DEPTH_MM:
        return None
    corners = points[:, None, :] + r * _CUBE_CORNERS[None]
    uv = C.project(corners.reshape(-1, 3), K)
    u_min, v_min = np.floor(uv.min(axis=0) - 0.5 - BORDER_MARGIN_PX)
    u_max, v_max = np.ceil(uv.max(axis=0) + 0.5 + BORDER_MARGIN_PX)
    u_min, u_max = max(u_min, 0.0), min(u_max, float(width))
    v_min, v_max = max(v_min, 0.0), min(v_max, float(height))
    if u_min >= u_max or v_min >= v_max:
        return (0.0, 1.0, 0.0, 1.0)
    return (u_min, u_max, v_min, v_max)


def _set_border(scene, box) -> None:
    """Restrict the render to a pixel box (v down from the top), or render the whole frame."""
    render = scene.render
    render.use_border = box is not None
    render.use_crop_to_border = False  # full-size frames, transparent outside the box
    if box is not None:
        u_min, u_max, v_min, v_max = box
        height, width = render.resolution_y, render.resolution_x
        render.border_min_x, render.border_max_x = u_min / width, u_max / width
        render.border_min_y, render.border_max_y = 1.0 - v_max / height, 1.0 - v_min / height


def _render_animation(scene, workdir: Path, first: int, last: int) -> list:
    """Render sequence frames first..last (one job); returns the EXR paths in frame order."""
    scene.frame_start, scene.frame_end = FIRST_FRAME + first, FIRST_FRAME + last
    scene.frame_step = 1
    scene.render.filepath = str(workdir / _FRAME_PATTERN)
    result = bpy.ops.render.render(animation=True, scene=scene.name)
    paths = [Path(scene.render.frame_path(frame=FIRST_FRAME + t)) for t in range(first, last + 1)]
    missing = [p.name for p in paths if not p.is_file()]
    if "FINISHED" not in result or missing:
        raise RenderError(f"Blender did not render frames {first}-{last} ({result}; "
                          f"missing {', '.join(missing[:3]) or 'none'})")
    return paths


def read_render(path: Path, box=None) -> np.ndarray:
    """A rendered EXR as the reference quantises it: (H, W, 4) uint8 (§6.4).

    Args:
        path: the EXR Cycles wrote.
        box: optional (u_min, u_max, v_min, v_max) pixel box outside which the render is
            known to be empty (see :func:`render_border`); only the box is converted.
    """
    try:
        rgba = frame_io.read_exr(path)
    except frame_io.UnsupportedExr as e:
        log.debug("%s; reading it through Blender", e)
        rgba = _read_image(path)
    out = np.zeros(rgba.shape, dtype=np.uint8)
    if box is None:
        rows, cols = slice(None), slice(None)
    else:
        rows, cols = slice(int(box[2]), int(box[3])), slice(int(box[0]), int(box[1]))
    region = rgba[rows, cols]
    hit = region[..., 3] > 0.5
    rgb = np.clip(region[..., :3], 0.0, 1.0)
    rgb *= 255.0
    rgb *= hit[..., None]
    out[rows, cols, :3] = rgb  # truncation toward zero, as the reference's astype(uint8)
    out[rows, cols, 3] = hit * np.uint8(HIT_ALPHA)
    return out


def _read_image(path: Path) -> np.ndarray:
    """(H, W, 4) float32 RGBA of any image file Blender reads, top row first."""
    image = bpy.data.images.load(str(path))
    try:
        width, height = image.size
        pixels = np.empty(width * height * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return pixels.reshape(height, width, 4)[::-1]  # Blender stores rows bottom-up


def _overlay_function():
    """``draw(seq, t, rgba) -> rgba`` compositing the 2D overlay of frame t, or None if absent."""
    try:
        from scail_protocol import overlay
    except ImportError:  # an older scail_protocol wheel without the overlay
        log.warning("scail_protocol.overlay is not available: rendering without the 2D overlay")
        return None

    def draw(seq, t, rgba):
        canvas = overlay.draw_overlay(seq.kp2d[:, t], seq.kp2d_score[:, t], seq.size,
                                      reference_hand_pairing=False)  # own hands (issue 11)
        return overlay.composite_per_channel(rgba, canvas)

    return draw


# --- output ---------------------------------------------------------------------------------------

def encode_mp4(frames_dir: Path, count: int, size, out_path: Path) -> Path:
    """Encode ``frame_000000.tga``... as H.264 ``.mp4`` at 16 fps with Blender's FFmpeg.

    Args:
        frames_dir: folder with ``count`` frames named ``frame_%06d.tga``.
        count: number of frames.
        size: (H, W) in pixels.
        out_path: the ``.mp4`` to write.

    Raises:
        RenderError: this Blender has no FFmpeg, or encoding failed.
    """
    if not bpy.app.build_options.codec_ffmpeg:
        raise RenderError("this Blender build has no FFmpeg; render with renderer='BACKEND'")
    if count < 1:
        raise RenderError("nothing to encode: the sequence has no frames")
    height, width = size
    scene = bpy.data.scenes.new(_SCENE_NAME + " encode")
    try:
        editor = scene.sequence_editor_create()
        strips = editor.strips if hasattr(editor, "strips") else editor.sequences  # 4.4 rename
        strip = strips.new_image("frames", str(frames_dir / "frame_000000.tga"), 1, 1)
        for t in range(1, count):
            strip.elements.append(f"frame_{t:06d}.tga")
        strip.colorspace_settings.name = "sRGB"
        render = scene.render
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        render.pixel_aspect_x = render.pixel_aspect_y = 1.0
        render.fps, render.fps_base = RENDER_FPS, 1.0
        scene.frame_start, scene.frame_end = 1, count
        _set_ffmpeg_h264(render)
        render.dither_intensity = 0.0
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"
        scene.view_settings.exposure = 0.0
        scene.view_settings.gamma = 1.0
        scene.sequencer_colorspace_settings.name = "sRGB"
        render.filepath = str(out_path)
        result = bpy.ops.render.render(animation=True, scene=scene.name)
    finally:
        bpy.data.scenes.remove(scene)
    if "FINISHED" not in result or not Path(out_path).is_file():
        raise RenderError(f"Blender's FFmpeg did not write {out_path} ({result})")
    return Path(out_path)


def _set_ffmpeg_h264(render) -> None:
    """H.264 in MPEG-4, high quality, no audio (Blender 5.0 moved video into 'media_type')."""
    settings = render.image_settings
    if hasattr(settings, "media_type"):
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    render.ffmpeg.format = "MPEG4"
    render.ffmpeg.codec = "H264"
    render.ffmpeg.constant_rate_factor = "HIGH"
    render.ffmpeg.audio_codec = "NONE"
