"""Accuracy metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from scail_protocol.joints import SMPL24

from scail_backend.synth import metrics
from scail_protocol.rotations import axis_angle, quat_to_matrix


def _skeleton(seed=0):
    return np.random.default_rng(seed).normal(size=(24, 3)) * 300.0


def test_mpjpe_ignores_translation_and_measures_one_moved_joint():
    truth = _skeleton()
    pred = truth + (120.0, -40.0, 900.0)  # same pose, elsewhere
    pred[SMPL24["left_wrist"]] += (30.0, 40.0, 0.0)  # a 3-4-5 triangle: 50 mm
    errors = metrics.mpjpe(pred, truth)
    expected = np.zeros(24)
    expected[SMPL24["left_wrist"]] = 50.0
    np.testing.assert_allclose(errors, expected, atol=1e-9)


def test_pa_mpjpe_is_zero_for_a_scaled_rotated_shifted_copy():
    truth = _skeleton(1)
    rotation = quat_to_matrix(axis_angle((0.3, 1.0, 0.2), 2.5))
    pred = 1.7 * truth @ rotation.T + (40.0, -10.0, 3000.0)
    np.testing.assert_allclose(metrics.pa_mpjpe(pred, truth), 0.0, atol=1e-8)
    assert metrics.mpjpe(pred, truth).mean() > 100.0  # root alignment alone cannot undo it


def test_pa_mpjpe_of_a_bent_line_matches_hand_computation():
    # truth: (-1,0,0), (0,0,0), (1,0,0); pred bends the middle point up by 1.
    # Centred pred X: (-1,-1/3,0), (0,2/3,0), (1,-1/3,0); H = XᵀY = diag(2,0,0) → R = I,
    # scale = 2 / |X|² = 2 / (8/3) = 0.75; aligned = 0.75·X → errors 0.75·|y| per point.
    truth = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    pred = np.array([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    expected = [np.hypot(0.25, 0.25), 0.5, np.hypot(0.25, 0.25)]
    np.testing.assert_allclose(metrics.pa_mpjpe(pred, truth), expected, atol=1e-12)


def test_procrustes_never_reflects():
    truth = _skeleton(2)
    mirrored = truth * (-1.0, 1.0, 1.0)  # only a reflection would align it exactly
    aligned = metrics.procrustes_align(mirrored, truth)
    assert metrics.joint_errors(aligned, truth).mean() > 1.0


def test_missing_frames_give_nan_errors_only_there():
    truth = np.stack([_skeleton(3), _skeleton(4)])
    pred = truth.copy()
    pred[1, 5] = np.nan
    pa = metrics.pa_mpjpe(pred, truth)
    assert np.isnan(pa[1]).all() and np.allclose(pa[0], 0.0)
    assert np.isnan(metrics.mpjpe(pred, truth)[1, 5])


def test_pck_counts_present_errors_at_or_below_threshold():
    errors = np.array([10.0, 50.0, 60.0, 120.0, np.nan])
    assert metrics.pck(errors, 50.0) == pytest.approx(2 / 4)
    assert metrics.pck(errors, 100.0) == pytest.approx(3 / 4)
    assert metrics.pck(errors, 100.0, joints=[0, 3]) == pytest.approx(1 / 2)
    assert np.isnan(metrics.pck(np.full(3, np.nan), 50.0))


def test_joint_groups_are_disjoint_and_cover_all_24_joints():
    indices = [j for group in metrics.GROUP_INDICES.values() for j in group]
    assert sorted(indices) == list(range(24))


def test_left_right_swap_judges_only_frames_seen_from_the_front():
    truth = np.zeros((3, 24, 2))
    truth[:, SMPL24["left_shoulder"], 0] = (300.0, 300.0, 300.0)
    truth[:, SMPL24["right_shoulder"], 0] = (200.0, 200.0, 295.0)  # last frame: side-on
    pred = truth.copy()
    pred[1, [SMPL24["left_shoulder"], SMPL24["right_shoulder"]]] = \
        truth[1, [SMPL24["right_shoulder"], SMPL24["left_shoulder"]]]
    swapped = metrics.left_right_swapped(pred, truth, SMPL24["left_shoulder"],
                                         SMPL24["right_shoulder"])
    np.testing.assert_array_equal(swapped[:2], (0.0, 1.0))
    assert np.isnan(swapped[2])


def test_acceleration_error_ignores_offsets_and_counts_jitter():
    t = np.arange(6, dtype=np.float64)
    truth = np.zeros((6, 2, 3))
    truth[:, :, 0] = 0.5 * t[:, None] ** 2            # constant acceleration 1 mm/frame²
    shifted = truth + np.array([40.0, -7.0, 3.0])     # a constant offset: no acceleration error
    np.testing.assert_allclose(metrics.acceleration_errors(shifted, truth, 10.0)[1:-1], 0.0,
                               atol=1e-9)
    jitter = truth.copy()
    jitter[3, 1, 2] += 2.0                            # one joint 2 mm off in one frame
    err = metrics.acceleration_errors(jitter, truth, 10.0)
    # second differences at frames 2, 3, 4 see +2, -4, +2 mm; times fps² = 100
    np.testing.assert_allclose(err[2:5, 1], [200.0, 400.0, 200.0])
    assert np.isnan(err[[0, 5]]).all() and np.allclose(err[1:-1, 0], 0.0)
    jitter[2, 0] = np.nan                             # a missing frame spoils its neighbours
    err = metrics.acceleration_errors(jitter, truth, 10.0)
    assert np.isnan(err[1:4, 0]).all() and np.isfinite(err[4, 0])


def _standing_take(num_frames=10):
    """A figure standing still on level ground 4 m in front of a level camera (camera frame,
    mm, y down): the balls of both feet at y = +1000."""
    from scail_backend.synth import cameras, motions
    from scail_protocol.camera import blender_to_camera

    frames = motions.evaluate("wave", np.zeros(num_frames), "average")
    stage = cameras.stage_to_world(cameras.get_camera("front"))
    return blender_to_camera(frames.joints_m @ stage[:3, :3].T + stage[:3, 3])


def test_foot_sliding_counts_moves_along_the_floor_while_the_truth_is_planted():
    fps = 20.0
    truth = _standing_take()
    feet = [SMPL24["left_foot"], SMPL24["right_foot"]]
    shifted = truth + np.array([30.0, -5.0, 200.0])          # a constant offset: no sliding
    np.testing.assert_allclose(metrics.foot_sliding(shifted, truth, fps)[1:], 0.0, atol=1e-9)
    sliding = truth.copy()
    sliding[:, feet[0], 0] += 4.0 * np.arange(10)            # left foot creeps 4 mm/frame in x
    sliding[:, feet[1], 1] -= 4.0 * np.arange(10)            # right foot lifts straight up
    out = metrics.foot_sliding(sliding, truth, fps)
    assert np.isnan(out[0]).all()
    np.testing.assert_allclose(out[1:, 0], 4.0 * fps / 1000.0)   # 0.08 m/s along the floor
    np.testing.assert_allclose(out[1:, 1], 0.0, atol=1e-9)      # up is not along the floor
    sliding[4, feet[0]] = np.nan                              # a missing frame: NaN either side
    assert np.isnan(metrics.foot_sliding(sliding, truth, fps)[[4, 5], 0]).all()


def test_foot_sliding_skips_feet_the_truth_lifts():
    truth = _standing_take()
    truth[:, SMPL24["right_foot"], 1] -= 300.0               # right foot held 30 cm up
    out = metrics.foot_sliding(truth + 1.0, truth, 20.0)
    assert np.isnan(out[:, 1]).all() and np.isfinite(out[1:, 0]).all()
