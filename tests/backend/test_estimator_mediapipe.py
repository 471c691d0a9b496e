"""MediaPipe -> PoseSequence mapping maths on synthetic landmarks, the index tables, and the
Holistic estimator on frames without a person."""

from __future__ import annotations

import logging

from pathlib import Path

import numpy as np
import pytest

from scail_backend.estimators import mediapipe_tables as T
from scail_backend.estimators.mediapipe_mapping import (
    BOX_MIN_SCORE, Landmarks, camera_aligned_world_mm, map_frame, normalized_to_px, person_box,
    ray_rotation, smpl24_joints, solve_root_translation, translation_from_scale, wholebody134)
from scail_backend.synth import metrics
from scail_protocol import joints as J
from scail_protocol.camera import intrinsics_from_fov, project
from scail_protocol.errors import EstimatorError

K = intrinsics_from_fov(512, 896)
T_TRUE_MM = np.array([150.0, -80.0, 3200.0])

# A standing person facing the camera, MediaPipe world-landmark style: metres, hip-centred,
# x right (the subject's left is +x), y down, z away from the camera.
_HALF = {  # landmark pairs (left, right): (|x|, y, z)
    (T.LEFT_EYE_INNER, T.RIGHT_EYE_INNER): (0.015, -0.63, -0.09),
    (T.LEFT_EYE, T.RIGHT_EYE): (0.03, -0.63, -0.085),
    (T.LEFT_EYE_OUTER, T.RIGHT_EYE_OUTER): (0.045, -0.63, -0.08),
    (T.LEFT_EAR, T.RIGHT_EAR): (0.075, -0.61, -0.02),
    (T.MOUTH_LEFT, T.MOUTH_RIGHT): (0.025, -0.56, -0.08),
    (T.LEFT_SHOULDER, T.RIGHT_SHOULDER): (0.18, -0.48, 0.0),
    (T.LEFT_ELBOW, T.RIGHT_ELBOW): (0.21, -0.21, 0.02),
    (T.LEFT_WRIST, T.RIGHT_WRIST): (0.23, 0.04, -0.02),
    (T.LEFT_PINKY, T.RIGHT_PINKY): (0.25, 0.12, -0.02),
    (T.LEFT_INDEX, T.RIGHT_INDEX): (0.21, 0.13, -0.03),
    (T.LEFT_THUMB, T.RIGHT_THUMB): (0.19, 0.09, -0.04),
    (T.LEFT_HIP, T.RIGHT_HIP): (0.11, 0.0, 0.0),
    (T.LEFT_KNEE, T.RIGHT_KNEE): (0.10, 0.42, -0.02),
    (T.LEFT_ANKLE, T.RIGHT_ANKLE): (0.10, 0.85, 0.03),
    (T.LEFT_HEEL, T.RIGHT_HEEL): (0.10, 0.90, 0.07),
    (T.LEFT_FOOT_INDEX, T.RIGHT_FOOT_INDEX): (0.11, 0.93, -0.12),
}


def _world_m() -> np.ndarray:
    world = np.zeros((T.NUM_POSE, 3))
    world[T.NOSE] = (0.0, -0.59, -0.11)
    for (left, right), (x, y, z) in _HALF.items():
        world[left] = (x, y, z)
        world[right] = (-x, y, z)
    return world


def _camera_world_mm(world_m=None, t_mm=T_TRUE_MM) -> np.ndarray:
    """The landmarks where the camera sees them: MediaPipe's world axes face the ray through the
    hips (the world origin), so they are turned onto it before the translation."""
    world_m = _world_m() if world_m is None else world_m
    hips_px = project(np.asarray(t_mm, dtype=np.float64), K)
    for _ in range(4):  # the ray through the hip landmarks' 2D midpoint (a fixed point)
        points = world_m * 1000.0 @ ray_rotation(hips_px, K).T + t_mm
        hips_px = project(points[[T.LEFT_HIP, T.RIGHT_HIP]], K).mean(0)
    return points


def _landmarks(world_m=None, t_mm=T_TRUE_MM, uv_offset=None, visibility=None, **parts):
    world_m = _world_m() if world_m is None else world_m
    uv = project(_camera_world_mm(world_m, t_mm), K)
    if uv_offset is not None:
        uv = uv + uv_offset
    vis = np.ones(T.NUM_POSE) if visibility is None else visibility
    return Landmarks(pose_px=uv, pose_world_m=world_m, visibility=vis, **parts)


