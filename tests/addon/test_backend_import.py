"""Importing a video through a real backend (``scail-pose serve`` on loopback), and bad input:
unreachable backend, wrong key, missing video, backend killed mid-import, cancel."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from addon_helpers import (TEST_KEY, armature_objects, assert_nothing_imported, drive_timer,
                           free_port, set_backend_prefs, synthetic_clip)
from motion import make_sequence

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.slow
CLIP_FRAMES = 12


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A short synthetic video of a waving person (made by the backend's synth, in a subprocess
    so that its Blender scene does not replace the one under test)."""
    return synthetic_clip(tmp_path_factory.mktemp("clip"), motion="wave",
                          num_frames=CLIP_FRAMES, size=(256, 192))


@pytest.fixture
def prefs(addon, scene, server):
    return set_backend_prefs(server.address, server.key_file, timeout_s=3.0)


def _events_while_driving(addon, until=None, timeout_s=120.0):
    """Drive the timer, recording (stage, progress) and the slowest tick that did not finish."""
    status = bpy.context.window_manager.scail_status
    seen, slowest = [], 0.0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        started = time.monotonic()
        interval = addon.client._tick()
        took = time.monotonic() - started
        if interval is None:
            return seen, slowest
        slowest = max(slowest, took)
        seen.append((status.stage, status.progress))
        if until is not None and until(status):
            return seen, slowest
        time.sleep(interval)
    pytest.fail("the job did not finish")


def test_import_video_operator_background_path(addon, scene, server, prefs, clip):
    video = server.root / "driving.mp4"
    shutil.copy(clip, video)  # inside the server's root: sent by path, no upload
    result = bpy.ops.scail.import_video(filepath=str(video), estimator="MEDIAPIPE")
    assert result == {"FINISHED"}
    (obj,) = armature_objects()
    assert scene.frame_end - scene.frame_start + 1 == CLIP_FRAMES
    assert scene.camera is not None
    assert scene.camera.data.background_images[0].clip.filepath.endswith("driving.mp4")
    assert obj.get("scail_track_id") is not None
    meta = addon.export.export_sequence([obj], scene=scene).meta
    assert meta["estimator"] == "mediapipe"


def test_import_video_with_smoothing_has_the_backend_smooth_the_motion(addon, scene, server,
                                                                       prefs, clip):
    video = server.root / "driving.mp4"
    shutil.copy(clip, video)
    assert addon.jobs.extract_options(smoothing=0.6)["smoothing"] == 0.6
    assert "smoothing" not in addon.jobs.extract_options(smoothing=0.0)  # 0 = off, as before
    result = bpy.ops.scail.import_video(filepath=str(video), estimator="MEDIAPIPE",
                                        smoothing=0.6)
    assert result == {"FINISHED"}
    (obj,) = armature_objects()
    meta = addon.export.export_sequence([obj], scene=scene).meta
    assert meta["smoothing"]["strength"] == pytest.approx(0.6)
    assert meta["smoothing"]["filter"] == "one_euro"


@pytest.mark.parametrize("setting, expected", [("DEFAULT", None), ("480x832", [480, 832]),
                                               ((720, 1280), [720, 1280])])
def test_resolution_setting_becomes_the_servers_h_w_pair(addon, setting, expected):
    assert addon.jobs.extract_options(resolution=setting).get("resolution") == expected
    with pytest.raises(ValueError, match="resolution must be"):
        addon.jobs.extract_options(resolution="big")


def test_import_video_at_a_chosen_resolution(addon, scene, server, prefs, clip):
    video = server.root / "driving.mp4"
    shutil.copy(clip, video)
    result = bpy.ops.scail.import_video(filepath=str(video), estimator="MEDIAPIPE",
                                        resolution="256x448")
    assert result == {"FINISHED"}
    (obj,) = armature_objects()
    # the clip is portrait (256 x 192), so the backend swaps the landscape size
    assert addon.export.export_sequence([obj], scene=scene).size == (448, 256)


def test_smoothing_on_a_backend_without_it_is_refused_clearly(addon):
    hello = {"capabilities": {"extract": True, "estimators": {"names": ["auto", "mediapipe"]}}}
    addon.jobs.check_capabilities(hello, "tcp://old:5555", {"estimator": "auto"})
    with pytest.raises(Exception, match="cannot smooth"):
        addon.jobs.check_capabilities(hello, "tcp://old:5555", {"estimator": "auto",
                                                                  "smoothing": 0.5})


