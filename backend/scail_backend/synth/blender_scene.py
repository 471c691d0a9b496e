"""The synthetic figure as a Blender scene (``bpy``, headless): build, animate, evaluate, render.

``bpy`` is a process-wide singleton: :func:`build_scene` starts from Blender's empty factory
settings every time, and ``bpy`` is imported only inside functions. Blender world coordinates are
the camera's (see :mod:`.cameras`): the camera sits at the origin looking down +Y and the stage
(figure, props) is placed in front of it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from dataclasses import dataclass

import numpy as np
from scail_protocol import blender_rig
from scail_protocol.camera import BLENDER_CAMERA_EULER, blender_camera_from_K
from scail_protocol.errors import RenderError
from scail_protocol.joints import SMPL24_NAMES, SMPL24_PARENTS
from scail_protocol.rotations import matrix_to_quat, quat_conj, quat_mul, quat_to_matrix

from .figure import COLORS_SRGB8, MATERIALS, build_mesh, colors_srgb8
from .motions import MotionFrames
from .skeleton import rest_joints, rest_tails

log = logging.getLogger(__name__)

FRAME_START = 1  # Blender frame of sequence frame 0
ENGINE = "BLENDER_WORKBENCH"


def _srgb_to_linear(c8) -> tuple:
    c = np.asarray(c8, np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return tuple(float(v) for v in lin) + (1.0,)


@dataclass
class SceneHandles:
    """The Blender objects of a built scene (valid until the next :func:`build_scene`)."""

    scene: object
    camera: object
    stage: object
    armature: object
    body: object
    num_frames: int


def _reset():
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def _setup_render(scene, size, fps: float) -> None:
    height, width = size
    r = scene.render
    r.engine = ENGINE
    r.resolution_x, r.resolution_y, r.resolution_percentage = int(width), int(height), 100
    r.film_transparent = True
    r.fps = max(1, int(round(fps)))
    r.fps_base = r.fps / float(fps)
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGBA"
    r.image_settings.color_depth = "8"
    r.image_settings.compression = 0
    scene.display.render_aa = "FXAA"
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "MATERIAL"
    shading.show_cavity = False
    shading.show_shadows = False
    scene.view_settings.view_transform = "Standard"  # flat colours come out as written
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0


def _add_camera(scene, K: np.ndarray, size):
    import bpy

    settings = blender_camera_from_K(K, *size)
    data = bpy.data.cameras.new("synth_camera")
    data.sensor_fit = settings.sensor_fit
    data.sensor_width = settings.sensor_width_mm
    data.lens = settings.lens_mm
    data.shift_x, data.shift_y = settings.shift_x, settings.shift_y
    data.clip_start, data.clip_end = 0.05, 100.0
    scene.render.pixel_aspect_x = settings.pixel_aspect_x
    scene.render.pixel_aspect_y = settings.pixel_aspect_y
    camera = bpy.data.objects.new("synth_camera", data)
    camera.location = (0.0, 0.0, 0.0)
    camera.rotation_euler = BLENDER_CAMERA_EULER
    scene.collection.objects.link(camera)
    scene.camera = camera
    return camera


def _add_armature(scene, stage, body):
    arm = blender_rig.build_armature("synth_figure", scene.collection, rest_joints(body),
                                     rest_tails(body), SMPL24_NAMES, SMPL24_PARENTS)
    arm.parent = stage
    return arm


def _add_body(scene, arm, body):
    import bpy

    figure = build_mesh(body)
    colors = colors_srgb8(body)
    mesh = bpy.data.meshes.new("synth_body")
    mesh.from_pydata(figure.verts.tolist(), [], figure.faces)
    for name in MATERIALS:
        material = bpy.data.materials.new(f"synth_{name}")
        material.diffuse_color = _srgb_to_linear(colors[name])
        material.roughness = 0.6
        mesh.materials.append(material)
    mesh.polygons.foreach_set("material_index", figure.face_material.astype(np.int32))
    mesh.polygons.foreach_set("use_smooth", np.ones(len(figure.faces), bool))
    mesh.update()
    body = bpy.data.objects.new("synth_body", mesh)
    scene.collection.objects.link(body)
    body.parent = arm
    for j, name in enumerate(SMPL24_NAMES):
        group = body.vertex_groups.new(name=name)
        for slot in range(figure.vertex_bones.shape[1]):
            chosen = (figure.vertex_bones[:, slot] == j) & (figure.vertex_weights[:, slot] > 0)
            for weight in np.unique(figure.vertex_weights[chosen, slot]):
                members = np.flatnonzero(chosen & (figure.vertex_weights[:, slot] == weight))
                group.add(members.tolist(), float(weight), "ADD")
    modifier = body.modifiers.new("armature", "ARMATURE")
    modifier.object = arm
    modifier.use_vertex_groups = True
    return body


def _add_props(scene, stage, props) -> None:
    import bpy

    for prop in props:
        sx, sy, sz = (s / 2.0 for s in prop.size_m)
        verts = [(x, y, z) for x in (-sx, sx) for y in (-sy, sy) for z in (-sz, sz)]
        faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
        mesh = bpy.data.meshes.new(prop.name)
        mesh.from_pydata(verts, [], faces)
        material = bpy.data.materials.new(f"synth_{prop.name}")
        material.diffuse_color = _srgb_to_linear(COLORS_SRGB8["prop"])
        mesh.materials.append(material)
        obj = bpy.data.objects.new(prop.name, mesh)
        obj.location = prop.center_m
        obj.parent = stage
        scene.collection.objects.link(obj)


def _key_motion(arm, motion: MotionFrames, body) -> None:
    """Key every bone's rotation and the pelvis location on every frame (bulk F-curve writes)."""
    num = motion.local_quats.shape[0]
    frames = np.arange(num, dtype=np.float64) + FRAME_START
    rest = np.stack([np.array(arm.data.bones[name].matrix_local)[:3, :3] for name in SMPL24_NAMES])
    rest_q = matrix_to_quat(rest)                      # (24, 4) bone rest -> armature
    # SMPL local q (rest-aligned body axes) -> Blender basis in the bone's own rest axes.
    basis = quat_mul(quat_conj(rest_q)[None], quat_mul(motion.local_quats, rest_q[None]))
    signs = np.where(np.sum(basis[1:] * basis[:-1], axis=-1) < 0, -1.0, 1.0)
    basis[1:] *= np.cumprod(signs, axis=0)[..., None]  # no flips between frames
    root_head = rest_joints(body)[0]
    location = (motion.root_m - root_head) @ quat_to_matrix(rest_q[0])  # R^T (p - head)
    channels = blender_rig.new_action("synth_motion", arm)
    for j, name in enumerate(SMPL24_NAMES):
        blender_rig.key_curves(channels, name, f'pose.bones["{name}"].rotation_quaternion',
                               frames, basis[:, j])
    blender_rig.key_curves(channels, SMPL24_NAMES[0],
                           f'pose.bones["{SMPL24_NAMES[0]}"].location', frames, location)
    blender_rig.assign_action(arm, channels)


