"""The pure-numpy 2D overlay (docs/pipeline.md §7) against §15's numbers and against OpenCV
itself."""

import subprocess
import sys

import numpy as np
import pytest

from scail_protocol import joints as J
from scail_protocol import raster, raster_poly
from scail_protocol.overlay import (composite_per_channel, draw_overlay, overlay_pixels,
                                    stroke_size)

cv2 = pytest.importorskip("cv2")
from overlay_cv2_reference import reference_overlay  # noqa: E402  (needs cv2)

# docs/pipeline.md §15: hand edge colours as OpenCV draws them (compare with ±1).
HAND_EDGE_RGB = [
    (255, 0, 0), (255, 77, 0), (255, 153, 0), (255, 229, 0), (204, 255, 0), (128, 255, 0),
    (51, 255, 0), (0, 255, 25), (0, 255, 102), (0, 255, 179), (0, 255, 255), (0, 178, 255),
    (0, 102, 255), (0, 25, 255), (51, 0, 255), (128, 0, 255), (204, 0, 255), (255, 0, 230),
    (255, 0, 153), (255, 0, 77),
]
CHEEK_LIMB_RGB = [(51, 0, 153), (102, 0, 153), (153, 0, 153), (153, 0, 102)]  # §15, dimmed
CHEEK_POINT_RGB = [(255, 0, 0), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85)]


def _person() -> tuple:
    """(1, 134, 2) points, (1, 134) scores: everything missing."""
    return np.full((1, J.NUM_WHOLEBODY, 2), np.nan), np.full((1, J.NUM_WHOLEBODY), np.nan)


def _radial_hand(center, spacing: int) -> np.ndarray:
    """(21, 2) hand whose fingers run right, down-right, down, down-left and left."""
    hand = np.zeros((21, 2))
    hand[0] = center
    for finger, direction in enumerate([(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0)]):
        for k in range(4):
            hand[1 + 4 * finger + k] = np.add(center, np.multiply(direction, spacing * (k + 1)))
    return hand


@pytest.mark.parametrize("size, expected", [
    ((512, 896), 1), ((896, 512), 1), ((480, 832), 1), ((256, 448), 1),
    ((720, 1280), 2), ((1080, 1920), 2), ((1024, 1024), 2),
])
def test_stroke_size_matches_reference_table(size, expected):
    assert stroke_size(*size) == expected


@pytest.mark.parametrize("size", [(512, 896), (720, 1280)])
def test_hand_edges_are_drawn_in_the_reference_rainbow(size):
    kp, sc = _person()
    kp[0, J.RIGHT_HAND] = _radial_hand((300, 200), 30)
    sc[0, J.RIGHT_HAND] = 0.9
    canvas = draw_overlay(kp, sc, size)
    hand = kp[0, J.RIGHT_HAND].astype(int)
    for e, (i, j) in enumerate(J.HAND21_EDGES):
        mid = (hand[i] + hand[j]) // 2  # on the line: axis-aligned or diagonal edges
        got = canvas[mid[1], mid[0]].astype(int)
        np.testing.assert_allclose(got, HAND_EDGE_RGB[e], atol=1)  # §15: ±1 for .5 cases


def test_hand_points_are_blue_and_face_points_white():
    kp, sc = _person()
    kp[0, J.LEFT_HAND.start] = (100, 100)
    kp[0, J.FACE.start + 40] = (200, 100)  # an eye landmark: drawn
    sc[0, J.LEFT_HAND.start] = sc[0, J.FACE.start + 40] = 0.9
    canvas = draw_overlay(kp, sc, (512, 896))
    assert tuple(canvas[100, 100]) == (0, 0, 255)
    assert tuple(canvas[100, 200]) == (255, 255, 255)


def test_jaw_and_nose_landmarks_are_not_drawn():
    kp, sc = _person()
    undrawn = [k for k in range(68) if k not in J.FACE68_DRAWN]
    assert undrawn == list(range(17)) + list(range(27, 36))
    kp[0, J.FACE] = [(50 + 10 * k, 60) for k in range(68)]
    sc[0, J.FACE] = 0.9
    canvas = draw_overlay(kp, sc, (512, 896))
    for k in range(68):
        assert canvas[60, 50 + 10 * k].any() == (k in J.FACE68_DRAWN), k


@pytest.mark.parametrize("size, radius", [((512, 896), 1), ((720, 1280), 2)])
def test_point_radius_and_edge_thickness_follow_the_short_side(size, radius):
    kp, sc = _person()
    kp[0, J.FACE.start + 36] = (300, 300)
    kp[0, J.LEFT_HAND.start:J.LEFT_HAND.start + 2] = [(100, 50), (160, 50)]  # edge 0
    sc[0] = 0.9
    canvas = draw_overlay(kp, sc, size)
    white = np.argwhere((canvas == 255).all(-1))
    assert white[:, 0].max() - white[:, 0].min() == 2 * radius
    assert white[:, 1].max() - white[:, 1].min() == 2 * radius
    edge_rows = np.flatnonzero((canvas[:, 130] == HAND_EDGE_RGB[0]).all(-1))
    expected = np.zeros(size + (3,), np.uint8)
    cv2.line(expected, (100, 50), (160, 50), (255, 0, 0), radius)
    assert edge_rows.tolist() == np.flatnonzero(expected[:, 130, 0]).tolist()


