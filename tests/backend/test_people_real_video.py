"""Several people and small people, found by the mediapipe estimator on real footage.

Uses ``../shared/examples/duet`` (two dancers facing each other, a seated crowd behind) and
``../shared/cases/tiny_person_1080p.mp4`` (one dancer ~114 px tall in the working frame); each
test skips when its file is absent. MediaPipe runs for real (~0.25 s a frame here), so the clips
are used whole but only once per module.
"""

from __future__ import annotations

import numpy as np
import pytest

from scail_backend.pipeline import extract_video

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def duet(examples_dir):
    video = examples_dir / "duet" / "driving.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not found")
    return extract_video(video, estimator="mediapipe")


def _centres_x(seq, p):
    return 0.5 * (seq.bbox[p, :, 0] + seq.bbox[p, :, 2])


def test_duet_two_dancers_on_nearly_every_frame(duet):
    present = duet.present()
    assert duet.num_people >= 2
    both = present[0] & present[1]
    assert both.mean() >= 0.9, f"both dancers on {both.mean():.0%} of frames"
    assert duet.track_id.tolist() == list(range(duet.num_people))
    # the two dancers are the two largest people: crowd members, if any, come later
    heights = np.nanmedian(duet.bbox[..., 3] - duet.bbox[..., 1], axis=1)
    assert (heights[:2] > 0.5 * duet.height).all()


def test_duet_identities_do_not_swap(duet):
    """The dancers stay on their own sides; a swap would make a track jump across the floor."""
    left, right = sorted((0, 1), key=lambda p: np.nanmedian(_centres_x(duet, p)))
    xl, xr = _centres_x(duet, left), _centres_x(duet, right)
    both = np.isfinite(xl) & np.isfinite(xr)
    assert (xl[both] < xr[both]).all(), "the dancers exchanged sides between tracks"
    for x in (xl, xr):
        x = x[np.isfinite(x)]
        assert np.abs(np.diff(x)).max() < 0.15 * duet.width, "a track jumped between dancers"


def test_duet_each_dancer_has_their_own_hands_and_face(duet):
    """Hands and face points of a track lie inside (or next to) that track's box."""
    from scail_protocol import joints as J

    for p in range(2):
        box = duet.bbox[p]
        for part in (J.LEFT_HAND, J.RIGHT_HAND, J.FACE):
            pts = duet.kp2d[p, :, part]
            seen = np.isfinite(pts).all(-1)
            if not seen.any():
                continue
            margin = 0.25 * (box[:, 2] - box[:, 0])[:, None]
            inside = ((pts[..., 0] >= box[:, None, 0] - margin) &
                      (pts[..., 0] <= box[:, None, 2] + margin))
            assert inside[seen].mean() > 0.95


def test_tiny_person_is_found_on_most_frames(cases_dir):
    video = cases_dir / "tiny_person_1080p.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not found")
    seq = extract_video(video, estimator="mediapipe")
    found = seq.present().any(0)
    assert found.mean() >= 0.8, f"found on {found.sum()} of {seq.num_frames} frames"
    heights = seq.bbox[0, :, 3] - seq.bbox[0, :, 1]
    assert 80 < np.nanmedian(heights) < 200  # the dancer is ~114 px tall in the working frame


def test_a_dancer_who_walks_in_late_is_found_within_a_few_frames(examples_dir):
    """The second search of the cascade rests (looks every few frames) once it has found
    nobody for a while; a dancer who appears after that is still found within that many
    frames. ``duet`` with its right-hand dancer painted out for the first ``arrive`` frames."""
    from scail_backend.estimators import mediapipe_holistic as M
    from scail_backend.video.reader import open_video

    video = examples_dir / "duet" / "driving.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not found")
    frames = [f.copy() for f in open_video(video, resolution=(512, 896))]
    arrive = M.REST_AFTER_FRAMES + 6            # well after the second search went to rest
    for frame in frames[:arrive]:
        frame[:, 489:] = 128                    # the right-hand dancer (x 495..713) is not there
    with M.MediaPipeHolisticEstimator() as est:
        seq = est.estimate(iter(frames), size=(512, 896), fps=16.0)
    tall = (seq.bbox[..., 3] - seq.bbox[..., 1]) > 0.5 * 512     # the dancers, not the crowd
    dancers = (seq.present() & tall).sum(0)
    assert (dancers[:arrive] <= 1).all()
    first_two = arrive + int(np.argmax(dancers[arrive:] >= 2))
    assert dancers[first_two] >= 2 and first_two < arrive + M.RESTING_EVERY_FRAMES
    assert (dancers[first_two:] >= 2).mean() >= 0.9
