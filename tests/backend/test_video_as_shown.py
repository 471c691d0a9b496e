"""Video read as players show it (issue 13 item 5) and frame rates (item 7): anamorphic pixels,
edit lists, a decoder drained at the damage, animated images with their own timing, frame-size
changes mid-stream, the notice for rates other than 16 fps and ``--fps`` resampling in time.

Each kind is tested on a file the test makes, and on the real-world example in
``../shared/cases`` where there is one (those tests skip when the folder is absent)."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from scail_backend.cli import main
from scail_backend.pipeline import repeat_notice, speed_notice
from scail_backend.video.reader import open_video
from scail_backend.video.timing import TimedFrame, resample_nearest
from scail_protocol.errors import VideoError
from scail_protocol.sequence import PoseSequence

from video_helpers import noise_frame, trim_losslessly, write_animation, write_clip, write_image

CASES = Path(__file__).resolve().parents[2].parent / "shared" / "cases"


@pytest.fixture(scope="module")
def cases() -> Path:
    if not CASES.is_dir():
        pytest.skip(f"real-world cases not found at {CASES}")
    return CASES


def _frames(path, **kwargs):
    source = open_video(path, **kwargs)
    return source, list(source)


def _white_box(frame: np.ndarray):
    """(height, width) of the bright region of a frame, pixels."""
    rows, cols = np.nonzero(frame.mean(axis=2) > 128)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


# --- sample aspect ratio ----------------------------------------------------------------------


def _tall_block(index, size):
    """Black frame with a white block twice as tall as wide (stored): square at SAR 2:1."""
    frame = np.zeros((*size, 3), np.uint8)
    frame[24:72, 20:44] = 255
    return frame


def test_anamorphic_video_is_framed_as_displayed(tmp_path):
    path = write_clip(tmp_path / "sar.mp4", frames=3, size=(96, 64), make=_tall_block,
                      sample_aspect=Fraction(2))  # stored portrait 64x96, shown 128x96
    source, frames = _frames(path, resolution=(96, 128))
    assert source.source_size == (96, 128)           # landscape, as a player shows it
    assert source.size == (96, 128) and frames[0].shape == (96, 128, 3)
    height, width = _white_box(frames[0])
    assert abs(height - width) <= 2, (height, width)  # the block is square on screen
    assert source.describe()["sample_aspect_ratio"] == "2"


def test_square_pixels_are_unchanged(tmp_path):
    path = write_clip(tmp_path / "sq.mp4", frames=2, size=(96, 64), make=_tall_block)
    source, frames = _frames(path, resolution=(64, 96))
    assert source.source_size == (96, 64) and source.size == (96, 64)  # portrait
    height, width = _white_box(frames[0])
    assert abs(height - 2 * width) <= 2


def test_case_anamorphic_sar2_is_landscape(cases):
    source, frames = _frames(cases / "anamorphic_sar2.mp4")
    assert source.source_size == (256, 448)
    assert source.size == (512, 896)   # rendered.mp4 896 wide x 512 high
    assert len(frames) == 33 and frames[0].shape == (512, 896, 3)


# --- edit lists -------------------------------------------------------------------------------


def test_trimmed_clip_presents_only_its_edited_frames(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="scail_backend.video.reader")
    full = write_clip(tmp_path / "full.mp4", frames=81, size=(96, 160), preset="medium")
    trimmed = trim_losslessly(full, tmp_path / "trim.mp4", first=34)
    source, frames = _frames(trimmed, resolution=(96, 160))
    assert len(frames) == 47 and source.num_frames == 47
    assert source.problems == [] and "truncated" not in caplog.text
    _, intact = _frames(full, resolution=(96, 160))
    assert all(np.array_equal(a, b) for a, b in zip(frames, intact[34:]))  # the same pictures


# --- damaged files: the decoder drained -------------------------------------------------------


def _decode_without_threads(path) -> int:
    """Frames FFmpeg's single-threaded decoder gets out of a damaged file (what ffmpeg shows)."""
    import av

    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        try:
            for packet in container.demux(stream):
                try:
                    count += len(packet.decode())
                except av.FFmpegError:
                    pass
        except av.FFmpegError:
            pass
    return count


