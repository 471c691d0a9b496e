"""Alignment to a reference character (docs/pipeline.md §9) on synthetic poses with known answers.

Tolerances: an exact (noise-free) solve recovers m and s within 1e-6 and p, q within 1e-4 px;
on noisy targets our least squares and the reference's L-BFGS-B reach the same minimum (cost
within 1e-6 relative, parameters within 1e-3 / 0.1 px).
"""

import logging
from pathlib import Path

import numpy as np
import pytest

from scail_backend.align import (CLAMPED, DEFAULT, META_KEY, ReferencePose, align_sequence,
                                 driving_frame, find_reference_image)
from scail_backend.align import bones, correspondences, guardrails
from scail_backend.align.reference import pick_person
from scail_backend.align.solve import solve
from scail_protocol import joints as J
from scail_protocol.camera import aligned_intrinsics, intrinsics_from_fov, project
from scail_protocol.errors import AlignError
from scail_protocol.sequence import PoseSequence

SIZE = (512, 896)
K0 = intrinsics_from_fov(*SIZE)
PARAMS = (1.2, 0.9, 40.0, -30.0)

# A standing person, SMPL-24, camera frame (mm): x right, y down, z forward.
SKELETON = np.array([
    (0, 0, 3000), (90, 0, 3010), (-90, 0, 2990), (0, -100, 3000), (100, 420, 3020),
    (-100, 420, 2980), (0, -250, 3000), (105, 820, 3030), (-105, 820, 2970), (0, -400, 3000),
    (110, 880, 2930), (-110, 880, 2900), (0, -520, 3000), (70, -480, 3000), (-70, -480, 3000),
    (0, -700, 2990), (180, -500, 3020), (-180, -500, 2980), (250, -250, 3050), (-250, -250, 2950),
    (280, -20, 3000), (-280, -20, 3000), (285, 60, 3000), (-285, 60, 3000)], np.float64)


def spec_points(variant):
    """The reference spec's synthetic check (§15) as OpenPose-18 joints."""
    op = np.full((18, 3), np.nan)
    op[1] = (0, -500, 3000)
    if variant == "feet":
        op[9], op[10] = (-100, 300, 3000), (-110, 700, 3010)
        op[12], op[13] = (100, 300, 3000), (110, 700, 2990)
    else:
        op[0], op[2], op[3] = (0, -700, 3000), (-180, -480, 3020), (-250, -200, 3050)
        op[5], op[6] = (180, -480, 2980), (250, -200, 2950)
    return op


def wholebody(joints, K):
    """(134, 2) points and (134,) scores a perfect 2D estimator would give for ``joints``."""
    kp = np.full((134, 2), np.nan)
    body = project(J.smpl24_to_openpose18(joints), K)
    kp[:18] = body
    head = body[0]
    kp[14:18] = head + [(-6, -4), (6, -4), (-12, 0), (12, 0)]
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    kp[J.FACE] = head + 10 * np.stack([np.cos(angles), np.sin(angles)], -1)
    kp[J.FACE][J.FACE68_NOSE_TIP] = head + (0, 3)
    for hand, wrist in ((J.LEFT_HAND, body[7]), (J.RIGHT_HAND, body[4])):
        kp[hand] = wrist + np.stack([np.linspace(0, 12, 21), np.linspace(0, 20, 21)], -1)
    score = np.where(np.isfinite(kp).all(-1), 0.9, np.nan)
    return kp, score


def driving_sequence(frames=3, empty_first=0, size=SIZE):
    K = intrinsics_from_fov(*size)
    seq = PoseSequence.empty(1, frames, size, fps=16.0, meta={"estimator": "mediapipe"})
    joints = np.array(seq.joints3d)
    kp, score = np.array(seq.kp2d), np.array(seq.kp2d_score)
    for t in range(empty_first, frames):
        joints[0, t] = SKELETON + (20 * t, 0, 0)
        kp[0, t], score[0, t] = wholebody(joints[0, t], K)
    return seq.replace(joints3d=joints, kp2d=kp, kp2d_score=score)


