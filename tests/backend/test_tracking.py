"""Identities across frames (scail_backend.tracking) on synthetic scenes of several people."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import people_scenes as S
from scail_backend.tracking import TrackerParams, box_iou, track_people

T = 48


def _assert_identities_kept(tracked, truth, visible):
    ids = S.identities_of(tracked, truth)
    assert tracked.num_people == truth.shape[0]
    for p in range(tracked.num_people):
        seen = set(ids[p][ids[p] >= 0].tolist())
        assert len(seen) == 1, f"track {p} holds people {seen}: an identity swap"
    # every visible person is in some track on every frame it is visible
    owners = {int(ids[p][ids[p] >= 0][0]): p for p in range(tracked.num_people)}
    for person in range(truth.shape[0]):
        present = ids[owners[person]] == person
        np.testing.assert_array_equal(present, visible[person])
    return owners


def test_two_people_crossing_keep_their_identities():
    truth = np.stack([S.person(S.line(T, (-900, 0, 3000), (900, 0, 3000))),
                      S.person(S.line(T, (900, 0, 3400), (-900, 0, 3400)), phase=1.0)])
    visible = np.ones((2, T), bool)
    seq, _ = S.detections(truth, visible, seed=1)
    _assert_identities_kept(track_people(seq), truth, visible)


def test_two_people_crossing_with_the_far_one_hidden_keep_their_identities():
    truth = np.stack([S.person(S.line(T, (-900, 0, 3000), (900, 0, 3000))),
                      S.person(S.line(T, (900, 0, 3600), (-900, 0, 3600)), phase=2.0)])
    visible = np.ones((2, T), bool)
    visible[1, 20:29] = False  # hidden behind the near one while they cross
    seq, _ = S.detections(truth, visible, seed=2)
    _assert_identities_kept(track_people(seq), truth, visible)


def test_three_people_with_crossing_occlusion_and_a_late_entry():
    truth = np.stack([
        S.person(S.line(T, (-1000, 0, 3200), (1000, 0, 3200))),
        S.person(S.line(T, (1000, 0, 3500), (-1000, 0, 3500)), phase=1.0),
        S.person(S.line(T, (1600, 0, 5000), (1200, 0, 4500)), phase=2.0, scale=0.9),
    ])
    visible = np.ones((3, T), bool)
    visible[1, 18:30] = False   # behind person 0 while they cross
    visible[2, :10] = False     # walks in late
    seq, _ = S.detections(truth, visible, seed=3)
    owners = _assert_identities_kept(track_people(seq), truth, visible)
    assert owners[2] == 2  # the farthest (smallest) person is last in size order


def test_a_duplicate_detection_does_not_make_a_new_person():
    truth = np.stack([S.person(S.line(T, (-600, 0, 3000), (-500, 0, 3000))),
                      S.person(S.line(T, (600, 0, 3000), (500, 0, 3000)))])
    visible = np.ones((2, T), bool)
    seq, _ = S.detections(truth, visible, seed=4, duplicate=(0, 10))
    tracked = track_people(seq)
    assert tracked.num_people == 2
    assert tracked.present().all()


def test_order_by_size_or_left_to_right_and_track_ids():
    truth = np.stack([S.person(S.line(T, (800, 0, 5000), (800, 0, 5000))),     # far, right
                      S.person(S.line(T, (-700, 0, 2500), (-700, 0, 2500)))])  # near, left
    seq, _ = S.detections(truth, np.ones((2, T), bool), seed=5)
    by_size = track_people(seq)
    assert S.identities_of(by_size, truth)[:, 0].tolist() == [1, 0]
    assert by_size.track_id.tolist() == [0, 1]
    by_x = track_people(seq, order="left_to_right")
    assert S.identities_of(by_x, truth)[:, 0].tolist() == [1, 0]
    truth_r = truth[::-1].copy()
    truth_r[:, :, :, 0] *= -1  # mirror: the near one is now on the right
    seq_r, _ = S.detections(truth_r, np.ones((2, T), bool), seed=6)
    assert S.identities_of(track_people(seq_r, order="left_to_right"), truth_r)[:, 0].tolist() \
        == [1, 0]


def test_max_people_keeps_the_most_prominent_and_says_so(caplog):
    truth = np.stack([S.person(S.line(T, (-900, 0, 3000), (-800, 0, 3000))),
                      S.person(S.line(T, (0, 0, 6000), (100, 0, 6000)), scale=0.8),
                      S.person(S.line(T, (900, 0, 3200), (800, 0, 3200)))])
    seq, _ = S.detections(truth, np.ones((3, T), bool), seed=7)
    with caplog.at_level(logging.INFO, logger="scail_backend.tracking"):
        tracked = track_people(seq, max_people=2)
    assert tracked.num_people == 2
    assert sorted(S.identities_of(tracked, truth)[:, 0].tolist()) == [0, 2]
    assert "found 3 people, kept the 2 most prominent" in caplog.text
    assert tracked.meta["tracking"]["tracks_dropped"] == 1


def test_a_blip_shorter_than_min_track_frames_is_dropped():
    truth = np.stack([S.person(S.line(T, (-600, 0, 3000), (-500, 0, 3000))),
                      S.person(S.line(T, (700, 0, 3000), (700, 0, 3000)))])
    visible = np.ones((2, T), bool)
    visible[1] = False
    visible[1, 30:32] = True  # two frames only
    seq, _ = S.detections(truth, visible, seed=8)
    tracked = track_people(seq, params=TrackerParams(min_track_frames=3))
    assert tracked.num_people == 1
    assert tracked.meta["tracking"]["spurious_dropped"] == 1


def test_one_person_is_unchanged_and_nobody_gives_no_tracks():
    truth = S.person(S.line(T, (0, 0, 3000), (200, 0, 3000)))[None]
    seq, _ = S.detections(truth, np.ones((1, T), bool))
    tracked = track_people(seq)
    np.testing.assert_array_equal(tracked.joints3d, seq.joints3d)
    empty = track_people(seq.replace(joints3d=np.full_like(seq.joints3d, np.nan),
                                     kp2d=np.full_like(seq.kp2d, np.nan),
                                     kp2d_score=np.full_like(seq.kp2d_score, np.nan),
                                     bbox=np.full_like(seq.bbox, np.nan)))
    assert empty.num_people == 0 and empty.num_frames == T


def test_bad_options_are_refused():
    seq, _ = S.detections(S.person(S.line(4, (0, 0, 3000), (0, 0, 3000)))[None],
                          np.ones((1, 4), bool))
    with pytest.raises(ValueError, match="order"):
        track_people(seq, order="random")
    with pytest.raises(ValueError, match="max_people"):
        track_people(seq, max_people=0)


def test_box_iou_by_hand():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(iou, [[50 / 150, 0.0]])
