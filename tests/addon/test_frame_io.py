"""The render's frame files: the numpy EXR reader against Blender's own, Targa frames."""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")


def _float_image(height=5, width=7, seed=0):
    rng = np.random.default_rng(seed)
    rgba = rng.uniform(0.0, 1.5, (height, width, 4)).astype(np.float32)
    image = bpy.data.images.new("exr test", width, height, alpha=True, float_buffer=True)
    image.pixels.foreach_set(rgba[::-1].ravel())  # Blender stores rows bottom-up
    return image, rgba


def _save_exr(image, path, codec: str):
    scene = bpy.context.scene
    settings = scene.render.image_settings
    settings.file_format, settings.color_mode, settings.color_depth = "OPEN_EXR", "RGBA", "32"
    settings.exr_codec = codec
    image.save_render(str(path), scene=scene)


def test_read_exr_matches_blenders_reader_top_row_first(addon, scene, tmp_path):
    image, rgba = _float_image()
    _save_exr(image, tmp_path / "frame.exr", "NONE")
    ours = addon.frame_io.read_exr(tmp_path / "frame.exr")
    assert ours.shape == rgba.shape and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, rgba)
    np.testing.assert_array_equal(ours, addon.render._read_image(tmp_path / "frame.exr"))


def test_read_exr_refuses_compressed_files_and_the_render_falls_back(addon, scene, tmp_path):
    image, rgba = _float_image(seed=1)
    _save_exr(image, tmp_path / "zip.exr", "ZIP")
    with pytest.raises(addon.frame_io.UnsupportedExr, match="compressed"):
        addon.frame_io.read_exr(tmp_path / "zip.exr")
    frame = addon.render.read_render(tmp_path / "zip.exr")  # through Blender's reader
    hit = rgba[..., 3] > 0.5
    expected = (np.clip(rgba[..., :3], 0, 1) * 255).astype(np.uint8) * hit[..., None]
    np.testing.assert_array_equal(frame[..., :3], expected)
    assert set(np.unique(frame[..., 3])) <= {0, 204}


def test_targa_frames_read_back_exactly_in_blender(addon, scene, tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    addon.frame_io.write_tga(rgb, tmp_path / "f.tga")
    image = bpy.data.images.load(str(tmp_path / "f.tga"))
    pixels = np.empty(6 * 9 * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    back = np.round(pixels.reshape(6, 9, 4)[::-1, :, :3] * 255).astype(np.uint8)
    np.testing.assert_array_equal(back, rgb)