def reference_for(seq, params=PARAMS, joints=None, hide=()):
    """The reference character: the driving frame's skeleton seen through K(m, s, p, q)."""
    person, t = driving_frame(seq)
    joints = np.array(seq.joints3d[person, t], np.float64) if joints is None else joints
    kp, score = wholebody(joints, aligned_intrinsics(seq.K, *params))
    score[list(hide)] = 0.0
    return ReferencePose(path=Path("ref.png"), size=seq.size, kp2d=kp, kp2d_score=score,
                         joints3d=joints, people=1, person=0, estimator="mediapipe")


# --- the solve ------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant, indices, weights", [
    ("feet", (1, 9, 10, 12, 13), (1, 4, 4, 4, 4)),
    ("body", (1, 0, 2, 3, 5, 6), (8, 1, 1, 1, 1, 1))])
def test_spec_example_is_recovered_with_each_weighting(variant, indices, weights):
    op = spec_points(variant)
    targets = project(op, aligned_intrinsics(K0, *PARAMS))
    corr = correspondences.select(targets, op)
    assert (corr.variant, corr.indices) == (variant, indices)
    np.testing.assert_array_equal(corr.weights, weights)
    sol = solve(corr, K0, SIZE)
    np.testing.assert_allclose(sol.params[:2], PARAMS[:2], atol=1e-6)
    np.testing.assert_allclose(sol.params[2:], PARAMS[2:], atol=1e-4)
    assert sol.residual_px < 1e-6 and sol.on_bound == ()


def _reference_lbfgsb(corr):
    """The reference's solver: scipy minimize (L-BFGS-B, numerical gradient) on its cost."""
    from scipy.optimize import minimize

    def cost(v):
        K1 = aligned_intrinsics(K0, *v)
        return float(np.sum(corr.weights * np.sum((project(corr.points3d, K1) - corr.targets) ** 2,
                                                  -1)))

    res = minimize(cost, (1, 1, 0, 0), bounds=[(0.7, 1.4), (0.8, 1.15), (-896, 896),
                                               (-512, 512)])
    return res.x, res.fun


@pytest.mark.parametrize("variant", ["feet", "body"])
def test_weighted_minimum_matches_the_reference_solver_on_noisy_targets(variant, rng):
    op = spec_points(variant)
    targets = project(op, aligned_intrinsics(K0, *PARAMS)) + rng.normal(0, 6, (18, 2))
    corr = correspondences.select(targets, op)
    ours = solve(corr, K0, SIZE)
    theirs, their_cost = _reference_lbfgsb(corr)
    assert ours.cost <= their_cost * (1 + 1e-6)
    np.testing.assert_allclose(ours.params[:2], theirs[:2], atol=1e-3)
    np.testing.assert_allclose(ours.params[2:], theirs[2:], atol=0.1)
    # the weighting matters: moving only the neck target pulls the neck fit by its weight
    moved = corr.targets.copy()
    moved[0] += (15, 0)
    shifted = solve(correspondences.Correspondences(corr.variant, corr.indices, corr.points3d,
                                                    moved, corr.weights), K0, SIZE)
    neck_error = np.linalg.norm(project(corr.points3d[0], shifted.K) - moved[0])
    equal = solve(correspondences.Correspondences(corr.variant, corr.indices, corr.points3d,
                                                  moved, np.ones(len(moved))), K0, SIZE)
    equal_error = np.linalg.norm(project(corr.points3d[0], equal.K) - moved[0])
    assert (neck_error < equal_error) == (variant == "body")


def test_invalid_reference_neck_becomes_the_shoulder_midpoint():
    body = np.arange(36, dtype=float).reshape(18, 2)
    score = np.full(18, 0.9)
    score[1] = 0.1
    points = correspondences.reference_points(body, score)
    np.testing.assert_allclose(points[1], (body[2] + body[5]) / 2)
    score[2] = 0.2
    assert np.isnan(correspondences.reference_points(body, score)[1]).all()


# --- guardrails: every fallback -------------------------------------------------------------------

def test_too_few_points_falls_back_to_the_default_camera():
    seq = driving_sequence()
    ref = reference_for(seq, hide=[0, 2, 3, 5, 6, 9, 10, 12, 13])  # only the neck is left
    result = align_sequence(seq, ref)
    assert result.fallback and "only 1 point(s)" in result.fallback
    np.testing.assert_array_equal(result.sequence.K, seq.K)
    np.testing.assert_array_equal(result.sequence.kp2d, seq.kp2d)


