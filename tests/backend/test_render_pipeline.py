"""Sequence -> frames -> mp4/PNG: streaming, depth normalisation, overlay, outputs, memory."""

import tracemalloc

import numpy as np
import pytest

from scail_protocol import joints as J
from scail_protocol.errors import Cancelled, RenderError

SIZE = (64, 112)  # small: these tests are about the pipeline, not the pixels


@pytest.fixture(scope="module")
def seq():
    from scail_backend.render.samples import walking_sequence

    return walking_sequence(12, SIZE, num_people=2)


def _frames(seq, **kwargs) -> np.ndarray:
    from scail_backend.render.pipeline import iter_rendered_frames

    return np.stack(list(iter_rendered_frames(seq, arch="cpu", **kwargs)))


def test_yields_one_rgba_frame_per_pose_frame(seq):
    frames = _frames(seq)
    assert frames.shape == (seq.num_frames,) + SIZE + (4,) and frames.dtype == np.uint8
    assert (frames[..., 3] == 204).any() and (frames[..., 3] == 0).any()


def test_streaming_batch_size_does_not_change_the_picture(seq):
    np.testing.assert_array_equal(_frames(seq, batch_size=1), _frames(seq, batch_size=5))


def test_depth_constants_come_from_the_whole_sequence(seq):
    from scail_backend.render.pipeline import sequence_depth_range

    whole = sequence_depth_range(seq)
    first = sequence_depth_range(seq.frames(0, 1))
    assert whole != first  # the second person and later frames widen the z range
    alone = _frames(seq.frames(0, 1), overlay=False)[0]
    streamed = _frames(seq, overlay=False)[0]
    assert (alone != streamed).any()  # same poses, different depth dimming, as in the reference


def test_overlay_is_composited_per_channel_on_top(seq):
    with_overlay = _frames(seq)
    without = _frames(seq, overlay=False)
    changed = (with_overlay != without).any(-1)
    assert changed.any()
    np.testing.assert_array_equal(with_overlay[..., 3], without[..., 3])  # alpha untouched
    zero = with_overlay[changed][:, :3] == 0  # a zero overlay channel keeps the render's value
    np.testing.assert_array_equal(with_overlay[changed][:, :3][zero],
                                  without[changed][:, :3][zero])


