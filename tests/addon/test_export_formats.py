"""BVH and FBX through Blender's own exporters, re-imported by Blender's own importers.

Tolerance: RE_IMPORT_M on every bone head, world space, every exported frame (BVH writes 6
decimals of metres and degrees; FBX doubles).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import rigs
import walk

bpy = pytest.importorskip("bpy")

RE_IMPORT_M = 0.001
FBX_IMPORT_OFFSET = 1  # frames; see the FBX test


def _heads(obj, scene, frames, names):
    out = np.empty((len(frames), len(names), 3))
    for i, frame in enumerate(frames):
        scene.frame_set(int(frame))
        world = np.array(obj.matrix_world)
        for k, name in enumerate(names):
            out[i, k] = world[:3, :3] @ np.array(obj.pose.bones[name].head) + world[:3, 3]
    return out


def _new_armature(before):
    return next(o for o in bpy.data.objects if o.type == "ARMATURE" and o.name not in before)


def _grounded_take(addon, scene, frames=60):
    seq = walk.filmed_sequence(frames)[0]
    result = addon.armature.import_sequence(seq, scene.collection, scene=scene, name="walk")
    addon.grounding.ground_import(result, seq, collection=scene.collection, name="walk")
    return result.armatures[0]


def test_bvh_of_the_take_re_imports_to_the_same_motion(addon, scene, tmp_path):
    take = _grounded_take(addon, scene)
    scene.frame_start, scene.frame_end = 5, 40  # the scene's range is what gets exported
    path = addon.export_formats.export_armatures(tmp_path / "take.bvh", [take], scene=scene)
    text = path.read_text()
    assert "Frames: 36" in text
    names = [b.name for b in take.data.bones]
    want = _heads(take, scene, range(5, 41), names)
    before = {o.name for o in bpy.data.objects}
    bpy.ops.import_anim.bvh(filepath=str(path), frame_start=5, use_fps_scale=False,
                            update_scene_fps=False, update_scene_duration=False)
    copy = _new_armature(before)
    got = _heads(copy, scene, range(5, 41), names)
    np.testing.assert_allclose(got, want, atol=RE_IMPORT_M)


def test_fbx_of_a_retargeted_rig_re_imports_to_the_same_motion(addon, scene, tmp_path):
    take = _grounded_take(addon, scene)
    rig = rigs.build_rig("hero", scene.collection, style="mixamo", scale=1.2, a_pose_deg=35,
                         roll_seed=5)
    addon.retarget.retarget(take, rig, "auto", scene=scene)
    names = [b.name for b in rig.data.bones]
    frames = range(scene.frame_start, scene.frame_end + 1, 3)
    want = _heads(rig, scene, frames, names)
    path = addon.export_formats.export_armatures(tmp_path / "hero.fbx", [rig], scene=scene)
    rig.name = "hero (original)"
    before = {o.name for o in bpy.data.objects}
    bpy.ops.import_scene.fbx(filepath=str(path))
    copy = _new_armature(before)
    assert copy.animation_data is not None
    # Blender 4.5's own FBX importer puts what its exporter wrote for frame f on frame f + 1
    # (measured: the re-imported action spans 2..61 for an export of 1..60).
    got = _heads(copy, scene, [f + FBX_IMPORT_OFFSET for f in frames], names)
    np.testing.assert_allclose(got, want, atol=RE_IMPORT_M)


def test_export_refuses_what_it_cannot_write(addon, scene, tmp_path):
    take = _grounded_take(addon, scene, frames=20)
    other = rigs.build_rig("other", scene.collection)
    errors = addon.export_formats.ExportError
    with pytest.raises(errors, match=r"\.bvh or \.fbx"):
        addon.export_formats.export_armatures(tmp_path / "take.obj", [take], scene=scene)
    with pytest.raises(errors, match="BVH holds one skeleton"):
        addon.export_formats.export_armatures(tmp_path / "take.bvh", [take, other], scene=scene)
    with pytest.raises(errors, match="empty frame range"):
        addon.export_formats.export_armatures(tmp_path / "take.bvh", [take], scene=scene,
                                              frame_start=9, frame_end=3)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_export_operators_write_files(addon, scene, tmp_path):
    take = _grounded_take(addon, scene, frames=20)
    take.select_set(True)
    bpy.context.view_layer.objects.active = take
    assert bpy.ops.scail.export_bvh(filepath=str(tmp_path / "a.bvh")) == {"FINISHED"}
    assert bpy.ops.scail.export_fbx(filepath=str(tmp_path / "a.fbx"), use_scene_range=False,
                                    frame_start=3, frame_end=9) == {"FINISHED"}
    assert (tmp_path / "a.bvh").stat().st_size > 0 and (tmp_path / "a.fbx").stat().st_size > 0


def test_cli_export_writes_bvh_and_fbx(addon, tmp_path, capsys):
    # in-process: needs the backend in this interpreter (the main environment; the extra
    # Blender environments of .ci/run hold only the add-on and scail_protocol)
    main = pytest.importorskip("scail_backend.cli").main

    seq = walk.filmed_sequence(30)[0]
    poses = seq.save(tmp_path / "poses.npz")
    assert main(["export", str(poses), "-o", str(tmp_path / "take.bvh"), "--first", "3",
                 "--last", "20"]) == 0
    assert "Frames: 18" in (tmp_path / "take.bvh").read_text()
    assert main(["export", str(poses), "-o", str(tmp_path / "take.fbx")]) == 0
    assert (tmp_path / "take.fbx").read_bytes()[:18] == b"Kaydara FBX Binary"
    assert main(["export", str(poses), "-o", str(tmp_path / "take.abc")]) == 2
    assert main(["export", str(poses), "-o", str(tmp_path / "x.bvh"), "--person", "4"]) == 2
    err = capsys.readouterr().err
    assert ".bvh or .fbx" in err
    assert "no person 4 to export" in err and "with complete frames are 0;" in err
    assert main(["-q", "export", str(poses), "-o", str(tmp_path / "end.bvh"), "--first", "25",
                 "--last", "99"]) == 0        # clamped to the take, and said so
    assert "Frames: 5" in (tmp_path / "end.bvh").read_text()
    assert "--last 99 is past the take's last frame 29" in capsys.readouterr().err


def test_cli_export_says_which_frames_hold_a_pose_nobody_had(addon, tmp_path, capsys):
    """BVH and FBX cannot say "missing": frames where the person was not seen are written with
    the nearest pose, and export says so once per person (frames in the range written only)."""
    main = pytest.importorskip("scail_backend.cli").main
    seq = walk.filmed_sequence(30)[0]
    joints = seq.joints3d.copy()
    joints[0, :4] = np.nan   # walks in late
    poses = seq.replace(joints3d=joints).save(tmp_path / "late.npz")
    assert main(["-q", "export", str(poses), "-o", str(tmp_path / "late.bvh")]) == 0
    said = "person 0 is missing on 4 of the 30 frames written to late.bvh (first: frame 0); " \
           "BVH has no missing frames, so they hold the nearest pose"
    assert capsys.readouterr().err.count(said) == 1
    assert main(["-q", "export", str(poses), "-o", str(tmp_path / "on.bvh"), "--first", "4"]) == 0
    assert "missing" not in capsys.readouterr().err


def test_cli_export_as_a_user_runs_it_exits_and_prints_only_the_path(tmp_path):
    """`scail-pose export` in its own process: it must exit once the file is written (a
    registered add-on kept bpy 4.5 from exiting) and print the output path alone."""
    import subprocess
    import sys

    pytest.importorskip("scail_backend.cli")
    poses = walk.filmed_sequence(12)[0].save(tmp_path / "poses.npz")
    out = tmp_path / "take.bvh"
    done = subprocess.run([sys.executable, "-m", "scail_backend.cli", "export", str(poses),
                           "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(out)
    assert "Frames: 12" in out.read_text()


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs a folder no file can be made in")
def test_an_unwritable_folder_is_one_clean_line_naming_the_file(addon, scene, tmp_path):
    """/proc stands in for a read-only folder (the tests may run as root, which chmod does not
    stop). The message names the file, as npz export and `scail-pose export` do, not a
    temporary folder, and carries no traceback."""
    take = _grounded_take(addon, scene, frames=10)
    for name in ("e.bvh", "e.fbx"):
        with pytest.raises(addon.export_formats.ExportError,
                           match=f"^cannot write /proc/{name}: no file can be created in /proc "):
            addon.export_formats.export_armatures(f"/proc/{name}", [take], scene=scene)
    take.select_set(True)
    bpy.context.view_layer.objects.active = take
    with pytest.raises(RuntimeError) as refused:
        bpy.ops.scail.export_bvh(filepath="/proc/e.bvh")
    message = str(refused.value).strip()
    assert "cannot write /proc/e.bvh: no file can be created in /proc" in message
    assert len(message.splitlines()) == 1 and "/proc/.e" not in message
    assert "failed" not in message  # a ScailError, not a bug report


def test_a_missing_folder_is_refused_not_created(addon, scene, tmp_path):
    take = _grounded_take(addon, scene, frames=10)
    target = tmp_path / "no" / "such" / "e.bvh"
    with pytest.raises(addon.export_formats.ExportError,
                       match=r"folder .*no/such does not exist; create it first"):
        addon.export_formats.export_armatures(target, [take], scene=scene)
    (tmp_path / "folder.fbx").mkdir()
    with pytest.raises(addon.export_formats.ExportError, match="folder.fbx is a folder"):
        addon.export_formats.export_armatures(tmp_path / "folder.fbx", [take], scene=scene)
    assert [p.name for p in tmp_path.iterdir()] == ["folder.fbx"]


def test_export_paths_are_absolute_and_blend_relative_needs_a_saved_blend(
        addon, scene, tmp_path, monkeypatch):
    take = _grounded_take(addon, scene, frames=10)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(addon.export_formats.ExportError, match=r"save the \.blend first"):
        addon.export_formats.export_armatures("//e.bvh", [take], scene=scene)
    assert not list(tmp_path.iterdir())
    path = addon.export_formats.export_armatures("rel.bvh", [take], scene=scene)
    assert path == tmp_path / "rel.bvh" and path.is_absolute()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel.bvh"]  # no temporary left


def test_a_folder_given_for_the_file_gets_a_name_export_accepts(addon, scene, tmp_path):
    take = _grounded_take(addon, scene, frames=10)
    (tmp_path / "e").mkdir()
    with pytest.raises(addon.export_formats.ExportError) as refused:
        addon.export_formats.export_armatures(tmp_path / "e", [take], scene=scene)
    suggested = str(refused.value).rsplit(" such as ", 1)[1]
    assert suggested == str(tmp_path / "e" / "output.bvh")
    assert addon.export_formats.export_armatures(suggested, [take], scene=scene).is_file()


class _FailingExporter:
    """A real operator that fails as an exporter can: it raises ``self.failure()``."""

    failure = None

    def execute(self, context):
        raise type(self).failure()


def _failing_exporter(failure):
    cls = type("SCAIL_OT_test_failing_exporter", (_FailingExporter, bpy.types.Operator),
               {"bl_idname": "scail.test_failing_exporter", "bl_label": "failing exporter",
                "failure": staticmethod(failure),
                "__annotations__": {"filepath": bpy.props.StringProperty()}})
    bpy.utils.register_class(cls)
    return cls


@pytest.mark.parametrize("failure, message", [
    (lambda: OSError(28, "No space left on device", "/tmp/x/c.fbx"),
     "cannot write {out}: no space left on the device in the temporary folder {temp} "
     "(Blender's exporter writes there first); free some space there or set TMPDIR to a "
     "folder with room"),
    (lambda: ValueError("bad bone\nname"),
     "Blender's exporter failed for c.fbx: ValueError: bad bone name"),
], ids=["full-disk", "other"])
def test_a_failing_exporter_is_one_line_and_its_traceback_is_not_printed(
        addon, tmp_path, capfd, failure, message):
    import tempfile

    cls = _failing_exporter(failure)
    out = tmp_path / "c.fbx"
    try:
        with pytest.raises(addon.export_formats.ExportError) as failed:
            addon.export_formats._run(bpy.ops.scail.test_failing_exporter, out,
                                      filepath=str(tmp_path / "temp" / "c.fbx"))
    finally:
        bpy.utils.unregister_class(cls)
    assert str(failed.value) == message.format(out=out, temp=tempfile.gettempdir())
    assert "Traceback" not in capfd.readouterr().err


def test_an_interrupt_inside_the_exporter_is_raised_again_not_reported_as_a_failure(
        addon, tmp_path, capfd):
    cls = _failing_exporter(KeyboardInterrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            addon.export_formats._run(bpy.ops.scail.test_failing_exporter, tmp_path / "c.fbx",
                                      filepath=str(tmp_path / "c.fbx"))
    finally:
        bpy.utils.unregister_class(cls)
    assert "Traceback" not in capfd.readouterr().err
