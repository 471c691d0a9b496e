"""Body types of the synthetic figure: proportions, attachment, floor contact, rendering."""

from __future__ import annotations

import numpy as np
import pytest
from scail_protocol.errors import ScailError
from scail_protocol.joints import SMPL24, SMPL24_PARENTS

from scail_backend.synth import bodies, figure, motions, skeleton
from scail_backend.synth.truth import landmark_table

HELD_APART_MM = 1.0


def _length(joints, a, b):
    return float(np.linalg.norm(joints[SMPL24[a]] - joints[SMPL24[b]]))


def _height(body) -> float:
    mesh = figure.build_mesh(body)
    _, contacts = figure.ground_contacts(body)
    return float(mesh.verts[:, 2].max() - contacts[:, 2].min())


def test_average_body_is_the_original_figure():
    table = skeleton._average_rest_joints()
    assert np.array_equal(skeleton.rest_joints("average"), table)
    assert np.array_equal(skeleton.rest_joints(), table)
    assert np.array_equal(figure.build_mesh("average").verts, figure.build_mesh().verts)


@pytest.mark.parametrize("name", bodies.BODIES)
def test_bone_lengths_follow_the_body_factors(name):
    body = bodies.get_body(name)
    avg, new = skeleton.rest_joints(), skeleton.rest_joints(name)
    for parent, child, factor in (("left_hip", "left_knee", body.legs),
                                  ("left_knee", "left_ankle", body.legs),
                                  ("left_shoulder", "left_elbow", body.arms),
                                  ("left_elbow", "left_wrist", body.arms),
                                  ("spine1", "spine2", body.torso)):
        ratio = _length(new, parent, child) / _length(avg, parent, child)
        assert ratio == pytest.approx(factor * body.height, rel=1e-9), (parent, child)
    # left and right stay mirror images
    left = [SMPL24[n] for n in ("left_hip", "left_knee", "left_shoulder", "left_wrist")]
    right = [SMPL24[n] for n in ("right_hip", "right_knee", "right_shoulder", "right_wrist")]
    np.testing.assert_allclose(new[left] * (-1, 1, 1), new[right], atol=1e-12)


def test_body_types_span_heights_and_builds():
    heights = {name: _height(name) for name in bodies.BODIES}
    assert 1.15 < heights["child"] < 1.35
    assert 1.85 < heights["tall_slim"] < 2.05
    assert heights["short_heavy"] < heights["average"] < heights["tall_slim"]
    hips = {name: _length(skeleton.rest_joints(name), "left_hip", "right_hip") / bodies.get_body(
        name).height for name in bodies.BODIES}
    assert hips["short_heavy"] > 1.3 * hips["average"] > 1.3 * hips["tall_slim"]


@pytest.mark.parametrize("name", bodies.BODIES)
def test_limb_parts_stay_attached_to_their_joints(name):
    """A capsule that runs joint to joint on the average figure still ends at the joints."""
    new = skeleton.rest_joints(name)
    for part_name, start, end in (("left_forearm", "left_elbow", "left_wrist"),
                                  ("left_shin", "left_knee", "left_ankle")):
        avg_part = next(p for p in figure.build_parts() if p.name == part_name)
        bone = np.full(len(avg_part.verts), SMPL24[avg_part.bone])
        moved = skeleton.reshape_rest_points(avg_part.verts, bone, body=name)
        axis = new[SMPL24[end]] - new[SMPL24[start]]
        along = (moved - new[SMPL24[start]]) @ axis / (axis @ axis)
        assert along.min() > -0.35 and along.max() < 1.35  # spans the bone, nothing flies off
        assert abs(np.median(along) - 0.5) < 0.2


@pytest.mark.parametrize("name", bodies.BODIES)
def test_every_body_stands_on_the_floor(name):
    frames = motions.evaluate("walk", np.arange(12) / 8.0, name)
    bones, points = figure.ground_contacts(name)
    glob, joints = skeleton.forward_kinematics(frames.local_quats, frames.root_m, name)
    lowest = skeleton.pose_points(glob, joints, bones, points, name)[..., 2].min(axis=1)
    np.testing.assert_allclose(lowest, 0.0, atol=1e-9)
    d = np.linalg.norm(frames.joints_m[:, 1:] - frames.joints_m[:, list(SMPL24_PARENTS[1:])],
                       axis=-1)
    np.testing.assert_allclose(d, d[:1].repeat(len(d), 0), atol=1e-9)  # rigid skeleton


def test_some_body_types_are_held_out_from_tuning():
    assert set(bodies.TUNING_BODIES) < set(bodies.BODIES)
    held_out = set(bodies.BODIES) - set(bodies.TUNING_BODIES)
    assert {"short_heavy", "tall_slim", "long_legged"} <= held_out


def test_landmarks_move_with_the_body():
    avg, child = landmark_table(), landmark_table("child")
    assert avg.names == child.names
    nose = avg.index("nose")
    assert child.rest_m[nose, 2] < avg.rest_m[nose, 2] - 0.3  # a child's nose is far lower


def test_unknown_body_lists_the_valid_ones():
    with pytest.raises(ScailError) as info:
        bodies.get_body("giant")
    for name in bodies.BODIES:
        assert name in str(info.value)


@pytest.mark.slow
def test_a_held_out_body_renders_with_exact_truth(tmp_path):
    pytest.importorskip("bpy")
    from scail_backend.synth import make_clip
    from scail_protocol.camera import project
    from scail_protocol.sequence import PoseSequence

    clip = make_clip(tmp_path, motion="wave", camera="front", num_frames=2, size=(192, 336),
                     fps=8.0, body="short_heavy")
    truth = PoseSequence.load(clip.truth)
    assert truth.meta["body"] == "short_heavy"
    joints = truth.joints3d[0].astype(np.float64)
    d = np.linalg.norm(joints[:, 1:] - joints[:, list(SMPL24_PARENTS[1:])], axis=-1)
    rest = skeleton.rest_joints("short_heavy")
    want = np.linalg.norm(rest[1:] - rest[list(SMPL24_PARENTS[1:])], axis=-1) * 1000.0
    np.testing.assert_allclose(d, np.broadcast_to(want, d.shape), atol=HELD_APART_MM)
    assert np.isfinite(project(joints, truth.K)).all()
