"""The add-on's rig maths (numpy only): joints -> bone poses -> forward kinematics."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scail_protocol.errors import SequenceError

_PATH = Path(__file__).resolve().parents[2] / "blender_addon" / "rigmath.py"
_spec = importlib.util.spec_from_file_location("scail_rigmath_under_test", _PATH)
rm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rm)


def _random_rest(rng, lengths):
    """Rest matrices with Y along each bone and a random roll (any roll must work)."""
    heads, tails = rm.rest_skeleton(lengths, (0.1, 3.0, -0.2))
    rest = np.zeros((24, 4, 4))
    rest[:, 3, 3] = 1.0
    for j in range(24):
        y = (tails[j] - heads[j]) / np.linalg.norm(tails[j] - heads[j])
        a = rng.normal(size=3)
        x = a - a @ y * y
        x /= np.linalg.norm(x)
        rest[j, :3, :3] = np.stack([x, y, np.cross(x, y)], -1)
        rest[j, :3, 3] = heads[j]
    return rest, heads


@pytest.fixture
def rig():
    rng = np.random.default_rng(7)
    lengths = np.r_[0.0, rng.uniform(0.05, 0.45, 23)]
    rest, heads = _random_rest(rng, lengths)
    joints = heads[None] + rng.normal(scale=0.06, size=(30, 24, 3))
    return rest, joints


def test_pose_from_joints_exact_mode_reproduces_every_joint(rig):
    rest, joints = rig
    quat, loc = rm.pose_from_joints(joints, rest, exact=True)
    heads = rm.forward_kinematics(rest, rm.basis_matrices(quat, loc))[..., :3, 3]
    np.testing.assert_allclose(heads, joints, atol=1e-9)  # float64 maths: exact to rounding


def test_pose_from_joints_rigid_mode_keeps_rest_lengths_and_bone_directions(rig):
    rest, joints = rig
    quat, loc = rm.pose_from_joints(joints, rest, exact=False)
    assert np.all(loc[:, 1:] == 0.0)
    posed = rm.forward_kinematics(rest, rm.basis_matrices(quat, loc))
    np.testing.assert_allclose(posed[:, 0, :3, 3], joints[:, 0], atol=1e-9)  # root located
    for j in range(24):
        child = rm.axis_child(j)
        if child < 0:
            continue
        want = joints[:, child] - joints[:, j]
        want /= np.linalg.norm(want, axis=-1, keepdims=True)
        np.testing.assert_allclose(posed[:, j, :3, 1], want, atol=1e-9)
        rest_len = np.linalg.norm(rest[child, :3, 3] - rest[j, :3, 3])
        np.testing.assert_allclose(np.linalg.norm(posed[:, child, :3, 3] - posed[:, j, :3, 3],
                                                  axis=-1), rest_len, atol=1e-9)


def test_single_child_bones_take_no_twist_relative_to_parent(rig):
    rest, joints = rig
    quat, _ = rm.pose_from_joints(joints, rest)
    for j in (4, 18, 19):  # knees and elbows: one child each
        # A shortest arc from +Y has no component about the bone's own (local Y) axis.
        np.testing.assert_allclose(quat[:, j, 2], 0.0, atol=1e-12)


def test_spin_reference_sets_pelvis_twist_from_hip_line(rig):
    rest, joints = rig
    quat, loc = rm.pose_from_joints(joints, rest)
    posed = rm.forward_kinematics(rest, rm.basis_matrices(quat, loc))
    hips = joints[:, 1] - joints[:, 2]  # right hip -> left hip
    axis = posed[:, 0, :3, 1]
    hips_perp = hips - np.sum(hips * axis, -1, keepdims=True) * axis
    hips_perp /= np.linalg.norm(hips_perp, axis=-1, keepdims=True)
    rest_hips = rest[1, :3, 3] - rest[2, :3, 3]
    rest_axis = rest[0, :3, 1]
    rest_perp = rest_hips - rest_hips @ rest_axis * rest_axis
    rest_perp /= np.linalg.norm(rest_perp)
    carried = np.einsum("tij,j->ti", posed[:, 0, :3, :3] @ rest[0, :3, :3].T, rest_perp)
    np.testing.assert_allclose(carried, hips_perp, atol=1e-9)


def test_shortest_arc_handles_parallel_and_antiparallel():
    v = np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    q = rm._shortest_arc_from_y(v)
    turned = np.einsum("nij,j->ni", rm.quat_to_matrix(q), [0.0, 1.0, 0.0])
    np.testing.assert_allclose(turned, v, atol=1e-12)


def test_bone_names_are_readable_unique_and_mirrored():
    names = rm.bone_names()
    assert len(set(names)) == 24
    assert names[0] == "Pelvis" and names[16] == "Shoulder.L" and names[21] == "Wrist.R"
    for name in names:
        if name.endswith(".L"):
            assert name[:-2] + ".R" in names


def test_median_bone_lengths_ignores_missing_and_raises_when_a_bone_never_exists():
    joints = np.zeros((5, 24, 3))
    for j in range(1, 24):
        joints[:, j] = joints[:, rm.PARENTS[j]] + (0.0, 0.0, 0.1 * j)
    joints[2] = np.nan
    np.testing.assert_allclose(rm.median_bone_lengths(joints)[1:], 0.1 * np.arange(1, 24))
    joints[:, 7] = np.nan
    with pytest.raises(SequenceError, match="left_knee -> left_ankle"):
        rm.median_bone_lengths(joints)
