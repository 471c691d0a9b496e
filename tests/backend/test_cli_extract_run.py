"""`scail-pose extract` and `scail-pose run` on bad input: clear messages, non-zero exits where no
output can be made, and no half-written files; a clip without anybody still gives valid outputs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from scail_backend.cli import main
from scail_backend.pipeline import run_folder
from scail_protocol.errors import Cancelled
from scail_protocol.sequence import PoseSequence

from video_helpers import noise_frame, pattern_frame, write_clip

EXIT_ERROR = 2
EXIT_NOBODY = 3


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def empty_clip(tmp_path):
    """A short clip with nobody in it (gradients and a moving block)."""
    return write_clip(tmp_path / "nobody.mp4", frames=6, size=(96, 160))


@pytest.fixture
def umask_022():
    """Run with umask 022 (restored afterwards); returns the umask."""
    previous = os.umask(0o022)
    yield 0o022
    os.umask(previous)


@pytest.fixture
def job(tmp_path, empty_clip):
    folder = tmp_path / "job"
    folder.mkdir()
    os.replace(empty_clip, folder / "driving.mp4")
    return folder


# --- extract --------------------------------------------------------------------------------------


def test_extract_missing_video(tmp_path, capsys):
    out = tmp_path / "poses.npz"
    assert main(["-q", "extract", str(tmp_path / "nope.mp4"), "-o", str(out)]) == EXIT_ERROR
    assert "not found" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 500])
def test_extract_not_a_video(tmp_path, capsys, content):
    video = tmp_path / "bad.mp4"
    video.write_bytes(content)
    out = tmp_path / "poses.npz"
    assert main(["-q", "extract", str(video), "-o", str(out)]) == EXIT_ERROR
    assert "not a readable video" in capsys.readouterr().err
    assert _listing(tmp_path) == ["bad.mp4"]


def test_extract_truncated_video(tmp_path, capsys):
    data = write_clip(tmp_path / "full.mp4", frames=12, make=noise_frame).read_bytes()
    (tmp_path / "full.mp4").unlink()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    assert main(["-q", "extract", str(tmp_path / "cut.mp4"), "-o",
                 str(tmp_path / "p.npz")]) == EXIT_ERROR
    assert "truncated" in capsys.readouterr().err
    assert _listing(tmp_path) == ["cut.mp4"]


def test_extract_zero_frame_video(tmp_path, capsys):
    import av

    video = tmp_path / "zero.mp4"
    with av.open(str(video), "w") as out:
        stream = out.add_stream("libx264", rate=16)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        out.start_encoding()
    assert main(["-q", "extract", str(video), "-o", str(tmp_path / "p.npz")]) == EXIT_ERROR
    assert "zero.mp4" in capsys.readouterr().err
    assert not (tmp_path / "p.npz").exists()


def test_extract_bad_resolution(tmp_path, capsys, empty_clip):
    code = main(["-q", "extract", str(empty_clip), "-o", str(tmp_path / "p.npz"),
                 "--resolution", "511", "896"])
    assert code == EXIT_ERROR and "resolution" in capsys.readouterr().err


def test_extract_nlf_without_weights(tmp_path, capsys, empty_clip):
    code = main(["-q", "extract", str(empty_clip), "-o", str(tmp_path / "p.npz"),
                 "--estimator", "nlf", "--weights-dir", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR
    assert "weights download" in err and "--estimator mediapipe" in err
    assert not (tmp_path / "p.npz").exists()


@pytest.mark.parametrize("quiet", [[], ["-q"]])
def test_extract_clip_without_anybody_says_so_exits_3_and_writes_nan_poses(
        tmp_path, capsys, empty_clip, umask_022, quiet):
    out = tmp_path / "poses.npz"
    assert main([*quiet, "extract", str(empty_clip), "-o", str(out), "--estimator",
                 "mediapipe"]) == EXIT_NOBODY
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert out.stat().st_mode & 0o777 == 0o644
    assert "no person found" in captured.err
    seq = PoseSequence.load(out)
    assert seq.num_frames == 6 and seq.size == (512, 896) and not seq.present().any()
    assert seq.meta["source"]["fps"] == 16.0 and len(seq.meta["source"]["sha256"]) == 64


@pytest.mark.parametrize("flag, strength", [
    ([], None), (["--smooth"], "default"), (["--smooth", "strong"], "strong"),
    (["--smooth=0.3"], 0.3)])
def test_extract_smooth_flag_reaches_the_poses(tmp_path, empty_clip, flag, strength):
    from scail_backend.smoothing import parse_strength

    out = tmp_path / "poses.npz"
    assert main(["-q", "extract", str(empty_clip), "-o", str(out), "--estimator", "mediapipe",
                 *flag]) == EXIT_NOBODY  # nobody in the clip
    meta = PoseSequence.load(out).meta
    if strength is None:
        assert "smoothing" not in meta  # off by default, as the reference
    else:
        assert meta["smoothing"]["strength"] == parse_strength(strength)
        assert meta["smoothing"]["filter"] == "one_euro"


@pytest.mark.parametrize("value", ["wobbly", "1.5", "-1"])
def test_extract_smooth_refuses_unknown_strengths(tmp_path, capsys, empty_clip, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["-q", "extract", str(empty_clip), "-o", str(tmp_path / "p.npz"),
              f"--smooth={value}"])
    assert exit_info.value.code == EXIT_ERROR
    err = capsys.readouterr().err
    assert "--smooth" in err and "light, medium, strong" in err
    assert not (tmp_path / "p.npz").exists()


@pytest.mark.parametrize("command", ["extract", "run", "batch"])
@pytest.mark.parametrize("value", ["1e-7", "1e-9", "0"])
def test_a_tiny_fps_is_one_line_before_any_work(tmp_path, capsys, empty_clip, command, value):
    """Rates too small for the resampler's fractions once crashed with ZeroDivisionError."""
    argv = {"extract": ["extract", str(empty_clip), "-o", str(tmp_path / "p.npz")],
            "run": ["run", str(tmp_path)],
            "batch": ["batch", str(empty_clip), "-o", str(tmp_path / "out")]}[command]
    with pytest.raises(SystemExit) as exit_info:
        main(["-q", *argv, "--fps", value])
    assert exit_info.value.code == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"fps must be a number in [0.01, 1000] frames per second, got '{value}'" in err
    assert _listing(tmp_path) == ["nobody.mp4"]


