"""The Blender-side conditioning render: same picture as the backend renderer, shading, mp4."""

from __future__ import annotations

import numpy as np
import pytest
from addon_helpers import run_backend, write_test_video
from motion import make_sequence
from scail_protocol import camera as C
from scail_protocol import capsules, palette
from scail_protocol.errors import OutputError
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


def backend_frames(seq, tmp_path) -> np.ndarray:
    """(T, H, W, 4) uint8 frames of the backend's taichi renderer (CPU), run by the backend's
    own Python (see ``addon_helpers.backend_python``)."""
    poses, out = seq.save(tmp_path / "poses.npz"), tmp_path / "backend.npy"
    run_backend("import numpy as np; from scail_protocol.sequence import PoseSequence; "
                "from scail_backend.render.pipeline import iter_rendered_frames; "
                f"seq = PoseSequence.load({str(poses)!r}); "
                "frames = [f.copy() for f in iter_rendered_frames(seq, arch='cpu', overlay=True)]; "
                f"np.save({str(out)!r}, np.stack(frames))")
    return np.load(out)


@pytest.mark.slow
@pytest.mark.parametrize("num_people,size", [(1, SIZE), (2, (256, 448))])
def test_blender_render_matches_the_backend_renderer(addon, scene, num_people, size, tmp_path):
    seq = _single_pose(size, num_people)
    (blender,) = list(addon.render.render_frames(seq, overlay=True))
    (backend,) = backend_frames(seq, tmp_path)
    iou, color_diff = _compare(blender, backend)
    print(f"\nBlender vs backend, {num_people} person(s) {size}: foreground IoU {iou:.4f}, "
          f"mean colour difference {color_diff:.2f} / 255")
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
    assert not bpy.ops.scail.render_conditioning.poll()  # greyed out, with the reason:
    with pytest.raises(RuntimeError, match="No SCAIL armature in the scene: import a take"):
        bpy.ops.scail.render_conditioning(filepath=str(tmp_path / "x.mp4"))
    addon.armature.import_sequence(make_sequence(2, size=SIZE), scene.collection, scene=scene)
    with pytest.raises(RuntimeError, match="does not exist"):
        bpy.ops.scail.render_conditioning(filepath=str(tmp_path / "no" / "x.mp4"))
    assert [s.name for s in bpy.data.scenes] == [scene.name]


@pytest.mark.slow
def test_a_take_renders_as_the_backend_draws_it_in_one_job_or_in_runs(addon, scene, tmp_path):
    """Several frames, a person missing on some: the animation render (one Cycles job, or the
    short runs the UI's timer uses) gives the backend's picture on every frame."""
    seq = make_sequence(5, num_people=2, size=SIZE, seed=8, gaps=[(1, 1, 3)])
    one_job = list(addon.render.render_frames(seq, overlay=True))
    in_runs = list(addon.render.render_frames(seq, overlay=True, job_seconds=1e-6))
    backend = backend_frames(seq, tmp_path)
    assert len(one_job) == len(in_runs) == len(backend) == 5
    for t, (a, b, ref) in enumerate(zip(one_job, in_runs, backend)):
        np.testing.assert_array_equal(a, b)
        iou, color_diff = _compare(a, ref)
        assert iou >= MIN_IOU and color_diff <= MAX_MEAN_COLOR_DIFF, (t, iou, color_diff)
    assert [s.name for s in bpy.data.scenes] == [scene.name]
    assert not [o for o in bpy.data.objects if o.name.startswith("SCAIL conditioning")]


def test_render_border_holds_every_capsule_and_falls_back_near_the_camera(addon):
    seq = make_sequence(3, size=SIZE, seed=2)
    joints = seq.openpose18_3d()
    u_min, u_max, v_min, v_max = addon.render.render_border(joints, seq.K, SIZE)
    uv = C.project(joints.reshape(-1, 3), seq.K)
    uv = uv[np.isfinite(uv).all(axis=1)]
    assert (uv[:, 0] >= u_min).all() and (uv[:, 0] <= u_max).all()
    assert (uv[:, 1] >= v_min).all() and (uv[:, 1] <= v_max).all()
    assert 0 <= u_min < u_max <= SIZE[1] and 0 <= v_min < v_max <= SIZE[0]
    near = joints.copy()
    near[0, 0, 1, 2] = 30.0  # a joint 3 cm from the camera: its capsule may fill the frame
    assert addon.render.render_border(near, seq.K, SIZE) is None
    assert addon.render.render_border(np.full_like(joints, np.nan), seq.K, SIZE) == (0, 1, 0, 1)


def test_render_refuses_an_output_that_is_not_an_mp4_before_any_work(addon, scene, tmp_path):
    """A typo in the panel's Output field (poses.npz) must not turn the poses into a video."""
    seq = make_sequence(2, size=SIZE)
    victim = seq.save(tmp_path / "poses.npz")
    before = victim.read_bytes()
    addon.armature.import_sequence(seq, scene.collection, scene=scene)
    with pytest.raises(RuntimeError, match=r"this writes a \.mp4 file; name it poses\.mp4"):
        bpy.ops.scail.render_conditioning(filepath=str(victim))
    for name in ("r.mov", "rnoext"):
        with pytest.raises(RuntimeError, match=r"writes a \.mp4 file"):
            bpy.ops.scail.render_conditioning(filepath=str(tmp_path / name))
    assert victim.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["poses.npz"]
    assert addon.render.check_output(tmp_path / "UPPER.MP4") == tmp_path / "UPPER.MP4"
    assert [s.name for s in bpy.data.scenes] == [scene.name]  # refused before any work


def test_render_refuses_to_write_over_the_takes_driving_video(addon, scene, tmp_path):
    pytest.importorskip("av")
    video = write_test_video(tmp_path / "driving.mp4")
    before = video.read_bytes()
    addon.armature.import_sequence(make_sequence(2, size=SIZE), scene.collection, scene=scene,
                                   video_path=str(video))
    with pytest.raises(RuntimeError, match="is the input .*driving.mp4; writing it would destroy"):
        bpy.ops.scail.render_conditioning(filepath=str(video))
    assert video.read_bytes() == before


def test_render_with_an_unsaved_blend_refuses_the_blend_relative_default(
        addon, scene, tmp_path, monkeypatch):
    """``//rendered.mp4`` with no saved .blend would land in whatever folder Blender started in."""
    monkeypatch.chdir(tmp_path)
    addon.armature.import_sequence(make_sequence(2, size=SIZE), scene.collection, scene=scene)
    assert bpy.data.filepath == ""
    with pytest.raises(RuntimeError, match=r"save the \.blend first, or choose an absolute "
                                           r"output path"):
        bpy.ops.scail.render_conditioning()  # the default Output, //rendered.mp4
    scene.scail.render_path = "//from_panel.mp4"
    with pytest.raises(OutputError, match=r"save the \.blend first"):
        addon.operators.start_render_job(bpy.context, scene.scail.render_path, "BLENDER",
                                         overlay=True)
    assert not addon.client.busy() and not list(tmp_path.iterdir())
