"""Exporting (edited) armatures back to a PoseSequence: round trip, edits, overlay shift."""

from __future__ import annotations

import math

import numpy as np
import pytest
from addon_helpers import armature_objects
from motion import make_sequence
from scail_protocol import camera as C
from scail_protocol import joints as J
from scail_protocol.errors import SequenceError
from scail_protocol.sequence import PoseSequence

bpy = pytest.importorskip("bpy")
ROUND_TRIP_MM = 0.1  # the brief's tolerance; float32 keys and bone matrices give ~0.001 mm


def _import(addon, scene, seq, **options):
    return addon.armature.import_sequence(seq, scene.collection, scene=scene, **options)


def _blender_heads_mm(addon, obj, frame):
    """Blender's own evaluation (depsgraph) of the bone heads at one frame, camera-frame mm."""
    bpy.context.scene.frame_set(frame)
    world = np.array(obj.matrix_world)
    heads = np.array([obj.pose.bones[n].head for n in addon.rigmath.bone_names()])
    return C.blender_to_camera(heads @ world[:3, :3].T + world[:3, 3])


def _rotate_key(addon, obj, bone, frame, axis, angle):
    """Edit the keyed rotation of a bone on one frame, as the graph editor would."""
    from mathutils import Quaternion

    source = addon.anim.curve_source(obj)
    path = f'pose.bones["{bone}"].rotation_quaternion'
    curves = [source.fcurves[(path, i)] for i in range(4)]
    keys = [next(k for k in c.keyframe_points if abs(k.co.x - frame) < 0.5) for c in curves]
    q = Quaternion([k.co.y for k in keys])
    q = q @ Quaternion(axis, angle)
    for key, value in zip(keys, q):
        key.co.y = value
    for c in curves:
        c.update()


@pytest.mark.parametrize("num_people", [1, 2])
def test_round_trip_without_edits_reproduces_the_take(addon, scene, num_people):
    seq = make_sequence(40, num_people=num_people, gaps=[(0, 7, 11)])
    result = _import(addon, scene, seq)
    out = addon.export.export_sequence(result.armatures, scene=scene)
    assert np.array_equal(np.isnan(out.joints3d), np.isnan(seq.joints3d))  # gaps stay missing
    np.testing.assert_allclose(out.joints3d, seq.joints3d, atol=ROUND_TRIP_MM)
    np.testing.assert_allclose(out.kp2d, seq.kp2d, atol=1e-3)  # nothing moved: overlay kept
    np.testing.assert_allclose(out.K, seq.K, rtol=1e-6)
    np.testing.assert_array_equal(out.track_id, seq.track_id)
    assert out.fps == seq.fps and out.size == seq.size
    assert out.meta["estimator"] == "synthetic-test" and out.meta["edited_in"] == "blender"


@pytest.mark.parametrize("num_people, gaps", [
    (1, [(0, 0, 6)]),                    # walks in late
    (1, [(0, 31, 40)]),                  # walks out early
    (1, [(0, 0, 3), (0, 15, 18), (0, 36, 40)]),
    (2, [(1, 0, 25), (0, 33, 40)]),      # the second person enters late, the first leaves
])
def test_empty_frames_at_the_ends_stay_empty_and_nothing_is_shifted(addon, scene, num_people,
                                                                     gaps):
    seq = make_sequence(40, num_people=num_people, gaps=gaps)
    result = _import(addon, scene, seq, start_frame=5)
    out = addon.export.export_sequence(result.armatures, scene=scene)
    assert np.array_equal(np.isnan(out.joints3d), np.isnan(seq.joints3d))
    np.testing.assert_allclose(out.joints3d, seq.joints3d, atol=ROUND_TRIP_MM)
    for person, obj in enumerate(result.armatures):  # Blender's own playback, frame for frame
        first = int(np.flatnonzero(np.isfinite(seq.joints3d[person]).all(axis=(1, 2)))[0])
        for t in (first, first + 4):
            np.testing.assert_allclose(_blender_heads_mm(addon, obj, 5 + t),
                                       seq.joints3d[person, t], atol=ROUND_TRIP_MM)


def test_rigid_mode_round_trip_keeps_root_and_bone_directions(addon, scene):
    seq = make_sequence(20)
    result = _import(addon, scene, seq, exact=False)
    out = addon.export.export_sequence(result.armatures, scene=scene)
    np.testing.assert_allclose(out.joints3d[0, :, 0], seq.joints3d[0, :, 0], atol=ROUND_TRIP_MM)
    for j, p in enumerate(J.SMPL24_PARENTS):
        if p < 0 or j not in [addon.rigmath.axis_child(p)]:
            continue
        want = (seq.joints3d[0, :, j] - seq.joints3d[0, :, p]).astype(np.float64)
        got = (out.joints3d[0, :, j] - out.joints3d[0, :, p]).astype(np.float64)
        cos = np.sum(want * got, -1) / np.linalg.norm(want, axis=-1) / np.linalg.norm(got, axis=-1)
        assert cos.min() > 1 - 1e-6  # float32 joints


