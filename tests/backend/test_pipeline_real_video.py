"""The embedded default end to end on real footage (``../shared/examples/dance_a``, ``dance_b``):
detection rate, plausible 3D, 2D inside the box, hands on the right side, face layout, and the
rendered video's frame count, size and rate. Skipped when the footage is absent."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from scail_backend.pipeline import OUTPUT_FPS, run_folder
from scail_protocol import joints as J
from scail_protocol.camera import project

pytestmark = pytest.mark.slow

CLIPS = ("dance_a", "dance_b")
MIN_DETECTION_RATE = 0.95
VISIBLE = 0.5
INTEROCULAR_MM = 63.0  # adult mean; the face gives a depth estimate independent of the fit
# Bone -> (SMPL-24 endpoints, OpenPose-18 points that must be visible, plausible range in mm)
BONES = {
    "left upper arm": ((16, 18), (5, 6), (150, 380)),
    "right upper arm": ((17, 19), (2, 3), (150, 380)),
    "left forearm": ((18, 20), (6, 7), (120, 340)),
    "right forearm": ((19, 21), (3, 4), (120, 340)),
    "left thigh": ((1, 4), (11, 12), (280, 560)),
    "right thigh": ((2, 5), (8, 9), (280, 560)),
    "shoulder width": ((16, 17), (2, 5), (180, 450)),
}


@pytest.fixture(scope="module", params=CLIPS)
def clip_run(request, examples_dir, tmp_path_factory):
    """run_folder on a copy of the clip's folder (the examples are read-only)."""
    folder = tmp_path_factory.mktemp(request.param)
    source = examples_dir / request.param
    if not (source / "driving.mp4").is_file():
        pytest.skip(f"{source}/driving.mp4 not found")
    shutil.copy(source / "driving.mp4", folder / "driving.mp4")
    result = run_folder(folder, estimator="mediapipe", arch="cpu")
    return request.param, result


def test_person_found_in_nearly_every_frame(clip_run):
    _, result = clip_run
    seq = result.sequence
    assert seq.num_frames == 65 and seq.num_people == 1
    assert seq.present()[0].mean() >= MIN_DETECTION_RATE
    assert result.frames_with_person == int(seq.present()[0].sum())


def test_joints_finite_where_present(clip_run):
    _, result = clip_run
    seq = result.sequence
    present = seq.present()[0]
    assert np.isfinite(seq.joints3d[0, present]).all()
    assert np.isnan(seq.joints3d[0, ~present]).all()


def test_visible_bones_have_human_lengths(clip_run):
    name, result = clip_run
    joints, score = result.sequence.joints3d[0], result.sequence.kp2d_score[0]
    checked = 0
    for bone, ((a, b), (ka, kb), (low, high)) in BONES.items():
        seen = (score[:, ka] >= VISIBLE) & (score[:, kb] >= VISIBLE)
        if seen.sum() < 5:
            continue
        length = np.linalg.norm(joints[seen, a] - joints[seen, b], axis=-1)
        assert low <= np.median(length) <= high, f"{name} {bone}: median {np.median(length):.0f}"
        within = ((length >= 0.6 * low) & (length <= 1.4 * high)).mean()
        assert within >= 0.9, f"{name} {bone}: only {within:.0%} of frames plausible"
        checked += 1
    assert checked >= 4


def test_depth_agrees_with_the_face_size(clip_run):
    """The person stands where their face size says: 63 mm between the eyes at focal f."""
    name, result = clip_run
    seq = result.sequence
    face = seq.kp2d[0][:, J.FACE]
    has_face = np.isfinite(face[:, 0, 0])
    eyes_px = np.linalg.norm(face[has_face, 36:42].mean(1) - face[has_face, 42:48].mean(1), axis=-1)
    face_depth = np.median(seq.K[0, 0] * INTEROCULAR_MM / eyes_px)
    neck_depth = np.median(seq.joints3d[0, has_face, J.SMPL24["neck"], 2])
    assert 500.0 <= neck_depth <= 10_000.0  # dance_b is a close-up: about 0.7-1.0 m away
    assert abs(neck_depth / face_depth - 1.0) < 0.25, (neck_depth, face_depth)
    if name == "dance_a":  # dancer filmed from a normal distance
        assert 1000.0 <= neck_depth <= 10_000.0


