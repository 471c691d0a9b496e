"""Cleanup steps (scail_backend.cleanup): gap filling and foot locking on synthetic motion."""

from __future__ import annotations

import numpy as np
import pytest

import people_scenes as S
from scail_backend.cleanup import (FootLockParams, clean_sequence, contacts, fill_sequence_gaps,
                                   ground_plane, lock_feet, parse_fill_gaps, two_bone_knee)
from scail_backend.tracking import track_people
from scail_protocol import joints as J

LEFT_FOOT, RIGHT_FOOT = J.SMPL24["left_foot"], J.SMPL24["right_foot"]
LEGS = {0: [J.SMPL24[n] for n in ("left_knee", "left_ankle", "left_foot")],
        1: [J.SMPL24[n] for n in ("right_knee", "right_ankle", "right_foot")]}


# --- gap filling ---------------------------------------------------------------------------------

def _linear_two_people(T=30):
    # no arm swing: every joint moves on a straight line, so interpolation is exact in 3D (and
    # within a fraction of a pixel in 2D, where perspective bends the line slightly)
    truth = np.stack([S.rest_joints()[None] + S.line(T, (-800, 0, 3000), (400, 0, 3200))[:, None],
                      S.rest_joints()[None] + S.line(T, (900, 0, 3500), (0, 0, 3500))[:, None]])
    seq, _ = S.detections(truth, np.ones((2, T), bool), noise_px=0.0)
    return track_people(seq), truth


def test_short_gaps_are_interpolated_and_long_ones_left_missing():
    seq, truth = _linear_two_people()
    holes = {name: np.array(getattr(seq, name)) for name in ("joints3d", "kp2d", "kp2d_score",
                                                               "bbox")}
    for arrays in holes.values():
        arrays[0, 5:9] = np.nan      # 4 frames: filled with max 5
        arrays[1, 12:20] = np.nan    # 8 frames: too long, stays missing
        arrays[1, :3] = np.nan       # at the start: never filled
    holed = seq.replace(**holes)
    filled = fill_sequence_gaps(holed, 5)
    np.testing.assert_allclose(filled.joints3d[0, 5:9], seq.joints3d[0, 5:9], atol=0.05)
    np.testing.assert_allclose(filled.kp2d[0, 5:9], seq.kp2d[0, 5:9], atol=0.5)  # px
    np.testing.assert_allclose(filled.bbox[0, 5:9], seq.bbox[0, 5:9], atol=0.5)
    np.testing.assert_allclose(filled.kp2d_score[0, 5:9], seq.kp2d_score[0, 5:9])
    assert np.isnan(filled.joints3d[1, 12:20]).all() and np.isnan(filled.joints3d[1, :3]).all()
    assert filled.present()[0].all() and not filled.present()[1, 12:20].any()
    record = filled.meta["cleanup"]["fill_gaps"]
    assert record["max_frames"] == 5 and record["filled_person_frames"] == 4
    assert fill_sequence_gaps(holed, 0) is holed


def test_a_hand_missing_for_two_frames_is_filled_with_its_scores():
    seq, _ = _linear_two_people(12)
    kp, score = np.array(seq.kp2d), np.array(seq.kp2d_score)
    kp[0, :, J.LEFT_HAND] = 100.0 + np.arange(12)[:, None, None]
    score[0, :, J.LEFT_HAND] = 0.8
    kp[0, 4:6, J.LEFT_HAND] = np.nan
    score[0, 4:6, J.LEFT_HAND] = np.nan
    filled = fill_sequence_gaps(seq.replace(kp2d=kp, kp2d_score=score), 2)
    np.testing.assert_allclose(filled.kp2d[0, 4:6, J.LEFT_HAND][..., 0],
                               np.array([[104.0] * 21, [105.0] * 21]))
    np.testing.assert_allclose(filled.kp2d_score[0, 4:6, J.LEFT_HAND], 0.8)