def test_cheek_strokes_and_points_use_the_dimmed_reference_colours():
    kp, sc = _person()
    # nose, eyes and ears far apart so each stroke's middle is clear of the points
    kp[0, 0], kp[0, 14], kp[0, 15], kp[0, 16], kp[0, 17] = \
        (400, 200), (340, 160), (460, 160), (280, 100), (520, 100)
    sc[0, J.BODY] = 0.9
    canvas = draw_overlay(kp, sc, (512, 896))
    for (i, j), rgb in zip(J.CHEEK_LIMBS, CHEEK_LIMB_RGB):
        mid = ((kp[0, i] + kp[0, j]) / 2).astype(int)
        assert tuple(canvas[mid[1], mid[0]]) == rgb
    for k, rgb in zip(J.CHEEK_POINTS, CHEEK_POINT_RGB):
        x, y = kp[0, k].astype(int)
        assert tuple(canvas[y, x]) == rgb
        assert tuple(canvas[y, x + 4]) == rgb and not canvas[y, x + 6].any()  # radius 4


def test_visibility_thresholds_follow_the_reference():
    kp, sc = _person()
    kp[0, 0] = (100, 100)                       # nose (cheek point) at score exactly 0.3
    sc[0, 0] = 0.3
    kp[0, J.LEFT_HAND.start] = (200, 100)       # hand point at score exactly 0.3: kept
    sc[0, J.LEFT_HAND.start] = 0.3
    kp[0, J.LEFT_HAND.start + 1] = (300, 100)   # below the threshold
    sc[0, J.LEFT_HAND.start + 1] = 0.29
    kp[0, J.LEFT_HAND.start + 2] = (0.99, 100)  # int(x) = 0: the reference's "invisible" test
    sc[0, J.LEFT_HAND.start + 2] = 0.9
    kp[0, 14] = (400, 100)                      # eye at 0.31: valid body point
    sc[0, 14] = 0.31
    canvas = draw_overlay(kp, sc, (512, 896))
    assert not canvas[100, 100].any()
    assert tuple(canvas[100, 200]) == (0, 0, 255)
    assert not canvas[100, 300].any()
    assert not canvas[95:106, 0:5].any()
    assert tuple(canvas[100, 400]) == CHEEK_POINT_RGB[1]


def test_missing_points_draw_nothing():
    kp, sc = _person()
    assert not draw_overlay(kp, sc, (64, 64)).any()
    kp[0, J.LEFT_HAND] = 30.0
    sc[0, J.LEFT_HAND] = 0.9
    kp[0, J.LEFT_HAND.start + 3] = np.nan
    canvas = draw_overlay(kp, sc, (64, 64))
    assert tuple(canvas[30, 30]) == (0, 0, 255)
    assert draw_overlay(np.zeros((0, 134, 2)), np.zeros((0, 134)), (64, 64)).shape == (64, 64, 3)


def test_people_are_summed_in_uint8_with_wrap_around():
    kp, sc = _person()
    kp = np.repeat(kp, 2, axis=0)
    sc = np.repeat(sc, 2, axis=0)
    kp[:, J.FACE.start + 40] = (50, 50)
    sc[:, J.FACE.start + 40] = 0.9
    canvas = draw_overlay(kp, sc, (128, 128))
    assert tuple(canvas[50, 50]) == (254, 254, 254)  # 255 + 255 mod 256


def test_reference_hand_pairing_only_changes_overlapping_sums():
    kp, sc = _person()
    kp, sc = np.repeat(kp, 2, axis=0), np.repeat(sc, 2, axis=0)
    kp[0, J.LEFT_HAND.start] = (10, 10)          # person 0 has one hand point elsewhere
    kp[1, J.LEFT_HAND.start] = (40, 40)          # person 1: both hands on the same pixel
    kp[1, J.RIGHT_HAND.start] = (40, 40)
    sc[:] = 0.9
    reference = draw_overlay(kp, sc, (64, 64))
    own = draw_overlay(kp, sc, (64, 64), reference_hand_pairing=False)
    # reference: person 1's left hand sits on person 0's canvas, so the two blues add up
    assert tuple(reference[40, 40]) == (0, 0, 254)
    assert tuple(own[40, 40]) == (0, 0, 255)
    disk = np.zeros((64, 64), bool)
    disk[raster.disk_pixels((40, 40), 1, (64, 64))] = True  # the one shared point (radius 1)
    np.testing.assert_array_equal((reference != own).any(-1), disk)