@pytest.mark.parametrize("frames, keep", [(40, 0.55), (20, 0.7)])
def test_truncated_file_gives_every_decodable_frame(tmp_path, caplog, frames, keep):
    caplog.set_level(logging.WARNING, logger="scail_backend.video.reader")
    full = write_clip(tmp_path / "full.mp4", frames=frames, make=noise_frame, preset="medium",
                      options={"movflags": "faststart"})
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:int(len(data) * keep)])
    source, got = _frames(cut)
    expected = _decode_without_threads(cut)
    assert 0 < expected < frames and len(got) == expected
    _, intact = _frames(full)
    assert all(np.array_equal(a, b) for a, b in zip(got, intact))  # pixel-identical
    assert "damaged" in caplog.text


def test_case_truncated_faststart_gives_20_frames_and_a_warning(cases, caplog):
    caplog.set_level(logging.WARNING, logger="scail_backend.video.reader")
    source, frames = _frames(cases / "trunc_faststart.mp4")
    assert len(frames) == 20
    assert any("damaged" in p for p in source.problems) and "damaged" in caplog.text


# --- animated images ----------------------------------------------------------------------------


def _flat(index, size=(48, 64)):
    return np.full((*size, 3), 20 + 25 * index, np.uint8)


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".png"])
def test_animated_images_are_read_with_their_own_timing(tmp_path, suffix):
    path = write_animation(tmp_path / f"anim{suffix}", [_flat(i) for i in range(8)], [60] * 8)
    source, frames = _frames(path, resolution=(48, 64))
    assert source.kind == "animation" and len(frames) == 8 and source.num_frames == 8
    assert source.fps == pytest.approx(1000 / 60)
    assert [int(round(f.mean())) for f in frames] == [20 + 25 * i for i in range(8)]


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".png"])
def test_animated_images_resample_by_their_timestamps(tmp_path, suffix):
    # Frames start at 0, 50, 100, 250 ms (shown 50, 50, 150, 50 ms). At 20 fps, outputs at
    # 0..250 ms take the frame with the nearest start: 150 ms is nearer 100 than 250, 200 ms
    # nearer 250.
    path = write_animation(tmp_path / f"anim{suffix}", [_flat(i) for i in range(4)],
                           [50, 50, 150, 50])
    source, frames = _frames(path, resolution=(48, 64), fps=20)
    assert source.fps == 20 and source.source_fps == pytest.approx(4 / 0.3)
    assert [int(round(f.mean())) for f in frames] == [20, 45, 70, 70, 95, 95]


def test_still_images_stay_one_frame(tmp_path):
    source, frames = _frames(write_image(tmp_path / "still.png", _flat(1)), fps=30)
    assert source.kind == "image" and len(frames) == 1
    source, frames = _frames(write_animation(tmp_path / "one.gif", [_flat(2)], [100]))
    assert source.kind == "image" and len(frames) == 1 and source.fps == 16.0


def test_case_anim_gif_keeps_its_frame_delays(cases):
    source, frames = _frames(cases / "anim.gif")
    assert len(frames) == 20
    assert 16.4 < source.fps < 17.2  # 6-centisecond frames (two of 5): not the demuxer's 20


# --- frame-size changes mid-stream --------------------------------------------------------------


def test_frame_size_change_mid_stream_keeps_the_working_size(tmp_path):
    first = write_clip(tmp_path / "a.ts", frames=6, size=(96, 160))
    second = write_clip(tmp_path / "b.ts", frames=6, size=(120, 120))
    joined = tmp_path / "joined.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    source, frames = _frames(joined, resolution=(48, 80))
    assert len(frames) == 12 and {f.shape for f in frames} == {(48, 80, 3)}
    assert source.problems == []