def test_import_video_job_runs_from_the_timer_and_uploads(addon, scene, prefs, clip):
    """The UI path: zero-timeout polls from the timer; the clip lies outside the server's roots,
    so the job uploads it after the server refuses the path."""
    addon.operators.start_import_job(bpy.context, str(clip), exact=True,
                                     estimator="MEDIAPIPE", resolution="DEFAULT", smoothing=0.0,
                                     use_align=False)
    assert addon.client.busy()
    seen, slowest = _events_while_driving(addon)
    status = bpy.context.window_manager.scail_status
    assert status.error == "" and not status.busy
    assert status.message == "imported 1 armature(s)"
    stages = {stage for stage, _ in seen}
    assert "upload" in stages and "estimate" in stages
    assert any(0.0 < fraction < 1.0 for _, fraction in seen)
    order = list(dict.fromkeys(stage for stage, _ in seen))  # stages in the order shown
    shown = [order.index(stage) for stage, _ in seen]
    assert shown == sorted(shown)  # once the bar leaves a stage it never shows it again
    for stage in order:  # and within a stage it never moves back
        fractions = [fraction for s, fraction in seen if s == stage]
        assert fractions == sorted(fractions), stage
    assert slowest < 1.0  # no tick waits on the backend (the backend works in its own process)
    assert len(armature_objects()) == 1


def test_connect_shows_device_and_estimators(addon, scene, prefs):
    addon.client.connect(addon.prefs.backend_settings())
    drive_timer(addon, 30)
    status = bpy.context.window_manager.scail_status
    assert status.connected and status.device == "cpu"
    assert "mediapipe" in status.estimators.split(", ")


def test_unreachable_backend_is_reported_with_its_address_without_hanging(addon, scene, tmp_path,
                                                                           clip):
    key_file = tmp_path / "key"
    key_file.write_bytes(TEST_KEY)
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    set_backend_prefs(address, key_file, timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=f"no reply from {address}"):
        bpy.ops.scail.import_video(filepath=str(clip))
    assert time.monotonic() - started < 10.0
    addon.operators.start_import_job(bpy.context, str(clip), exact=True, estimator="AUTO",
                                     resolution="DEFAULT", smoothing=0.0, use_align=False)
    drive_timer(addon, 30)
    assert address in bpy.context.window_manager.scail_status.error
    assert_nothing_imported()


def test_wrong_key_is_reported(addon, scene, server, tmp_path, clip):
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(b"not-the-server-key-0123456789abcdef")
    set_backend_prefs(server.address, wrong, timeout_s=3.0)
    with pytest.raises(RuntimeError, match="same key"):
        bpy.ops.scail.import_video(filepath=str(clip))
    assert_nothing_imported()


def test_missing_key_file_is_reported(addon, scene, tmp_path, clip):
    set_backend_prefs("tcp://127.0.0.1:9", tmp_path / "absent.key", timeout_s=1.0)
    with pytest.raises(RuntimeError, match="absent.key not found"):
        bpy.ops.scail.import_video(filepath=str(clip))


def test_video_not_found_is_reported_before_contacting_the_backend(addon, scene, tmp_path):
    set_backend_prefs("tcp://127.0.0.1:9", tmp_path / "absent.key", timeout_s=1.0)
    missing = tmp_path / "nope.mp4"
    with pytest.raises(RuntimeError, match=f"video not found: {missing}"):
        bpy.ops.scail.import_video(filepath=str(missing))
    with pytest.raises(Exception, match="video not found"):
        addon.operators.start_import_job(bpy.context, str(missing), exact=True, estimator="AUTO",
                                         resolution="DEFAULT", smoothing=0.0, use_align=False)
    assert not addon.client.busy()


def test_align_on_a_backend_without_it_is_refused_clearly(addon):
    hello = {"capabilities": {"extract": True, "align": False,
                              "estimators": {"names": ["auto", "mediapipe"]}}}
    with pytest.raises(Exception, match="cannot align"):
        addon.jobs.check_capabilities(hello, "tcp://old:5555", {"estimator": "auto",
                                                                  "use_align": True})