def build_scene(motion: MotionFrames, stage_to_world: np.ndarray, K: np.ndarray, size,
                fps: float, body=None) -> SceneHandles:
    """Reset Blender and build the camera, the stage, the rigged figure and its animation.

    Args:
        motion: the evaluated motion (stage frame).
        stage_to_world: (4, 4) stage -> Blender world (camera at the origin looking down +Y).
        K: (3, 3) intrinsics; size: (H, W) pixels; fps: frames per second.
        body: the figure's body type (:mod:`.bodies`; None = average), as ``motion`` used.
    """
    import bpy

    scene = _reset()
    _setup_render(scene, size, fps)
    camera = _add_camera(scene, K, size)
    stage = bpy.data.objects.new("synth_stage", None)
    scene.collection.objects.link(stage)
    stage.matrix_world = _to_matrix(stage_to_world)
    arm = _add_armature(scene, stage, body)
    mesh = _add_body(scene, arm, body)
    _add_props(scene, stage, motion.props)
    _key_motion(arm, motion, body)
    num = motion.local_quats.shape[0]
    scene.frame_start, scene.frame_end = FRAME_START, FRAME_START + num - 1
    scene.frame_set(FRAME_START)
    return SceneHandles(scene, camera, stage, arm, mesh, num)


def _to_matrix(m: np.ndarray):
    from mathutils import Matrix

    return Matrix([list(map(float, row)) for row in np.asarray(m)])