# --- frame rates: notice and resampling in time ---------------------------------------------------


def _timed(times, durations=None):
    step = Fraction(1, 60)
    return [TimedFrame(np.full((1, 1, 3), i, np.uint8), Fraction(t), Fraction(d or step))
            for i, (t, d) in enumerate(zip(times, durations or [None] * len(times)))]


def test_resample_nearest_60_to_16_keeps_the_duration():
    frames = _timed([Fraction(i, 60) for i in range(90)])
    picked = [int(f[0, 0, 0]) for f in resample_nearest(iter(frames), 16)]
    assert len(picked) == 24   # 1.5 s at 16 fps
    # output k at k/16 s = 3.75 k source frames; ties (3.75 k = i + 1/2) go to the earlier
    assert picked[:7] == [0, 4, 7, 11, 15, 19, 22]
    assert picked == [int(np.ceil(3.75 * k - 0.5)) for k in range(24)]


def test_resample_nearest_upsamples_by_repeating():
    frames = _timed([Fraction(i, 8) for i in range(4)], [Fraction(1, 8)] * 4)
    picked = [int(f[0, 0, 0]) for f in resample_nearest(iter(frames), 16)]
    assert picked == [0, 0, 1, 1, 2, 2, 3, 3]


def test_video_resampled_to_16_fps_in_time(tmp_path):
    path = write_clip(tmp_path / "fast.mp4", frames=48, fps=48, size=(96, 160))
    source, frames = _frames(path, resolution=(96, 160), fps=16)
    assert source.fps == 16 and source.source_fps == 48 and len(frames) == 16
    _, every = _frames(path, resolution=(96, 160))
    assert all(np.array_equal(a, every[3 * k]) for k, a in enumerate(frames))


def test_bad_fps_is_refused():
    with pytest.raises(VideoError, match="fps"):
        open_video(Path(__file__), fps=0)


@pytest.mark.parametrize("fps", [0, -3, 1e-7, 1e-9, 0.0099, 1000.5, float("nan"), "x"])
def test_fps_outside_the_range_is_one_clear_error(fps):
    """One home for the range (CLI, batch manifests and server jobs all call check_fps)."""
    from scail_backend.video.timing import check_fps

    with pytest.raises(VideoError, match=r"^fps must be a (number in \[0\.01, 1000\] frames "
                                         r"per second|number of frames per second), got "):
        check_fps(fps)
    assert check_fps("0.01") == 0.01 and check_fps(1000) == 1000.0


@pytest.mark.parametrize("fps", [1e-7, 1e-9, 5e-324])
def test_no_positive_rate_divides_by_zero(fps):
    """Rates below about 5e-7 have no fraction with a denominator up to 10**6 but 0."""
    from scail_backend.video.timing import frame_step, steady_times

    step = frame_step(fps)
    assert step > 0 and abs(float(1 / step) - fps) <= 1e-12 * fps
    times = [t.time for t in steady_times(iter([np.zeros((1, 1, 3), np.uint8)] * 3), fps)]
    assert times == [0, step, 2 * step]


def test_the_slowest_rate_resamples_a_clip_to_its_first_frame():
    frames = _timed([Fraction(i, 60) for i in range(600)])  # 10 s at 60 fps
    assert [int(f[0, 0, 0]) for f in resample_nearest(iter(frames), 0.01)] == [0]


