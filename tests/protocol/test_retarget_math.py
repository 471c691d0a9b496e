"""Retargeting maths (numpy only): arcs, rest compensation, FK, two-bone IK, planting."""

from __future__ import annotations

import numpy as np
import pytest
from scail_protocol import retarget as R
from scail_protocol.runs import true_runs


@pytest.mark.parametrize("scale", [1.0, 1e-7])
def test_shortest_arc_turns_a_onto_b(scale):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 3))
    b = a + scale * rng.normal(size=(200, 3))
    m = R.shortest_arc(a, b)
    got = np.einsum("nij,nj->ni", m, a / np.linalg.norm(a, axis=-1, keepdims=True))
    np.testing.assert_allclose(got, b / np.linalg.norm(b, axis=-1, keepdims=True), atol=1e-9)
    np.testing.assert_allclose(m @ np.swapaxes(m, -1, -2), np.broadcast_to(np.eye(3), m.shape),
                               atol=1e-9)


def test_shortest_arc_of_opposite_vectors_is_a_half_turn():
    for a in ([0, 0, 1.0], [1.0, 0, 0], [0.3, -0.2, 0.9]):
        a = np.asarray(a)
        m = R.shortest_arc(a, -a)
        np.testing.assert_allclose(m @ a, -a, atol=1e-9)
        assert np.linalg.det(m) == pytest.approx(1.0)


def _chain(directions, lengths, rolls):
    """A 3-bone chain skeleton along the given rest directions (world)."""
    n = len(directions)
    rest = np.tile(np.eye(4), (n, 1, 1))
    head = np.zeros(3)
    for b, (d, length, roll) in enumerate(zip(directions, lengths, rolls)):
        y = np.asarray(d, float) / np.linalg.norm(d)
        frame = R.shortest_arc(np.array([0, 1.0, 0]), y)
        twist = R.shortest_arc(np.array([1.0, 0, 0]), np.array([np.cos(roll), 0, np.sin(roll)]))
        rest[b, :3, :3] = frame @ twist
        rest[b, :3, 3] = head
        head = head + y * length
    return R.Skeleton(names=tuple(f"b{i}" for i in range(n)), parents=np.arange(n) - 1,
                      rest=rest, lengths=np.asarray(lengths, float))


def test_transfer_makes_target_bones_point_like_the_source_whatever_the_rest_pose():
    rng = np.random.default_rng(1)
    source = _chain([(1, 0, 0), (1, 0, 0), (1, 0, 0)], [0.3, 0.3, 0.1], [0, 0, 0])  # T-pose arm
    target = _chain([(1, 0, -1), (1, 0, -1.2), (1, 0, -1)], [0.5, 0.4, 0.2], [0.7, -1.2, 2.0])
    T = 50
    turns = R.shortest_arc(np.array([1.0, 0, 0]), rng.normal(size=(T, 3, 3)))  # (T, 3, 3, 3)
    posed = np.empty((T, 24, 3, 3))
    posed[:] = np.eye(3)
    src_rest = np.tile(np.eye(3), (24, 1, 1))
    src_rest[:3] = source.rest[:, :3, :3]
    posed[:, :3] = turns @ source.rest[:, :3, :3]
    mapping = np.array([0, 1, 2])
    desired = R.transfer_orientations(posed, src_rest, target, mapping, np.eye(3))
    pose = R.pose_skeleton(target, desired, 0, np.zeros((T, 3)))
    for b in range(3):
        want = posed[:, b, :, 1]
        got = pose.rotations[:, b, :, 1]
        np.testing.assert_allclose(got, want, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(pose.quats, axis=-1), 1.0, atol=1e-9)


def test_two_bone_ik_reaches_the_goal_and_keeps_lengths():
    rng = np.random.default_rng(2)
    T = 100
    hip = rng.normal(size=(T, 3))
    knee = hip + [0, -0.15, -0.42] + 0.02 * rng.normal(size=(T, 3))  # bent knees
    ankle = knee + [0, 0.15, -0.40] + 0.02 * rng.normal(size=(T, 3))
    goal = ankle + 0.08 * rng.normal(size=(T, 3))
    thigh_turn, shin_turn = R.two_bone_ik(hip, knee, ankle, goal)
    new_knee = hip + np.einsum("tij,tj->ti", thigh_turn, knee - hip)
    new_ankle = new_knee + np.einsum("tij,tj->ti", shin_turn @ thigh_turn, ankle - knee)
    reachable = np.linalg.norm(goal - hip, axis=-1) < (np.linalg.norm(knee - hip, axis=-1)
                                                       + np.linalg.norm(ankle - knee, axis=-1))
    assert reachable.mean() > 0.5
    np.testing.assert_allclose(new_ankle[reachable], goal[reachable], atol=1e-6)
    far = ~reachable  # straightened toward the goal
    toward = (goal - hip)[far] / np.linalg.norm((goal - hip)[far], axis=-1, keepdims=True)
    reach = (new_ankle - hip)[far]
    np.testing.assert_allclose(reach / np.linalg.norm(reach, axis=-1, keepdims=True), toward,
                               atol=1e-3)


def test_planted_targets_hold_each_contact_run_still_on_the_floor():
    T = 40
    points = np.stack([np.linspace(0, 1, T), np.zeros(T), np.full(T, 0.03)], -1)
    contact = np.zeros(T, bool)
    contact[10:20] = True
    goal, weight = R.planted_targets(points, contact, floor_z=0.0, blend_frames=3)
    assert true_runs(contact) == [(10, 20)]
    np.testing.assert_allclose(goal[10:20], np.broadcast_to([points[10:20, 0].mean(), 0, 0], (10, 3)))
    assert weight[10:20].min() == 1.0 and weight[:7].max() == 0.0 and weight[23:].max() == 0.0
    assert 0 < weight[8] < weight[9] < 1  # eases in
    np.testing.assert_allclose(goal[:7], points[:7])


def test_root_trajectory_scales_the_displacement():
    src = np.array([[1.0, 2.0, 0.9], [1.5, 2.0, 1.0], [2.0, 3.0, 0.9]])
    out = R.root_trajectory(src, ratio=2.0, target_start=np.array([5.0, 5.0, 2.0]),
                            source_floor_z=0.0, target_floor_z=0.1, in_place=False)
    np.testing.assert_allclose(out, [[5, 5, 1.9], [6, 5, 2.1], [7, 7, 1.9]])
    still = R.root_trajectory(src, ratio=2.0, target_start=np.array([5.0, 5.0, 2.0]),
                              source_floor_z=0.0, target_floor_z=0.1, in_place=True)
    np.testing.assert_allclose(still[:, :2], 5.0)