def test_hand_point_over_a_limb_keeps_the_limb_red_and_green():
    from scail_backend.render.samples import walking_sequence

    seq = walking_sequence(1, (128, 224))
    kp, score = np.array(seq.kp2d), np.array(seq.kp2d_score)
    kp[:] = np.nan
    score[:] = np.nan
    plain = _frames(seq.replace(kp2d=kp, kp2d_score=score))[0]
    row, col = np.argwhere(plain[..., 3] > 0)[len(np.argwhere(plain[..., 3] > 0)) // 2]
    kp[0, 0, J.LEFT_HAND.start] = (col, row)
    score[0, 0, J.LEFT_HAND.start] = 0.9
    dotted = _frames(seq.replace(kp2d=kp, kp2d_score=score))[0]
    r, g, _, a = plain[row, col]
    assert a == 204 and tuple(dotted[row, col]) == (r, g, 255, a)  # blue (0, 0, 255) on top


def test_progress_reports_every_frame_and_can_cancel(seq):
    calls = []
    _frames(seq, progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert calls[0] == ("render", 0, seq.num_frames)
    assert calls[-1] == ("render", seq.num_frames, seq.num_frames)
    assert [c[1] for c in calls] == list(range(seq.num_frames + 1))


def test_render_sequence_writes_mp4_and_lossless_pngs(seq, tmp_path):
    import av
    import cv2

    from scail_backend.render.pipeline import render_sequence

    out, frames_dir = tmp_path / "rendered.mp4", tmp_path / "frames"
    report = render_sequence(seq, out, frames_dir=frames_dir, arch="cpu")
    assert (report.path, report.frames, report.fps, report.size, report.arch) == \
        (out, seq.num_frames, 16, SIZE, "cpu")
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.average_rate == 16
        assert (stream.height, stream.width) == SIZE
        decoded = [f for f in container.decode(stream)]
    assert len(decoded) == seq.num_frames and decoded[0].format.name == "yuv420p"
    names = sorted(p.name for p in frames_dir.iterdir())
    assert names == [f"frame_{i:05d}.png" for i in range(seq.num_frames)]
    expected = _frames(seq)
    for i, name in enumerate(names):
        png = cv2.imread(str(frames_dir / name), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(cv2.cvtColor(png, cv2.COLOR_BGRA2RGBA), expected[i])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "rendered.mp4"]


def test_cancelling_leaves_no_output(seq, tmp_path):
    from scail_backend.render.pipeline import render_sequence

    def cancel_at_5(stage, done, total):
        if done == 5:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        render_sequence(seq, tmp_path / "x.mp4", frames_dir=tmp_path / "frames", arch="cpu",
                        progress=cancel_at_5)
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_previous_outputs_intact(seq, tmp_path):
    from scail_backend.render.pipeline import render_sequence

    out = tmp_path / "x.mp4"
    out.write_bytes(b"previous video")
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "frame_00000.png").write_bytes(b"previous frame")

    def fail(stage, done, total):
        if done == 3:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        render_sequence(seq, out, frames_dir=tmp_path / "frames", arch="cpu", progress=fail)
    assert out.read_bytes() == b"previous video"
    assert [p.name for p in (tmp_path / "frames").iterdir()] == ["frame_00000.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "x.mp4"]


def test_bad_sequences_are_refused_before_work(tmp_path):
    from scail_backend.render.pipeline import render_sequence
    from scail_protocol.sequence import PoseSequence

    with pytest.raises(RenderError, match="no frames"):
        render_sequence(PoseSequence.empty(1, 0, SIZE, 16.0), tmp_path / "a.mp4", arch="cpu")
    for size in [(8, 64), (9000, 64), (63, 112)]:
        with pytest.raises(RenderError, match=f"{size[0]}x{size[1]}"):
            render_sequence(PoseSequence.empty(1, 2, size, 16.0), tmp_path / "a.mp4", arch="cpu")
    assert list(tmp_path.iterdir()) == []


def test_nobody_in_the_sequence_gives_black_frames():
    from scail_protocol.sequence import PoseSequence

    frames = _frames(PoseSequence.empty(0, 3, SIZE, 16.0))
    assert frames.shape == (3,) + SIZE + (4,) and not frames.any()


def _rss_mb() -> float:
    import resource

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


@pytest.mark.slow
def test_streaming_render_and_encode_runs_in_constant_memory(tmp_path):
    """Python-heap peak and resident memory do not grow with the number of frames."""
    from scail_backend.render.pipeline import render_sequence
    from scail_backend.render.samples import walking_sequence

    short, long = walking_sequence(60, SIZE), walking_sequence(480, SIZE)
    render_sequence(short, tmp_path / "warm.mp4", arch="cpu")  # compile, warm allocators
    rss = {}

    def sample(stage, done, total):
        if done in (120, total):
            rss[done] = _rss_mb()

    peaks = []
    for seq in (short, long):
        tracemalloc.start()
        render_sequence(seq, tmp_path / "run.mp4", arch="cpu", progress=sample)
        peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    frame_mb = SIZE[0] * SIZE[1] * 4 / 2**20
    # 8x more frames, and the pose arrays themselves grow by ~1 MiB: the peak may not follow
    print(f"python heap peak {peaks} MiB, RSS {rss} MiB")
    assert peaks[1] < peaks[0] + 2.0 + 16 * frame_mb, peaks
    assert rss[480] - rss[120] < 40.0, rss


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_people_at_absurd_coordinates_give_a_black_video_with_a_warning(seq, tmp_path, caplog):
    from scail_backend.render.pipeline import render_sequence

    joints, kp = np.array(seq.joints3d), np.array(seq.kp2d)
    joints[..., 0], kp[...] = 1e30, 1e30   # finite, present, and nowhere near the picture
    absurd = seq.replace(joints3d=joints, kp2d=kp)
    assert absurd.present().all()
    with caplog.at_level("WARNING", logger="scail_backend.render.pipeline"):
        render_sequence(absurd, tmp_path / "a.mp4", arch="cpu")
    (said,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said.startswith(f"the video is all black: the {seq.num_frames} frame(s) with a person")
    assert not _frames(absurd).any()
    caplog.clear()
    with caplog.at_level("WARNING", logger="scail_backend.render.pipeline"):
        render_sequence(seq, tmp_path / "b.mp4", arch="cpu")   # people in view: no warning
        render_sequence(seq.people([]), tmp_path / "c.mp4", arch="cpu")  # nobody: callers say it
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