def test_joints_project_onto_the_2d_body(clip_run):
    _, result = clip_run
    seq = result.sequence
    present = seq.present()[0]
    uv = project(seq.openpose18_3d()[0, present], seq.K)
    limbs = [J.OPENPOSE18[n] for n in ("right_shoulder", "right_elbow", "right_wrist",
                                        "left_shoulder", "left_elbow", "left_wrist")]
    error = np.linalg.norm(uv[:, limbs] - seq.kp2d[0, present][:, limbs], axis=-1)
    assert np.median(error) < 0.01 and error.max() < 0.5  # pixels: anchored on the 2D


def test_confident_2d_points_lie_in_the_box(clip_run):
    _, result = clip_run
    seq = result.sequence
    present = seq.present()[0]
    kp, score, box = seq.kp2d[0, present], seq.kp2d_score[0, present], seq.bbox[0, present]
    confident = np.nan_to_num(score, nan=0.0) >= VISIBLE
    inside = ((kp >= box[:, None, :2]) & (kp <= box[:, None, 2:])).all(-1)
    assert inside[confident].all()
    height, width = seq.size
    size = box[:, 2:] - box[:, :2]
    assert (size > 0).all() and (size[:, 0] < 3 * width).all() and (size[:, 1] < 3 * height).all()


def test_hands_are_on_the_right_side(clip_run):
    _, result = clip_run
    kp = result.sequence.kp2d[0]
    for hand, same, other in ((J.LEFT_HAND, "left_wrist", "right_wrist"),
                              (J.RIGHT_HAND, "right_wrist", "left_wrist")):
        wrist = kp[:, hand.start]
        found = np.isfinite(wrist[:, 0])
        if found.sum() < 3:
            continue
        to_same = np.linalg.norm(wrist[found] - kp[found, J.OPENPOSE18[same]], axis=-1)
        to_other = np.linalg.norm(wrist[found] - kp[found, J.OPENPOSE18[other]], axis=-1)
        assert np.median(to_same) < np.median(to_other)


def test_face68_layout_on_a_real_face(clip_run):
    _, result = clip_run
    face = result.sequence.kp2d[0][:, J.FACE]
    face = face[np.isfinite(face[:, 0, 0])]
    assert len(face) >= 30
    x, y = face[..., 0], face[..., 1]
    checks = {
        "jaw runs image-left to right": x[:, 0] < x[:, 16],
        "chin lowest on the jaw": y[:, 8] >= y[:, [0, 16]].max(1),
        "eye corners in order": ((x[:, 36] < x[:, 39]) & (x[:, 39] < x[:, 42])
                                 & (x[:, 42] < x[:, 45])),
        "brows above eyes": (y[:, 19] < y[:, 37]) & (y[:, 24] < y[:, 44]),
        "nose tip below bridge": y[:, 30] > y[:, 27],
        "mouth below nose": y[:, 51] > y[:, 33],
        "mouth corners in order": x[:, 48] < x[:, 54],
    }
    for what, ok in checks.items():
        assert ok.mean() >= 0.9, what


def test_rendered_video_frames_size_and_rate(clip_run):
    import av

    _, result = clip_run
    assert result.video.name == "rendered.mp4" and result.poses.name == "poses.npz"
    with av.open(str(result.video)) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == OUTPUT_FPS
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 65
    assert frames[0].shape == (512, 896, 3)
    drawn = (frames[0].max(-1) > 30).mean()
    assert 0.005 < drawn < 0.3  # a skeleton on black, not an empty or full frame
    meta = result.sequence.meta
    assert meta["estimator"] == "mediapipe" and meta["source"]["fps"] == 16.0
    assert meta["source"]["size"] == [1080, 2048] and meta["working_size"] == [512, 896]