@pytest.mark.parametrize("size", [(512, 896), (720, 1280), (896, 512)])
def test_overlay_matches_opencv_on_random_whole_body_poses(size):
    """Pixel-exact against the reference's drawing done with cv2 (3 people, jitter, dropouts)."""
    from scail_backend.render.samples import walking_sequence

    rng = np.random.default_rng(7)
    seq = walking_sequence(6, size, num_people=3)
    for t in range(seq.num_frames):
        kp = seq.kp2d[:, t].astype(np.float64) + rng.normal(0.0, 4.0, (3, 134, 2))
        sc = rng.uniform(0.0, 1.0, (3, 134))
        sc[rng.random((3, 134)) < 0.05] = 0.3
        kp[rng.random((3, 134)) < 0.03] = np.nan
        np.testing.assert_array_equal(draw_overlay(kp, sc, size), reference_overlay(kp, sc, size))


def test_overlay_pixels_is_the_sparse_form_of_draw_overlay():
    from scail_backend.render.samples import walking_sequence

    seq = walking_sequence(2, (256, 448), num_people=2)
    kp, sc = seq.kp2d[:, 1], seq.kp2d_score[:, 1]
    index, rgb = overlay_pixels(kp, sc, seq.size)
    dense = draw_overlay(kp, sc, seq.size).reshape(-1, 3)
    assert (np.diff(index) > 0).all()
    np.testing.assert_array_equal(dense[index], rgb)
    mask = np.ones(len(dense), bool)
    mask[index] = False
    assert not dense[mask].any()


def test_per_channel_composite_matches_reference_example():
    render = np.zeros((2, 2, 4), np.uint8)
    render[0, 0] = (100, 100, 100, 204)
    overlay = np.zeros((2, 2, 3), np.uint8)
    overlay[0, 0] = overlay[1, 1] = (0, 0, 255)
    out = composite_per_channel(render, overlay)
    assert tuple(out[0, 0]) == (100, 100, 255, 204)  # docs/pipeline.md §15
    assert tuple(out[1, 1]) == (0, 0, 255, 0)        # alpha untouched over background
    assert tuple(render[0, 0]) == (100, 100, 100, 204)  # input not modified
    with pytest.raises(ValueError):
        composite_per_channel(render, overlay[:1])


def test_raster_primitives_match_opencv():
    rng = np.random.default_rng(3)
    size = (60, 90)

    def mask(pixels):
        img = np.zeros(size, np.uint8)
        img[pixels[0], pixels[1]] = 1
        return img

    for _ in range(300):
        expected = np.zeros(size, np.uint8)
        p0, p1 = rng.integers(-30, 120, 2), rng.integers(-30, 120, 2)  # clipping included
        cv2.line(expected, tuple(map(int, p0)), tuple(map(int, p1)), 1, 1)
        np.testing.assert_array_equal(mask(raster.line_pixels(p0, p1, size)), expected)

        expected[:] = 0
        q1 = p0 + rng.integers(-40, 40, 2)
        thickness = int(rng.integers(2, 5))
        cv2.line(expected, tuple(map(int, p0)), tuple(map(int, q1)), 1, thickness)
        np.testing.assert_array_equal(
            mask(raster_poly.thick_line_pixels(p0, q1, thickness, size)), expected)

        expected[:] = 0
        radius = int(rng.integers(0, 12))
        cv2.circle(expected, tuple(map(int, p0)), radius, 1, -1)
        np.testing.assert_array_equal(mask(raster.disk_pixels(p0, radius, size)), expected)

        expected[:] = 0
        axes, angle = (int(rng.integers(0, 60)), 4), int(rng.integers(-180, 181))
        polygon = cv2.ellipse2Poly(tuple(map(int, p0)), axes, angle, 0, 360, 1)
        np.testing.assert_array_equal(raster.ellipse_polygon(p0, axes, angle), polygon)
        cv2.fillConvexPoly(expected, polygon, 1)
        np.testing.assert_array_equal(mask(raster_poly.convex_polygon_pixels(polygon, size)),
                                      expected)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # an int64 overflow would warn
def test_far_away_points_do_not_hang_or_overflow():
    kp, sc = _person()
    kp[0, 0], kp[0, 14] = (100, 100), (100, -900_000)   # a cheek stroke a million rows long
    kp[0, J.LEFT_HAND.start:J.LEFT_HAND.start + 2] = [(10, 10), (5e5, 5e5)]
    kp[0, J.LEFT_HAND.start + 2] = (1e12, 5)            # absurd: treated as missing
    sc[0] = 0.9
    canvas = draw_overlay(kp, sc, (720, 1280))
    assert canvas[:, 100].any()


def test_overlay_module_does_not_need_opencv():
    code = ("import sys, scail_protocol.overlay; "
            "sys.exit(1 if 'cv2' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.filterwarnings("error::RuntimeWarning")  # numpy's "invalid value encountered in cast"
def test_points_beyond_int64_draw_nothing_and_do_not_warn():
    kp, sc = _person()
    sc[0] = 0.9
    kp[0, :] = 1e30
    kp[0, 3] = np.inf
    assert not draw_overlay(kp, sc, (64, 112)).any()
    index, rgb = overlay_pixels(kp, sc, (64, 112))
    assert len(index) == 0 and len(rgb) == 0
