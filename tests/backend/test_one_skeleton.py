"""Every procedural body is the one skeleton of scail_protocol.skeleton: the synthetic figure,
the sample walkers and (tests/addon/motion.py) the add-on tests' takes. Each check reads the bone
lengths from that one home, so a private copy of the table fails here."""

from __future__ import annotations

import numpy as np

from scail_protocol import skeleton
from scail_protocol.joints import SMPL24_PARENTS

CHILDREN = [j for j, p in enumerate(SMPL24_PARENTS) if p >= 0]


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """(..., 23) lengths of the parent -> child bones of (..., 24, 3) joints."""
    parents = [SMPL24_PARENTS[j] for j in CHILDREN]
    return np.linalg.norm(joints[..., CHILDREN, :] - joints[..., parents, :], axis=-1)


def test_forward_kinematics_keeps_the_rest_bone_lengths():
    rng = np.random.default_rng(4)
    quats = rng.normal(size=(5, 24, 4))
    quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
    _, joints = skeleton.forward_kinematics(quats, rng.normal(size=(5, 3)),
                                            skeleton.bone_offsets_mm())
    expected = bone_lengths(skeleton.facing_camera_mm(skeleton.rest_joints_m()))
    np.testing.assert_allclose(bone_lengths(joints), np.broadcast_to(expected, (5, 23)),
                               rtol=1e-9)


def test_the_sample_walkers_are_the_one_skeleton():
    from scail_backend.render.samples import walking_sequence

    seq = walking_sequence(6, (128, 224), num_people=2)
    expected = bone_lengths(skeleton.facing_camera_mm(skeleton.rest_joints_m()))
    np.testing.assert_allclose(bone_lengths(seq.joints3d.astype(np.float64)),
                               np.broadcast_to(expected, (2, 6, 23)), rtol=1e-5)


def test_the_synthetic_figure_is_the_one_skeleton():
    from scail_backend.synth import skeleton as synth_skeleton

    np.testing.assert_array_equal(synth_skeleton.rest_joints(), skeleton.rest_joints_m())
    np.testing.assert_array_equal(synth_skeleton.rest_tails(), skeleton.rest_tails_m())
