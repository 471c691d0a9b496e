"""The aligned camera and how the 2D overlay follows it, against hand-computed values (§9, §15)."""

import numpy as np
import pytest

from scail_protocol import joints as J
from scail_protocol.alignment import (FACE_SCALE_MAX, FACE_SCALE_MIN, face_scale, face_size,
                                      joint_displacement, move_overlay, scale_about)
from scail_protocol.camera import (aligned_intrinsics, alignment_parameters, intrinsics_from_fov,
                                   project)

SIZE = (512, 896)
K0 = intrinsics_from_fov(*SIZE)
PARAMS = (1.2, 0.9, 40.0, -30.0)  # the reference spec's example (§15)
F = 860.5999928831


def test_aligned_intrinsics_is_the_reference_K_and_inverts():
    K1 = aligned_intrinsics(K0, *PARAMS)
    expected = [[F * 1.2, 0, 448 + 40], [0, F * 1.2 * 0.9, 256 - 30], [0, 0, 1]]
    np.testing.assert_allclose(K1, expected, rtol=1e-9)
    np.testing.assert_allclose(alignment_parameters(K0, K1), PARAMS, rtol=1e-12, atol=1e-9)


def test_overlay_shift_of_the_spec_example():
    """§15: joint (100, -500, 3000) with (1.2, 0.9, 40, -30): Δ = (45.737, -41.475) px."""
    joint = np.array([100.0, -500.0, 3000.0])
    delta = joint_displacement(joint, K0, joint, aligned_intrinsics(K0, *PARAMS))
    np.testing.assert_allclose(delta, (45.737, -41.475), atol=1e-3)
    # Δu = f(m-1)X/Z + p, Δv = f(ms-1)Y/Z + q
    assert delta[0] == pytest.approx(F * 0.2 * 100 / 3000 + 40, abs=1e-9)
    assert delta[1] == pytest.approx(F * (1.08 - 1) * -500 / 3000 - 30, abs=1e-9)


def test_missing_joint_moves_nothing():
    joints = np.array([[np.nan] * 3, [0.0, 0.0, -10.0]])  # missing; behind the camera
    delta = joint_displacement(joints, K0, joints, aligned_intrinsics(K0, *PARAMS))
    assert (delta == 0).all()


def test_scale_about_and_missing_centre():
    points = np.array([[10.0, 20.0], [12.0, 18.0], [np.nan, np.nan]])
    out = scale_about(points, points[0], (1.2, 1.08))
    np.testing.assert_allclose(out[1], (10 + 2 * 1.2, 20 - 2 * 1.08))
    assert np.isnan(out[2]).all()
    unchanged = scale_about(points, np.array([np.nan, np.nan]), 2.0)
    np.testing.assert_array_equal(unchanged[:2], points[:2])


def _face(tip, radius):
    """68 landmarks on a circle of ``radius`` px around the nose tip."""
    angles = np.linspace(0, 2 * np.pi, 67, endpoint=False)
    others = np.stack([np.cos(angles), np.sin(angles)], -1) * radius + tip
    return np.insert(others, J.FACE68_NOSE_TIP, tip, axis=0)


@pytest.mark.parametrize("ratio, expected", [(1.25, 1.25), (2.0, FACE_SCALE_MAX),
                                             (0.5, FACE_SCALE_MIN), (1.0, 1.0)])
def test_face_scale_is_the_size_ratio_clipped(ratio, expected):
    driving, reference = _face((300, 200), 20.0), _face((500, 250), 20.0 * ratio)
    assert face_scale(driving, reference, SIZE) == pytest.approx(expected)


def test_face_size_is_in_normalised_units_and_ignores_missing():
    face = np.full((68, 2), np.nan)
    face[J.FACE68_NOSE_TIP] = (100, 100)
    face[0] = (100 + 89.6, 100)  # 0.1 of the width
    face[1] = (100, 100 + 51.2)  # 0.1 of the height
    assert face_size(face, SIZE) == pytest.approx(0.1)
    face[J.FACE68_NOSE_TIP] = np.nan
    assert np.isnan(face_size(face, SIZE))
    assert face_scale(face, _face((0, 0), 5), SIZE) == 1.0  # no driving nose tip: no scaling