@pytest.mark.parametrize("policy", [DEFAULT, CLAMPED])
def test_solve_on_a_bound_falls_back_or_is_kept_clamped(policy):
    seq = driving_sequence()
    ref = reference_for(seq, params=(1.6, 1.0, 10.0, 5.0))  # m = 1.6 is beyond the bound 1.4
    result = align_sequence(seq, ref, fallback=policy)
    assert result.record["solved"]["on_bound"] == ["m"]
    assert result.record["solved"]["m"] == pytest.approx(1.4)
    if policy == DEFAULT:
        assert "ended on its bounds: m = 1.4 (bounds [0.7, 1.4])" in result.fallback
        np.testing.assert_array_equal(result.sequence.K, seq.K)
    else:
        assert result.fallback is None
        assert "kept clamped: m = 1.4" in result.message
        assert result.sequence.K[0, 0] == pytest.approx(seq.K[0, 0] * 1.4)


def test_large_residual_falls_back_with_its_numbers():
    seq = driving_sequence()
    ref = reference_for(seq)
    kp = ref.kp2d.copy()
    legs = [9, 10, 12, 13]
    kp[legs, 1] = 2 * kp[1, 1] - kp[legs, 1]  # legs above the neck: an upside-down character
    bad = ReferencePose(**dict(ref.__dict__, kp2d=kp))
    result = align_sequence(seq, bad)
    checks = result.record["checks"]
    assert checks["residual_px"] > checks["residual_limit_px"]
    assert f"{checks['residual_px']:.1f} px over 5 points" in result.fallback
    assert "using the default camera" in result.fallback
    np.testing.assert_array_equal(result.sequence.K, seq.K)


def test_skeleton_mostly_outside_the_frame_falls_back():
    """Frame 0 fits the reference; the dancer then moves left, out of the shifted frame."""
    seq = driving_sequence(frames=10)
    joints = np.array(seq.joints3d)
    joints[0, 1:] = SKELETON + (-900, 0, 0)
    seq = seq.replace(joints3d=joints)
    result = align_sequence(seq, reference_for(seq, params=(1.0, 1.0, -450.0, 0.0)))
    assert result.record["solved"]["p"] == pytest.approx(-450.0, abs=1e-3)
    assert result.record["checks"]["kept_in_frame"] < guardrails.MIN_INSIDE_FRACTION
    assert "stay inside the frame" in result.fallback
    np.testing.assert_array_equal(result.sequence.K, seq.K)


# --- the whole alignment --------------------------------------------------------------------------

def test_alignment_recovers_the_camera_and_records_it(tmp_path):
    seq = driving_sequence()
    result = align_sequence(seq, reference_for(seq))
    rec = result.sequence.meta[META_KEY]
    assert rec["variant"] == "feet" and rec["fallback"] is None and rec["driving_frame"] == 0
    np.testing.assert_allclose((rec["m"], rec["s"]), PARAMS[:2], atol=1e-6)
    np.testing.assert_allclose((rec["p"], rec["q"]), PARAMS[2:], atol=1e-4)
    np.testing.assert_allclose(result.sequence.K, aligned_intrinsics(K0, *PARAMS), atol=1e-4)
    np.testing.assert_allclose(rec["K_estimated"], seq.K)
    assert rec["face_scale"] == pytest.approx(1.0) and rec["residual_px"] < 1e-4
    # the overlay now lies where the aligned camera draws the skeleton
    aligned = result.sequence
    body = project(aligned.openpose18_3d()[0, :, :14], aligned.K)
    np.testing.assert_allclose(aligned.kp2d[0, :, 0], body[:, 0], atol=1e-3)  # head
    wrist = project(aligned.joints3d[0, :, J.SMPL24["left_wrist"]], aligned.K)
    np.testing.assert_allclose(aligned.kp2d[0, :, J.LEFT_HAND][:, 0], wrist, atol=1e-3)
    # the record survives the file
    back = PoseSequence.load(aligned.save(tmp_path / "aligned.npz"))
    assert back.meta[META_KEY] == rec
    np.testing.assert_array_equal(back.K, aligned.K)


