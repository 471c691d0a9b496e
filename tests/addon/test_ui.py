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


def test_the_progress_bar_follows_the_latest_stage_and_never_moves_back(addon):
    bar = addon.client.StageBar()
    reports = [("start", 0, 0), ("upload", 5, 10), ("upload", 10, 10), ("decode", 5, 10),
               ("estimate", 3, 10), ("decode", 6, 10), ("estimate", 4, 10), ("decode", 10, 10),
               ("estimate", 0, 0), ("estimate", 10, 10)]
    shown = [bar.update(*report) for report in reports]
    assert shown == [("start", 0.0), ("upload", 0.5), ("upload", 1.0), ("decode", 0.5),
                     ("estimate", 0.3), ("estimate", 0.3), ("estimate", 0.4), ("estimate", 0.4),
                     ("estimate", 0.4), ("estimate", 1.0)]


def _settings(addon, *command):
    import shlex

    return addon.prefs.BackendSettings(start_command=shlex.join(command))


def test_start_backend_that_is_not_found_names_the_preference(addon):
    with pytest.raises(Exception) as caught:
        addon.client.start_local_backend(_settings(addon, "no-such-scail-pose", "serve"))
    message = str(caught.value)
    assert "'no-such-scail-pose' was not found" in message
    assert "full path of scail-pose in Start Command (Edit > Preferences > Add-ons" in message


def test_start_backend_that_exits_at_once_is_reported_with_its_last_line(addon):
    import sys

    code = "import sys; print('starting'); sys.exit('cannot bind tcp://x: Address already in use')"
    with pytest.raises(Exception, match=r"exited \(code 1\): cannot bind tcp://x: Address "
                                        r"already in use \(log: "):
        addon.client.start_local_backend(_settings(addon, sys.executable, "-c", code),
                                         check_s=30.0)
    addon.client._STATE.local_log.unlink()  # kept for the artist, named in the message


def test_a_started_backend_is_told_apart_and_stopped_on_unregister(addon, scene, tmp_path):
    import sys

    code = "import time; print('x: listening on tcp://y', flush=True); time.sleep(120)"
    settings = _settings(addon, sys.executable, "-c", code)
    pid = addon.client.start_local_backend(settings, check_s=30.0)
    process = addon.client._STATE.local_process
    assert process.pid == pid and process.poll() is None
    with pytest.raises(Exception, match=f"pid {pid}\\) is still running; press Connect"):
        addon.client.start_local_backend(settings)
    set_backend_prefs(f"tcp://127.0.0.1:{free_port()}", tmp_path / "not-yet.key")
    with pytest.raises(Exception, match="not-yet.key not found yet: the backend started from "
                                        "Blender .* may still be starting; try Connect again"):
        addon.client.connect(addon.prefs.backend_settings())
    addon.unregister()
    try:
        assert process.poll() is not None  # terminated with the add-on
        assert addon.client._STATE.local_process is None
    finally:
        addon.register()