# --- root translation ---------------------------------------------------------------------------


def test_root_translation_recovers_known_translation():
    world = _world_m() * 1000.0
    uv = project(world + T_TRUE_MM, K)
    np.testing.assert_allclose(solve_root_translation(world, uv, K), T_TRUE_MM, atol=1e-6)


def test_root_translation_tolerates_pixel_noise(rng):
    world = _world_m() * 1000.0
    uv = project(world + T_TRUE_MM, K) + rng.normal(0.0, 1.0, (T.NUM_POSE, 2))
    t = solve_root_translation(world, uv, K)
    assert np.linalg.norm(t - T_TRUE_MM) < 0.03 * T_TRUE_MM[2]  # 1 px noise: depth within 3 %


def test_root_translation_ignores_zero_weight_points():
    world = _world_m() * 1000.0
    uv = project(world + T_TRUE_MM, K)
    uv[:5] += 200.0
    weights = np.ones(T.NUM_POSE)
    weights[:5] = 0.0
    np.testing.assert_allclose(solve_root_translation(world, uv, K, weights), T_TRUE_MM,
                               atol=1e-6)


def test_root_translation_needs_two_points():
    world = _world_m() * 1000.0
    uv = project(world + T_TRUE_MM, K)
    weights = np.zeros(T.NUM_POSE)
    weights[3] = 1.0
    assert np.isnan(solve_root_translation(world, uv, K, weights)).all()


def test_translation_from_scale_gets_depth_roughly():
    world = _world_m() * 1000.0
    uv = project(world + T_TRUE_MM, K)
    t = translation_from_scale(world, uv, K)
    assert abs(t[2] - T_TRUE_MM[2]) < 0.1 * T_TRUE_MM[2]


