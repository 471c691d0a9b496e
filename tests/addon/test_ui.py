"""Registration, the sidebar UI and the one timer: what Blender sees of the add-on."""

from __future__ import annotations

import pytest
from addon_helpers import TEST_KEY, free_port, set_backend_prefs

bpy = pytest.importorskip("bpy")


def test_sidebar_panels_live_in_the_scail_tab_of_the_3d_view(addon):
    for name in ("SCAIL_PT_main", "SCAIL_PT_import", "SCAIL_PT_render"):
        panel = getattr(bpy.types, name)
        assert (panel.bl_space_type, panel.bl_region_type, panel.bl_category) == \
            ("VIEW_3D", "UI", "SCAIL")


def test_operators_are_registered_under_scail(addon):
    for name in ("import_motion", "import_video", "export_motion", "render_conditioning",
                 "cancel", "connect", "start_backend"):
        assert hasattr(bpy.ops.scail, name)
        assert getattr(bpy.ops.scail, name).idname() == f"SCAIL_OT_{name}"


def test_panel_settings_have_defaults_on_every_scene(addon, scene):
    settings = scene.scail
    assert settings.estimator == "AUTO" and settings.renderer == "BLENDER"
    assert settings.use_exact_lengths and settings.use_overlay and not settings.use_align
    status = bpy.context.window_manager.scail_status
    assert not status.busy and not status.connected


def test_preferences_fall_back_to_defaults_when_not_enabled(addon, scene):
    settings = addon.prefs.backend_settings()
    assert settings.address == "tcp://127.0.0.1:5555" and settings.timeout_s == 10.0


def test_unregister_removes_the_timer_and_closes_the_socket(addon, scene, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_bytes(TEST_KEY)
    set_backend_prefs(f"tcp://127.0.0.1:{free_port()}", key_file, timeout_s=30.0)
    addon.client.connect(addon.prefs.backend_settings())
    assert bpy.app.timers.is_registered(addon.client._tick)
    assert addon.client.busy() and addon.client._STATE.client is not None
    socket = addon.client._STATE.client._socket
    addon.unregister()
    try:
        assert not bpy.app.timers.is_registered(addon.client._tick)
        assert addon.client._STATE.client is None and socket.closed
        assert not addon.client.busy()
        assert "scail" not in bpy.types.Scene.bl_rna.properties
    finally:
        addon.register()


def test_a_second_job_is_refused_while_one_runs(addon, scene, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_bytes(TEST_KEY)
    set_backend_prefs(f"tcp://127.0.0.1:{free_port()}", key_file, timeout_s=30.0)
    addon.client.connect(addon.prefs.backend_settings())
    try:
        with pytest.raises(Exception, match="busy"):
            addon.client.connect(addon.prefs.backend_settings())
        assert not bpy.ops.scail.import_video.poll()
    finally:
        assert addon.client.cancel()
        addon.client._tick()
    assert not addon.client.busy()
    assert bpy.context.window_manager.scail_status.message == "connect cancelled"