# --- run ------------------------------------------------------------------------------------------


def test_run_missing_folder(tmp_path, capsys):
    assert main(["-q", "run", str(tmp_path / "nope")]) == EXIT_ERROR
    assert "not found" in capsys.readouterr().err


def test_run_on_a_file_instead_of_a_folder(tmp_path, capsys, empty_clip):
    assert main(["-q", "run", str(empty_clip)]) == EXIT_ERROR
    assert "not a folder" in capsys.readouterr().err


def test_run_folder_without_driving_video(tmp_path, capsys):
    (tmp_path / "ref.jpg").write_bytes(b"")
    assert main(["-q", "run", str(tmp_path)]) == EXIT_ERROR
    assert "no driving.mp4" in capsys.readouterr().err
    assert _listing(tmp_path) == ["ref.jpg"]


def test_run_corrupt_driving_video_leaves_folder_alone(tmp_path, capsys):
    (tmp_path / "driving.mp4").write_bytes(b"\x00\x01" * 4000)
    assert main(["-q", "run", str(tmp_path)]) == EXIT_ERROR
    assert "not a readable video" in capsys.readouterr().err
    assert _listing(tmp_path) == ["driving.mp4"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs POSIX permissions and a non-root user")
def test_run_unreadable_folder(tmp_path, capsys):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0)
    try:
        assert main(["-q", "run", str(folder)]) == EXIT_ERROR
        assert "cannot read folder" in capsys.readouterr().err
    finally:
        folder.chmod(0o755)


def test_run_without_anybody_gives_a_valid_black_video_and_exits_3(job, capsys, umask_022):
    import av

    assert main(["run", str(job), "--estimator", "mediapipe", "--arch", "cpu"]) == EXIT_NOBODY
    captured = capsys.readouterr()
    assert captured.out.split() == [str(job / "poses.npz"), str(job / "rendered.mp4")]
    assert "no person found" in captured.err
    assert "INFO" in captured.err and "no reference image" in captured.err  # a note, without -q
    assert _listing(job) == ["driving.mp4", "poses.npz", "rendered.mp4"]
    for name in ("poses.npz", "rendered.mp4"):  # the umask's mode, not a temp file's 0600
        assert (job / name).stat().st_mode & 0o777 == 0o666 & ~umask_022
    with av.open(str(job / "rendered.mp4")) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert float(stream.average_rate) == 16.0
    assert len(frames) == 6 and frames[0].shape == (512, 896, 3)
    assert max(int(f.max()) for f in frames) <= 8  # black, up to codec noise


def test_run_smooth_flag_reaches_the_poses_and_quiet_keeps_warnings(job, capsys):
    assert main(["-q", "run", str(job), "--estimator", "mediapipe", "--arch", "cpu",
                 "--smooth", "light"]) == EXIT_NOBODY
    assert PoseSequence.load(job / "poses.npz").meta["smoothing"]["strength"] == 0.25
    err = capsys.readouterr().err
    assert "WARNING" in err and "no person found" in err  # -q hides progress, not warnings
    assert "no reference image" not in err                 # ... and notes are not warnings
    assert "estimate:" not in err and "render:" not in err and "INFO" not in err  # no bars