def test_face_scale_follows_the_reference_face():
    seq = driving_sequence()
    ref = reference_for(seq)
    kp = ref.kp2d.copy()
    tip = kp[J.FACE][J.FACE68_NOSE_TIP].copy()
    kp[J.FACE] = (kp[J.FACE] - tip) * 1.3 + tip
    result = align_sequence(seq, ReferencePose(**dict(ref.__dict__, kp2d=kp)))
    assert result.record["face_scale"] == pytest.approx(1.3, rel=1e-6)


def test_nobody_in_frame_0_uses_the_first_frame_with_a_person(caplog):
    seq = driving_sequence(frames=5, empty_first=2)
    assert driving_frame(seq) == (0, 2)
    with caplog.at_level(logging.INFO, logger="scail_backend.align"):
        result = align_sequence(seq, reference_for(seq))
    assert result.record["driving_frame"] == 2 and result.fallback is None
    assert "frame 2, the first with a person" in caplog.text
    assert np.isnan(result.sequence.kp2d[0, :2]).all()


def test_nobody_at_all_and_realignment_are_refused():
    empty = PoseSequence.empty(1, 3, SIZE, fps=16.0)
    with pytest.raises(AlignError, match="no person in any frame"):
        driving_frame(empty)
    seq = driving_sequence()
    aligned = align_sequence(seq, reference_for(seq)).sequence
    with pytest.raises(AlignError, match="already aligned"):
        align_sequence(aligned, reference_for(seq))


def test_reference_person_choice(caplog):
    nobody = PoseSequence.empty(2, 1, SIZE, fps=1.0)
    with pytest.raises(AlignError, match="no person found in the reference image ref.png"):
        pick_person(nobody, "the reference image ref.png")
    two = driving_sequence(frames=1)
    two = PoseSequence(fps=1.0, size=SIZE, K=K0, joints3d=np.repeat(two.joints3d, 2, 0),
                       kp2d=np.repeat(two.kp2d, 2, 0), kp2d_score=np.repeat(two.kp2d_score, 2, 0),
                       bbox=np.repeat(two.bbox, 2, 0), track_id=np.array([0, 1]))
    with caplog.at_level(logging.WARNING, logger="scail_backend.align"):
        assert pick_person(two, "the reference image duet.png") == (0, 2)
    assert "shows 2 characters; aligning to the first" in caplog.text


def test_reference_image_names_in_order(tmp_path):
    assert find_reference_image(tmp_path) is None
    (tmp_path / "ref.png").write_bytes(b"x")
    assert find_reference_image(tmp_path).name == "ref.png"  # the reference misses this one
    (tmp_path / "ref_image.jpg").write_bytes(b"x")
    assert find_reference_image(tmp_path).name == "ref_image.jpg"


def test_blank_reference_image_is_a_clear_error(tmp_path):
    cv2 = pytest.importorskip("cv2")
    from scail_backend.align import estimate_reference

    path = tmp_path / "ref.png"
    cv2.imwrite(str(path), np.zeros((256, 448, 3), np.uint8))
    with pytest.raises(AlignError, match="no person found in the reference image ref.png"):
        estimate_reference(path, SIZE, K0, estimator="mediapipe")


def test_rendering_an_aligned_file_reproduces_the_frames(tmp_path):
    from scail_backend.render.pipeline import iter_rendered_frames

    seq = driving_sequence(frames=2, size=(96, 160))
    aligned = align_sequence(seq, reference_for(seq, params=(0.9, 1.05, 12.0, -6.0))).sequence
    first = [f.copy() for f in iter_rendered_frames(aligned, arch="cpu")]
    back = PoseSequence.load(aligned.save(tmp_path / "a.npz"))
    again = list(iter_rendered_frames(back, arch="cpu"))
    unaligned = list(iter_rendered_frames(seq, arch="cpu"))
    assert all((a == b).all() for a, b in zip(first, again))
    assert any((a != b).any() for a, b in zip(first, unaligned))


# --- beyond the reference: proportions ------------------------------------------------------------