@pytest.mark.parametrize("bad", [-1, "x", True, 2.5])
def test_gap_length_must_be_whole_frames(bad):
    with pytest.raises(ValueError, match="gap length"):
        parse_fill_gaps(bad)


# --- foot locking --------------------------------------------------------------------------------

def _sliding_mm(joints, contact):
    """Mean distance a foot moves from one frame to the next while truly planted (mm/frame),
    along the true ground (the camera is pitched by 10 degrees: 'along' excludes the normal)."""
    pitch = np.deg2rad(10.0)
    up = np.array([0.0, -np.cos(pitch), -np.sin(pitch)])
    moves = []
    for k, foot in enumerate((LEFT_FOOT, RIGHT_FOOT)):
        step = np.diff(joints[:, foot], axis=0)
        step -= (step @ up)[:, None] * up
        both = contact[1:, k] & contact[:-1, k]
        moves.append(np.linalg.norm(step[both], axis=-1))
    return float(np.concatenate(moves).mean())


def _error_elsewhere_mm(joints, truth, contact):
    """Mean joint error over every joint and frame except the planted leg's knee/ankle/foot."""
    err = np.linalg.norm(joints - truth, axis=-1)          # (T, 24)
    keep = np.ones_like(err, bool)
    for k, leg in LEGS.items():
        keep[np.ix_(contact[:, k], leg)] = False
    return float(err[keep].mean())


def test_foot_locking_removes_most_sliding_on_a_jittery_walk():
    fps = 30.0
    truth, contact = S.walk(fps)
    noisy = S.jittered(truth, seed=3)
    seq = S.walk_sequence(noisy, fps)
    locked = lock_feet(seq)
    before = _sliding_mm(noisy, contact)
    after = _sliding_mm(locked.joints3d[0].astype(np.float64), contact)
    added = (_error_elsewhere_mm(locked.joints3d[0], truth, contact)
             - _error_elsewhere_mm(noisy, truth, contact))
    print(f"\nsliding in contact {before:.1f} -> {after:.1f} mm/frame "
          f"({100 * (1 - after / before):.0f} % less); error elsewhere {added:+.2f} mm")
    assert after <= 0.2 * before          # goal: >= 80 % less sliding while in contact
    assert added <= 10.0                  # goal: <= 10 mm added error elsewhere
    # legs keep their bone lengths
    j = locked.joints3d[0].astype(np.float64)
    for hip, knee, ankle in ((1, 4, 7), (2, 5, 8)):
        np.testing.assert_allclose(np.linalg.norm(j[:, knee] - j[:, hip], axis=-1),
                                   np.linalg.norm(noisy[:, knee] - noisy[:, hip], axis=-1),
                                   atol=0.05)
        np.testing.assert_allclose(np.linalg.norm(j[:, ankle] - j[:, knee], axis=-1),
                                   np.linalg.norm(noisy[:, ankle] - noisy[:, knee], axis=-1),
                                   atol=0.05)
    assert sum(locked.meta["cleanup"]["foot_lock"]["planted_frames"].values()) > 0


def test_contacts_found_on_the_walk_match_the_truth():
    fps = 30.0
    truth, contact = S.walk(fps)
    noisy = S.jittered(truth, seed=4)
    coef = ground_plane(noisy[:, [LEFT_FOOT, RIGHT_FOOT]])
    for k, foot in enumerate((LEFT_FOOT, RIGHT_FOOT)):
        found = contacts(noisy[:, foot], coef, fps, FootLockParams())
        agree = (found == contact[:, k]).mean()
        assert agree >= 0.85, f"foot {k}: contacts agree on {agree:.0%} of frames"


def test_ground_plane_follows_a_pitched_camera():
    truth, _ = S.walk(30.0)
    a, b, c = ground_plane(truth[:, [LEFT_FOOT, RIGHT_FOOT]])
    # the plane y = a x + b z + c of a camera pitched 10 degrees down: slope b = -tan(10 deg)
    assert abs(a) < 0.02 and abs(b + np.tan(np.deg2rad(10.0))) < 0.02


