"""The H.264 writer (decoded back with PyAV) and the PNG frame writer: settings, atomicity."""

import numpy as np
import pytest

from scail_protocol.errors import OutputError, VideoError

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

from scail_backend.video.writer import Mp4Writer, PngFrameWriter  # noqa: E402

SIZE = (48, 80)


def _gradient_frames(n: int, alpha: bool = True) -> list:
    rows, cols = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    frames = []
    for i in range(n):
        rgb = np.stack([(cols * 3 + i * 5) % 256, rows * 4, np.full(SIZE, 40 + i)], -1)
        if alpha:
            rgb = np.concatenate([rgb, np.full(SIZE + (1,), 204)], -1)
        frames.append(rgb.astype(np.uint8))
    return frames


def _decode(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = (stream.codec_context.name, stream.average_rate, stream.height, stream.width)
        frames = [f for f in container.decode(stream)]
        return info, [f.format.name for f in frames], [f.to_ndarray(format="rgb24") for f in frames]


def test_mp4_round_trip_keeps_count_rate_size_and_pixels(tmp_path):
    path = tmp_path / "out.mp4"
    frames = _gradient_frames(17)
    with Mp4Writer(path, SIZE) as video:
        for frame in frames:
            video.write(frame)
    assert video.frames == 17
    (codec, rate, height, width), formats, decoded = _decode(path)
    assert (codec, rate, height, width) == ("h264", 16, SIZE[0], SIZE[1])
    assert formats == ["yuv420p"] * 17
    error = np.mean([np.abs(d.astype(int) - f[..., :3].astype(int)).mean()
                     for d, f in zip(decoded, frames)])
    assert error < 6.0  # lossy CRF 23 with 4:2:0 chroma, smooth content


def test_mp4_accepts_rgb_frames_and_other_rates(tmp_path):
    path = tmp_path / "out.mp4"
    with Mp4Writer(path, SIZE, fps=25) as video:
        for frame in _gradient_frames(3, alpha=False):
            video.write(frame)
    (_, rate, _, _), formats, _ = _decode(path)
    assert rate == 25 and len(formats) == 3


def test_mp4_exception_leaves_nothing_and_keeps_an_existing_file(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with Mp4Writer(path, SIZE) as video:
            video.write(_gradient_frames(1)[0])
            raise KeyboardInterrupt
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


@pytest.mark.parametrize("size", [(47, 80), (48, 81), (0, 80)])
def test_mp4_rejects_odd_or_empty_sizes(tmp_path, size):
    with pytest.raises(VideoError, match="even"):
        Mp4Writer(tmp_path / "x.mp4", size)


def test_mp4_rejects_missing_folder_directory_target_and_bad_frames(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        with Mp4Writer(tmp_path / "nope" / "x.mp4", SIZE):
            pass
    with pytest.raises(VideoError, match="folder"):
        Mp4Writer(tmp_path, SIZE)
    with pytest.raises(VideoError, match="frame must be"):
        with Mp4Writer(tmp_path / "x.mp4", SIZE) as video:
            video.write(np.zeros((SIZE[0], SIZE[1] + 2, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_png_frames_are_lossless_rgba_with_reference_names(tmp_path):
    frames = _gradient_frames(3)
    frames[1][5, 7] = (1, 2, 3, 0)  # transparent pixel with colour: alpha must survive
    with PngFrameWriter(tmp_path / "frames") as pngs:
        for frame in frames:
            pngs.write(frame)
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
    for name, frame in zip(names, frames):
        back = cv2.imread(str(tmp_path / "frames" / name), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(cv2.cvtColor(back, cv2.COLOR_BGRA2RGBA), frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_png_failure_leaves_no_folder_and_success_replaces_an_old_one(tmp_path):
    target = tmp_path / "frames"
    with pytest.raises(RuntimeError):
        with PngFrameWriter(target) as pngs:
            pngs.write(_gradient_frames(1)[0])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    target.mkdir()
    for i in range(3):  # an older, longer run's frames
        (target / f"frame_{i:05d}.png").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with PngFrameWriter(target) as pngs:
            pngs.write(_gradient_frames(1)[0])
            raise RuntimeError("boom")
    assert len(list(target.iterdir())) == 3 and (target / "frame_00002.png").read_bytes() == b"old"
    with PngFrameWriter(target) as pngs:
        pngs.write(_gradient_frames(1)[0])
    assert [p.name for p in target.iterdir()] == ["frame_00000.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_a_folder_of_the_users_own_files_is_never_swept_away(tmp_path, monkeypatch):
    target = tmp_path / "frames"
    target.mkdir()
    (target / "frame_00000.png").write_bytes(b"old")
    (target / "notes.txt").write_text("precious")
    (target / "sub").mkdir()
    with pytest.raises(OutputError, match=r"already holds notes\.txt, sub; .*new or empty folder"):
        PngFrameWriter(target)
    assert sorted(p.name for p in target.iterdir()) == ["frame_00000.png", "notes.txt", "sub"]
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    with pytest.raises(OutputError, match="current folder"):  # cannot be renamed away
        PngFrameWriter(".")
    with pytest.raises(OutputError, match="current folder"):
        PngFrameWriter(tmp_path)


def test_png_target_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "frames").write_text("not a folder")
    with pytest.raises(OutputError, match="is a file"):
        PngFrameWriter(tmp_path / "frames")
