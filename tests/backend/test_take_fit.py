"""The whole-take fit: its Jacobian, what it recovers on a known take, gaps and windows."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scail_protocol.camera import backproject, blender_to_camera, intrinsics_from_fov, project
from scail_protocol.sequence import PoseSequence

from scail_backend import take_fit as tf
from scail_backend.synth import cameras, motions
from scail_backend.synth.metrics import acceleration_errors, foot_sliding, pa_mpjpe

FPS = 16.0
SIZE = (512, 896)


def _truth(num_frames=32, body="tall_slim", motion="walk", camera="three_quarter"):
    frames = motions.evaluate(motion, np.arange(num_frames) / FPS, body)
    stage = cameras.stage_to_world(cameras.get_camera(camera))
    return blender_to_camera(frames.joints_m @ stage[:3, :3].T + stage[:3, 3])


def _per_frame_estimate(truth, K, rng, depth_noise_mm=60.0, px_noise=1.5):
    """What a per-frame estimator gives: good 2D, each joint's depth guessed independently."""
    uv = project(truth, K) + rng.normal(0.0, px_noise, truth.shape[:-1] + (2,))
    z = truth[..., 2] + rng.normal(0.0, depth_noise_mm, truth.shape[:-1])
    return backproject(uv, z, K)


def _bone_lengths(X):
    return np.linalg.norm(X[:, 1:] - X[:, tf.PARENTS[1:]], axis=-1)


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(0)
    K = intrinsics_from_fov(*SIZE)
    X = _truth(4)
    pb = tf._Problem(K=K, uv0=project(X, K) + rng.normal(0, 3, (4, 24, 2)),
                     sqrt_w=np.sqrt(rng.uniform(0.1, 1.0, (4, 24))),
                     rel0=X - X[:, :1] + rng.normal(0, 10, X.shape), root_z0=X[:, 0, 2] + 5.0,
                     lengths0=tf.robust_lengths(X) + 3.0, params=tf.DEFAULT_PARAMS,
                     accel_scale=40.0, still_steps=(np.array([1, 2, 3]), np.array([10, 10, 11])))
    x = np.concatenate([X.ravel() + rng.normal(0, 5, X.size), pb.lengths0 + 1.0])
    analytic = tf._jacobian(x, pb).toarray()
    eps = 1e-4
    numeric = np.stack([(tf._residuals(x + eps * e, pb) - tf._residuals(x - eps * e, pb))
                        / (2 * eps) for e in np.eye(len(x))], axis=1)
    np.testing.assert_allclose(analytic, numeric, atol=1e-6 * np.abs(numeric).max())


def test_fit_recovers_a_rigid_take_from_per_frame_depth_guesses():
    rng = np.random.default_rng(1)
    K = intrinsics_from_fov(*SIZE)
    truth = _truth()
    est = _per_frame_estimate(truth, K, rng)
    fit = tf.fit_person(est, np.ones((len(truth), 134)), K, FPS)
    pa_before, pa_after = np.nanmean(pa_mpjpe(est, truth)), np.nanmean(pa_mpjpe(fit, truth))
    assert pa_after < 0.7 * pa_before, (pa_before, pa_after)
    assert _bone_lengths(fit).std(axis=0).mean() < 0.2 * _bone_lengths(est).std(axis=0).mean()
    accel = (np.nanmean(acceleration_errors(est, truth, FPS)),
             np.nanmean(acceleration_errors(fit, truth, FPS)))
    assert accel[1] < 0.5 * accel[0], accel
    err_2d = np.linalg.norm(project(fit, K) - project(truth, K), axis=-1).mean()
    assert err_2d < 2.5  # still on the 2D evidence (its noise is 1.5 px per axis)


def test_low_visibility_joints_follow_the_skeleton_not_their_2d():
    """A wrist whose 2D is wrong but scored 0 is placed by the rigid arm and the prior."""
    rng = np.random.default_rng(2)
    K = intrinsics_from_fov(*SIZE)
    truth = _truth(24)
    est = _per_frame_estimate(truth, K, rng, depth_noise_mm=5.0, px_noise=0.5)
    wrist = 20
    bad = est.copy()
    uv = project(bad[:, wrist], K) + (60.0, 0.0)            # 60 px off in every frame
    bad[:, wrist] = backproject(uv, bad[:, wrist, 2], K)
    score = np.ones((24, 134))
    trusted = tf.fit_person(bad, score, K, FPS)
    score[:, 7] = 0.0                                        # OpenPose-18 left wrist
    distrusted = tf.fit_person(bad, score, K, FPS)
    err = lambda X: np.linalg.norm(X[:, wrist] - truth[:, wrist], axis=-1).mean()
    assert err(distrusted) < err(trusted) - 10.0