def test_the_knee_keeps_its_bone_lengths_and_side():
    hip = np.array([[0.0, 0.0, 0.0]])
    knee = np.array([[30.0, 400.0, 0.0]])
    ankle = np.array([[0.0, 800.0, 0.0]])
    new_knee, new_ankle = two_bone_knee(hip, knee, ankle + [0.0, -50.0, 0.0],
                                        np.array([np.linalg.norm(knee - hip)]),
                                        np.array([np.linalg.norm(ankle - knee)]))
    np.testing.assert_allclose(np.linalg.norm(new_knee - hip), np.linalg.norm(knee - hip))
    np.testing.assert_allclose(np.linalg.norm(new_ankle - new_knee), np.linalg.norm(ankle - knee))
    assert new_knee[0, 0] > 30.0  # bends further, on the same side
    far_knee, far_ankle = two_bone_knee(hip, knee, np.array([[0.0, 2000.0, 0.0]]),
                                        np.array([400.0]), np.array([400.0]))
    assert np.linalg.norm(far_ankle - hip) <= 800.0  # out of reach: pulled in


def test_a_person_in_the_air_is_not_locked():
    truth = S.person(S.line(40, (-800, -600, 3000), (800, -900, 3000)))  # drifting up and across
    seq = S.walk_sequence(truth, 16.0)
    locked = lock_feet(seq)
    np.testing.assert_allclose(locked.joints3d, seq.joints3d)


def test_clean_sequence_runs_the_steps_in_order_and_off_by_default():
    fps = 30.0
    truth, _ = S.walk(fps)
    seq = S.walk_sequence(S.jittered(truth, seed=5), fps)
    assert clean_sequence(seq) is seq
    out = clean_sequence(seq, fill_gaps=4, take_fit=True, smoothing="light", foot_lock=True)
    assert "foot_lock" in out.meta["cleanup"] and "smoothing" in out.meta
    assert "take_fit" in out.meta
    with pytest.raises(ValueError):
        clean_sequence(seq, smoothing="bogus")


@pytest.mark.parametrize("fields, message", [
    ({"max_people": 0}, "max_people"), ({"max_people": True}, "max_people"),
    ({"order": "random"}, "person order"), ({"fill_gaps": -1}, "gap length"),
    ({"take_fit": "yes"}, "take_fit must be true or false"),
    ({"foot_lock": 1}, "foot_lock must be true or false"), ({"feet": True}, "unknown"),
])
def test_cleanup_options_refuse_bad_values(fields, message):
    from scail_backend.cleanup import CleanupOptions

    with pytest.raises(ValueError, match=message):
        CleanupOptions.from_value(fields)
    assert CleanupOptions.from_value(None).is_default()


@pytest.mark.parametrize("frames", [0, 1, 2, 4])
def test_every_step_copes_with_clips_shorter_than_its_windows(frames):
    fps = 30.0
    truth, _ = S.walk(fps)
    seq = S.walk_sequence(truth, fps).frames(0, frames)
    assert seq.num_frames == frames
    out = clean_sequence(seq, fill_gaps=4, take_fit=True, smoothing="strong", foot_lock=True)
    assert out.joints3d.shape == seq.joints3d.shape and out.kp2d.shape == seq.kp2d.shape
    for step in ("fill_gaps", "take_fit", "smoothing", "foot_lock"):
        one = clean_sequence(seq, **{step: {"fill_gaps": 4, "smoothing": "strong"}.get(step, True)})
        assert one.joints3d.shape == seq.joints3d.shape
    # a foot standing still for the whole (short) clip: the window is longer than the clip
    foot = np.tile([[0.0, 900.0, 3000.0]], (frames, 1))
    planted = contacts(foot, np.array([0.0, 0.0, 900.0]), fps, FootLockParams(min_contact_frames=1))
    assert planted.shape == (frames,)