@pytest.mark.parametrize("stage", ["estimate", "render"])
def test_cancelled_run_leaves_no_files(job, stage):
    def progress(name, done, total):
        if name == stage and done >= 2:
            raise Cancelled(f"cancelled during {name}")

    with pytest.raises(Cancelled):
        run_folder(job, estimator="mediapipe", arch="cpu", progress=progress)
    assert _listing(job) == ["driving.mp4"]


def test_run_without_dir_reuses_the_demo_folder(tmp_path, monkeypatch, capsys):
    demo = tmp_path / "scail_demo"
    demo.mkdir()
    write_clip(demo / "driving.mp4", frames=4, size=(96, 160), make=pattern_frame)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--estimator", "mediapipe", "--arch", "cpu"]) == EXIT_NOBODY  # a pattern
    out = capsys.readouterr().out.split()
    assert [os.path.basename(p) for p in out] == ["poses.npz", "rendered.mp4"]
    assert (demo / "rendered.mp4").is_file() and (demo / "poses.npz").is_file()


def test_run_help_mentions_16_fps_and_examples(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "16 fps" in text and "examples:" in text and "scail-pose run" in text


def test_nobody_kept_after_tracking_says_the_people_found_were_blips(capsys):
    from scail_backend.cli import _exit_if_nobody
    from scail_backend.render.samples import walking_sequence
    from scail_backend.tracking import track_people

    seq = walking_sequence(10, (48, 80))
    hidden = np.arange(10) >= 2       # someone in the first 2 frames only: a blip
    joints, kp2d = seq.joints3d.copy(), seq.kp2d.copy()
    joints[:, hidden], kp2d[:, hidden] = np.nan, np.nan
    tracked = track_people(seq.replace(joints3d=joints, kp2d=kp2d))
    assert _exit_if_nobody(tracked, "extract", "poses all missing") == EXIT_NOBODY
    err = capsys.readouterr().err
    assert "nobody was kept in any of the 10 frames" in err
    assert "people were seen, but only in 1 track(s) shorter than 5 frames" in err
    assert "brighter" not in err
    assert _exit_if_nobody(track_people(seq.replace(joints3d=joints * np.nan,
                                                     kp2d=kp2d * np.nan)), "extract", "x") == 3
    assert "try a closer or brighter clip" in capsys.readouterr().err


def test_a_decoder_warning_during_mediapipe_start_up_still_shows(tmp_path):
    """The decoder thread reads a short folder at once, while MediaPipe starts its graph with fd 2
    silenced; its warning must wait for the window, not vanish into it."""
    import subprocess
    import sys

    from video_helpers import write_image

    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(3):
        write_image(folder / f"f{index}.png", noise_frame(index, (96, 160)))
    (folder / "f3.png").write_bytes(b"not a png")
    result = subprocess.run([sys.executable, "-m", "scail_backend.cli", "-q", "extract",
                             str(folder), "-o", str(tmp_path / "p.npz"), "--estimator",
                             "mediapipe"], capture_output=True, text=True, timeout=300)
    assert result.returncode in (0, 3), result.stderr
    assert "f3.png is not a readable image" in result.stderr


def test_run_use_align_without_anybody_writes_the_aligned_outputs_and_exits_3(job, capsys):
    """Nobody to align: the outputs of an alignment that fell back (all black), as `run`
    without alignment writes its black video, and no warning about a file never written."""
    import av

    from video_helpers import write_image

    write_image(job / "ref.png", noise_frame(0, (96, 160)))
    assert main(["-q", "run", str(job), "--use-align", "--estimator", "mediapipe", "--arch",
                 "cpu"]) == EXIT_NOBODY
    captured = capsys.readouterr()
    assert captured.out.split() == [str(job / "poses_aligned.npz"),
                                    str(job / "rendered_aligned.mp4")]
    assert "rendered_aligned.mp4 will be all black (there is nothing to align)" in captured.err
    assert "rendered.mp4" not in captured.err.replace("rendered_aligned.mp4", "")
    assert "rendered_aligned.mp4 is all black" in captured.err
    assert _listing(job) == ["driving.mp4", "poses.npz", "poses_aligned.npz", "ref.png",
                             "rendered_aligned.mp4"]
    aligned = PoseSequence.load(job / "poses_aligned.npz")
    record = aligned.meta["alignment"]
    assert record["fallback"] == "nobody in the driving poses; using the default camera"
    assert record["reference"] == "ref.png" and record["solved"] is None
    np.testing.assert_array_equal(aligned.K, PoseSequence.load(job / "poses.npz").K)
    with av.open(str(job / "rendered_aligned.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 6 and max(int(f.max()) for f in frames) <= 8


def test_run_where_driving_mp4_is_a_folder_says_so(tmp_path, capsys):
    (tmp_path / "job" / "driving.mp4").mkdir(parents=True)
    assert main(["-q", "run", str(tmp_path / "job")]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "driving.mp4 is a folder, not a video" in err and len(err.splitlines()) == 1