def test_elbow_edit_moves_wrist_and_left_hand_overlay_only(addon, scene):
    seq = make_sequence(10)
    (obj,) = _import(addon, scene, seq).armatures
    t = 4
    _rotate_key(addon, obj, "Elbow.L", 1 + t, (0.0, 0.0, 1.0), math.radians(40))
    out = addon.export.export_sequence([obj], scene=scene)
    np.testing.assert_allclose(out.joints3d[0, t], _blender_heads_mm(addon, obj, 1 + t), atol=0.05)
    moved = np.linalg.norm(out.joints3d[0, t] - seq.joints3d[0, t], axis=-1)
    assert moved[J.SMPL24["left_wrist"]] > 50 and moved[J.SMPL24["left_hand"]] > 50
    assert moved[[j for j in range(24) if j not in (20, 22)]].max() < ROUND_TRIP_MM
    delta = C.project(out.joints3d[0, t, 20], seq.K) - C.project(seq.joints3d[0, t, 20], seq.K)
    np.testing.assert_allclose(out.kp2d[0, t, J.LEFT_HAND], seq.kp2d[0, t, J.LEFT_HAND] + delta,
                               atol=1e-3)
    for part in (J.RIGHT_HAND, J.FACE, J.BODY):
        np.testing.assert_allclose(out.kp2d[0, t, part], seq.kp2d[0, t, part], atol=1e-3)
    np.testing.assert_allclose(out.kp2d[0, t + 1], seq.kp2d[0, t + 1], atol=1e-3)  # other frames


def test_neck_edit_moves_face_and_body_points_with_the_head(addon, scene):
    seq = make_sequence(6)
    (obj,) = _import(addon, scene, seq).armatures
    t = 2
    _rotate_key(addon, obj, "Neck", 1 + t, (1.0, 0.0, 0.0), math.radians(80))
    out = addon.export.export_sequence([obj], scene=scene)
    head = J.SMPL24["head"]
    delta = C.project(out.joints3d[0, t, head], seq.K) - C.project(seq.joints3d[0, t, head], seq.K)
    assert np.linalg.norm(delta) > 1.0  # pixels
    for part in (J.FACE, slice(0, 24)):  # face, body and feet points (docs/pipeline.md §9.5)
        np.testing.assert_allclose(out.kp2d[0, t, part], seq.kp2d[0, t, part] + delta, atol=1e-3)
    for part in (J.LEFT_HAND, J.RIGHT_HAND):
        np.testing.assert_allclose(out.kp2d[0, t, part], seq.kp2d[0, t, part], atol=1e-3)


def test_a_key_inside_a_gap_makes_that_frame_present(addon, scene):
    seq = make_sequence(12, gaps=[(0, 4, 8)])
    (obj,) = _import(addon, scene, seq).armatures
    source = addon.anim.curve_source(obj)
    fcurve = source.fcurves[('pose.bones["Pelvis"].rotation_quaternion', 0)]
    fcurve.keyframe_points.insert(1 + 5, fcurve.evaluate(1 + 5))
    out = addon.export.export_sequence([obj], scene=scene)
    present = np.isfinite(out.joints3d[0]).all(axis=(1, 2))
    assert present.tolist() == [t not in (4, 6, 7) for t in range(12)]
    assert np.isnan(out.kp2d[0, 5]).all()  # no 2D points to move there


def test_camera_lens_change_is_exported_as_K_and_shifts_the_overlay(addon, scene):
    seq = make_sequence(5)
    (obj,) = _import(addon, scene, seq).armatures
    scene.camera.data.lens *= 1.2
    out = addon.export.export_sequence([obj], scene=scene)
    np.testing.assert_allclose(out.K[0, 0], seq.K[0, 0] * 1.2, rtol=1e-5)
    np.testing.assert_allclose(out.joints3d, seq.joints3d, atol=ROUND_TRIP_MM)
    head = seq.joints3d[0, :, 15]
    delta = C.project(head, out.K) - C.project(head, seq.K)
    np.testing.assert_allclose(out.kp2d[0, :, J.FACE], seq.kp2d[0, :, J.FACE] + delta[:, None],
                               atol=1e-2)


def test_moving_the_camera_moves_the_joints_in_the_camera_frame(addon, scene):
    seq = make_sequence(4)
    (obj,) = _import(addon, scene, seq).armatures
    scene.camera.location.x += 0.1  # 100 mm to the right
    out = addon.export.export_sequence([obj], scene=scene)
    np.testing.assert_allclose(out.joints3d[..., 0], seq.joints3d[..., 0] - 100.0, atol=0.05)
    np.testing.assert_allclose(out.joints3d[..., 1:], seq.joints3d[..., 1:], atol=0.05)


