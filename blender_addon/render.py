"""Render the SCAIL conditioning video inside Blender (no backend needed).

Per frame: the capsules of ``scail_protocol.capsules.frame_capsules`` (the same limbs, order and
colours as the backend's renderer) become one triangle mesh (``capsule_mesh``), rendered by Cycles
with one sample per pixel through the pixel centre (box filter 0.01 px: no anti-aliasing, like the
reference's one ray per pixel) and an emission shader that computes the reference's head-light
shading itself (reference §6.4):

    RGB = base·(0.3 + 0.7·max(n·l, 0))·k + 0.5·max(n·h, 0)^32·k,  l = toward the camera,
    h = normalize(view + l),  k = clip(1 − (z − depth_near)/(depth_far − znear), 0, 1)

with the depth constants over the whole take (``capsules.DepthRange``). Frames are read back as
float EXR (scene-linear, so no view transform touches the values), truncated to uint8 like the
reference, the 2D overlay is composited per channel (``scail_protocol.overlay``), and Blender's own
FFmpeg writes the H.264 ``.mp4`` at 16 fps through the sequencer, with the 'Standard' view
transform, no look, exposure 0, gamma 1 and no dither so that the 8-bit values pass unchanged.

Everything happens in a temporary scene that is deleted afterwards; the artist's scene, its
render settings and its view transform are left alone. Cycles (not Workbench or EEVEE) because its
emission shader reproduces the reference shading exactly and it renders headless with no GPU.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

import bpy
import numpy as np
from mathutils import Euler
from scail_protocol import camera as C
from scail_protocol import capsules
from scail_protocol.errors import RenderError

from . import camera as camera_mod
from .capsule_mesh import CapsuleTemplate, capsule_radii

log = logging.getLogger(__name__)

RENDER_FPS = 16  # reference §8: the conditioning video is always 16 fps
HIT_ALPHA = 204  # reference §6.4: alpha 0.8 of a hit pixel, as uint8
NUM_LIMBS = len(capsules.J.LIMB_DRAW_ORDER)
PIXEL_FILTER_WIDTH = 0.01  # Cycles' minimum: every sample goes through the pixel centre
_SCENE_NAME = "SCAIL conditioning render"
_COLOR_ATTRIBUTE = "scail_limb_color"


def render_frames(seq, *, overlay: bool = True):
    """Yield the conditioning frames of a sequence, rendered by Blender.

    Args:
        seq: the PoseSequence (camera frame, mm; its K and size set the camera).
        overlay: composite the 2D hands/face/head overlay (reference §7).
    Yields:
        (H, W, 4) uint8 RGBA per frame: hit pixels have alpha 204, the background is (0, 0, 0, 0).
    """
    joints = seq.openpose18_3d()  # (P, T, 18, 3) mm
    z_range = capsules.drawn_endpoint_z_range(joints)
    depth = capsules.DepthRange.from_z_range(*z_range) if z_range else None
    draw = _overlay_function() if overlay else None
    with _render_scene(seq, depth) as (scene, mesh_obj, template, workdir):
        for t in range(seq.num_frames):
            _place_capsules(mesh_obj, template, joints[:, t])
            rgba = _render_still(scene, workdir)
            if draw is not None:
                rgba = draw(seq, t, rgba)
            yield rgba


def render_conditioning(seq, out_path, *, overlay: bool = True, progress=None) -> Path:
    """Render the conditioning video of a sequence to an H.264 ``.mp4`` at 16 fps (blocking).

    Args:
        seq: the PoseSequence to draw.
        out_path: the ``.mp4`` to write (replaced atomically; its folder must exist).
        overlay: composite the 2D overlay.
        progress: optional ``progress(stage, done, total)``; may raise ``Cancelled``.

    Returns:
        The output path.

    Raises:
        RenderError: the output folder does not exist, or Blender fails to render or encode.
    """
    steps = conditioning_steps(seq, out_path, overlay=overlay)
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


def conditioning_steps(seq, out_path, *, overlay: bool = True):
    """Generator doing :func:`render_conditioning` one frame per item.

    Yields ``(stage, done, total)`` after each rendered frame and after encoding; returns the
    output path. Closing it early removes its temporary files and leaves ``out_path`` untouched.
    """
    out_path = check_output(out_path)
    workdir = Path(tempfile.mkdtemp(prefix="scail_render_"))
    try:
        for t, rgba in enumerate(render_frames(seq, overlay=overlay)):
            _save_png(rgba[..., :3], workdir / f"frame_{t:06d}.png")
            yield "render", t + 1, seq.num_frames
        encoded = encode_mp4(workdir, seq.num_frames, (seq.height, seq.width), workdir / "out.mp4")
        os.replace(encoded, out_path)
        yield "encode", seq.num_frames, seq.num_frames
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out_path


def check_output(out_path) -> Path:
    """The output path as a Path; RenderError when its folder does not exist."""
    out_path = Path(out_path)
    if not out_path.parent.is_dir():
        raise RenderError(f"cannot write {out_path}: folder {out_path.parent} does not exist")
    return out_path


# --- scene ----------------------------------------------------------------------------------------

@contextlib.contextmanager
def _render_scene(seq, depth):
    """A temporary Cycles scene with the take's camera and one capsule mesh; removed on exit."""
    scene = bpy.data.scenes.new(_SCENE_NAME)
    created = []
    workdir = Path(tempfile.mkdtemp(prefix="scail_frames_"))
    try:
        _configure_cycles(scene, seq)
        cam_data = bpy.data.cameras.new(_SCENE_NAME)
        cam = bpy.data.objects.new(_SCENE_NAME + " camera", cam_data)
        created += [cam, cam_data]
        camera_mod.apply_settings(cam_data, scene, C.blender_camera_from_K(seq.K, seq.height,
                                                                             seq.width))
        cam_data.clip_start = capsules.ZNEAR_MM / C.MM_PER_M
        cam_data.clip_end = (depth.zfar if depth else capsules.ZFAR_MIN_MM) / C.MM_PER_M
        cam.rotation_euler = Euler(C.BLENDER_CAMERA_EULER, "XYZ")
        scene.collection.objects.link(cam)
        scene.camera = cam
        template = CapsuleTemplate(max(seq.num_people, 1) * NUM_LIMBS)
        mesh = _capsule_mesh(template)
        material = _shading_material(depth)
        mesh.materials.append(material)
        mesh_obj = bpy.data.objects.new(_SCENE_NAME + " capsules", mesh)
        created += [mesh_obj, mesh, material]
        scene.collection.objects.link(mesh_obj)
        yield scene, mesh_obj, template, workdir
    finally:
        for block in created:
            _remove_id(block)
        bpy.data.scenes.remove(scene)
        shutil.rmtree(workdir, ignore_errors=True)


