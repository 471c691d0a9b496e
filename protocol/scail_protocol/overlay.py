"""The 2D overlay of the conditioning video: head strokes ("cheek"), hands and face
(docs/pipeline.md §7).

Pure numpy (no OpenCV): this module also runs inside Blender. Strokes are rasterised by
:mod:`scail_protocol.raster` and :mod:`scail_protocol.raster_poly`, which reproduce OpenCV's
8-connected drawing, so the pixels match the reference's ``cv2`` drawing.

Per frame and person the reference draws, on a fresh RGB canvas:

1. the four cheek strokes (filled ellipse polygons, half-width 4 px), dimmed by 0.6 (truncated),
   then five cheek points (radius 4);
2. two hands: 20 rainbow edges of thickness t, then 21 blue points of radius t;
3. face landmarks 17-26 and 36-67 as white points of radius t;

and adds that canvas to the frame's canvas **in uint8**, so where two people's strokes overlap the
values wrap modulo 256 (docs/pipeline.md §7 step 4, §14.10). t = min(max(int(min(H, W)/300), 1), 2).

Pixel convention: x = column, y = row, the centre of the top-left pixel is (0, 0); a point at
(x, y) px is drawn at (int(x), int(y)) (truncation toward zero, the reference's int(x·W)).
"""

from __future__ import annotations

import math

import numpy as np

from . import joints as J
from . import palette
from .contract import composite_channels
from .raster import disks_pixels, ellipse_polygon
from .raster_poly import convex_polygon_pixels, thick_lines_pixels

# Visibility (docs/pipeline.md §2.4, §14.20).
BODY_MIN_SCORE = 0.3        # body/cheek points are valid ("subset" != -1) when score > 0.3
HAND_FACE_MIN_SCORE = 0.3   # hand/face points are kept when score >= 0.3 (else set to -1)
MIN_VISIBLE_PX = 1          # docs/pipeline.md §7: hand/face points need both int coordinates >= 1
MAX_ABS_COORD_PX = 1 << 20  # ours: points farther out than this are treated as missing

# Stroke sizes (docs/pipeline.md §7).
CHEEK_HALF_WIDTH_PX = 4     # minor half-axis of the cheek ellipses
CHEEK_POINT_RADIUS_PX = 4
STROKE_DIVISOR_PX = 300     # t = min(max(int(min(H, W) / 300), 1), 2)
STROKE_MIN_PX = 1
STROKE_MAX_PX = 2
ELLIPSE_STEP_DEG = 1        # ellipse2Poly angular step of the cheek strokes

HAND_EDGE_COLORS_RGB8 = palette.hand_edge_colors_rgb8(len(J.HAND21_EDGES))
CHEEK_LIMB_COLORS_DIMMED_RGB8 = (
    np.asarray(palette.CHEEK_LIMB_COLORS_RGB8, np.float64) * palette.CHEEK_DIM).astype(np.uint8)


def stroke_size(height: int, width: int) -> int:
    """Hand edge thickness and hand/face point radius t in pixels for an H x W frame (§7)."""
    return min(max(int(min(height, width) / STROKE_DIVISOR_PX), STROKE_MIN_PX), STROKE_MAX_PX)


def draw_overlay(kp2d_px: np.ndarray, score: np.ndarray, size, *,
                 reference_hand_pairing: bool = True) -> np.ndarray:
    """Draw the overlay of every person of one frame.

    Args:
        kp2d_px: (P, 134, 2) float whole-body points in pixels (OpenPose-18 body, 6 feet,
            68 face, 21 left hand, 21 right hand); NaN = missing.
        score: (P, 134) float confidences; NaN = missing.
        size: (H, W) of the frame in pixels.
        reference_hand_pairing: draw hands the way the reference indexes them: with N people
            present in the frame it lists all left hands, then all right hands, and gives person i
            hands 2i and 2i+1 (§14.6). Every hand is drawn exactly once either way; the pairing
            only matters where overlapping strokes of different people wrap around in uint8.
            False gives each person its own two hands.

    Returns:
        (H, W, 3) uint8 RGB canvas, black where nothing is drawn.
    """
    height, width = (int(v) for v in size)
    index, rgb = overlay_pixels(kp2d_px, score, (height, width),
                                reference_hand_pairing=reference_hand_pairing)
    frame = np.zeros((height * width, 3), np.uint8)
    frame[index] = rgb
    return frame.reshape(height, width, 3)


