"""The Ground Take operator (``scail.ground_take``) through ``bpy.ops`` on an imported take.

The take is the walking person of ``walk.py`` filmed by a tilted camera and imported as the
estimator gave it (camera frame). After the operator: the balls of the feet sit on Z = 0 while
planted (the issue's 1 cm), the person faces -Y, and the camera moved with the armature, so every
joint projects to the same pixel as before.
"""

from __future__ import annotations

import numpy as np
import pytest
import walk

bpy = pytest.importorskip("bpy")

FLOOR_M = 0.01  # issue 12: feet in contact within 1 cm of the floor
PIXEL_PX = 1.0  # the picture is unchanged (measured ~1e-4 px)
FRAMES = 90


def _world_joints(addon, obj, scene, frames) -> np.ndarray:
    """(T, 24, 3) world joint positions (bone heads) from Blender's evaluation, metres."""
    return addon.retarget.source_pose(obj, scene, frames)[1]


def _pixels(scene, camera, points) -> np.ndarray:
    """(..., 2) pixel positions of world ``points`` (..., 3) seen by ``camera`` on each frame."""
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    render = scene.render
    size = np.array([render.resolution_x, render.resolution_y]) * render.resolution_percentage / 100
    out = np.empty(points.shape[:-1] + (2,))
    for index in np.ndindex(points.shape[:-1]):
        co = world_to_camera_view(scene, camera, Vector(points[index]))
        out[index] = (co.x * size[0], (1.0 - co.y) * size[1])
    return out


@pytest.fixture
def ungrounded(addon, scene):
    """The walking take imported as estimated (not grounded), active and selected."""
    seq, world, planted, _ = walk.filmed_sequence(FRAMES)
    result = addon.armature.import_sequence(seq, scene.collection, scene=scene, name="walk")
    obj = result.armatures[0]
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    return obj, result.camera, planted


def test_ground_take_stands_the_take_on_the_floor_facing_minus_y(addon, scene, ungrounded):
    obj, camera, planted = ungrounded
    frames = np.arange(1, FRAMES + 1)
    assert not addon.grounding.is_grounded(obj)
    assert bpy.ops.scail.ground_take() == {"FINISHED"}
    assert addon.grounding.is_grounded(obj)
    heads = _world_joints(addon, obj, scene, frames)
    balls_z = heads[:, [10, 11], 2]  # left_foot, right_foot: the balls of the feet
    assert np.abs(balls_z[planted]).max() < FLOOR_M
    assert (balls_z > -FLOOR_M).all()  # nothing sinks through the floor
    left = heads[:, 1] - heads[:, 2]  # right hip -> left hip
    mean_left = left.mean(axis=0)
    assert mean_left[0] > 0.99 * np.linalg.norm(mean_left)  # left is +X: facing -Y
    up = heads[:, 12] - heads[:, 0]  # pelvis -> neck
    assert (up[:, 2] > 0.9 * np.linalg.norm(up, axis=-1)).all()  # Z up
    floor = obj["scail_floor"]
    assert floor is not None and np.allclose([v.co.z for v in floor.data.vertices], 0.0)
    assert not bpy.ops.scail.ground_take.poll()  # grounded once only


def test_ground_take_moves_the_camera_along_so_the_picture_is_unchanged(addon, scene, ungrounded):
    obj, camera, _ = ungrounded
    frames = np.arange(1, FRAMES + 1, 7)
    before = _pixels(scene, camera, _world_joints(addon, obj, scene, frames))
    camera_before = np.array(camera.matrix_world)
    assert bpy.ops.scail.ground_take() == {"FINISHED"}
    after = _pixels(scene, camera, _world_joints(addon, obj, scene, frames))
    assert not np.allclose(np.array(camera.matrix_world), camera_before)  # it did move
    assert np.isfinite(before).all()
    np.testing.assert_allclose(after, before, atol=PIXEL_PX)


def test_ground_take_refuses_what_is_not_a_take(addon, scene, ungrounded):
    obj, camera, _ = ungrounded
    bpy.context.view_layer.objects.active = camera
    assert not bpy.ops.scail.ground_take.poll()
