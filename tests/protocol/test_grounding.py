"""Floor fit, contacts and the grounding transform (numpy only, synthetic feet on known floors)."""

from __future__ import annotations

import numpy as np
import pytest
from scail_protocol import grounding as G
from scail_protocol.errors import SequenceError
from scail_protocol.retarget import shortest_arc

FPS = 30.0


def _stepping(num_frames=120, seed=0):
    """(T, 24, 3) joints on the floor Z = 0, facing -Y: feet alternately planted and lifted."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames) / FPS
    joints = np.zeros((num_frames, 24, 3))
    joints[:, 0] = np.stack([0.2 * t, 0.2 * t, np.full_like(t, 0.95)], -1)  # pelvis drifting
    joints[:, 1] = joints[:, 0] + [0.09, 0, -0.08]  # left hip (+X)
    joints[:, 2] = joints[:, 0] + [-0.09, 0, -0.08]
    phase = np.sin(2 * np.pi * 1.0 * t)
    for side, (ball, ankle, x) in enumerate(((10, 7, 0.12), (11, 8, -0.12))):
        lift = np.maximum((1 if side == 0 else -1) * phase, 0) * 0.15
        steps = np.floor(t * 2) / 2  # a planted foot stays put until it lifts again
        joints[:, ball] = np.stack([0.2 * steps + x, 0.2 * steps - 0.1, lift], -1)
        joints[:, ankle] = joints[:, ball] + [0, 0.12, 0.06]
    return joints + rng.normal(0, 0.002, joints.shape)


def _tilt(joints, axis=(1.0, 0.3, 0.0), deg=12.0, shift=(0.2, 3.0, -1.1)):
    """The same joints seen from a tilted, displaced frame: (moved joints, rotation, shift)."""
    axis = np.asarray(axis) / np.linalg.norm(axis)
    rotation = shortest_arc(np.array([0.0, 0.0, 1.0]), np.cos(np.radians(deg)) * np.array([0, 0, 1.0])
                            + np.sin(np.radians(deg)) * np.cross(axis, [0, 0, 1.0]))
    return joints @ rotation.T + shift, rotation


def test_fit_floor_recovers_a_tilted_floor():
    joints = _stepping()
    moved, rotation = _tilt(joints)
    floor = G.fit_floor(moved, FPS)
    assert floor.fitted
    true_normal = rotation @ [0.0, 0.0, 1.0]
    assert np.degrees(np.arccos(floor.normal @ true_normal)) < 1.0
    heights = floor.height(moved[:, [10, 11]])
    assert np.abs(heights[floor.contacts]).max() < 0.01  # contacts lie on the fitted floor
    assert floor.contacts.sum() > 0.3 * floor.contacts.size


def test_grounding_matrix_puts_the_floor_on_z0_and_faces_minus_y():
    joints = _stepping()
    moved, _ = _tilt(joints)
    floor = G.fit_floor(moved, FPS)
    matrix = G.grounding_matrix(moved, floor)
    back = G.apply_matrix(matrix, moved)
    np.testing.assert_allclose(matrix[:3, :3] @ matrix[:3, :3].T, np.eye(3), atol=1e-9)
    assert np.linalg.det(matrix[:3, :3]) == pytest.approx(1.0)
    assert np.abs(back[:, [10, 11], 2][floor.contacts]).max() < 0.01
    left = (back[:, 1] - back[:, 2]).mean(axis=0)
    assert left[0] > 0.99 * np.linalg.norm(left)
    np.testing.assert_allclose(np.median(back[:, 0, :2], axis=0), 0.0, atol=1e-3)  # medians per axis


def test_clustered_contacts_keep_the_first_guess_up():
    joints = _stepping()
    joints[:, :, :2] = joints[:1, :, :2]  # nobody moves sideways: feet on two points only
    joints[:, 11, :2] = joints[:, 10, :2] + [0.001, 0.0]
    floor = G.fit_floor(joints, FPS)
    assert not floor.fitted
    np.testing.assert_allclose(floor.normal, [0, 0, 1])


def test_missing_feet_or_hips_raise():
    joints = np.full((10, 24, 3), np.nan)
    with pytest.raises(SequenceError, match="foot"):
        G.fit_floor(joints, FPS)
    with pytest.raises(SequenceError, match="hips"):
        G.facing_direction(joints, [0, 0, 1.0])


def test_contacts_need_low_and_slow_feet():
    joints = _stepping()
    contacts = G.detect_contacts(joints, FPS)
    lifted = joints[:, [10, 11], 2] > 0.08
    assert not (contacts & lifted).any()
