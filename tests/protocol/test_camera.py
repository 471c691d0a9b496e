"""Intrinsics, projection and the camera <-> Blender mapping (docs/pipeline.md §3.4, §15)."""

import math

import numpy as np
import pytest

from scail_protocol import camera as C


@pytest.mark.parametrize("h, w, f, cx, cy", [
    (512, 896, 860.5999928831, 448, 256),
    (896, 512, 860.5999928831, 256, 448),
    (480, 832, 799.128565, 416, 240),
    (720, 1280, 1229.428561, 640, 360),
    (1024, 1024, 983.542849, 512, 512),
    (512, 512, 491.771425, 256, 256),
])
def test_intrinsics_from_fov_match_reference_table(h, w, f, cx, cy):
    K = C.intrinsics_from_fov(h, w)
    np.testing.assert_allclose([K[0, 0], K[1, 1], K[0, 2], K[1, 2]], [f, f, cx, cy], atol=1e-6)  # table rounded to 1e-6


@pytest.mark.parametrize("h, w, fov", [(0, 10, 55), (10, -1, 55), (10, 10, 0), (10, 10, 180)])
def test_intrinsics_reject_absurd_input(h, w, fov):
    with pytest.raises(ValueError):
        C.intrinsics_from_fov(h, w, fov)


def test_project_backproject_round_trip(rng):
    K = C.intrinsics_from_fov(512, 896)
    pts = rng.uniform([-1000, -800, 1500], [1000, 800, 8000], size=(7, 5, 3))
    uv = C.project(pts, K)
    np.testing.assert_allclose(C.backproject(uv, pts[..., 2], K), pts, rtol=1e-10, atol=1e-9)


def test_project_gives_nan_behind_camera_and_for_missing():
    K = C.intrinsics_from_fov(512, 896)
    uv = C.project(np.array([[0, 0, -100.0], [0, 0, 0.0], [np.nan] * 3, [10, 20, 3000.0]]), K)
    assert np.isnan(uv[:3]).all()
    np.testing.assert_allclose(uv[3], [448 + 860.6 * 10 / 3000, 256 + 860.6 * 20 / 3000], rtol=1e-6)


def test_camera_to_blender_round_trip_and_axes():
    pts = np.array([[100.0, 200.0, 3000.0]])
    bl = C.camera_to_blender(pts)
    np.testing.assert_allclose(bl, [[0.1, 3.0, -0.2]])  # right -> +X, forward -> +Y, down -> -Z
    np.testing.assert_allclose(C.blender_to_camera(bl), pts)
    assert math.isclose(np.linalg.det(C.CAMERA_TO_BLENDER), 1.0)  # a rotation, not a mirror


@pytest.mark.parametrize("K", [
    [[860.6, 0, 448], [0, 860.6, 256], [0, 0, 1]],
    [[1000.0, 0, 470.0], [0, 900.0, 230.0], [0, 0, 1]],
    [[800.0, 0, 400.0], [0, 950.0, 300.0], [0, 0, 1]],
])
def test_blender_camera_round_trip(K):
    K = np.asarray(K, dtype=float)
    cam = C.blender_camera_from_K(K, 512, 896)
    assert cam.pixel_aspect_x >= 1.0 and cam.pixel_aspect_y >= 1.0  # Blender's valid range
    np.testing.assert_allclose(C.K_from_blender_camera(cam), K, rtol=1e-12, atol=1e-9)


def test_blender_camera_of_default_K_has_half_pixel_shift():
    cam = C.blender_camera_from_K(C.intrinsics_from_fov(512, 896), 512, 896)
    # Blender measures from pixel edges, our pixels from their centres
    assert math.isclose(cam.shift_x, -0.5 / 896) and math.isclose(cam.shift_y, 0.5 / 896)
    assert math.isclose(cam.lens_mm, 860.5999928831 * 36 / 896, rel_tol=1e-9)