def test_rigs_with_constraints_use_blenders_depsgraph(addon, scene):
    seq = make_sequence(8)
    (obj,) = _import(addon, scene, seq).armatures
    assert not addon.export.needs_depsgraph(obj)
    fast = addon.export.export_sequence([obj], scene=scene)
    slow = addon.export.export_sequence([obj], scene=scene, use_depsgraph=True)
    np.testing.assert_allclose(slow.joints3d, fast.joints3d, atol=0.01)
    constraint = obj.pose.bones["Elbow.R"].constraints.new("LIMIT_ROTATION")
    constraint.use_limit_x = constraint.use_limit_y = constraint.use_limit_z = True
    constraint.owner_space = "LOCAL"
    assert addon.export.needs_depsgraph(obj)
    limited = addon.export.export_sequence([obj], scene=scene)
    wrist = J.SMPL24["right_wrist"]
    assert np.abs(limited.joints3d[0, :, wrist] - fast.joints3d[0, :, wrist]).max() > 10.0
    np.testing.assert_allclose(limited.joints3d[0, :, :wrist], fast.joints3d[0, :, :wrist],
                               atol=0.05)  # joints above the constrained bone are untouched


def test_export_operator_writes_a_valid_pose_file(addon, scene, tmp_path):
    seq = make_sequence(6)
    _import(addon, scene, seq)
    path = tmp_path / "edited.npz"
    assert bpy.ops.scail.export_motion(filepath=str(path)) == {"FINISHED"}
    back = PoseSequence.load(path)
    np.testing.assert_allclose(back.joints3d, seq.joints3d, atol=ROUND_TRIP_MM)


def test_export_without_scail_armatures_is_reported(addon, scene, tmp_path):
    assert not bpy.ops.scail.export_motion.poll()  # greyed out in the menu, with the reason
    with pytest.raises(RuntimeError, match="No SCAIL armature in the scene: import a take"):
        bpy.ops.scail.export_motion(filepath=str(tmp_path / "x.npz"))
    obj = bpy.data.objects.new("foreign", bpy.data.armatures.new("foreign"))
    obj["scail_person"] = 0  # looks like ours but carries no take data
    scene.collection.objects.link(obj)
    with pytest.raises(RuntimeError, match="lacks the data of a SCAIL import"):
        bpy.ops.scail.export_motion(filepath=str(tmp_path / "x.npz"))
    assert armature_objects() == [obj]


def test_shift_overlay_moves_hands_by_their_wrist_and_ignores_points_behind_the_camera():
    from importlib import import_module

    export = import_module("scail_pose_studio.export")
    K = C.intrinsics_from_fov(100, 100)
    before = np.full((2, 24, 3), 1000.0, np.float32)
    after = before.copy()
    after[:, 20, 0] += 50.0  # left wrist moves right by 50 mm at z = 1 m
    after[1, 21] = (0.0, 0.0, -5.0)  # right wrist behind the camera on frame 1
    kp2d = np.zeros((2, J.NUM_WHOLEBODY, 2), np.float32) + 10
    out = export.shift_overlay(kp2d, before, after, K, K)
    np.testing.assert_allclose(out[:, J.LEFT_HAND, 0], 10 + K[0, 0] * 0.05, rtol=1e-5)
    np.testing.assert_allclose(out[:, J.RIGHT_HAND], 10)
    np.testing.assert_allclose(out[:, J.FACE], 10)


def test_selected_armatures_pick_one_take_when_the_scene_holds_two(addon, scene, tmp_path):
    first = make_sequence(6, seed=1)
    second = make_sequence(9, seed=2)
    (a,) = _import(addon, scene, first).armatures
    _import(addon, scene, second, start_frame=20)
    with pytest.raises(RuntimeError, match="different takes"):
        bpy.ops.scail.export_motion(filepath=str(tmp_path / "both.npz"))
    for obj in scene.objects:
        obj.select_set(obj == a)
    scene.frame_start, scene.frame_end = 1, 6  # the second import set the range to its own
    assert bpy.ops.scail.export_motion(filepath=str(tmp_path / "one.npz")) == {"FINISHED"}
    out = PoseSequence.load(tmp_path / "one.npz")
    np.testing.assert_allclose(out.joints3d, first.joints3d, atol=ROUND_TRIP_MM)


def test_one_take_imported_twice_asks_to_select_one_import(addon, scene):
    seq = make_sequence(6)
    (a,) = _import(addon, scene, seq).armatures
    (b,) = _import(addon, scene, seq).armatures
    with pytest.raises(SequenceError, match=f"{a.name} and {b.name} are the same person.*"
                                            f"select the armatures of one import"):
        addon.export.export_sequence([a, b], scene=scene)


def test_a_scene_range_that_cuts_the_take_is_reported(addon, scene):
    seq = make_sequence(12)
    (obj,) = _import(addon, scene, seq).armatures
    reports = []
    addon.export.export_sequence([obj], scene=scene, report=lambda *r: reports.append(r))
    assert reports == []
    scene.frame_end = 8  # e.g. set by a shorter take imported after this one
    out = addon.export.export_sequence([obj], scene=scene, report=lambda *r: reports.append(r))
    assert out.num_frames == 8
    assert reports == [({"WARNING"}, "exporting frames 1-8 of the take's 1-12: the scene's frame "
                                     "range is 1-8; widen it in the Output properties or the "
                                     "Timeline for the whole take")]
