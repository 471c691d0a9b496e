"""Synchronous (background-mode) entry points, and a take surviving a save and reload of the
.blend file, as a `blender -b scene.blend --python-expr ...` run sees it."""

from __future__ import annotations

import re

import numpy as np
import pytest
from addon_helpers import armature_objects, drive_timer
from motion import make_sequence
from scail_protocol.errors import OutputError, VideoError
from scail_protocol.sequence import PoseSequence

bpy = pytest.importorskip("bpy")


def test_import_save_reopen_export_round_trip(addon, scene, tmp_path):
    seq = make_sequence(15, num_people=2, gaps=[(1, 3, 5)])
    poses = seq.save(tmp_path / "poses.npz")
    result = addon.headless.import_motion_file(poses)
    assert len(result.armatures) == 2
    blend = tmp_path / "take.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert not armature_objects()
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    out_path = addon.headless.export_motion_file(tmp_path / "edited.npz")
    out = PoseSequence.load(out_path)
    np.testing.assert_allclose(out.joints3d, seq.joints3d, atol=0.1)
    np.testing.assert_allclose(out.kp2d, seq.kp2d, atol=1e-3)
    assert np.array_equal(np.isnan(out.joints3d), np.isnan(seq.joints3d))


def test_headless_render_from_a_reopened_file(addon, scene, tmp_path):
    av = pytest.importorskip("av")
    addon.headless.import_motion_file(make_sequence(3, size=(224, 128)).save(tmp_path / "p.npz"))
    blend = tmp_path / "take.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    out = addon.headless.render_conditioning("//rendered.mp4", "BLENDER")  # relative to the .blend
    assert out == tmp_path / "rendered.mp4"
    with av.open(str(out)) as container:
        assert container.streams.video[0].frames == 3


def test_blender_render_job_runs_frame_by_frame_from_the_timer(addon, scene, tmp_path):
    addon.armature.import_sequence(make_sequence(4, size=(224, 128)), scene.collection,
                                   scene=scene)
    out = tmp_path / "ui.mp4"
    addon.operators.start_render_job(bpy.context, str(out), "BLENDER", overlay=True)
    stages = []
    while addon.client.busy():
        addon.client._tick()
        stages.append((bpy.context.window_manager.scail_status.stage,
                       round(bpy.context.window_manager.scail_status.progress, 2)))
    addon.client._tick()
    assert ("render", 0.25) in stages and ("render", 0.75) in stages  # one frame per tick
    assert out.is_file() and bpy.context.window_manager.scail_status.message == f"wrote {out}"


def test_cancelling_a_blender_render_leaves_no_output(addon, scene, tmp_path):
    addon.armature.import_sequence(make_sequence(6, size=(224, 128)), scene.collection,
                                   scene=scene)
    out = tmp_path / "cancelled.mp4"
    addon.operators.start_render_job(bpy.context, str(out), "BLENDER", overlay=False)
    addon.client._tick()
    addon.client._tick()
    assert addon.client.cancel()
    drive_timer(addon, 30)
    assert not out.exists()
    assert bpy.context.window_manager.scail_status.message == "render cancelled"
    assert [s.name for s in bpy.data.scenes] == [scene.name]  # temporary scenes removed


def test_motion_export_refuses_a_wrong_suffix_before_any_work(addon, scene, tmp_path):
    """A script (or ExportHelper bypassed) naming a video must not turn it into an .npz."""
    poses = make_sequence(4).save(tmp_path / "poses.npz")
    addon.headless.import_motion_file(poses)
    victim = tmp_path / "victim.mp4"
    victim.write_bytes(b"\x00\x00\x00 ftypisom an artist's video")
    with pytest.raises(OutputError, match=r"this writes a \.npz file; name it victim\.npz"):
        addon.headless.export_motion_file(victim)
    with pytest.raises(RuntimeError, match=r"this writes a \.npz file; name it victim\.npz"):
        bpy.ops.scail.export_motion(filepath=str(victim))
    with pytest.raises(RuntimeError, match="folder .*missing does not exist; create it first"):
        bpy.ops.scail.export_motion(filepath=str(tmp_path / "missing" / "x.npz"))
    assert victim.read_bytes() == b"\x00\x00\x00 ftypisom an artist's video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["poses.npz", "victim.mp4"]
    # re-exporting an edited take over the file it came from is ordinary (the file browser
    # asks before overwriting); the file is replaced whole
    assert addon.headless.export_motion_file(poses) == poses
    assert PoseSequence.load(poses).num_frames == 4


def test_blend_relative_outputs_need_a_saved_blend_and_reports_name_absolute_paths(
        addon, scene, tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    addon.headless.import_motion_file(make_sequence(3).save(tmp_path / "poses.npz"))
    with pytest.raises(OutputError, match=r"^cannot write //edited\.npz: it is relative to the "
                                          r"\.blend file, which is not saved; save the \.blend "
                                          r"first, or choose an absolute output path$"):
        addon.headless.export_motion_file("//edited.npz")
    assert not list(work.iterdir())
    assert addon.headless.export_motion_file("rel.npz") == work / "rel.npz"  # absolute
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "take.blend"))
    assert addon.headless.export_motion_file("//edited.npz") == tmp_path / "edited.npz"


def test_a_poses_file_chosen_as_the_video_is_refused_before_uploading(addon, scene, tmp_path):
    poses = make_sequence(2).save(tmp_path / "dance.npz")
    menu = "File > Import > " + dict(addon.menus.IMPORT_ENTRIES)["scail.import_motion"]
    expected = f"{poses} is a poses file, not a video: use {menu} to import it"
    with pytest.raises(VideoError, match=f"^{re.escape(expected)}$"):
        addon.headless.check_inputs(str(poses))
    with pytest.raises(RuntimeError, match=r"is a poses file, not a video: use File > Import > "
                                           r"SCAIL poses \(\.npz\)"):
        bpy.ops.scail.import_video(filepath=str(poses))
    image = tmp_path / "still.png"
    image.write_bytes(b"a single image is a valid input for the backend")
    addon.headless.check_inputs(str(image))
    with pytest.raises(VideoError, match="reference image .*dance.npz is a poses file"):
        addon.headless.check_inputs(str(image), str(poses))