def test_move_overlay_against_hand_computed_values():
    m, s, p, q = PARAMS
    K1 = aligned_intrinsics(K0, *PARAMS)
    joints = np.full((24, 3), np.nan)
    joints[J.SMPL24["head"]] = (100.0, -500.0, 3000.0)
    joints[J.SMPL24["left_wrist"]] = (300.0, 0.0, 2500.0)
    joints[J.SMPL24["right_wrist"]] = (-300.0, 100.0, 2000.0)
    kp = np.full((134, 2), np.nan)
    kp[0] = (450.0, 100.0)                       # body point 0 (nose)
    kp[2] = (420.0, 160.0)                       # right shoulder
    kp[J.FACE][J.FACE68_NOSE_TIP] = (452.0, 104.0)
    kp[J.FACE][36] = (440.0, 96.0)               # an eye corner
    kp[J.LEFT_HAND][0] = (600.0, 300.0)          # left wrist
    kp[J.LEFT_HAND][8] = (610.0, 280.0)          # index tip
    kp[J.RIGHT_HAND][0] = (200.0, 330.0)         # right wrist; its other points missing
    out = move_overlay(kp, joints, K0, joints, K1, face_scale_factor=1.25,
                       hand_scale_xy=(m, m * s))
    head = (45.737333, -41.474667)               # the spec's Δ for the head joint
    lw = (F * 0.2 * 300 / 2500 + 40, -30.0)      # Y = 0: only q moves v
    rw = (F * 0.2 * -300 / 2000 + 40, F * 0.08 * 100 / 2000 - 30)
    np.testing.assert_allclose(out[0], np.add((450, 100), head), atol=1e-3)
    np.testing.assert_allclose(out[2], np.add((450 - 30 * 1.25, 100 + 60 * 1.25), head), atol=1e-3)
    tip = np.add((452, 104), head)
    np.testing.assert_allclose(out[J.FACE][J.FACE68_NOSE_TIP], tip, atol=1e-3)
    np.testing.assert_allclose(out[J.FACE][36], tip + np.multiply((-12, -8), 1.25), atol=1e-3)
    wrist = np.add((600, 300), lw)
    np.testing.assert_allclose(out[J.LEFT_HAND][0], wrist, atol=1e-3)
    np.testing.assert_allclose(out[J.LEFT_HAND][8], wrist + (10 * 1.2, -20 * 1.08), atol=1e-3)
    np.testing.assert_allclose(out[J.RIGHT_HAND][0], np.add((200, 330), rw), atol=1e-3)
    assert np.isnan(out[J.RIGHT_HAND][1:]).all() and np.isnan(out[1]).all()
    assert out.dtype == np.float32


def test_move_overlay_identity_changes_nothing():
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 400, (2, 3, 134, 2))
    joints = rng.uniform(100, 200, (2, 3, 24, 3)) + (0, 0, 3000)
    out = move_overlay(kp, joints, K0, joints, K0, face_scale_factor=1.0, hand_scale_xy=(1, 1))
    np.testing.assert_allclose(out, kp, atol=1e-4)


def test_moved_joint_carries_its_points_along():
    """Adapted bones: same camera, the wrist moved 100 mm right -> its hand moves with it."""
    before = np.full((24, 3), 1.0) + (0, 0, 3000)
    after = before.copy()
    after[J.SMPL24["left_wrist"], 0] += 100.0
    kp = np.full((134, 2), 50.0)
    out = move_overlay(kp, before, K0, after, K0, face_scale_factor=1.0, hand_scale_xy=(1, 1))
    shift = project(after[20], K0) - project(before[20], K0)
    np.testing.assert_allclose(out[J.LEFT_HAND], np.broadcast_to(50.0 + shift, (21, 2)), atol=1e-4)
    np.testing.assert_allclose(out[J.RIGHT_HAND], 50.0)