def test_uniformly_scaled_reference_changes_no_bone():
    ratios = bones.proportion_ratios(SKELETON[None], (SKELETON - SKELETON[0]) * 0.5 + SKELETON[0])
    np.testing.assert_allclose(ratios, 1.0, atol=1e-9)
    adapted = bones.keep_feet(SKELETON, bones.rescale_bones(SKELETON, ratios))
    np.testing.assert_allclose(adapted, SKELETON, atol=1e-9)


def test_short_legged_reference_shortens_the_legs_and_keeps_the_feet():
    driving = SKELETON.copy()
    lowest = J.SMPL24["right_foot"]
    driving[[J.SMPL24["right_ankle"], lowest], 1] += 100  # right foot clearly the lowest
    ref = SKELETON.copy()
    legs = [J.SMPL24[n] for n in ("left_knee", "right_knee", "left_ankle", "right_ankle",
                                   "left_foot", "right_foot")]
    for j in legs:  # every leg bone half as long (parents come first in this list)
        parent = bones.PARENTS[j]
        ref[j] = ref[parent] + (SKELETON[j] - SKELETON[parent]) * 0.5
    adapted, ratios = bones.adapt_bones(driving[None, None], ref, np.ones(24, bool))
    adapted = adapted[0, 0].astype(np.float64)
    lengths = bones.bone_lengths(adapted) / bones.bone_lengths(driving)
    knee = J.SMPL24["left_knee"]
    spine = J.SMPL24["spine2"]
    assert lengths[knee] / lengths[spine] == pytest.approx(0.5, rel=1e-5)
    np.testing.assert_allclose(lengths[legs[0]], ratios[legs[0]], rtol=1e-5)
    np.testing.assert_allclose(adapted[lowest], driving[lowest], atol=3.0)  # stays put
    assert np.linalg.norm(adapted[0] - driving[0]) > 100  # the pelvis came down instead


def test_bones_hidden_in_the_reference_image_keep_their_length():
    score = np.full(18, 0.9)
    score[[9, 10, 12, 13]] = 0.0  # knees and ankles not seen
    seen = bones.seen_joints(score)
    assert not seen[J.SMPL24["left_ankle"]] and seen[J.SMPL24["left_hip"]]
    ref = SKELETON.copy()
    ref[J.SMPL24["left_ankle"]] += (0, 400, 0)  # a wild guess of a hidden leg
    ratios = bones.proportion_ratios(SKELETON[None], ref, seen)
    assert ratios[J.SMPL24["left_ankle"]] == 1.0


# --- joints at or behind the camera, 2D-only poses ------------------------------------------------

def behind_camera(seq, frames):
    """``seq`` with the z of every joint negated in ``frames`` (an estimator glitch)."""
    joints = np.array(seq.joints3d)
    joints[:, frames, :, 2] *= -1
    return seq.replace(joints3d=joints)


def test_frames_with_joints_behind_the_camera_are_passed_over(caplog):
    seq = driving_sequence(frames=5)
    ref = reference_for(seq.frames(2, 5))  # the skeleton of frame 2
    glitched = behind_camera(seq, [0, 1])
    assert driving_frame(glitched) == (0, 2)
    with caplog.at_level(logging.WARNING, logger="scail_backend.align"):
        result = align_sequence(glitched, ref)
    assert result.record["driving_frame"] == 2 and result.fallback is None
    np.testing.assert_allclose((result.record["m"], result.record["s"]), PARAMS[:2], atol=1e-6)
    assert "2 of 5 driving frame(s) have a body joint at or behind the camera" in caplog.text


def test_every_frame_behind_the_camera_falls_back_to_the_default_camera():
    seq = driving_sequence()
    ref = reference_for(seq)
    result = align_sequence(behind_camera(seq, slice(None)), ref)
    assert "at or behind the camera, as in every frame with a person" in result.fallback
    assert result.fallback.endswith("using the default camera")
    assert result.record["solved"] is None
    np.testing.assert_array_equal(result.sequence.K, seq.K)


def test_two_d_only_poses_say_the_3d_joints_are_missing():
    seq = driving_sequence()
    only2d = seq.replace(joints3d=np.full_like(seq.joints3d, np.nan))
    with pytest.raises(AlignError, match="2D points but no 3D joints"):
        driving_frame(only2d)