def test_missing_frames_stay_missing_and_split_the_take():
    rng = np.random.default_rng(3)
    K = intrinsics_from_fov(*SIZE)
    truth = _truth(30)
    est = _per_frame_estimate(truth, K, rng)
    est[10:13] = np.nan
    fit = tf.fit_person(est, np.ones((30, 134)), K, FPS)
    assert np.isnan(fit[10:13]).all()
    assert np.isfinite(fit[:10]).all() and np.isfinite(fit[13:]).all()


def test_windows_blend_without_a_seam(monkeypatch):
    rng = np.random.default_rng(4)
    K = intrinsics_from_fov(*SIZE)
    truth = _truth(48)
    est = _per_frame_estimate(truth, K, rng)
    whole = tf.fit_person(est, np.ones((48, 134)), K, FPS)
    monkeypatch.setattr(tf, "WINDOW_FRAMES", 24)
    monkeypatch.setattr(tf, "WINDOW_OVERLAP", 8)
    windowed = tf.fit_person(est, np.ones((48, 134)), K, FPS)
    assert np.isfinite(windowed).all()
    assert np.abs(windowed - whole).max() < 40.0
    # no jump at the seams: the windowed take is as smooth as the whole one
    jerk = lambda X: np.abs(X[2:] - 2 * X[1:-1] + X[:-2]).max()
    assert jerk(windowed) < 1.5 * jerk(whole) + 5.0


def test_fit_sequence_keeps_2d_and_records_itself():
    rng = np.random.default_rng(5)
    K = intrinsics_from_fov(*SIZE)
    truth = _truth(16)
    est = _per_frame_estimate(truth, K, rng)
    kp = np.full((1, 16, 134, 2), np.nan, np.float32)
    kp[0, :, :18] = 100.0
    score = np.full((1, 16, 134), np.nan, np.float32)
    score[0, :, :18] = 0.9
    seq = PoseSequence(fps=FPS, size=SIZE, K=K, joints3d=est[None].astype(np.float32), kp2d=kp,
                       kp2d_score=score, bbox=np.zeros((1, 16, 4), np.float32),
                       track_id=np.zeros(1, np.int64), meta={"estimator": "test"})
    out = tf.fit_sequence(seq)
    assert out.joints3d.shape == seq.joints3d.shape
    assert not np.allclose(out.joints3d, seq.joints3d)
    np.testing.assert_array_equal(out.kp2d, seq.kp2d)
    assert out.meta["take_fit"]["bone_mm"] == tf.DEFAULT_PARAMS.bone_mm
    assert out.meta["estimator"] == "test"
    (person,) = out.meta["take_fit"]["people"]
    assert person["frames"] == 16
    # one skeleton for the take: the lengths vary far less than the per-frame estimate's
    before, after = person["bone_spread_percent"]
    assert after < 0.5 * before
    assert person["moved_px"][0] < 3.0 < person["moved_mm"][0]  # depth moves, the 2D stays
    assert set(person["lengths_mm"]) == set(tf.BONE_NAMES) and "hip-knee" in tf.BONE_NAMES
    thigh = np.linalg.norm(truth[:, 4] - truth[:, 1], axis=-1).mean()
    assert person["lengths_mm"]["hip-knee"] == pytest.approx(thigh, rel=0.15)
    json.dumps(out.meta)  # the record travels as JSON (npz meta, server replies)


def test_take_summary_of_a_person_never_fitted():
    empty = np.full((3, 24, 3), np.nan)
    assert tf.take_summary(empty, empty, np.eye(3)) == {"frames": 0}


def test_joint_weights_follow_the_2d_scores():
    score = np.full((2, 134), 0.8)
    score[0, 4] = 0.0        # OpenPose-18 right wrist
    score[1] = np.nan        # no scores at all
    w = tf.joint_weights(score)
    assert w[0, 21] == pytest.approx(tf.MIN_WEIGHT)   # SMPL right wrist
    assert w[0, 23] == pytest.approx(tf.MIN_WEIGHT)   # right hand follows the wrist
    assert w[0, 0] == pytest.approx(0.8)
    assert (w[1] == 1.0).all()


def test_foreshortened_depths_restore_arm_depth_from_length():
    """Arm depth offsets shrunk towards 0 (MediaPipe's habit) come back from the bone lengths
    where the estimate's side is clear; the 2D projection does not move."""
    K = intrinsics_from_fov(*SIZE)
    truth = _truth(body="average", motion="wave", camera="front")
    flat = truth.copy()
    for j in tf.ARM_BONES:  # halve each arm bone's depth offset, keeping every joint on its ray
        p = tf.PARENTS[j]
        z = flat[:, p, 2] + 0.5 * (truth[:, j, 2] - truth[:, p, 2])
        flat[:, j] = truth[:, j] / truth[:, j, 2:3] * z[:, None]
    fixed = tf.foreshortened_depths(flat, tf.robust_lengths(truth), min_fraction=0.0)
    np.testing.assert_allclose(project(fixed, K), project(flat, K), atol=1e-6)
    arms = list(tf.ARM_BONES)
    error_before = np.abs(flat[:, arms, 2] - truth[:, arms, 2]).mean()
    error_after = np.abs(fixed[:, arms, 2] - truth[:, arms, 2]).mean()
    assert error_after < 0.2 * error_before, (error_before, error_after)
    untouched = [j for j in range(24) if j not in arms]
    np.testing.assert_array_equal(fixed[:, untouched], flat[:, untouched])


