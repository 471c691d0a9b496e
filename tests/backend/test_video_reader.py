"""Video input: framing numbers (docs/pipeline.md §1.2, §15), containers and codecs, image folders,
damaged inputs, display rotation and bounded memory."""

from __future__ import annotations

import logging
import os
import tracemalloc

import numpy as np
import pytest

from scail_backend.video.framing import Framing, check_resolution, target_size
from scail_backend.video.reader import STILL_FPS, open_video
from scail_protocol.errors import VideoError

from video_helpers import noise_frame, pattern_frame, write_clip, write_image

# --- framing (docs/pipeline.md §15 resize/crop table) --------------------------------------------


@pytest.mark.parametrize("source, target, resized, crop", [
    ((1080, 2048), (512, 896), (512, 970), (0, 37)),
    ((1080, 1920), (512, 896), (512, 910), (0, 7)),
    ((1920, 1080), (896, 512), (910, 512), (7, 0)),
    ((720, 720), (896, 512), (896, 896), (0, 192)),
])
def test_framing_matches_reference_table(source, target, resized, crop):
    framing = Framing.for_source(source)
    assert framing.size == target
    assert framing.resized_size == resized
    assert (framing.top, framing.left) == crop


def test_resolution_override_follows_orientation():
    assert target_size((1080, 1920), (480, 832)) == (480, 832)
    assert target_size((1920, 1080), (480, 832)) == (832, 480)
    assert target_size((600, 600), (480, 832)) == (832, 480)  # square counts as portrait


@pytest.mark.parametrize("bad", [(0, 896), (513, 896), (512,), ("a", 3), (8192, 512)])
def test_resolution_rejects_odd_zero_or_huge(bad):
    with pytest.raises(VideoError, match="resolution"):
        check_resolution(bad)


def test_framing_apply_returns_contiguous_working_frame():
    framing = Framing.for_source((60, 100), (32, 48))
    out = framing.apply(pattern_frame(0, (60, 100)))
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8 and out.flags.c_contiguous


def _cubic_aa_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) weights of antialiased bicubic resampling (Keys a = -0.5, support widened by
    the scale factor), the kernel torchvision uses with antialias=True (and PIL's BICUBIC)."""
    a = -0.5
    scale = in_size / out_size
    stretch = max(scale, 1.0)
    support = 2.0 * stretch
    weights = np.zeros((out_size, in_size))
    for i in range(out_size):
        centre = scale * (i + 0.5)
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), in_size)
        x = np.abs((np.arange(lo, hi) - centre + 0.5) / stretch)
        w = np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                     np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))
        weights[i, lo:hi] = w / w.sum()
    return weights


