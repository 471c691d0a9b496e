"""The Blender-side conditioning render: same picture as the backend renderer, shading, mp4."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from motion import make_sequence
from scail_protocol import camera as C
from scail_protocol import capsules, palette
from scail_protocol.sequence import PoseSequence

bpy = pytest.importorskip("bpy")
SIZE = (224, 128)  # H, W: small renders keep the suite fast
MIN_IOU = 0.95          # the brief's bound on foreground agreement with the backend
MAX_MEAN_COLOR_DIFF = 3.0  # mean |RGB difference| (0-255) over pixels both call foreground


def _single_pose(size=SIZE, num_people=1) -> PoseSequence:
    return make_sequence(1, num_people=num_people, size=size, seed=5)


def _compare(blender_rgba, backend_rgba) -> tuple:
    fg_blender = blender_rgba[..., 3] > 0
    fg_backend = backend_rgba[..., 3] > 0
    iou = (fg_blender & fg_backend).sum() / max((fg_blender | fg_backend).sum(), 1)
    both = fg_blender & fg_backend
    diff = np.abs(blender_rgba[..., :3].astype(int) - backend_rgba[..., :3].astype(int))
    return float(iou), float(diff[both].mean())


@pytest.mark.slow
@pytest.mark.parametrize("num_people,size", [(1, SIZE), (2, (256, 448))])
def test_blender_render_matches_the_backend_renderer(addon, scene, num_people, size, tmp_path):
    if importlib.util.find_spec("scail_backend.render.pipeline") is None:
        pytest.skip("the backend renderer is not available")
    os.environ.setdefault("TI_SKIP_VERSION_CHECK", "ON")
    from scail_backend.render.pipeline import iter_rendered_frames

    seq = _single_pose(size, num_people)
    (blender,) = list(addon.render.render_frames(seq, overlay=True))
    (backend,) = [f.copy() for f in iter_rendered_frames(seq, arch="cpu", overlay=True)]
    iou, color_diff = _compare(blender, backend)
    print(f"\nBlender vs backend, {num_people} person(s) {size}: foreground IoU {iou:.4f}, "
          f"mean colour difference {color_diff:.2f} / 255")
    np.save(tmp_path / "blender.npy", blender)
    assert iou >= MIN_IOU
    assert color_diff <= MAX_MEAN_COLOR_DIFF
    assert set(np.unique(blender[..., 3])) <= {0, 204}


def test_shading_follows_the_reference_formula_on_a_capsule_facing_the_camera(addon, scene):
    """One horizontal forearm across the image: its centre pixel faces the camera (n·l = 1)."""
    height, width = 64, 96
    K = C.intrinsics_from_fov(height, width)
    seq = PoseSequence.empty(1, 1, (height, width), fps=16, K=K)
    joints = np.full((1, 1, 24, 3), np.nan, np.float32)
    z = 2000.0
    joints[0, 0, 19] = (-150.0, 0.0, z)  # right elbow
    joints[0, 0, 21] = (150.0, 0.0, z)   # right wrist: limb 3, golden orange
    seq = seq.replace(joints3d=joints)
    (frame,) = list(addon.render.render_frames(seq, overlay=False))
    cy, cx = int(round(K[1, 2])), int(round(K[0, 2]))
    pixel = frame[cy, cx]
    depth = capsules.DepthRange.from_z_range(z, z)
    # The pixel centre's ray meets the front of the tube at z - r (approximately on axis).
    k = depth.attenuation(z - capsules.CAPSULE_RADIUS_MM)
    base = palette.shader_rgba(palette.LIMB_COLORS_RGB8[3])[:3]
    expected = np.clip(base * (capsules.AMBIENT + capsules.DIFFUSE) * k + capsules.SPECULAR * k,
                       0, 1)
    np.testing.assert_allclose(pixel[:3], np.floor(expected * 255), atol=2)
    assert pixel[3] == 204
    assert frame[0, 0].tolist() == [0, 0, 0, 0]


def test_earlier_capsule_wins_at_a_shared_joint(addon, scene):
    """Neck -> R shoulder (limb 0, drawn first) and neck -> L shoulder (limb 1) meet at the neck;
    looking straight at the neck the earlier one's colour shows, as in the reference."""
    height, width = 64, 64
    K = C.intrinsics_from_fov(height, width)
    joints = np.full((1, 1, 24, 3), np.nan, np.float32)
    neck = (0.0, 0.0, 2000.0)
    joints[0, 0, 12] = neck
    joints[0, 0, 17] = (-200.0, 0.0, 2000.0)  # right shoulder
    joints[0, 0, 16] = (200.0, 0.0, 2000.0)   # left shoulder
    seq = PoseSequence.empty(1, 1, (height, width), fps=16, K=K).replace(joints3d=joints)
    (frame,) = list(addon.render.render_frames(seq, overlay=False))
    u, v = C.project(np.array(neck), K)
    pixel = frame[int(round(v)), int(round(u))]
    assert pixel[0] > pixel[2]  # red (limb 0) rather than cyan (limb 1)


def test_render_operator_writes_a_16_fps_h264_video(addon, scene, tmp_path):
    av = pytest.importorskip("av")
    seq = make_sequence(5, size=SIZE)
    addon.armature.import_sequence(seq, scene.collection, scene=scene)
    out = tmp_path / "rendered.mp4"
    assert bpy.ops.scail.render_conditioning(filepath=str(out), renderer="BLENDER") == {"FINISHED"}
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.average_rate == 16
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 5 and frames[0].shape == SIZE + (3,)
    direct = list(addon.render.render_frames(seq, overlay=True))
    for decoded, rgba in zip(frames, direct):
        lit = rgba[..., 3] > 0
        assert np.abs(decoded.astype(int) - rgba[..., :3]).mean() < 4.0  # H.264 loss only
        assert decoded[~lit].mean() < 8.0  # black background
    assert [s.name for s in bpy.data.scenes] == [scene.name]  # the render scene is gone


def test_render_with_no_armature_or_bad_folder_is_reported(addon, scene, tmp_path):
    with pytest.raises(RuntimeError, match="no SCAIL armature"):
        bpy.ops.scail.render_conditioning(filepath=str(tmp_path / "x.mp4"))
    addon.armature.import_sequence(make_sequence(2, size=SIZE), scene.collection, scene=scene)
    with pytest.raises(RuntimeError, match="does not exist"):
        bpy.ops.scail.render_conditioning(filepath=str(tmp_path / "no" / "x.mp4"))
    assert [s.name for s in bpy.data.scenes] == [scene.name]