def test_foreshortened_depths_keep_an_unclear_side():
    """Below the trust threshold the estimate's depth offsets are kept as they are."""
    truth = _truth(body="average", motion="wave", camera="front")
    kept = tf.foreshortened_depths(truth, tf.robust_lengths(truth) * 1.3, min_fraction=2.0)
    np.testing.assert_allclose(kept, truth, atol=1e-9)


def _with_depth_offset(joints, child, offset_mm):
    """``joints`` with one child joint moved along its camera ray to its parent's depth plus
    ``offset_mm`` (T,), children of it left where they are."""
    out = joints.copy()
    z = out[:, tf.PARENTS[child], 2] + offset_mm
    out[:, child] = out[:, child] / out[:, child, 2:3] * z[:, None]
    return out


def test_arm_sides_come_from_the_whole_arm_where_the_elbow_is_wrong():
    """MediaPipe's habit: the elbow on the wrong side while the hand's depth relative to the
    shoulder is about right (compressed). The whole-arm choice puts the elbow back."""
    truth = _truth(48, body="average", motion="squat", camera="front")
    lengths = tf.robust_lengths(truth)
    gain = tf.DEFAULT_PARAMS.arm_depth_gain
    est = truth.copy()
    for shoulder, elbow, wrist, hand in tf.ARMS:
        true_dz = {j: truth[:, j, 2] - truth[:, tf.PARENTS[j], 2] for j in (elbow, wrist, hand)}
        # elbow flipped and compressed; the wrist makes up for the flip, so the hand's depth
        # relative to the shoulder stays the truth's / gain
        est = _with_depth_offset(est, elbow, -true_dz[elbow] / gain)
        est = _with_depth_offset(est, wrist, (true_dz[wrist] + 2.0 * true_dz[elbow]) / gain)
        est = _with_depth_offset(est, hand, true_dz[hand] / gain)
    sides = tf.arm_sides(est, lengths, gain)
    for shoulder, elbow, wrist, hand in tf.ARMS:
        true_dz = truth[:, elbow, 2] - truth[:, shoulder, 2]
        clear = np.abs(true_dz) > 0.3 * lengths[tf.BONE_GROUP[elbow]]
        assert clear.sum() >= 20
        own_sides = np.sign(est[:, elbow, 2] - est[:, shoulder, 2])
        assert (own_sides[clear] != np.sign(true_dz[clear])).all()      # the estimate: wrong
        assert (sides[clear, elbow] == np.sign(true_dz[clear])).mean() > 0.9, elbow
    assert (sides[:, [j for j in range(24) if j not in (18, 19, 20, 21)]] == 0).all()


def test_arm_depths_keep_the_2d_smooth_the_arms_and_put_the_hand_on_the_forearm():
    rng = np.random.default_rng(6)
    K = intrinsics_from_fov(*SIZE)
    truth = _truth(48, body="average", motion="wave", camera="three_quarter")
    lengths = tf.robust_lengths(truth)
    est = truth.copy()
    for _, elbow, wrist, hand in tf.ARMS:            # per-frame depth jitter on every arm bone
        for j in (elbow, wrist, hand):
            dz = est[:, j, 2] - est[:, tf.PARENTS[j], 2] + rng.normal(0.0, 40.0, len(est))
            est = _with_depth_offset(est, j, dz)
    smooth = tf.arm_depths(est, lengths, FPS, tf.DEFAULT_PARAMS)
    rough = tf.arm_depths(est, lengths, FPS, replace(tf.DEFAULT_PARAMS, arm_smoothing_s=None))
    np.testing.assert_allclose(project(smooth, K), project(est, K), atol=1e-6)
    jerk = lambda X, j: np.abs(np.diff(X[:, j, 2] - X[:, tf.PARENTS[j], 2], 2)).mean()
    for _, elbow, wrist, hand in tf.ARMS:
        assert jerk(smooth, wrist) < 0.5 * jerk(rough, wrist)
        slope = lambda a, b, X=smooth: (X[:, b, 2] - X[:, a, 2]) / lengths[tf.BONE_GROUP[b]]
        np.testing.assert_allclose(slope(wrist, hand), slope(elbow, wrist), atol=1e-9)
    untouched = [j for j in range(24) if j not in tf.ARM_BONES]
    np.testing.assert_array_equal(smooth[:, untouched], est[:, untouched])