def _remove_id(block) -> None:
    collection = {bpy.types.Object: bpy.data.objects, bpy.types.Mesh: bpy.data.meshes,
                  bpy.types.Camera: bpy.data.cameras, bpy.types.Material: bpy.data.materials}
    for kind, data in collection.items():
        if isinstance(block, kind):
            data.remove(block)
            return


def _configure_cycles(scene, seq) -> None:
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
    scene.render.use_persistent_data = True
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


def _capsule_mesh(template: CapsuleTemplate):
    """A mesh with the template's triangles (smooth shaded) and a per-face colour attribute."""
    mesh = bpy.data.meshes.new(_SCENE_NAME)
    n_verts = template.num_capsules * template.verts_per_capsule
    faces = template.faces
    mesh.vertices.add(n_verts)
    mesh.loops.add(faces.size)
    mesh.polygons.add(len(faces))
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.polygons.foreach_set("use_smooth", np.ones(len(faces), dtype=bool))
    mesh.attributes.new(_COLOR_ATTRIBUTE, "FLOAT_COLOR", "FACE")
    mesh.update()
    return mesh


def _shading_material(depth):
    """Emission material computing the reference's capsule shading (module docstring)."""
    mat = bpy.data.materials.new(_SCENE_NAME)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    b = _NodeBuilder(nodes, links)
    geometry = nodes.new("ShaderNodeNewGeometry")
    base = nodes.new("ShaderNodeAttribute")
    base.attribute_type = "GEOMETRY"
    base.attribute_name = _COLOR_ATTRIBUTE
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


# --- per frame ------------------------------------------------------------------------------------

