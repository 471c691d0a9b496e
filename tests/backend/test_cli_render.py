"""``scail-pose render``: the happy path and clear one-line errors with no half-written output."""

import numpy as np
import pytest

from scail_backend.cli import EXIT_ERROR, EXIT_OK, main

SIZE = (48, 80)


@pytest.fixture(scope="module")
def poses(tmp_path_factory):
    from scail_backend.render.samples import walking_sequence

    path = tmp_path_factory.mktemp("poses") / "poses.npz"
    walking_sequence(5, SIZE).save(path)
    return path


def _run(capsys, *argv):
    code = main(["-q", "render", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_render_writes_video_and_frames_and_prints_their_paths(poses, tmp_path, capsys):
    import av

    out, frames = tmp_path / "rendered.mp4", tmp_path / "frames"
    code, stdout, err = _run(capsys, poses, "-o", out, "--frames", frames, "--arch", "cpu")
    assert code == EXIT_OK, err
    assert stdout.split() == [str(out), str(frames)]
    with av.open(str(out)) as container:
        assert container.streams.video[0].frames == 5
    assert len(list(frames.iterdir())) == 5


def test_no_overlay_renders_capsules_only(poses, tmp_path, capsys):
    import cv2

    for flag, name in (([], "with"), (["--no-overlay"], "without")):
        code, _, err = _run(capsys, poses, "-o", tmp_path / f"{name}.mp4", "--frames",
                            tmp_path / name, "--arch", "cpu", *flag)
        assert code == EXIT_OK, err
    with_overlay = cv2.imread(str(tmp_path / "with" / "frame_00000.png"), cv2.IMREAD_UNCHANGED)
    without = cv2.imread(str(tmp_path / "without" / "frame_00000.png"), cv2.IMREAD_UNCHANGED)
    assert (with_overlay != without).any()
    np.testing.assert_array_equal(with_overlay[..., 3], without[..., 3])


def _assert_clean_error(code, stdout, err, *fragments):
    assert code == EXIT_ERROR
    assert stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scail-pose render: error:"), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_pose_file(tmp_path, capsys):
    code, out, err = _run(capsys, tmp_path / "nope.npz", "-o", tmp_path / "x.mp4")
    _assert_clean_error(code, out, err, "not found")
    assert list(tmp_path.iterdir()) == []


def test_truncated_pose_file(poses, tmp_path, capsys):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(poses.read_bytes()[:300])
    code, out, err = _run(capsys, broken, "-o", tmp_path / "x.mp4")
    _assert_clean_error(code, out, err, "broken.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["broken.npz"]


def test_not_a_pose_file(tmp_path, capsys):
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    code, out, err = _run(capsys, other, "-o", tmp_path / "x.mp4")
    _assert_clean_error(code, out, err, "missing field")


@pytest.mark.parametrize("target", ["missing_dir/x.mp4", "afile/x.mp4", "."])
def test_unwritable_output_paths(poses, tmp_path, capsys, target):
    (tmp_path / "afile").write_text("a file, not a folder")
    out = tmp_path / target
    code, stdout, err = _run(capsys, poses, "-o", out)
    _assert_clean_error(code, stdout, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("size", [(8, 80), (8200, 64), (48, 81)])
def test_absurd_resolution_is_refused_before_work(tmp_path, capsys, size):
    from scail_protocol.sequence import PoseSequence

    path = tmp_path / "poses.npz"
    PoseSequence.empty(1, 3, size, 16.0).save(path)
    code, out, err = _run(capsys, path, "-o", tmp_path / "x.mp4")
    _assert_clean_error(code, out, err, f"{size[0]}x{size[1]}")
    assert [p.name for p in tmp_path.iterdir()] == ["poses.npz"]


def test_empty_sequence_is_refused(tmp_path, capsys):
    from scail_protocol.sequence import PoseSequence

    path = tmp_path / "poses.npz"
    PoseSequence.empty(1, 0, SIZE, 16.0).save(path)
    code, out, err = _run(capsys, path, "-o", tmp_path / "x.mp4")
    _assert_clean_error(code, out, err, "no frames")


def test_unknown_arch_is_an_argparse_error(poses, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["render", str(poses), "-o", str(tmp_path / "x.mp4"), "--arch", "tpu"])
    assert exit_info.value.code != 0


def test_poses_with_nobody_render_black_with_a_warning(poses, tmp_path, capsys):
    from scail_protocol.sequence import PoseSequence

    seq = PoseSequence.load(poses)
    nobody = tmp_path / "nobody.npz"
    seq.replace(joints3d=np.full_like(seq.joints3d, np.nan),
                kp2d=np.full_like(seq.kp2d, np.nan)).save(nobody)
    code, _, err = _run(capsys, nobody, "-o", tmp_path / "black.mp4", "--arch", "cpu")
    assert code == EXIT_OK
    assert "nobody is present in any of the 5 frames" in err and "all black" in err
    code, _, err = _run(capsys, poses, "-o", tmp_path / "walk.mp4", "--arch", "cpu")
    assert code == EXIT_OK and "nobody" not in err