def test_speed_notice_says_how_the_motion_will_play():
    assert speed_notice(16.0, "a.mp4") is None
    assert "3.75x slower" in speed_notice(60.0, "a.mp4")
    assert "2x faster" in speed_notice(8.0, "a.mp4")
    assert "--fps 16" in speed_notice(30.0, "a.mp4")
    resampled = speed_notice(30.0, "a.mp4", source_fps=60.0)   # says what is rendered
    assert resampled.startswith("a.mp4 (60 fps) is resampled to 30 fps")
    assert "1.88x slower" in resampled
    assert repeat_notice(16.0, 8.0, "a.mp4").endswith("repeats each frame about 2 times on "
                                                      "average (no motion is made up between "
                                                      "frames)")
    assert repeat_notice(16.0, 60.0, "a.mp4") is None and repeat_notice(16.0, 15.5, "a.mp4") is None


def test_case_fps60_resampled_to_16(cases):
    source, frames = _frames(cases / "fps60.mp4", fps=16)
    assert len(frames) == 24 and source.fps == 16


def test_extract_warns_once_about_the_rate_and_fps_resamples(tmp_path, capsys):
    clip = write_clip(tmp_path / "clip30.mp4", frames=15, fps=30, size=(96, 160))
    out = tmp_path / "p.npz"
    # nobody is in this clip: exit 3 (nobody found) with the poses written all the same
    assert main(["-q", "extract", str(clip), "-o", str(out), "--estimator",
                 "mediapipe"]) in (0, 3)
    err = capsys.readouterr().err  # -q hides progress, not this warning
    assert err.count("will play") == 1 and "1.88x slower" in err
    assert PoseSequence.load(out).fps == 30 and PoseSequence.load(out).num_frames == 15
    assert main(["-q", "extract", str(clip), "-o", str(out), "--estimator", "mediapipe",
                 "--fps", "16"]) in (0, 3)
    assert "will play" not in capsys.readouterr().err
    seq = PoseSequence.load(out)
    assert seq.fps == 16 and seq.num_frames == 8
    assert seq.meta["source"]["fps"] == 30 and seq.meta["source"]["resampled_fps"] == 16


def test_fps_option_is_checked_before_any_work(tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.mp4", frames=2)
    with pytest.raises(SystemExit) as exit_info:
        main(["extract", str(clip), "-o", str(tmp_path / "p.npz"), "--fps", "-3"])
    assert exit_info.value.code == 2 and "fps" in capsys.readouterr().err
    assert not (tmp_path / "p.npz").exists()



def test_server_job_resamples_with_its_fps_option(tmp_path):
    from scail_backend.server import ServerConfig
    from scail_protocol import messages as M
    from scail_protocol.client import BackendClient

    from server_helpers import KEY, ServerThread

    clip = write_clip(tmp_path / "clip32.mp4", frames=16, fps=32, size=(96, 160))
    running = ServerThread(ServerConfig(key=KEY, bind="tcp://127.0.0.1:*", roots=(tmp_path,),
                                        work_dir=tmp_path / "work"))
    try:
        with BackendClient(running.address, KEY, timeout_s=60) as client:
            job = client.submit(M.EXTRACT, {"video": {"path": str(clip)}, "fps": 16,
                                            "estimator": "mediapipe", "resolution": [96, 160]})
            poses = client.wait(job).poses
    finally:
        running.close()
    assert poses.fps == 16 and poses.num_frames == 8
    assert poses.meta["source"]["fps"] == 32


def test_run_says_a_file_is_damaged_once_and_keeps_it_for_reports(tmp_path, caplog):
    """The reader warns as it reads; the folder's estimate keeps the line for batch and job
    reports without logging it a second time."""
    from scail_backend.pipeline import estimate_folder

    full = write_clip(tmp_path / "full.mp4", frames=20, make=noise_frame, preset="medium",
                      options={"movflags": "faststart"})
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "driving.mp4").write_bytes(full.read_bytes()[:int(full.stat().st_size * 0.7)])
    caplog.set_level(logging.WARNING)
    poses = estimate_folder(folder, estimator="mediapipe")
    said = [r.getMessage() for r in caplog.records if "damaged or truncated" in r.getMessage()]
    assert len(said) == 1, said
    assert sum("damaged or truncated" in w for w in poses.warnings) == 1