def _aa_bicubic(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """float64 antialiased bicubic resize (our reference for torchvision's antialias=True)."""
    wy = _cubic_aa_weights(image.shape[0], out_h)
    wx = _cubic_aa_weights(image.shape[1], out_w)
    return np.clip(np.einsum("ij,jkc,lk->ilc", wy, image.astype(np.float64), wx,
                             optimize=True), 0, 255)


def _test_image(stripes: bool, size=(540, 1024)) -> np.ndarray:
    """RGB test image: smooth colour blobs; optionally hard 1-pixel stripes and a bar."""
    import cv2

    rng = np.random.default_rng(7)
    image = cv2.resize(rng.integers(0, 256, (34, 64, 3), dtype=np.uint8), (size[1], size[0]),
                       interpolation=cv2.INTER_CUBIC)
    if stripes:
        image[100:300:7] = 255
        image[:, 500:520] = 0
    return image


def test_aa_bicubic_reference_agrees_with_pil():
    pil = pytest.importorskip("PIL.Image")
    image = _test_image(stripes=True)
    ours = _aa_bicubic(image, 256, 485)
    theirs = np.asarray(pil.fromarray(image).resize((485, 256), pil.BICUBIC), dtype=np.float64)
    assert np.abs(ours - theirs).mean() < 0.5  # PIL rounds to uint8 between its two passes


def _downscale_errors(source, stripes):
    """Mean |Δ| (levels) of our resize and of plain INTER_CUBIC against the antialiased bicubic,
    for a 2.1x downscale to 256 x 485 (the dance_a ratio)."""
    import cv2

    image = _test_image(stripes, source)
    framing = Framing.to_target(source, (256, 485))
    assert framing.resized_size == framing.size == (256, 485)
    reference = _aa_bicubic(image, 256, 485)
    ours = np.abs(framing.apply(image) - reference).mean()
    plain = np.abs(cv2.resize(image, (485, 256), interpolation=cv2.INTER_CUBIC) - reference).mean()
    return framing, ours, plain


@pytest.mark.parametrize("source, box", [((540, 1024), 2), ((541, 1023), 1)])
def test_downscale_stays_close_to_antialiased_bicubic(source, box):
    framing, ours, _ = _downscale_errors(source, stripes=False)
    assert framing.box_factor == box  # exact 2x box first when 2 divides both sides
    assert ours < 0.8, ours  # measured 0.58 (2x box + cubic), 0.39 (area)


@pytest.mark.parametrize("source", [(540, 1024), (541, 1023)])
def test_downscale_antialiases_fine_detail(source):
    _, ours, plain = _downscale_errors(source, stripes=True)
    # 1-pixel stripes: measured 4.2 (2x box + cubic), 2.0 (area), 7.2 (plain bicubic)
    assert ours < 5.0 and ours < 0.7 * plain, (ours, plain)


def test_box_factor_needs_an_exact_integer_reduction():
    assert Framing.for_source((1080, 2048)).box_factor == 2     # 2.1x: 2x box, then 1.05x
    assert Framing.for_source((2160, 3840)).box_factor == 4     # 4K: 4x box, then 1.05x
    assert Framing.for_source((720, 1280)).box_factor == 1      # 1.4x: area directly
    assert Framing.for_source((1081, 2048)).box_factor == 1     # 2 does not divide 1081
    assert Framing.for_source((720, 720)).box_factor == 1       # upscale


# --- containers and codecs ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".webm", ".avi", ".mkv"])
def test_decodes_every_frame_of_common_containers(tmp_path, suffix):
    path = write_clip(tmp_path / f"clip{suffix}", frames=10, size=(96, 160), fps=25)
    source = open_video(path, resolution=(48, 80))
    frames = list(source)
    assert len(frames) == 10 and source.frames_read == 10
    assert source.fps == pytest.approx(25.0)
    assert source.source_size == (96, 160) and source.size == (48, 80)
    assert all(f.shape == (48, 80, 3) and f.dtype == np.uint8 for f in frames)
    assert source.problems == []
    # Content survives the codec: compare with the original frames framed the same way.
    expected = source.framing.apply(pattern_frame(4, (96, 160))).astype(np.int16)
    assert np.abs(frames[4].astype(np.int16) - expected).mean() < 6.0


def test_num_frames_is_known_or_estimated(tmp_path):
    mp4 = open_video(write_clip(tmp_path / "a.mp4", frames=9))
    assert (mp4.num_frames, mp4.num_frames_exact) == (9, True)
    webm = open_video(write_clip(tmp_path / "a.webm", frames=9))
    assert webm.num_frames is None or abs(webm.num_frames - 9) <= 1


def test_display_rotation_is_applied(tmp_path):
    def corner(index, size):
        frame = np.zeros((*size, 3), np.uint8)
        frame[:16, :16] = 255  # white square in the top-left corner of the stored frame
        return frame

    path = write_clip(tmp_path / "rot.mp4", frames=2, size=(64, 128), make=corner, rotation=90)
    source = open_video(path, resolution=(64, 128))
    assert source.source_size == (128, 64)  # stored landscape, displayed portrait
    frame = next(iter(source))
    assert frame.shape == (128, 64, 3)
    # 90° counter-clockwise moves the top-left corner to the bottom-left.
    assert frame[-8:, :8].mean() > 200 and frame[:8, :8].mean() < 50


def test_iterating_twice_decodes_again(tmp_path):
    source = open_video(write_clip(tmp_path / "a.mp4", frames=5))
    assert len(list(source)) == 5 and len(list(source)) == 5


# --- images ---------------------------------------------------------------------------------------


def test_single_image_is_a_one_frame_video(tmp_path):
    path = write_image(tmp_path / "still.png", pattern_frame(0, (200, 120)))
    source = open_video(path)
    frames = list(source)
    assert source.kind == "image" and len(frames) == 1 and source.fps == STILL_FPS
    assert source.size == (896, 512)  # portrait


def test_image_folder_in_natural_order_with_mixed_sizes(tmp_path):
    for index in (10, 2, 1):
        write_image(tmp_path / f"frame{index}.png", np.full((60, 100, 3), index * 20, np.uint8))
    write_image(tmp_path / "frame3.jpg", np.full((120, 200, 3), 60, np.uint8))  # other size
    (tmp_path / "notes.txt").write_text("not an image")
    source = open_video(tmp_path, resolution=(32, 48))
    frames = list(source)
    assert source.kind == "images" and len(frames) == 4
    assert [int(round(f.mean())) for f in frames] == [20, 40, 60, 200]
    assert all(f.shape == (32, 48, 3) for f in frames)
    assert source.problems == []   # one shape at two sizes: one framing, nothing to say


def test_image_folder_of_other_shapes_says_the_framing_jumps(tmp_path):
    write_image(tmp_path / "a1.png", np.zeros((60, 100, 3), np.uint8))
    write_image(tmp_path / "a2.png", np.zeros((100, 60, 3), np.uint8))   # portrait
    write_image(tmp_path / "a3.png", np.zeros((30, 200, 3), np.uint8))   # a strip
    source = open_video(tmp_path, resolution=(32, 48))
    assert len(list(source)) == 3
    assert len(source.problems) == 1   # said once
    assert source.problems[0].startswith("the images differ in shape (the first is 100x60, "
                                         "a2.png 60x100, width x height)")
    assert "framing jumps" in source.problems[0]


def test_unreadable_image_in_folder_is_skipped_with_a_note(tmp_path):
    write_image(tmp_path / "a1.png", np.zeros((40, 60, 3), np.uint8))
    (tmp_path / "a2.png").write_bytes(b"not a png")
    write_image(tmp_path / "a3.png", np.zeros((40, 60, 3), np.uint8))
    source = open_video(tmp_path)
    assert len(list(source)) == 2
    assert any("a2.png" in p for p in source.problems)
    assert source.problems[-1] == "the folder holds 3 images"


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(VideoError, match="holds no images"):
        open_video(tmp_path)


def test_folder_of_broken_images_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"garbage")
    with pytest.raises(VideoError, match="no readable image"):
        open_video(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs POSIX permissions and a non-root user")
def test_unreadable_folder_is_an_error(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0)
    try:
        with pytest.raises(VideoError, match="cannot read folder"):
            open_video(folder)
    finally:
        folder.chmod(0o755)


# --- damaged input --------------------------------------------------------------------------------


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        open_video(tmp_path / "nope.mp4")


@pytest.mark.parametrize("content", [b"", b"hello world" * 100])
def test_not_a_video_is_an_error(tmp_path, content):
    path = tmp_path / "fake.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError, match="not a readable video"):
        open_video(path)


def test_truncated_video_without_index_is_an_error(tmp_path):
    data = write_clip(tmp_path / "a.mp4", frames=20, make=noise_frame).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # moov (the index) sits at the end: lost
    with pytest.raises(VideoError, match="not a readable video"):
        open_video(cut)


def test_truncated_video_yields_what_decodes_and_warns(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="scail_backend.video.reader")
    data = write_clip(tmp_path / "a.mp4", frames=20, make=noise_frame,
                      options={"movflags": "faststart"}).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    source = open_video(cut)
    frames = list(source)
    assert 0 < len(frames) < 20
    assert any("truncated" in p for p in source.problems)
    assert "truncated" in caplog.text
    assert caplog.text.count("damaged or truncated") == 1   # said once, however it shows
    assert "the file announces 20 frames" in caplog.text


@pytest.mark.parametrize("suffix", [".webm", ".mkv"])
def test_truncated_file_without_a_frame_count_warns_from_its_duration(tmp_path, caplog, suffix):
    caplog.set_level(logging.WARNING, logger="scail_backend.video.reader")
    whole = write_clip(tmp_path / f"a{suffix}", frames=30, make=noise_frame)
    assert len(list(open_video(whole))) == 30 and caplog.text == ""   # intact: no note
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.5)])
    source = open_video(cut)
    assert not source.num_frames_exact and 0 < len(list(source)) < 24
    assert "its duration announces about 30 frames" in caplog.text
    assert caplog.text.count("damaged or truncated") == 1