def overlay_pixels(kp2d_px: np.ndarray, score: np.ndarray, size, *,
                   reference_hand_pairing: bool = True) -> tuple:
    """The overlay of one frame as a sparse list of pixels (what :func:`draw_overlay` paints).

    Same arguments as :func:`draw_overlay`.

    Returns:
        (index, rgb): (N,) int64 unique flat pixel indices (row·W + column), ascending, and their
        (N, 3) uint8 RGB values (people already summed in uint8). Pixels not listed are black.
    """
    height, width = (int(v) for v in size)
    kp2d_px = np.asarray(kp2d_px, dtype=np.float64).reshape(-1, J.NUM_WHOLEBODY, 2)
    score = np.asarray(score, dtype=np.float64).reshape(-1, J.NUM_WHOLEBODY)
    if len(kp2d_px) != len(score):
        raise ValueError(f"kp2d_px has {len(kp2d_px)} people but score has {len(score)}")
    present = [p for p in range(len(kp2d_px)) if np.isfinite(kp2d_px[p]).all(-1).any()]
    hands = _hand_order(kp2d_px, score, present, reference_hand_pairing)
    thickness = stroke_size(height, width)
    people = []
    for slot, person in enumerate(present):
        canvas = _Canvas((height, width))
        _draw_cheek(canvas, kp2d_px[person, J.BODY], score[person, J.BODY])
        for pts, sc in hands[2 * slot:2 * slot + 2]:
            _draw_hand(canvas, pts, sc, thickness)
        _draw_face(canvas, kp2d_px[person, J.FACE], score[person, J.FACE], thickness)
        people.append(canvas.resolve())
    if not people:
        return np.zeros(0, np.int64), np.zeros((0, 3), np.uint8)
    if len(people) == 1:
        return people[0]
    index = np.concatenate([p[0] for p in people])
    unique, inverse = np.unique(index, return_inverse=True)
    rgb = np.zeros((len(unique), 3), np.uint8)
    np.add.at(rgb, inverse, np.concatenate([p[1] for p in people]))  # uint8: wraps mod 256
    return unique, rgb


def composite_per_channel(render_rgba: np.ndarray, overlay_rgb: np.ndarray) -> np.ndarray:
    """Put the overlay on top of a render with :func:`scail_protocol.contract.composite_channels`
    (docs/pipeline.md §7); alpha is untouched. E.g. overlay (0, 0, 255) over (100, 100, 100, 204)
    gives (100, 100, 255, 204).

    Args:
        render_rgba: (H, W, 4) uint8 RGBA render.
        overlay_rgb: (H, W, 3) uint8 RGB overlay.

    Returns:
        (H, W, 4) uint8, a new array.
    """
    render_rgba = np.asarray(render_rgba)
    overlay_rgb = np.asarray(overlay_rgb)
    if render_rgba.ndim != 3 or render_rgba.shape[-1] != 4 or render_rgba.dtype != np.uint8:
        raise ValueError(f"render must be (H, W, 4) uint8, "
                         f"got {render_rgba.shape} {render_rgba.dtype}")
    if overlay_rgb.shape != render_rgba.shape[:2] + (3,) or overlay_rgb.dtype != np.uint8:
        raise ValueError(f"overlay must be {render_rgba.shape[:2] + (3,)} uint8, "
                         f"got {overlay_rgb.shape} {overlay_rgb.dtype}")
    out = render_rgba.copy()
    out[..., :3] = composite_channels(render_rgba[..., :3], overlay_rgb)
    return out


# --- per-person drawing ------------------------------------------------------------------------

def _hand_order(kp2d_px, score, present, reference_pairing: bool) -> list:
    left = [(kp2d_px[p, J.LEFT_HAND], score[p, J.LEFT_HAND]) for p in present]
    right = [(kp2d_px[p, J.RIGHT_HAND], score[p, J.RIGHT_HAND]) for p in present]
    if reference_pairing:
        return left + right
    return [hand for pair in zip(left, right) for hand in pair]


