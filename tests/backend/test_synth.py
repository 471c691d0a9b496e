"""The synthetic human: Blender scene, ground truth, video, motions, CLI (real bpy, headless)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scail_protocol import joints as J
from scail_protocol.camera import blender_to_camera, project
from scail_protocol.errors import Cancelled, OutputError, ScailError
from scail_protocol.sequence import PoseSequence

from scail_backend.synth import CAMERAS, MOTIONS, make_clip, motions
from scail_backend.synth.clip import check_clip_folder
from scail_backend.synth import cameras as synth_cameras
from scail_backend.synth.bodies import BODIES, TUNING_BODIES
from scail_backend.synth.figure import ground_contacts
from scail_backend.synth.skeleton import forward_kinematics, pose_points

SMALL = (192, 336)   # (H, W): small frames keep the Blender tests quick
SMALL_FPS = 8.0      # with few frames, a low rate spreads them over the motion
ALL_MOTIONS = MOTIONS + ("demo",)
BONE_LENGTH_TOL_M = 1e-9  # the rig is rigid: numpy FK keeps bone lengths to rounding
PROJECTION_TOL_PX = 0.01  # issue 6: truth projection == Blender's camera projection


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory):
    pytest.importorskip("bpy")
    out = tmp_path_factory.mktemp("synth_clip")
    clip = make_clip(out, motion="kick", camera="high", num_frames=5, size=SMALL, fps=SMALL_FPS)
    return clip


def _stage_joints_world(motion, camera, num_frames, fps):
    frames = motions.evaluate(motion, np.arange(num_frames) / fps)
    stage = synth_cameras.stage_to_world(synth_cameras.get_camera(camera))
    return frames, frames.joints_m @ stage[:3, :3].T + stage[:3, 3]


# --- names ----------------------------------------------------------------------------------------

def test_unknown_motion_error_lists_valid_motions(tmp_path):
    with pytest.raises(ScailError) as info:
        make_clip(tmp_path, motion="moonwalk")
    for name in MOTIONS:
        assert name in str(info.value)
    assert not any(tmp_path.iterdir())


def test_unknown_camera_error_lists_valid_cameras(tmp_path):
    with pytest.raises(ScailError) as info:
        make_clip(tmp_path, camera="drone")
    for name in CAMERAS:
        assert name in str(info.value)


def test_odd_frame_size_and_fractional_rate_are_refused(tmp_path):
    with pytest.raises(ScailError, match="even"):
        make_clip(tmp_path, size=(191, 336))
    with pytest.raises(ScailError, match="whole number"):
        make_clip(tmp_path, fps=12.5)


def test_library_has_the_required_motions_and_cameras():
    assert {"wave", "squat", "turn", "walk", "jump", "kick", "sit", "arms_cross"} <= set(MOTIONS)
    assert {"front", "side_left", "three_quarter", "high", "low", "wide"} <= set(CAMERAS)


# --- motions (numpy kinematics) -------------------------------------------------------------------

@pytest.mark.parametrize("motion", ALL_MOTIONS)
def test_motion_gives_rigid_grounded_skeleton(motion):
    spec = motions.get_motion(motion)
    num = int(round(spec.duration_s * 16))
    frames = motions.evaluate(motion, np.arange(num) / 16.0)
    joints = frames.joints_m
    assert np.isfinite(joints).all()
    parents = np.array(J.SMPL24_PARENTS[1:])
    lengths = np.linalg.norm(joints[:, 1:] - joints[:, parents], axis=-1)
    np.testing.assert_allclose(lengths, lengths[:1].repeat(num, 0), atol=BONE_LENGTH_TOL_M)
    glob, _ = forward_kinematics(frames.local_quats, frames.root_m)
    bones, points = ground_contacts()
    lowest = pose_points(glob, joints, bones, points)[..., 2].min(axis=1)
    airborne = lowest > 1e-6
    if motion == "jump":
        assert 0 < airborne.sum() < num / 2 and lowest.max() < 0.4  # a short flight, not a launch
    else:
        np.testing.assert_allclose(lowest, 0.0, atol=1e-9)  # a shoe on the floor every frame
    head_above_pelvis = joints[:, J.SMPL24["head"], 2] - joints[:, J.SMPL24["pelvis"], 2]
    assert head_above_pelvis.min() > 0.3  # upright throughout


@pytest.mark.parametrize("motion", ALL_MOTIONS)
def test_motion_stays_in_view_of_every_camera(motion):
    num = int(round(motions.get_motion(motion).duration_s * 16))
    for camera in CAMERAS:
        _, world = _stage_joints_world(motion, camera, num, 16.0)
        K = synth_cameras.intrinsics(synth_cameras.get_camera(camera), (512, 896))
        px = project(blender_to_camera(world), K)
        assert np.isfinite(px).all()
        assert px[..., 0].min() >= 0 and px[..., 0].max() <= 895, camera
        assert px[..., 1].min() >= 0 and px[..., 1].max() <= 511, camera


def test_arms_cross_brings_each_wrist_past_the_midline():
    frames = motions.evaluate("arms_cross", np.array([2.0]))
    x = frames.joints_m[0, :, 0]
    # Body frame: +x is the figure's left. Crossed arms put each wrist on the other side.
    assert x[J.SMPL24["left_wrist"]] < x[J.SMPL24["pelvis"]] < x[J.SMPL24["right_wrist"]]


# --- Blender scene and ground truth ---------------------------------------------------------------

def test_blender_pose_matches_numpy_kinematics():
    pytest.importorskip("bpy")
    from scail_backend.synth import blender_scene

    setup = synth_cameras.get_camera("three_quarter")
    frames, world = _stage_joints_world("sit", "three_quarter", 6, 1.2)
    handles = blender_scene.build_scene(frames, synth_cameras.stage_to_world(setup),
                                        synth_cameras.intrinsics(setup, SMALL), SMALL, 1.2)
    for i in range(6):
        blender_scene.set_frame(handles, i)
        np.testing.assert_allclose(blender_scene.joint_positions(handles), world[i], atol=1e-5)


def test_truth_projection_equals_blender_camera_projection(small_clip):
    import bpy
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    from scail_backend.synth import blender_scene

    truth = PoseSequence.load(small_clip.truth)
    setup = synth_cameras.get_camera(truth.meta["camera"])
    frames = motions.evaluate(truth.meta["motion"], np.arange(truth.num_frames) / truth.fps)
    handles = blender_scene.build_scene(frames, synth_cameras.stage_to_world(setup), truth.K,
                                        truth.size, truth.fps)
    height, width = truth.size
    truth_px = project(truth.joints3d[0].astype(np.float64), truth.K)
    for i in range(truth.num_frames):
        blender_scene.set_frame(handles, i)
        arm = handles.armature.evaluated_get(bpy.context.evaluated_depsgraph_get())
        blender_px = []
        for name in J.SMPL24_NAMES:
            ndc = world_to_camera_view(handles.scene, handles.camera,
                                       arm.matrix_world @ Vector(arm.pose.bones[name].head))
            # Blender's view coordinates run from the pixel edges, bottom-up; ours are centre-based.
            blender_px.append((ndc.x * width - 0.5, (1.0 - ndc.y) * height - 0.5))
        # float32 storage of joints3d (mm at ~4 m) limits agreement to ~1e-3 px
        np.testing.assert_allclose(truth_px[i], np.array(blender_px), atol=PROJECTION_TOL_PX)


def test_truth_file_is_a_valid_one_person_sequence(small_clip):
    truth = PoseSequence.load(small_clip.truth)
    assert truth.num_people == 1 and truth.num_frames == small_clip.frames == 5
    assert truth.size == SMALL and truth.fps == SMALL_FPS
    expected_K = synth_cameras.intrinsics(synth_cameras.get_camera("high"), SMALL)
    np.testing.assert_allclose(truth.K, expected_K)
    assert truth.meta["motion"] == "kick" and truth.meta["camera"] == "high"
    assert np.isfinite(truth.joints3d).all()
    assert (truth.joints3d[..., 2] > 2000).all()  # in front of the camera, metres away
    body = truth.kp2d[0, :, J.BODY]
    assert np.isfinite(body).all()
    assert np.isnan(truth.kp2d[0, :, J.FACE]).all()
    assert np.isfinite(truth.kp2d[0, :, J.LEFT_HAND]).all()
    neck = truth.kp2d[0, :, J.OPENPOSE18["neck"]]
    shoulders = truth.kp2d[0, :, [J.OPENPOSE18["left_shoulder"], J.OPENPOSE18["right_shoulder"]]]
    np.testing.assert_allclose(neck, shoulders.mean(axis=0), atol=1e-3)
    box = truth.bbox[0]
    assert (box[:, 0] < body[..., 0].min(-1)).all() and (box[:, 2] > body[..., 0].max(-1)).all()


def test_video_has_requested_frames_size_and_rate(small_clip):
    import av

    with av.open(str(small_clip.driving)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert float(stream.average_rate) == pytest.approx(SMALL_FPS)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 5
    assert frames[0].shape == SMALL + (3,)


def test_reference_image_is_the_first_frame(small_clip):
    import av
    import cv2

    reference = cv2.imread(str(small_clip.reference))[..., ::-1]
    with av.open(str(small_clip.driving)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert reference.shape == first.shape
    assert np.abs(reference.astype(int) - first).mean() < 3  # the video is lossy, the PNG is not


def test_rendered_figure_covers_its_projected_joints():
    pytest.importorskip("bpy")
    from scail_backend.synth.clip import iter_frames

    K = synth_cameras.intrinsics(synth_cameras.get_camera("wide"), SMALL)
    count = 0
    for frame in iter_frames(motion="arms_cross", camera="wide", num_frames=3, size=SMALL, fps=1.0):
        px = np.rint(project(blender_to_camera(frame.joints_world_m), K)).astype(int)
        alpha = np.pad(frame.alpha, 1)
        # The joints lie inside the body, so their pixels (or a neighbour) are covered.
        covered = [alpha[y:y + 3, x:x + 3].max() > 127 for x, y in px]
        assert all(covered), [n for n, c in zip(J.SMPL24_NAMES, covered) if not c]
        fraction = (frame.alpha > 127).mean()
        assert 0.01 < fraction < 0.5  # a person-sized silhouette, not an empty or full frame
        corner = frame.rgb[:8, :8].reshape(-1, 3)
        assert frame.alpha[:8, :8].max() == 0 and corner.std(axis=0).max() < 3  # plain backdrop
        count += 1
    assert count == 3


def test_cancelled_clip_leaves_no_output(tmp_path):
    pytest.importorskip("bpy")

    def cancel_at_second_frame(stage, done, total):
        assert stage == "synth" and total == 4
        if done == 2:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        make_clip(tmp_path, motion="squat", num_frames=4, size=SMALL,
                  progress=cancel_at_second_frame)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(Cancelled):  # folders the call made go with it, parents too
        make_clip(tmp_path / "new" / "deeper", motion="squat", num_frames=4, size=SMALL,
                  progress=cancel_at_second_frame)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("theirs", ["driving.mp4", "ref_image.jpg", "ref.png"])
def test_a_folder_of_someone_s_footage_is_refused_before_any_work(tmp_path, theirs):
    (tmp_path / theirs).write_bytes(b"their own footage")

    def never(*_):
        raise AssertionError("rendering started")

    with pytest.raises(OutputError, match=f"already holds {theirs}, which no synthetic clip"):
        make_clip(tmp_path, motion="wave", num_frames=2, size=SMALL, progress=never)
    assert (tmp_path / theirs).read_bytes() == b"their own footage"


def test_a_junk_truth_file_does_not_make_someone_s_footage_a_synthetic_clip(tmp_path):
    (tmp_path / "driving.mp4").write_bytes(b"their own footage")
    (tmp_path / "truth.npz").write_bytes(b"junk")
    with pytest.raises(OutputError, match="already holds driving.mp4, which no synthetic clip"):
        check_clip_folder(tmp_path)


def test_a_file_or_a_folder_in_the_clip_s_place_is_refused_up_front(tmp_path, small_clip):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="afile is a file, not a folder"):
        check_clip_folder(tmp_path / "afile")
    folder = tmp_path / "made_before"
    shutil.copytree(small_clip.driving.parent, folder)
    (folder / "driving.mp4").unlink()
    (folder / "driving.mp4").mkdir()
    with pytest.raises(OutputError, match="driving.mp4 is a folder, where the clip writes a file"):
        check_clip_folder(folder)


def test_a_synthetic_clip_may_be_remade_but_not_under_a_run_s_results(small_clip):
    folder = small_clip.driving.parent
    assert check_clip_folder(folder) == folder          # its own files: replaced
    (folder / "poses.npz").write_bytes(b"a run's poses")
    try:
        with pytest.raises(OutputError, match=r"results of an earlier run \(poses.npz\)"):
            check_clip_folder(folder)
    finally:
        (folder / "poses.npz").unlink()


def test_cli_synth_writes_clip_and_prints_paths(tmp_path, capsys):
    pytest.importorskip("bpy")
    from scail_backend.cli import main

    out = tmp_path / "clip"
    rc = main(["-q", "synth", "--motion", "jump", "--camera", "low", "-o", str(out),
               "--frames", "2", "--resolution", *map(str, SMALL)])
    assert rc == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "driving.mp4"), str(out / "truth.npz"), str(out / "ref.png")]
    assert PoseSequence.load(out / "truth.npz").num_frames == 2


def test_cli_synth_list_and_bad_name(capsys):
    from scail_backend.cli import main

    assert main(["synth", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ALL_MOTIONS + CAMERAS)
    lines = {line.split()[0]: line for line in listing.splitlines() if line.startswith("  ")}
    for body in BODIES:
        assert lines[body].endswith("(held out)") == (body not in TUNING_BODIES), lines[body]
    assert main(["synth", "--motion", "moonwalk", "-o", "unused"]) == 2
    assert "wave" in capsys.readouterr().err