def test_import_aligned_to_a_reference_gives_the_aligned_camera(addon, scene, server, prefs,
                                                                  clip):
    """Align to reference: the backend aligns, and the imported camera is the solve's K."""
    video, reference = server.root / "driving.mp4", server.root / "ref.png"
    shutil.copy(clip, video)
    shutil.copy(clip.parent / "ref.png", reference)  # the synth clip's first frame
    result = bpy.ops.scail.import_video(filepath=str(video), reference_path=str(reference),
                                        estimator="MEDIAPIPE", use_align=True)
    assert result == {"FINISHED"}
    (obj,) = armature_objects()
    seq = addon.export.export_sequence([obj], scene=scene)
    record = seq.meta["alignment"]
    assert record["reference"] == "ref.png" and record["solved"] is not None
    K = addon.camera.read_K(scene.camera, scene, seq.height, seq.width)
    np.testing.assert_allclose(K, record["K"], rtol=1e-5, atol=1e-3)


def test_backend_killed_mid_import_leaves_nothing_behind(addon, scene, server, prefs, clip):
    addon.operators.start_import_job(bpy.context, str(clip), exact=True, estimator="MEDIAPIPE",
                                     resolution="DEFAULT", smoothing=0.0, use_align=False)
    _events_while_driving(addon, until=lambda status: status.stage in ("decode", "estimate"))
    server.kill()
    drive_timer(addon, 30)
    status = bpy.context.window_manager.scail_status
    assert f"no reply from {server.address}" in status.error
    assert_nothing_imported()


def test_backend_killed_mid_import_headless_path(addon, scene, server, prefs, clip):
    def kill_on_first_progress(stage, done, total):
        if stage in ("decode", "estimate"):
            server.kill()

    with pytest.raises(Exception, match=f"no reply from {server.address}"):
        addon.headless.import_video(str(clip), estimator="mediapipe",
                                    progress=kill_on_first_progress)
    assert_nothing_imported()


def test_cancel_stops_the_import(addon, scene, prefs, clip):
    addon.operators.start_import_job(bpy.context, str(clip), exact=True, estimator="MEDIAPIPE",
                                     resolution="DEFAULT", smoothing=0.0, use_align=False)
    _events_while_driving(addon, until=lambda status: status.stage in ("decode", "estimate"))
    assert bpy.ops.scail.cancel() == {"FINISHED"}
    drive_timer(addon, 60)
    status = bpy.context.window_manager.scail_status
    assert status.message == "import cancelled" and status.error == ""
    assert_nothing_imported()


def test_backend_renderer_writes_the_conditioning_video(addon, scene, prefs, tmp_path):
    av = pytest.importorskip("av")
    seq = make_sequence(4, size=(224, 128))
    addon.armature.import_sequence(seq, scene.collection, scene=scene)
    out = tmp_path / "backend.mp4"
    assert bpy.ops.scail.render_conditioning(filepath=str(out), renderer="BACKEND") == {"FINISHED"}
    addon.operators.start_render_job(bpy.context, str(tmp_path / "timer.mp4"), "BACKEND",
                                     overlay=True)
    drive_timer(addon, 120)
    assert bpy.context.window_manager.scail_status.error == ""
    for path in (out, tmp_path / "timer.mp4"):
        with av.open(str(path)) as container:
            assert container.streams.video[0].average_rate == 16
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 4 and frames[0].shape == (224, 128, 3)
        assert np.mean(frames[0]) > 0.5  # something was drawn


def test_starting_a_backend_on_a_taken_port_reports_its_error(addon, scene, server, tmp_path):
    """A second `scail-pose serve` on the same address exits at once: no "started" for it."""
    import shlex

    from addon_helpers import require_backend_python

    command = [require_backend_python(), "-m", "scail_backend.cli", "serve", "--bind",
               server.address, "--key-file", str(server.key_file), "--work-dir",
               str(tmp_path / "second")]
    settings = addon.prefs.BackendSettings(start_command=shlex.join(command))
    with pytest.raises(Exception, match=r"exited \(code 2\): .*cannot bind .*Address already in "
                                        r"use"):
        addon.client.start_local_backend(settings, check_s=60.0)
    assert addon.client._STATE.local_process.poll() == 2
    addon.client._STATE.local_log.unlink()  # kept for the artist, named in the message
