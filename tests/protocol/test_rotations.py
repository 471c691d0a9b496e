"""Quaternion and rotation-matrix maths (w, x, y, z order), shared by the synth and the add-on."""

import math

import numpy as np
import pytest

from scail_protocol import rotations as R


@pytest.mark.parametrize("angle", [0.0, 1e-7, 0.5, math.pi / 2, math.pi - 1e-7, math.pi])
def test_quaternion_matrix_round_trip(angle):
    rng = np.random.default_rng(3)
    axes = rng.normal(size=(16, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    q = np.concatenate([np.full((16, 1), math.cos(angle / 2)), axes * math.sin(angle / 2)], -1)
    back = R.matrix_to_quat(R.quat_to_matrix(q))
    same = np.minimum(np.abs(back - q).max(-1), np.abs(back + q).max(-1))
    assert same.max() < 1e-7


def test_make_continuous_removes_sign_flips():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(50, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    smooth = q.copy()
    for t in range(1, 50):  # a slowly varying sequence...
        smooth[t] = smooth[t - 1] + 0.05 * q[t]
        smooth[t] /= np.linalg.norm(smooth[t])
    flipped = smooth * np.where(rng.random(50) < 0.5, -1.0, 1.0)[:, None]  # ...with random signs
    fixed = R.make_continuous(flipped)
    assert np.all(np.sum(fixed[1:] * fixed[:-1], -1) > 0)
    assert np.allclose(np.abs(np.sum(fixed * smooth, -1)), 1.0)


def test_quat_mul_composes_like_matrices(rng):
    a, b = R.axis_angle(rng.normal(size=3), 0.7), R.axis_angle(rng.normal(size=3), -1.9)
    np.testing.assert_allclose(R.quat_to_matrix(R.quat_mul(a, b)),
                               R.quat_to_matrix(a) @ R.quat_to_matrix(b), atol=1e-12)
    np.testing.assert_allclose(R.quat_to_matrix(R.chain(a, b)),
                               R.quat_to_matrix(R.quat_mul(a, b)), atol=1e-12)


def test_conjugate_inverts_and_apply_rotates(rng):
    q = R.axis_angle(rng.normal(size=3), 2.2)
    v = rng.normal(size=(5, 3))
    np.testing.assert_allclose(R.quat_apply(R.quat_conj(q), R.quat_apply(q, v)), v, atol=1e-12)
    np.testing.assert_allclose(R.quat_apply(R.rot_z(math.pi / 2), [1.0, 0.0, 0.0]),
                               [0.0, 1.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("weight", [0.0, 0.25, 1.0])
def test_slerp_interpolates_the_angle_linearly(weight):
    a, b = R.rot_x(0.0), R.rot_x(1.2)
    np.testing.assert_allclose(R.slerp(a, b, weight), R.rot_x(1.2 * weight), atol=1e-12)
    np.testing.assert_allclose(R.slerp(a, a, weight), a, atol=1e-12)  # identical ends: no NaN


def test_mirror_maps_a_left_rotation_to_the_right():
    left = R.rot_z(0.4)  # rotating about z swaps sign under x -> -x
    np.testing.assert_allclose(R.mirror_left_to_right(left), R.rot_z(-0.4), atol=1e-12)