def test_corrupt_middle_keeps_decoding(tmp_path):
    path = write_clip(tmp_path / "a.mp4", frames=20, make=noise_frame,
                      options={"movflags": "faststart"})
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4000] = np.random.default_rng(0).integers(0, 256, 4000,
                                                                 dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    frames = list(open_video(path))
    assert len(frames) >= 10  # frames around the damage still come out


def test_zero_frame_video_is_an_error(tmp_path):
    import av

    path = tmp_path / "zero.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=16)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        out.start_encoding()
    with pytest.raises(VideoError, match="no video stream|no decodable"):
        open_video(path)


# --- streaming ------------------------------------------------------------------------------------


def test_memory_stays_bounded_while_streaming(tmp_path):
    frames = 150
    path = write_clip(tmp_path / "long.mp4", frames=frames, size=(360, 640))
    source = open_video(path)  # working frames are 512 x 896 x 3 = 1.4 MB each
    frame_bytes = 512 * 896 * 3
    tracemalloc.start()
    try:
        count = 0
        for frame in source:
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == frames
    # Holding the clip would need frames x 1.4 MB = 206 MB; streaming holds a few frames.
    assert peak < 6 * frame_bytes, f"peak traced memory {peak / 1e6:.1f} MB"


def test_a_poses_file_given_as_the_video_names_the_command_that_renders_it(tmp_path):
    from scail_backend.render.samples import walking_sequence

    poses = tmp_path / "poses.npz"
    walking_sequence(2).save(poses)
    with pytest.raises(VideoError, match="is a poses file, not a video.*scail-pose render"):
        open_video(poses)