def _place_capsules(mesh_obj, template: CapsuleTemplate, joints_op18_mm: np.ndarray) -> None:
    """Move the capsule slots onto one frame's limbs (slot = person · 17 + draw position)."""
    frame = capsules.frame_capsules(joints_op18_mm)
    n = template.num_capsules
    order_of_limb = {limb: i for i, limb in enumerate(capsules.J.LIMB_DRAW_ORDER)}
    slots = np.array([p * NUM_LIMBS + order_of_limb[int(l)]
                      for p, l in zip(frame.person, frame.limb)], dtype=np.int64)
    starts = np.zeros((n, 3))
    ends = np.zeros((n, 3))
    colors = np.zeros((n, 4), dtype=np.float32)
    used = np.zeros(n, dtype=bool)
    starts[slots] = C.camera_to_blender(frame.starts)
    ends[slots] = C.camera_to_blender(frame.ends)
    colors[slots] = frame.colors
    used[slots] = True
    radii = capsule_radii(n, capsules.CAPSULE_RADIUS_MM)
    mesh = mesh_obj.data
    mesh.vertices.foreach_set("co", template.vertices(starts, ends, radii, used).ravel())
    face_colors = np.repeat(colors, template.faces_per_capsule, axis=0)
    face_colors[:, 3] = 1.0
    mesh.attributes[_COLOR_ATTRIBUTE].data.foreach_set("color", face_colors.ravel())
    mesh.update()


def _render_still(scene, workdir: Path) -> np.ndarray:
    """Render the scene's current state; (H, W, 4) uint8 as the reference quantises (§6.4)."""
    path = workdir / "still.exr"
    scene.render.filepath = str(path)
    result = bpy.ops.render.render(write_still=True, scene=scene.name)
    if "FINISHED" not in result or not path.is_file():
        raise RenderError(f"Blender did not render the frame ({result})")
    image = bpy.data.images.load(str(path))
    try:
        width, height = image.size
        pixels = np.empty(width * height * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    rgba = pixels.reshape(height, width, 4)[::-1]  # Blender stores rows bottom-up
    out = np.zeros((height, width, 4), dtype=np.uint8)
    hit = rgba[..., 3] > 0.5
    out[..., :3] = (np.clip(rgba[..., :3], 0.0, 1.0) * 255.0).astype(np.uint8)  # truncation
    out[~hit] = 0
    out[hit, 3] = HIT_ALPHA
    return out


def _overlay_function():
    """``draw(seq, t, rgba) -> rgba`` compositing the 2D overlay of frame t, or None if absent."""
    try:
        from scail_protocol import overlay
    except ImportError:  # an older scail_protocol wheel without the overlay
        log.warning("scail_protocol.overlay is not available: rendering without the 2D overlay")
        return None

    def draw(seq, t, rgba):
        canvas = overlay.draw_overlay(seq.kp2d[:, t], seq.kp2d_score[:, t], seq.size)
        return overlay.composite_per_channel(rgba, canvas)

    return draw


# --- output ---------------------------------------------------------------------------------------

def _save_png(rgb: np.ndarray, path: Path) -> None:
    """Write (H, W, 3) uint8 as an 8-bit PNG with Blender's own image writer."""
    height, width = rgb.shape[:2]
    image = bpy.data.images.new("scail_frame", width, height, alpha=False)
    try:
        pixels = np.ones((height, width, 4), dtype=np.float32)
        pixels[..., :3] = rgb[::-1] / 255.0
        image.pixels.foreach_set(pixels.ravel())
        image.filepath_raw = str(path)
        image.file_format = "PNG"
        image.save()
    finally:
        bpy.data.images.remove(image)


def encode_mp4(frames_dir: Path, count: int, size, out_path: Path) -> Path:
    """Encode ``frame_000000.png``... as H.264 ``.mp4`` at 16 fps with Blender's FFmpeg.

    Args:
        frames_dir: folder with ``count`` PNG frames named ``frame_%06d.png``.
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
        strips = getattr(editor, "strips", None) or editor.sequences  # 'strips' since 4.4
        strip = strips.new_image("frames", str(frames_dir / "frame_000000.png"), 1, 1)
        for t in range(1, count):
            strip.elements.append(f"frame_{t:06d}.png")
        strip.colorspace_settings.name = "sRGB"
        render = scene.render
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        render.pixel_aspect_x = render.pixel_aspect_y = 1.0
        render.fps, render.fps_base = RENDER_FPS, 1.0
        scene.frame_start, scene.frame_end = 1, count
        render.image_settings.file_format = "FFMPEG"
        render.ffmpeg.format = "MPEG4"
        render.ffmpeg.codec = "H264"
        render.ffmpeg.constant_rate_factor = "HIGH"
        render.ffmpeg.audio_codec = "NONE"
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
