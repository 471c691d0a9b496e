"""Render and export follow the scene's frame range (start, end, step), as Blender's do."""

from __future__ import annotations

import numpy as np
import pytest
from motion import make_sequence
from scail_protocol.sequence import PoseSequence

bpy = pytest.importorskip("bpy")


@pytest.fixture
def take(addon, scene):
    seq = make_sequence(20, size=(224, 128), seed=4)
    addon.armature.import_sequence(seq, scene.collection, scene=scene)
    assert (scene.frame_start, scene.frame_end) == (1, 20)  # import sets the take's range
    return seq


def test_export_writes_only_the_scene_range(addon, scene, take, tmp_path):
    scene.frame_start, scene.frame_end = 11, 18
    assert bpy.ops.scail.export_motion(filepath=str(tmp_path / "part.npz")) == {"FINISHED"}
    out = PoseSequence.load(tmp_path / "part.npz")
    assert out.num_frames == 8 and out.fps == take.fps
    np.testing.assert_allclose(out.joints3d[0], take.joints3d[0, 10:18], atol=0.1)
    np.testing.assert_allclose(out.kp2d[0], take.kp2d[0, 10:18], atol=1e-3)
    assert out.meta["scene_frames"] == [11, 18, 1]


def test_export_with_a_frame_step_keeps_timing(addon, scene, take):
    scene.frame_start, scene.frame_end, scene.frame_step = 2, 30, 3  # beyond the take's end
    out = addon.headless.export_scene(bpy.context)
    frames = np.arange(2, 21, 3)  # scene frames of the take only
    assert out.num_frames == len(frames) and out.fps == pytest.approx(take.fps / 3)
    np.testing.assert_allclose(out.joints3d[0], take.joints3d[0, frames - 1], atol=0.1)


def test_a_range_outside_the_take_is_reported(addon, scene, take, tmp_path):
    scene.frame_start, scene.frame_end = 40, 50
    with pytest.raises(RuntimeError, match="holds no frame of the take"):
        bpy.ops.scail.export_motion(filepath=str(tmp_path / "none.npz"))
    assert not (tmp_path / "none.npz").exists()


@pytest.mark.slow
def test_render_writes_only_the_scene_range(addon, scene, take, tmp_path):
    av = pytest.importorskip("av")
    scene.frame_start, scene.frame_end = 11, 18
    out = tmp_path / "part.mp4"
    assert bpy.ops.scail.render_conditioning(filepath=str(out), renderer="BLENDER") == {"FINISHED"}
    with av.open(str(out)) as container:
        assert container.streams.video[0].frames == 8