class _Canvas:
    """One person's canvas, kept sparse: strokes are recorded in drawing order, later wins."""

    def __init__(self, size):
        self.size = size
        self._index, self._rgb = [], []

    def paint(self, rows: np.ndarray, cols: np.ndarray, rgb) -> None:
        """Paint pixels (already inside the image) with one colour (3,) or one each (N, 3)."""
        self._index.append(rows * self.size[1] + cols)
        self._rgb.append(np.broadcast_to(np.asarray(rgb, np.uint8), (len(rows), 3)))

    def resolve(self) -> tuple:
        """(index, rgb) of the last stroke at each painted pixel, indices ascending."""
        if not self._index:
            return np.zeros(0, np.int64), np.zeros((0, 3), np.uint8)
        index = np.concatenate(self._index)
        rgb = np.concatenate(self._rgb)
        unique, last_from_end = np.unique(index[::-1], return_index=True)
        return unique, rgb[len(index) - 1 - last_from_end]


def _ints(points: np.ndarray) -> np.ndarray:
    """(N, 2) int64 pixel of each point: int(x), int(y) (truncation toward zero). Points that
    are not :func:`_usable` (NaN, huge) give some in-range integer, never a cast warning; the
    callers mask them out."""
    bound = float(MAX_ABS_COORD_PX)
    return np.trunc(np.clip(np.nan_to_num(points), -bound, bound)).astype(np.int64)


def _usable(points: np.ndarray) -> np.ndarray:
    """(N,) bool: finite and not absurdly far away."""
    return np.isfinite(points).all(-1) & (np.abs(np.nan_to_num(points)) < MAX_ABS_COORD_PX).all(-1)


def _hand_face_visible(points: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(N,) bool: the reference keeps the point (score >= 0.3) and int(x), int(y) >= 1."""
    ok = _usable(points) & (np.nan_to_num(scores, nan=-1.0) >= HAND_FACE_MIN_SCORE)
    return ok & (_ints(points) >= MIN_VISIBLE_PX).all(-1)


def _draw_cheek(canvas: _Canvas, body: np.ndarray, body_score: np.ndarray) -> None:
    size = canvas.size
    valid = _usable(body) & (np.nan_to_num(body_score, nan=-1.0) > BODY_MIN_SCORE)
    # The reference dims the canvas right after the strokes, when it holds nothing else, so
    # painting the dimmed colours directly is the same.
    for (i, j), color in zip(J.CHEEK_LIMBS, CHEEK_LIMB_COLORS_DIMMED_RGB8):
        if not (valid[i] and valid[j]):
            continue
        (x0, y0), (x1, y1) = body[i], body[j]
        center = (int((x0 + x1) / 2.0), int((y0 + y1) / 2.0))
        length = math.hypot(x0 - x1, y0 - y1)
        angle = int(math.degrees(math.atan2(y0 - y1, x0 - x1)))
        polygon = ellipse_polygon(center, (int(length / 2), CHEEK_HALF_WIDTH_PX), angle,
                                  0, 360, ELLIPSE_STEP_DEG)
        canvas.paint(*convex_polygon_pixels(polygon, size), color)
    points = np.asarray(J.CHEEK_POINTS)
    shown = valid[points]
    rows, cols, which = disks_pixels(_ints(body[points[shown]]), CHEEK_POINT_RADIUS_PX, size)
    canvas.paint(rows, cols, np.asarray(palette.CHEEK_POINT_COLORS_RGB8, np.uint8)[shown][which])


def _draw_hand(canvas: _Canvas, points: np.ndarray, scores: np.ndarray, thickness: int) -> None:
    size = canvas.size
    visible = _hand_face_visible(points, scores)
    edges = np.asarray(J.HAND21_EDGES)
    drawn = visible[edges[:, 0]] & visible[edges[:, 1]]
    ends = _ints(points)
    rows, cols, which = thick_lines_pixels(ends[edges[drawn, 0]], ends[edges[drawn, 1]],
                                           thickness, size)
    canvas.paint(rows, cols, HAND_EDGE_COLORS_RGB8[drawn][which])
    rows, cols, _ = disks_pixels(ends[visible], thickness, size)
    canvas.paint(rows, cols, palette.HAND_POINT_COLOR_RGB8)


def _draw_face(canvas: _Canvas, points: np.ndarray, scores: np.ndarray, thickness: int) -> None:
    drawn = np.asarray(J.FACE68_DRAWN)
    visible = _hand_face_visible(points[drawn], scores[drawn])
    rows, cols, _ = disks_pixels(_ints(points[drawn[visible]]), thickness, canvas.size)
    canvas.paint(rows, cols, palette.FACE_POINT_COLOR_RGB8)