def test_thighs_pointing_at_the_camera_go_in_front():
    """MediaPipe's squat seen from the front: the thighs flat in depth. Anatomy puts the knees
    back in front; ankles and feet move with them; the 2D does not move."""
    K = intrinsics_from_fov(*SIZE)
    truth = _truth(48, body="average", motion="squat", camera="front")
    lengths = tf.robust_lengths(truth)
    flat = truth.copy()
    for hip, knee, ankle, foot in tf.LEGS:
        shift = flat[:, hip, 2] - flat[:, knee, 2]            # knee level with the hip in depth
        for j in (knee, ankle, foot):
            flat = _with_depth_offset(flat, j, flat[:, j, 2] + shift - flat[:, tf.PARENTS[j], 2])
    fixed = tf.thigh_sides(flat, lengths, tf.DEFAULT_PARAMS.thigh_out_of_plane)
    np.testing.assert_allclose(project(fixed, K), project(flat, K), atol=1e-6)
    legs = [j for leg in tf.LEGS for j in leg[1:]]
    before = np.abs(flat[:, legs, 2] - truth[:, legs, 2]).mean()
    after = np.abs(fixed[:, legs, 2] - truth[:, legs, 2]).mean()
    assert after < 0.2 * before, (before, after)
    others = [j for j in range(24) if j not in legs]
    np.testing.assert_array_equal(fixed[:, others], flat[:, others])


@pytest.mark.parametrize("motion, camera", [("walk", "side_left"), ("wave", "front")])
def test_thighs_near_the_image_plane_or_seen_side_on_keep_their_side(motion, camera):
    truth = _truth(48, body="average", motion=motion, camera=camera)
    fixed = tf.thigh_sides(truth, tf.robust_lengths(truth), tf.DEFAULT_PARAMS.thigh_out_of_plane)
    np.testing.assert_allclose(fixed, truth, atol=1e-6)


def _squat_with_pumping_depth(K, rng, num_frames=48):
    """A squat seen from the front whose per-frame estimate slides along the camera rays: the
    2D is right, but the whole body's depth swings by up to 25 % as the thighs foreshorten (what
    MediaPipe does on such clips), so the planted feet slide back and forth."""
    truth = _truth(num_frames, body="average", motion="squat", camera="front")
    swing = 1.0 + 0.25 * np.sin(np.linspace(0.0, 2.0 * np.pi, num_frames)) ** 2
    est = _per_frame_estimate(truth, K, rng, depth_noise_mm=20.0, px_noise=1.0)
    return truth, est * swing[:, None, None]


def test_still_feet_come_from_the_2d_and_a_moving_camera_has_none():
    K = intrinsics_from_fov(*SIZE)
    squat = project(_truth(48, body="average", motion="squat", camera="front"), K)
    assert tf.still_feet(squat, FPS).mean() > 0.9            # planted through the squat
    walk = project(_truth(48, body="average", motion="walk", camera="front"), K)
    assert tf.still_feet(walk, FPS).mean() < 0.5             # feet swing through a walk
    trunk = np.median(np.linalg.norm(squat[:, 12] - squat[:, 0], axis=-1))
    pan = trunk * 0.6 / FPS * np.arange(48)                  # the camera pans: 0.6 trunks/s
    panned = squat + np.stack([pan, np.zeros(48)], -1)[:, None, :]
    assert not tf.still_feet(panned, FPS).any()
    assert not tf.still_feet(squat[:2], FPS).any()           # too short to tell


def test_still_feet_stop_a_pumping_depth_from_sliding_the_feet():
    rng = np.random.default_rng(5)
    K = intrinsics_from_fov(*SIZE)
    truth, est = _squat_with_pumping_depth(K, rng)
    scores = np.ones((len(truth), 134))
    free = tf.fit_person(est, scores, K, FPS, replace(tf.DEFAULT_PARAMS, still_foot_mm=None))
    held = tf.fit_person(est, scores, K, FPS)
    slide = {name: np.nanmean(foot_sliding(x, truth, FPS)) for name, x in
             (("estimate", est), ("free", free), ("held", held))}
    assert slide["held"] < 0.3 * slide["free"], slide
    assert slide["held"] < 0.1, slide                        # m/s
    depth_swing = lambda X: np.ptp(X[:, 0, 2])
    assert depth_swing(held) < 0.5 * depth_swing(free), (depth_swing(held), depth_swing(free))
    err_2d = np.linalg.norm(project(held, K) - project(truth, K), axis=-1).mean()
    assert err_2d < 2.5                                      # still on the 2D evidence