def set_frame(handles: SceneHandles, index: int) -> None:
    """Evaluate the scene at sequence frame ``index`` (0-based)."""
    handles.scene.frame_set(FRAME_START + int(index))


def pose_matrices(handles: SceneHandles) -> np.ndarray:
    """(24, 4, 4) float64 skinning matrices of the evaluated pose: world <- rest (body frame).

    A point p attached to bone j in the rest pose is at ``M[j] @ [p, 1]`` in Blender world
    coordinates (metres) in the current frame.
    """
    import bpy

    depsgraph = bpy.context.evaluated_depsgraph_get()
    arm = handles.armature.evaluated_get(depsgraph)
    world = np.array(arm.matrix_world)
    out = np.empty((len(SMPL24_NAMES), 4, 4))
    for j, name in enumerate(SMPL24_NAMES):
        posed = np.array(arm.pose.bones[name].matrix)
        rest_inv = np.linalg.inv(np.array(arm.data.bones[name].matrix_local))
        out[j] = world @ posed @ rest_inv
    return out


def joint_positions(handles: SceneHandles) -> np.ndarray:
    """(24, 3) float64 evaluated pose-bone heads (the SMPL-24 joints), Blender world, metres."""
    import bpy

    depsgraph = bpy.context.evaluated_depsgraph_get()
    arm = handles.armature.evaluated_get(depsgraph)
    world = np.array(arm.matrix_world)
    heads = np.array([arm.pose.bones[name].head for name in SMPL24_NAMES], np.float64)
    return heads @ world[:3, :3].T + world[:3, 3]


def body_vertices(handles: SceneHandles) -> np.ndarray:
    """(N, 3) float64 evaluated (skinned) vertices of the figure, Blender world, metres."""
    import bpy

    depsgraph = bpy.context.evaluated_depsgraph_get()
    body = handles.body.evaluated_get(depsgraph)
    mesh = body.to_mesh()
    try:
        co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
    finally:
        body.to_mesh_clear()
    world = np.array(body.matrix_world)
    return co.reshape(-1, 3).astype(np.float64) @ world[:3, :3].T + world[:3, 3]


@contextlib.contextmanager
def _captured_output():
    """Keep Blender's per-render chatter ("Saved: ...", EGL probing) off the process's stdout and
    stderr; it goes to the debug log instead."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            chatter = sink.read().decode("utf-8", "replace").strip()
            if chatter:
                log.debug("blender: %s", chatter)


def render_rgba(handles: SceneHandles, path) -> np.ndarray:
    """Render the current frame with Workbench; returns (H, W, 4) uint8 straight-alpha RGBA.

    ``path`` is a scratch PNG (headless Blender exposes no render pixels in memory).
    """
    import bpy
    import cv2

    handles.scene.render.filepath = str(path)
    with _captured_output():
        bpy.ops.render.render(write_still=True)
    bgra = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if bgra is None or bgra.ndim != 3 or bgra.shape[2] != 4:
        raise RenderError(f"Blender did not write a readable RGBA frame to {path}")
    os.remove(path)
    return bgra[..., [2, 1, 0, 3]]