def test_ray_rotation_turns_the_optical_axis_onto_the_pixel_ray():
    np.testing.assert_allclose(ray_rotation(K[:2, 2], K), np.eye(3), atol=1e-12)
    uv = np.array([700.0, 100.0])
    turn = ray_rotation(uv, K)
    np.testing.assert_allclose(turn @ turn.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(turn) == pytest.approx(1.0)
    np.testing.assert_allclose(project(turn @ np.array([0.0, 0.0, 2500.0]), K), uv, atol=1e-9)


# --- SMPL-24 joints -----------------------------------------------------------------------------


def test_direct_joints_land_on_exact_world_positions():
    joints, root = smpl24_joints(_landmarks(), K)
    np.testing.assert_allclose(root, T_TRUE_MM, atol=1e-6)
    world = _camera_world_mm()
    # (the ankle is no longer direct: SMPL's sits a little towards the heel)
    direct = {J.SMPL24["left_shoulder"]: T.LEFT_SHOULDER, J.SMPL24["right_elbow"]: T.RIGHT_ELBOW,
              J.SMPL24["left_wrist"]: T.LEFT_WRIST, J.SMPL24["right_knee"]: T.RIGHT_KNEE,
              J.SMPL24["left_knee"]: T.LEFT_KNEE}
    for smpl, mp in direct.items():
        np.testing.assert_allclose(joints[smpl], world[mp], atol=1e-6)


def test_joints_are_anchored_on_the_2d_landmarks(rng):
    # MediaPipe's 2D and 3D disagree in practice: the joints must follow the 2D picture...
    offset = rng.normal(0.0, 12.0, (T.NUM_POSE, 2))
    lm = _landmarks(uv_offset=offset)
    joints, root = smpl24_joints(lm, K)
    M = T.combination_matrix(T.SMPL24_FROM_MEDIAPIPE, T.NUM_POSE)
    np.testing.assert_allclose(project(joints, K), M @ lm.pose_px, atol=1e-6)
    # ... at the depth the 3D fit gives each joint.
    np.testing.assert_allclose(joints[:, 2], M @ camera_aligned_world_mm(lm, K)[:, 2] + root[2],
                               atol=1e-6)


def test_smpl_hips_sit_inside_mediapipe_hips():
    joints, _ = smpl24_joints(_landmarks(), K)
    world = _camera_world_mm()
    smpl_width = np.linalg.norm(joints[J.SMPL24["left_hip"]] - joints[J.SMPL24["right_hip"]])
    mp_width = np.linalg.norm(world[T.LEFT_HIP] - world[T.RIGHT_HIP])
    # (the two hips are at slightly different depths once turned: 2D and 3D midpoints differ)
    assert smpl_width == pytest.approx(T.SMPL_HIP_WIDTH_RATIO * mp_width, rel=1e-3)
    # and the subject's left hip is on the subject's left (+x for a person facing the camera)
    assert joints[J.SMPL24["left_hip"], 0] > joints[J.SMPL24["right_hip"], 0]


def test_neck_and_head_sit_between_shoulders_and_ears():
    joints, _ = smpl24_joints(_landmarks(), K)
    world = _camera_world_mm()
    shoulders = world[[T.LEFT_SHOULDER, T.RIGHT_SHOULDER]].mean(0)
    ears = world[[T.LEFT_EAR, T.RIGHT_EAR]].mean(0)
    # Derived joints are anchored on 2D combinations; under perspective the 2D midpoint of two
    # points at different depths misses the 3D midpoint by a fraction of a millimetre here.
    np.testing.assert_allclose(joints[J.SMPL24["neck"]],
                               shoulders + T.NECK_FROM_SHOULDERS * (ears - shoulders), atol=0.5)
    eyes = world[[T.LEFT_EYE, T.RIGHT_EYE]].mean(0)
    head = joints[J.SMPL24["head"]]
    np.testing.assert_allclose(head, shoulders + T.HEAD_FROM_SHOULDERS * (ears - shoulders)
                               + T.HEAD_TOWARDS_EYES * (eyes - ears), atol=2.0)  # eyes 7 cm nearer
    assert head[2] < ears[2] - 20.0  # in front of the ears' line (nearer this camera)


def test_pelvis_and_spine_climb_the_trunk_in_order():
    joints, _ = smpl24_joints(_landmarks(), K)
    world = _camera_world_mm()
    hips = world[[T.LEFT_HIP, T.RIGHT_HIP]].mean(0)
    up = world[[T.LEFT_SHOULDER, T.RIGHT_SHOULDER]].mean(0) - hips
    heights = [np.dot(joints[J.SMPL24[n]] - hips, up) / np.dot(up, up)
               for n in ("pelvis", "spine1", "spine2", "spine3", "neck")]
    assert heights == sorted(heights) and 0 < heights[0] and heights[-1] > 1.0
    # pelvis and spine lie on the hip-shoulder line (x of both midpoints is 0 here)
    for name in ("pelvis", "spine1", "spine2", "spine3"):
        rel = joints[J.SMPL24[name]] - hips
        off_line_mm = np.linalg.norm(np.cross(rel, up)) / np.linalg.norm(up)
        assert off_line_mm < 0.5


def test_collars_sit_below_the_shoulder_line():
    """SMPL's collar joints lie a few cm below the shoulder line, 0.4 of the way out from the
    midline (fitted on the synthetic library's average and child bodies)."""
    joints, _ = smpl24_joints(_landmarks(), K)
    world = _camera_world_mm()
    mid = world[[T.LEFT_SHOULDER, T.RIGHT_SHOULDER]].mean(0)
    trunk_mm = np.linalg.norm(mid - world[[T.LEFT_HIP, T.RIGHT_HIP]].mean(0))
    for side in ("left", "right"):
        landmark = world[getattr(T, f"{side.upper()}_SHOULDER")]
        collar, shoulder = joints[J.SMPL24[f"{side}_collar"]], joints[J.SMPL24[f"{side}_shoulder"]]
        drop = collar - (mid + T.COLLAR_FROM_MIDLINE * (landmark - mid))
        # straight down the trunk (towards the hips: +y in the camera frame here)
        assert drop[1] > 0 and abs(drop[0]) < 0.1 * np.linalg.norm(drop)
        assert np.linalg.norm(drop) == pytest.approx(T.COLLAR_DROP_ALONG_TRUNK * trunk_mm,
                                                     rel=0.05)
        assert collar[1] > shoulder[1]  # a little below the shoulder too


HELD_OUT_CASE = Path(__file__).parent / "data" / "mediapipe_heldout_bodies.npz"
_TORSO = [J.SMPL24[n] for n in ("pelvis", "left_hip", "right_hip", "spine1", "spine2", "spine3",
                               "neck", "left_collar", "right_collar", "left_shoulder",
                               "right_shoulder")]


def _held_out_clips():
    """Recorded MediaPipe Holistic landmarks (every other frame of 48) of two synthetic clips of
    body types the mapping was not tuned on (short_heavy walk at 35° yaw, tall_slim wave from
    the front), with their exact SMPL-24 truth (``scail-pose synth --body``)."""
    data = np.load(HELD_OUT_CASE)
    for i in range(2):
        yield {key: data[f"clip{i}_{key}"] for key in ("name", "pose_px", "pose_world_m",
                                                        "visibility", "K", "truth_mm")}


def test_mapping_stays_close_to_the_truth_on_held_out_bodies():
    """Regression guard with exact truth: the per-frame mapping of real MediaPipe output on
    bodies outside the tuning set. The fixed-offset tables scored 53.7 mm PA-MPJPE and 5.2 px
    torso 2D error here; the width/trunk-scaled placement with the hip-ray turn 50.3 mm and
    2.5 px."""
    pa, torso_px = [], []
    for clip in _held_out_clips():
        K_clip = clip["K"].astype(np.float64)
        est = np.stack([
            smpl24_joints(Landmarks(pose_px=px.astype(np.float64),
                                    pose_world_m=world.astype(np.float64),
                                    visibility=vis.astype(np.float64)), K_clip)[0]
            for px, world, vis in zip(clip["pose_px"], clip["pose_world_m"],
                                      clip["visibility"])])
        truth = clip["truth_mm"].astype(np.float64)
        pa.append(metrics.pa_mpjpe(est, truth).mean())
        error_px = np.linalg.norm(project(est, K_clip) - project(truth, K_clip), axis=-1)
        torso_px.append(error_px[:, _TORSO].mean())
    assert np.mean(torso_px) < 3.0, torso_px
    assert np.mean(pa) < 51.5, pa


def test_combination_tables_are_affine():
    for table in (T.SMPL24_FROM_MEDIAPIPE, T.OPENPOSE18_FROM_MEDIAPIPE, T.FEET_FROM_MEDIAPIPE):
        M = T.combination_matrix(table, T.NUM_POSE)
        present = ~np.isnan(M).any(1)
        np.testing.assert_allclose(M[present].sum(1), 1.0, atol=1e-12)
    assert len(T.SMPL24_FROM_MEDIAPIPE) == len(J.SMPL24_NAMES)
    assert len(T.OPENPOSE18_FROM_MEDIAPIPE) == len(J.OPENPOSE18_NAMES)
    assert len(T.FEET_FROM_MEDIAPIPE) == len(J.FEET_NAMES)


def test_depth_fallback_keeps_the_person_in_front_of_the_camera():
    world = _world_m()
    world[:, 2] *= 60.0  # absurd depth spread: the linear fit puts joints behind the camera
    lm = Landmarks(pose_px=project(_world_m() * 1000.0 + T_TRUE_MM, K), pose_world_m=world,
                   visibility=np.ones(T.NUM_POSE))
    joints, _ = smpl24_joints(lm, K)
    assert np.isfinite(joints).all() and (joints[:, 2] > 0).all()


# --- whole-body 134 -----------------------------------------------------------------------------


def test_wholebody_layout_from_pose_face_and_hands(rng):
    face = rng.uniform(100, 200, (T.NUM_FACE_MESH, 2))
    left, right = rng.uniform(0, 50, (21, 2)), rng.uniform(300, 350, (21, 2))
    vis = rng.uniform(0.2, 1.0, T.NUM_POSE)
    lm = _landmarks(visibility=vis, face_px=face, left_hand_px=left, right_hand_px=right)
    kp, score = wholebody134(lm)
    assert kp.shape == (J.NUM_WHOLEBODY, 2) and score.shape == (J.NUM_WHOLEBODY,)
    neck = J.OPENPOSE18["neck"]
    np.testing.assert_allclose(kp[neck], lm.pose_px[[T.LEFT_SHOULDER, T.RIGHT_SHOULDER]].mean(0))
    assert score[neck] == pytest.approx(min(vis[T.LEFT_SHOULDER], vis[T.RIGHT_SHOULDER]))
    np.testing.assert_allclose(kp[J.OPENPOSE18["left_wrist"]], lm.pose_px[T.LEFT_WRIST])
    np.testing.assert_allclose(kp[J.OPENPOSE18["right_ear"]], lm.pose_px[T.RIGHT_EAR])
    np.testing.assert_allclose(kp[J.FACE], face[list(T.FACE68_FROM_FACEMESH)])
    np.testing.assert_allclose(kp[J.LEFT_HAND], left)
    np.testing.assert_allclose(kp[J.RIGHT_HAND], right)
    small_toes = [J.FEET.start + J.FEET_NAMES.index(n)
                  for n in ("left_small_toe", "right_small_toe")]
    assert np.isnan(kp[small_toes]).all() and np.isnan(score[small_toes]).all()
    present = ~np.isnan(score)
    assert ((score[present] >= 0) & (score[present] <= 1)).all()


def test_missing_face_and_hands_are_nan():
    kp, score = wholebody134(_landmarks())
    for part in (J.FACE, J.LEFT_HAND, J.RIGHT_HAND):
        assert np.isnan(kp[part]).all() and np.isnan(score[part]).all()
    assert np.isfinite(kp[J.BODY]).all()


def test_person_box_holds_confident_points_with_padding():
    kp, score = wholebody134(_landmarks())
    box = person_box(kp, score)
    confident = score >= BOX_MIN_SCORE
    inside = ((kp[confident] >= box[:2]) & (kp[confident] <= box[2:])).all()
    assert inside and (box[2:] - box[:2] > np.ptp(kp[confident], axis=0)).all()
    assert np.isnan(person_box(np.full((134, 2), np.nan), np.full(134, np.nan))).all()


def test_map_frame_gives_float32_sequence_rows():
    pose = map_frame(_landmarks(), K)
    assert pose.joints3d.dtype == np.float32 and pose.joints3d.shape == (24, 3)
    assert pose.kp2d.shape == (134, 2) and pose.bbox.shape == (4,)


def test_normalized_to_px_uses_pixel_centres():
    np.testing.assert_allclose(normalized_to_px([[0.0, 0.0], [1.0, 1.0]], (512, 896)),
                               [[-0.5, -0.5], [895.5, 511.5]])


# --- the face-68 table --------------------------------------------------------------------------


def _contour_chain(edges, start, end, via):
    """Walk a closed contour (undirected edges) from ``start`` to ``end`` passing ``via``."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set()).add(a)
    for first in graph[start]:
        path, previous = [start, first], start
        while path[-1] != end and len(path) < 500:
            nxt = [n for n in graph[path[-1]] if n != previous]
            if not nxt:
                break
            previous = path[-1]
            path.append(nxt[0])
        if path[-1] == end and via in path:
            return path
    raise AssertionError(f"no path {start} -> {via} -> {end} on the contour")


def test_face68_table_is_68_unique_mesh_indices():
    table = T.FACE68_FROM_FACEMESH
    assert len(table) == 68 and len(set(table)) == 68
    assert all(0 <= i < T.NUM_FACE_MESH for i in table)


def test_face68_groups_lie_on_the_matching_mesh_contours():
    fm = pytest.importorskip("mediapipe.python.solutions.face_mesh_connections")
    table = T.FACE68_FROM_FACEMESH
    nodes = lambda edges: {i for edge in edges for i in edge}  # noqa: E731
    assert set(table[0:17]) <= nodes(fm.FACEMESH_FACE_OVAL)
    assert set(table[17:22]) <= nodes(fm.FACEMESH_RIGHT_EYEBROW)
    assert set(table[22:27]) <= nodes(fm.FACEMESH_LEFT_EYEBROW)
    assert set(table[27:36]) <= nodes(fm.FACEMESH_NOSE)
    assert set(table[36:42]) <= nodes(fm.FACEMESH_RIGHT_EYE)
    assert set(table[42:48]) <= nodes(fm.FACEMESH_LEFT_EYE)
    assert set(table[48:68]) <= nodes(fm.FACEMESH_LIPS)
    # The jaw runs along the face oval in order, from one side through the chin to the other.
    chain = _contour_chain(fm.FACEMESH_FACE_OVAL, table[0], table[16], via=table[8])
    positions = [chain.index(i) for i in table[0:17]]
    assert positions == sorted(positions)


# --- the estimator on frames without anybody ------------------------------------------------------


def test_frames_without_a_person_give_nan_rows():
    from scail_backend.estimators.mediapipe_holistic import MediaPipeHolisticEstimator

    frames = [np.full((128, 224, 3), 90 + 10 * i, np.uint8) for i in range(4)]
    with MediaPipeHolisticEstimator() as est:
        seq = est.estimate(iter(frames), size=(128, 224), fps=12.0)
    assert seq.num_frames == 4 and seq.num_people == 1 and seq.fps == 12.0
    assert not seq.present().any()
    assert seq.meta["estimator"] == "mediapipe"
    np.testing.assert_allclose(seq.K, intrinsics_from_fov(128, 224))


@pytest.mark.parametrize("fps", [8.0, 30.0, 60.0])
def test_frames_are_stamped_at_the_videos_own_rate(fps):
    """MediaPipe's smoothing runs in real time: the ``solutions`` clock (private, 1/30 s per
    frame) is moved so each frame lands 1/fps after the last, across videos too."""
    from scail_backend.estimators.mediapipe_holistic import MediaPipeHolisticEstimator

    frames = [np.full((96, 160, 3), 80, np.uint8)] * 3
    step_us = round(1e6 / fps)
    with MediaPipeHolisticEstimator() as est:
        est.estimate(iter(frames), size=(96, 160), fps=fps)
        assert est._cascade[0]._solution._simulated_timestamp == 3 * step_us
        est.estimate(iter(frames[:2]), size=(96, 160), fps=fps)  # a second video: still rising
        assert est._cascade[0]._solution._simulated_timestamp == 5 * step_us


def test_estimator_rejects_frames_of_the_wrong_size():
    from scail_backend.estimators.mediapipe_holistic import MediaPipeHolisticEstimator

    with MediaPipeHolisticEstimator() as est:
        with pytest.raises(EstimatorError, match="expected"):
            est.estimate([np.zeros((64, 64, 3), np.uint8)], size=(128, 224), fps=16.0)


def test_stderr_works_again_after_the_quiet_first_frame(capfd, caplog):
    import os

    from scail_backend.estimators.mediapipe_holistic import MediaPipeHolisticEstimator

    # at DEBUG (e.g. left so by an earlier `-v` command in this process) nothing is silenced
    caplog.set_level(logging.INFO, logger="scail_backend.estimators.mediapipe_holistic")

    with MediaPipeHolisticEstimator() as est:
        est.estimate([np.full((128, 224, 3), 90, np.uint8)], size=(128, 224), fps=16.0)
        assert est._cascade[0]._solution is not None   # built on the first frame ...
        est._cascade[0].reset()
        assert est._cascade[0]._starting               # ... restarted with the next one
        est.estimate([np.full((128, 224, 3), 90, np.uint8)], size=(128, 224), fps=16.0)
        assert not est._cascade[0]._starting
    os.write(2, b"stderr-marker\n")
    err = capfd.readouterr().err
    assert "stderr-marker" in err
    # MediaPipe's start-up chatter, after building and after resetting, is silenced
    assert "Feedback manager" not in err and "XNNPACK" not in err


EXAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "examples" / "dance_a"


@pytest.mark.skipif(not EXAMPLE.is_dir(), reason="needs ../shared/examples/dance_a")
def test_a_person_who_appears_late_starts_no_chatter(capfd, caplog):
    """The landmark stages start with the first person found, frames after the graph's own
    start: they must be silenced too."""
    from scail_backend.estimators.mediapipe_holistic import MediaPipeHolisticEstimator
    from scail_backend.video.reader import open_video

    caplog.set_level(logging.INFO, logger="scail_backend.estimators.mediapipe_holistic")
    dancer = [frame for _, frame in zip(range(3), open_video(EXAMPLE / "driving.mp4"))]
    frames = [np.zeros_like(dancer[0])] * 4 + dancer
    with MediaPipeHolisticEstimator(max_people_per_frame=1, search_small=False) as est:
        seq = est.estimate(frames, size=frames[0].shape[:2], fps=16.0)
    assert seq.present().any(0)[4:].all()
    err = capfd.readouterr().err
    assert "NORM_RECT" not in err and "W0000" not in err, err
