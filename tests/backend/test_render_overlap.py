"""Overlap of two renderings: what it scores the same, a moved limb, swapped sides, video files."""

from __future__ import annotations

import numpy as np
import pytest
from scail_protocol import joints as J
from scail_protocol.errors import ScailError

from scail_backend.render import overlap as O

SIZE = (256, 448)


@pytest.fixture(scope="module")
def walk():
    from scail_backend.render.samples import walking_sequence

    return walking_sequence(6, SIZE)


def _render(seq) -> list:
    from scail_backend.render.pipeline import iter_rendered_frames

    return [frame.copy() for frame in iter_rendered_frames(seq, arch="cpu", overlay=False)]


def _overlap(ours, reference) -> O.Overlap:
    counter = O.OverlapCounter()
    for a, b in zip(ours, reference):
        counter.add(a, b)
    return counter.result()


def _with_joints(seq, joints):
    return seq.replace(joints3d=joints.astype(np.float32))


def test_each_scored_limb_is_labelled_by_its_own_colour(walk):
    labels = O.limb_labels(_render(walk)[0])
    drawn = {int(k) for k in np.unique(labels)}
    assert set(O.SCORED_LIMBS) <= drawn
    assert (labels == -1).mean() > 0.8                   # mostly background
    assert (labels == O.NO_HUE).sum() < 0.1 * (labels >= 0).sum()   # grey neck, highlights


def test_a_rendering_agrees_with_itself(walk):
    frames = _render(walk)
    result = _overlap(frames, frames)
    assert result.frames == len(frames)
    assert result.foreground_iou == 1.0 and result.limb_iou == 1.0
    assert set(result.per_limb) == {O.limb_name(k) for k in O.SCORED_LIMBS}


def test_a_moved_forearm_costs_its_limb_more_than_the_foreground(walk):
    joints = walk.joints3d.copy()
    wrist, elbow = J.SMPL24["right_wrist"], J.SMPL24["right_elbow"]
    forearm = joints[0, :, wrist] - joints[0, :, elbow]
    joints[0, :, wrist] = joints[0, :, elbow] + forearm * np.array([-1.0, -1.0, 1.0])  # flipped up
    joints[0, :, J.SMPL24["right_hand"]] = joints[0, :, wrist]
    result = _overlap(_render(_with_joints(walk, joints)), _render(walk))
    assert result.per_limb["right_elbow-right_wrist"] < 0.3
    assert result.per_limb["left_hip-left_knee"] > 0.99
    assert result.foreground_iou > 0.8
    assert result.limb_iou < result.foreground_iou


def test_swapped_sides_keep_the_foreground_but_not_the_limbs(walk):
    joints = walk.joints3d.copy()
    for name in J.SMPL24_NAMES:
        if name.startswith("left_"):
            left, right = J.SMPL24[name], J.SMPL24["right_" + name[5:]]
            joints[:, :, [left, right]] = joints[:, :, [right, left]]
    result = _overlap(_render(_with_joints(walk, joints)), _render(walk))
    assert result.foreground_iou > 0.9                   # the same pixels are drawn ...
    assert result.limb_iou < 0.5                         # ... for the other side's limbs


def test_frames_of_different_sizes_are_refused(walk):
    frame = _render(walk)[0]
    with pytest.raises(ScailError, match="differ in size"):
        O.OverlapCounter().add(frame, frame[:, :-2])


def test_compare_renderings_reads_videos_and_frames_a_reference_of_another_size(walk, tmp_path):
    from scail_backend.render.pipeline import render_sequence
    from scail_backend.render.samples import walking_sequence

    ours = tmp_path / "ours.mp4"
    render_sequence(walk, ours, arch="cpu")
    same = O.compare_renderings(ours, ours)
    assert same.frames == walk.num_frames and same.foreground_iou == 1.0
    bigger = walking_sequence(6, (2 * SIZE[0], 2 * SIZE[1]))  # the same walk at twice the size
    reference = tmp_path / "reference.mp4"
    render_sequence(bigger, reference, arch="cpu")
    scaled = O.compare_renderings(ours, reference)
    assert scaled.frames == walk.num_frames
    assert scaled.foreground_iou > 0.6 and scaled.limb_iou > 0.6, scaled


def test_many_renderings_against_one_reference_score_as_each_alone(walk, tmp_path):
    from scail_backend.render.pipeline import render_sequence
    from scail_backend.render.samples import walking_sequence

    joints = walk.joints3d.copy()
    joints[0, :, J.SMPL24["right_wrist"]] = joints[0, :, J.SMPL24["right_elbow"]]
    paths = [tmp_path / f"{name}.mp4" for name in ("walk", "moved", "big")]
    for seq, path in zip((walk, _with_joints(walk, joints),
                          walking_sequence(6, (2 * SIZE[0], 2 * SIZE[1]))), paths):
        render_sequence(seq, path, arch="cpu")
    together = O.compare_many_renderings(paths, paths[0])
    alone = [O.compare_renderings(path, paths[0]) for path in paths]
    assert together == alone
    assert together[0].foreground_iou == 1.0 > together[1].limb_iou
