"""Blender's conventions: File menu entries, .npz drag and drop, undo, poll reasons, and every
failure as one reported line (operators and the timer's jobs alike)."""

from __future__ import annotations

import pytest
from addon_helpers import armature_objects, drive_timer, set_backend_prefs, synthetic_clip
from motion import make_sequence

bpy = pytest.importorskip("bpy")


def test_file_menus_offer_scail_poses(addon):
    imports = bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()
    exports = bpy.types.TOPBAR_MT_file_export._dyn_ui_initialize()
    assert addon.menus.menu_import in imports and addon.menus.menu_export in exports
    for idname, text in addon.menus.IMPORT_ENTRIES + addon.menus.EXPORT_ENTRIES:
        assert addon.menus.is_registered(idname), idname
        assert text.endswith("(.npz)") or "(" in text
    assert ("scail.import_motion", "SCAIL poses (.npz)") in addon.menus.IMPORT_ENTRIES
    assert ("scail.export_motion", "SCAIL poses (.npz)") in addon.menus.EXPORT_ENTRIES


def test_dropping_an_npz_on_the_viewport_imports_it_without_a_file_browser(addon, scene,
                                                                          tmp_path):
    handler = bpy.types.SCAIL_FH_poses
    assert handler.bl_import_operator == "scail.import_motion"
    assert handler.bl_file_extensions == ".npz"
    poses = make_sequence(4, num_people=2).save(tmp_path / "dropped.npz")
    # What Blender runs for a drop: the handler's operator, invoked, with the file's path.
    assert bpy.ops.scail.import_motion("INVOKE_DEFAULT", filepath=str(poses)) == {"FINISHED"}
    assert len(armature_objects()) == 2


def test_operators_that_change_data_declare_undo(addon):
    for name in ("import_motion", "import_video"):
        assert "UNDO" in getattr(bpy.types, f"SCAIL_OT_{name}").bl_options, name
    for name in ("export_motion", "render_conditioning", "connect", "cancel"):  # no data change
        assert "UNDO" not in getattr(getattr(bpy.types, f"SCAIL_OT_{name}"), "bl_options", ())


def test_an_import_is_one_undo_step(addon, scene, tmp_path):
    poses = make_sequence(5).save(tmp_path / "poses.npz")
    bpy.ops.ed.undo_push(message="before the import")
    # As from the UI: the operator's own undo step is pushed when it finishes.
    assert bpy.ops.scail.import_motion("EXEC_DEFAULT", True, filepath=str(poses)) == {"FINISHED"}
    assert len(armature_objects()) == 1 and len(bpy.data.cameras) == 1
    bpy.ops.ed.undo()
    assert not armature_objects() and len(bpy.data.cameras) == 0 and len(bpy.data.actions) == 0


@pytest.mark.slow
def test_a_panel_import_built_by_the_timer_is_one_undo_step(addon, scene, server, tmp_path):
    clip = synthetic_clip(tmp_path / "clip", num_frames=8, size=(256, 192))
    set_backend_prefs(server.address, server.key_file, timeout_s=30.0)
    bpy.ops.ed.undo_push(message="before the import")
    addon.operators.start_import_job(bpy.context, str(clip), exact=True)  # the panel's path
    drive_timer(addon, 180)
    assert bpy.context.window_manager.scail_status.error == ""
    assert len(armature_objects()) == 1 and len(bpy.data.cameras) == 1
    bpy.ops.ed.undo()  # one step takes the whole import back
    assert not armature_objects() and len(bpy.data.cameras) == 0 and len(bpy.data.actions) == 0
    bpy.ops.ed.redo()
    assert len(armature_objects()) == 1


def test_operators_needing_a_take_say_why_they_are_greyed_out(addon, scene, tmp_path):
    for name in ("export_motion", "render_conditioning"):
        operator = getattr(bpy.ops.scail, name)
        assert not operator.poll()
        with pytest.raises(RuntimeError, match="No SCAIL armature in the scene"):
            operator()
    addon.armature.import_sequence(make_sequence(3), scene.collection, scene=scene)
    assert bpy.ops.scail.export_motion.poll() and bpy.ops.scail.render_conditioning.poll()


class SCAIL_OT_test_broken(bpy.types.Operator):
    """An operator with a bug"""

    bl_idname = "scail.test_broken"
    bl_label = "Broken Tool"

    def execute(self, context):
        return {"FINISHED"} if 1 / 0 else {"CANCELLED"}


def test_an_unexpected_error_is_one_reported_line_not_a_traceback(addon, scene):
    addon.reports.guard(SCAIL_OT_test_broken)
    bpy.utils.register_class(SCAIL_OT_test_broken)
    try:
        with pytest.raises(RuntimeError) as raised:
            bpy.ops.scail.test_broken()
    finally:
        bpy.utils.unregister_class(SCAIL_OT_test_broken)
    message = str(raised.value)
    assert "Broken Tool failed: ZeroDivisionError: division by zero" in message
    assert "Traceback" not in message and len(message.strip().splitlines()) == 1


def test_every_registered_scail_operator_is_guarded(addon):
    operators = [cls for cls in addon.classes if issubclass(cls, bpy.types.Operator)]
    assert operators and all(getattr(cls, "_scail_guarded", False) for cls in operators)


def test_a_failed_timer_job_is_reported_in_one_line(addon, scene, capfd):
    def broken():
        yield "render", 0, 2
        raise ValueError("no frames today\nsecond line")

    addon.client.start(addon.jobs.local("render", broken()))
    drive_timer(addon, 10)
    out = capfd.readouterr().out
    assert "SCAIL render failed: ValueError: no frames today" in out
    assert "second line" not in out
    assert bpy.context.window_manager.scail_status.error
