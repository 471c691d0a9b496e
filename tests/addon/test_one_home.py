"""The add-on takes its choices and bodies from their one home: the estimator menu from what the
connected backend's registry says (via hello), the test takes from scail_protocol.skeleton."""

from __future__ import annotations

import numpy as np
import pytest
from addon_helpers import drive_timer, set_backend_prefs
from motion import make_joints
from scail_protocol import skeleton
from scail_protocol.joints import SMPL24_PARENTS

bpy = pytest.importorskip("bpy")


def test_test_takes_are_the_one_skeleton():
    joints = make_joints(40).astype(np.float64)
    children = [j for j, p in enumerate(SMPL24_PARENTS) if p >= 0]
    parents = [SMPL24_PARENTS[j] for j in children]
    lengths = np.linalg.norm(joints[:, children] - joints[:, parents], axis=-1)
    rest = skeleton.facing_camera_mm(skeleton.rest_joints_m())
    expected = np.linalg.norm(rest[children] - rest[parents], axis=-1)
    np.testing.assert_allclose(np.median(lengths, axis=0), expected, rtol=0.02)  # 2 mm jitter


@pytest.mark.slow
def test_estimator_menu_offers_what_the_backend_can_run(addon, scene, server):
    set_backend_prefs(server.address, server.key_file, timeout_s=5.0)
    before = [item[0] for item in addon.props.estimator_items(None, bpy.context)]
    assert before == ["AUTO", "MEDIAPIPE", "NLF"]  # nothing known yet: every estimator
    addon.client.connect(addon.prefs.backend_settings())
    drive_timer(addon, 30)
    status = bpy.context.window_manager.scail_status
    assert status.connected
    offered = [item[0] for item in addon.props.estimator_items(None, bpy.context)]
    assert offered == ["AUTO"] + [n.upper() for n in status.estimators.split(", ") if n != "auto"]
    if "NLF" not in offered:  # no nlf weights on this machine: the panel says why
        assert "nlf:" in status.unavailable


@pytest.mark.slow
def test_an_import_teaches_the_panel_what_the_backend_can_run(addon, scene, server, tmp_path):
    set_backend_prefs(server.address, server.key_file, timeout_s=5.0)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"never sent: the estimator is refused first")
    with pytest.raises(Exception, match="cannot run the estimator 'bogus'"):
        addon.headless.import_video(str(video), estimator="bogus")
    status = bpy.context.window_manager.scail_status
    assert "mediapipe" in status.estimators.split(", ")
    assert not any((server.root.parent / "work").rglob("*.mp4"))  # nothing was uploaded
