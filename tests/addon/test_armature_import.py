"""Importing a PoseSequence file: armatures, keys, NLA, scene timing, camera, bad input."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from addon_helpers import armature_objects, assert_nothing_imported, write_test_video
from motion import make_sequence
from scail_protocol import camera as C
from scail_protocol import joints as J

bpy = pytest.importorskip("bpy")


def _import(tmp_path, seq, **options):
    path = tmp_path / "poses.npz"
    seq.save(path)
    assert bpy.ops.scail.import_motion(filepath=str(path), **options) == {"FINISHED"}
    return path


def _heads_mm(obj, frame, addon):
    bpy.context.scene.frame_set(frame)
    world = np.array(obj.matrix_world)
    names = addon.rigmath.bone_names()
    heads = np.array([obj.pose.bones[n].head for n in names], dtype=np.float64)
    heads = heads @ world[:3, :3].T + world[:3, 3]
    return C.blender_to_camera(heads)


def test_import_builds_one_armature_with_smpl_hierarchy(addon, scene, tmp_path):
    seq = make_sequence(20)
    _import(tmp_path, seq)
    (obj,) = armature_objects()
    names = addon.rigmath.bone_names()
    assert sorted(obj.data.bones.keys()) == sorted(names)
    for j, parent in enumerate(J.SMPL24_PARENTS):
        bone = obj.data.bones[names[j]]
        assert (bone.parent.name if bone.parent else None) == (names[parent] if parent >= 0 else None)
    assert obj.data.bones["Hip.L"].head_local.x > obj.data.bones["Hip.R"].head_local.x  # left = +X


def test_rest_pose_uses_median_bone_lengths(addon, scene, tmp_path):
    seq = make_sequence(25, gaps=[(0, 3, 6)])
    _import(tmp_path, seq)
    (obj,) = armature_objects()
    joints = C.camera_to_blender(seq.joints3d[0])
    names = addon.rigmath.bone_names()
    for j in range(1, 24):
        p = J.SMPL24_PARENTS[j]
        want = np.nanmedian(np.linalg.norm(joints[:, j] - joints[:, p], axis=-1))
        got = (obj.data.bones[names[j]].head_local - obj.data.bones[names[p]].head_local).length
        assert got == pytest.approx(want, abs=1e-5)  # float32 bone storage


def test_keys_every_present_frame_linear_with_gaps_left_unkeyed(addon, scene, tmp_path):
    seq = make_sequence(30, gaps=[(0, 10, 14)])
    _import(tmp_path, seq)
    (obj,) = armature_objects()
    assert obj.animation_data.action is None  # pushed down to the NLA
    (track,) = obj.animation_data.nla_tracks
    (strip,) = track.strips
    source = addon.anim.curve_source(obj)
    assert len(source.fcurves) == 24 * (4 + 3)  # quaternion + location per bone (exact mode)
    expected = np.array([1 + t for t in range(30) if not 10 <= t < 14], dtype=np.float32)
    for fcurve in source.fcurves.values():
        co = np.empty(2 * len(fcurve.keyframe_points), np.float32)
        fcurve.keyframe_points.foreach_get("co", co)
        np.testing.assert_array_equal(co[0::2], expected)
        assert {k.interpolation for k in fcurve.keyframe_points} == {"LINEAR"}
    assert addon.anim.has_slotted_actions() == (bpy.app.version >= (4, 4, 0))
    if addon.anim.has_slotted_actions():
        assert strip.action_slot is not None and strip.action_slot.target_id_type == "OBJECT"


def test_scene_fps_and_frame_range_follow_the_take(addon, scene, tmp_path):
    seq = make_sequence(12).replace(fps=29.97)
    _import(tmp_path, seq)
    assert scene.frame_start == 1 and scene.frame_end == 12
    assert scene.render.fps / scene.render.fps_base == pytest.approx(29.97, rel=1e-6)


def test_blender_evaluates_posed_heads_onto_the_joints(addon, scene, tmp_path):
    seq = make_sequence(15, gaps=[(0, 5, 7)])
    _import(tmp_path, seq)
    (obj,) = armature_objects()
    for t in (0, 4, 9, 14):
        np.testing.assert_allclose(_heads_mm(obj, 1 + t, addon), seq.joints3d[0, t],
                                   atol=0.05)  # mm; float32 keys and matrices


def test_camera_reproduces_K_through_blenders_own_projection(addon, scene, tmp_path):
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    seq = make_sequence(3, size=(224, 128))
    K = seq.K.copy()
    K[0, 2] += 7.25  # an off-centre principal point and non-square pixels
    K[1, 1] *= 1.1
    seq = seq.replace(K=K)
    _import(tmp_path, seq)
    camera = scene.camera
    assert camera is not None and camera.data.sensor_fit == "HORIZONTAL"
    points_mm = seq.joints3d[0, 0]
    want = C.project(points_mm, K)
    for point, uv in zip(C.camera_to_blender(points_mm), want):
        ndc = world_to_camera_view(scene, camera, Vector(point))
        got = (ndc.x * 128 - 0.5, (1.0 - ndc.y) * 224 - 0.5)  # edge-based -> centre-based px
        np.testing.assert_allclose(got, uv, atol=1e-3)


def test_import_with_video_sets_camera_background(addon, scene, tmp_path):
    video = write_test_video(tmp_path / "driving.mp4")
    _import(tmp_path, make_sequence(8), video_path=str(video))
    (background,) = scene.camera.data.background_images
    assert background.source == "MOVIE_CLIP" and background.clip.filepath.endswith("driving.mp4")
    assert background.frame_method == "CROP" and scene.camera.data.show_background_images


def test_two_people_give_two_armatures_with_their_track_ids(addon, scene, tmp_path):
    seq = make_sequence(10, num_people=2)
    _import(tmp_path, seq)
    objs = addon.armature.scail_armatures(scene)
    assert [o["scail_track_id"] for o in objs] == [1, 2]
    assert len({o.animation_data.nla_tracks[0].strips[0].action for o in objs}) == 2


def test_person_missing_everywhere_is_skipped_with_a_warning(addon, scene, tmp_path):
    seq = make_sequence(10, num_people=2, gaps=[(1, 0, 10)])
    reports = []
    result = addon.armature.import_sequence(seq, scene.collection, scene=scene,
                                            report=lambda kind, msg: reports.append((kind, msg)))
    assert result.skipped == [1] and len(result.armatures) == 1
    assert reports == [({"WARNING"}, "person 1 (track 2) has no complete frame and was skipped")]


def test_rigid_mode_keys_only_the_root_location(addon, scene, tmp_path):
    _import(tmp_path, make_sequence(10), use_exact_lengths=False)
    (obj,) = armature_objects()
    paths = {path for path, _ in addon.anim.curve_source(obj).fcurves}
    assert 'pose.bones["Pelvis"].location' in paths
    assert 'pose.bones["Knee.L"].location' not in paths
    assert obj.data.bones["Knee.L"].use_connect


def test_legacy_action_api_imports_and_exports(addon, scene, tmp_path, monkeypatch):
    """The pre-4.4 path (F-curves on the action itself) still works where the API exists."""
    if "fcurves" not in bpy.types.Action.bl_rna.properties:
        pytest.skip("this Blender has no legacy action API")
    monkeypatch.setattr(addon.anim, "has_slotted_actions", lambda: False)
    seq = make_sequence(12, gaps=[(0, 4, 6)])
    _import(tmp_path, seq)
    (obj,) = armature_objects()
    action = obj.animation_data.nla_tracks[0].strips[0].action
    assert len(action.fcurves) == 24 * 7
    out = addon.export.export_sequence([obj], scene=scene)
    np.testing.assert_allclose(out.joints3d, seq.joints3d, atol=0.1)


def test_invalid_pose_file_is_reported_and_nothing_is_built(addon, scene, tmp_path):
    seq = make_sequence(5)
    arrays = seq.to_arrays()
    arrays["joints3d"] = arrays["joints3d"][..., :2]  # wrong shape
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(RuntimeError, match="joints3d must be"):
        bpy.ops.scail.import_motion(filepath=str(bad))
    assert_nothing_imported()


def test_missing_pose_file_and_wrong_kind_are_reported(addon, scene, tmp_path):
    with pytest.raises(RuntimeError, match="pose file not found"):
        bpy.ops.scail.import_motion(filepath=str(tmp_path / "nope.npz"))
    other = tmp_path / "other.npz"
    np.savez(other, meta=np.asarray(json.dumps({"kind": "something"})), **{
        k: v for k, v in make_sequence(2).to_arrays().items() if k != "meta"})
    with pytest.raises(RuntimeError, match="not a PoseSequence file"):
        bpy.ops.scail.import_motion(filepath=str(other))
    assert_nothing_imported()


def test_unreadable_background_video_rolls_the_import_back(addon, scene, tmp_path):
    path = tmp_path / "poses.npz"
    make_sequence(5).save(path)
    with pytest.raises(RuntimeError, match="driving video not found"):
        bpy.ops.scail.import_motion(filepath=str(path), video_path=str(tmp_path / "gone.mp4"))
    assert_nothing_imported()


def _artists_scene(scene):
    """The artist's own settings before an import: a camera, resolution, fps and range."""
    camera = bpy.data.objects.new("Artist Camera", bpy.data.cameras.new("Artist Camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = 1920, 1080, 50
    render.pixel_aspect_x, render.pixel_aspect_y = 2.0, 1.0
    render.fps, render.fps_base = 24, 1.001
    scene.frame_start, scene.frame_end = 10, 300
    scene.frame_set(42)
    return camera


def _settings(scene):
    render = scene.render
    return (scene.camera, render.resolution_x, render.resolution_y,
            render.resolution_percentage, render.pixel_aspect_x, render.pixel_aspect_y,
            render.fps, render.fps_base, scene.frame_start, scene.frame_end, scene.frame_current)


def test_a_failed_import_leaves_the_scene_camera_and_settings_as_they_were(addon, scene,
                                                                          tmp_path):
    camera = _artists_scene(scene)
    before = _settings(scene)
    seq = make_sequence(6)
    empty = seq.replace(joints3d=np.full_like(seq.joints3d, np.nan))
    path = tmp_path / "nobody.npz"
    empty.save(path)
    with pytest.raises(RuntimeError, match=r"\(1 person, 6 frames\)"):
        bpy.ops.scail.import_motion(filepath=str(path))
    assert _settings(scene) == before and scene.camera == camera
    make_sequence(5).save(path)
    with pytest.raises(RuntimeError, match="driving video not found"):
        bpy.ops.scail.import_motion(filepath=str(path), video_path=str(tmp_path / "gone.mp4"))
    assert _settings(scene) == before
    assert armature_objects() == [] and len(bpy.data.cameras) == 1  # the artist's only


def test_a_failed_grounding_rolls_back_the_scene_timing_too(addon, scene):
    _artists_scene(scene)
    before = _settings(scene)
    seq = make_sequence(8)
    result = addon.armature.import_sequence(seq, scene.collection, scene=scene)
    assert scene.frame_end == 8 and scene.camera == result.camera  # a success changes them
    addon.armature.remove_imported(result)  # what ground_or_remove does when grounding fails
    assert _settings(scene) == before


def test_frames_with_some_joints_missing_are_left_unkeyed_with_one_warning(addon, scene):
    seq = make_sequence(12, num_people=2)
    joints = seq.joints3d.copy()
    joints[1, 2:7, 22] = np.nan  # person 1 loses one hand joint on 5 frames
    joints[1, 9, :] = np.nan  # and is absent on one frame (a gap, not a missing joint)
    reports = []
    result = addon.armature.import_sequence(seq.replace(joints3d=joints), scene.collection,
                                            scene=scene,
                                            report=lambda kind, msg: reports.append((kind, msg)))
    assert len(result.armatures) == 2
    assert reports == [({"WARNING"}, "5 frames of person 1 (track 2) had missing joints and "
                                     "were left unkeyed")]
    source = addon.anim.curve_source(result.armatures[1])
    fcurve = next(iter(source.fcurves.values()))
    assert len(fcurve.keyframe_points) == 12 - 5 - 1


def test_import_warnings_without_an_operator_are_said_once(addon, scene, caplog, capfd):
    """The timer's imports pass no ``report``: with a window the add-on's ``scail.report``
    operator shows the warning; in background mode (``blender -b``, ``scail-pose export``)
    there is no status bar, so it is one log line, not also Blender's printed report."""
    seq = make_sequence(6, num_people=2, gaps=[(1, 0, 6)])
    with caplog.at_level(logging.WARNING):
        addon.armature.import_sequence(seq, scene.collection, scene=scene)
    line = "person 1 (track 2) has no complete frame and was skipped"
    assert [r.getMessage() for r in caplog.records].count(line) == 1
    out, err = capfd.readouterr()
    assert f"Warning: {line}" not in out + err
