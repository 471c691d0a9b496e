"""Integer rasterisers that reproduce OpenCV's 8-connected drawing, in pure numpy.

The reference draws its 2D overlay with OpenCV (``cv2.line``, ``cv2.circle``, ``cv2.ellipse2Poly``
+ ``cv2.fillConvexPoly``; docs/pipeline.md §7). This module and :mod:`scail_protocol.raster_poly`
(convex polygons, thick lines) re-implement those algorithms from their documented behaviour
(integer Bresenham lines, midpoint circles, 16.16 fixed-point polygon scan conversion) so that
the overlay can be drawn where OpenCV is absent (inside Blender).

Every function returns the covered pixels as ``(rows, cols)`` int64 arrays, already clipped to the
image, possibly with repeats; callers paint them in drawing order. Pixel coordinates: x = column,
y = row, integers, the centre of the top-left pixel is (0, 0).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

XY_SHIFT = 16            # OpenCV's fixed-point fraction bits for sub-pixel polygon vertices
XY_ONE = 1 << XY_SHIFT
_HALF = XY_ONE >> 1
_EMPTY = (np.zeros(0, np.int64), np.zeros(0, np.int64))

# sin of whole degrees 0..450, rounded to 7 decimals and stored as float32, the table OpenCV's
# ellipse2Poly uses (cos(a) = table[450 - a]).
_SIN_TABLE = np.round(np.sin(np.deg2rad(np.arange(451, dtype=np.float64))), 7) \
    .astype(np.float32).astype(np.float64)


def _cdiv(num: int, den: int) -> int:
    """Integer division truncating toward zero (C semantics), exact for Python ints."""
    q = abs(num) // abs(den)
    return q if (num >= 0) == (den > 0) else -q


def _clip_line(width: int, height: int, p1, p2):
    """OpenCV's clipLine on an image of width x height units: clipped end points or None."""
    # Python ints: the products below overflow int64 for far-away points (numpy would wrap).
    x1, y1 = int(p1[0]), int(p1[1])
    x2, y2 = int(p2[0]), int(p2[1])
    right, bottom = width - 1, height - 1
    c1 = (x1 < 0) + (x1 > right) * 2 + (y1 < 0) * 4 + (y1 > bottom) * 8
    c2 = (x2 < 0) + (x2 > right) * 2 + (y2 < 0) * 4 + (y2 > bottom) * 8
    if (c1 & c2) == 0 and (c1 | c2) != 0:
        if c1 & 12:
            a = 0 if c1 < 8 else bottom
            x1 += _cdiv((a - y1) * (x2 - x1), y2 - y1)
            y1 = a
            c1 = (x1 < 0) + (x1 > right) * 2
        if c2 & 12:
            a = 0 if c2 < 8 else bottom
            x2 += _cdiv((a - y2) * (x2 - x1), y2 - y1)
            y2 = a
            c2 = (x2 < 0) + (x2 > right) * 2
        if (c1 & c2) == 0 and (c1 | c2) != 0:
            if c1:
                a = 0 if c1 == 1 else right
                y1 += _cdiv((a - x1) * (y2 - y1), x2 - x1)
                x1 = a
                c1 = 0
            if c2:
                a = 0 if c2 == 1 else right
                y2 += _cdiv((a - x2) * (y2 - y1), x2 - x1)
                x2 = a
                c2 = 0
    if c1 | c2:
        return None
    return (x1, y1), (x2, y2)


def _inside(rows: np.ndarray, cols: np.ndarray, size) -> tuple:
    height, width = size
    keep = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    return rows[keep], cols[keep]


def line_pixels(p0, p1, size) -> tuple:
    """Pixels of an 8-connected one-pixel line between integer points (``cv2.line``, thickness 1).

    Lines leaving the image are clipped to it first, as OpenCV does (which can shift the path).

    Args:
        p0, p1: (x, y) integer end points, pixels.
        size: (H, W) of the image.
    """
    rows, cols, _ = lines_pixels(np.asarray([p0]), np.asarray([p1]), size)
    return rows, cols


def lines_pixels(p0: np.ndarray, p1: np.ndarray, size) -> tuple:
    """Pixels of several one-pixel lines at once (see :func:`line_pixels`).

    Args:
        p0, p1: (N, 2) integer (x, y) end points, pixels.
        size: (H, W) of the image.

    Returns:
        (rows, cols, line index) int64 arrays, grouped by line in input order.
    """
    height, width = size
    p0 = np.asarray(p0, dtype=np.int64).reshape(-1, 2)
    p1 = np.asarray(p1, dtype=np.int64).reshape(-1, 2)
    inside = ((p0 >= 0) & (p1 >= 0)).all(1) & (p0[:, 0] < width) & (p1[:, 0] < width) \
        & (p0[:, 1] < height) & (p1[:, 1] < height)
    if not inside.all():  # clipping moves end points; do those lines one by one, in order
        parts = []
        for i in range(len(p0)):
            a, b = (p0[i], p1[i]) if inside[i] else _clipped(p0[i], p1[i], width, height)
            if a is not None:
                r, c, _ = lines_pixels(np.asarray([a]), np.asarray([b]), size)
                parts.append((r, c, np.full(len(r), i, np.int64)))
        return tuple(np.concatenate([p[k] for p in parts]) if parts else _EMPTY[0]
                     for k in range(3))
    swap = p1[:, 0] < p0[:, 0]  # always walk left to right
    a = np.where(swap[:, None], p1, p0)
    b = np.where(swap[:, None], p0, p1)
    dx = b[:, 0] - a[:, 0]
    dy = b[:, 1] - a[:, 1]
    step_y = np.where(dy < 0, -1, 1)
    dy = np.abs(dy)
    steep = dy > dx
    major, minor = np.maximum(dx, dy), np.minimum(dx, dy)
    counts = major + 1
    line = np.repeat(np.arange(len(a)), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    # Minor-axis steps after k major steps of OpenCV's error recurrence
    # (err0 = major - 2·minor; step the minor axis whenever err < 0).
    maj, mnr = major[line], minor[line]
    m = np.where(maj > 0, (2 * mnr * k + maj - 1) // np.maximum(2 * maj, 1), 0)
    st, sy = steep[line], step_y[line]
    rows = a[line, 1] + sy * np.where(st, k, m)
    cols = a[line, 0] + np.where(st, m, k)
    return rows, cols, line


def _clipped(p0, p1, width: int, height: int):
    clipped = _clip_line(width, height, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])))
    return clipped if clipped is not None else (None, None)


@lru_cache(maxsize=64)
def _disk_half_widths(radius: int) -> np.ndarray:
    """Half-width of each row (offset -radius..radius) of OpenCV's filled midpoint circle."""
    half = np.full(2 * radius + 1, -1, dtype=np.int64)
    err, dx, dy, plus, minus = 0, radius, 0, 1, 2 * radius - 1
    while dx >= dy:
        for row, hw in ((dy, dx), (-dy, dx), (dx, dy), (-dx, dy)):
            half[row + radius] = max(half[row + radius], hw)
        dy += 1
        err += plus
        plus += 2
        if err > 0:
            err -= minus
            dx -= 1
            minus -= 2
    return half


@lru_cache(maxsize=64)
def _disk_offsets(radius: int) -> tuple:
    """(d_rows, d_cols) int64 offsets of every pixel of a filled circle of this radius."""
    half = _disk_half_widths(radius)
    counts = 2 * half + 1
    d_rows = np.repeat(np.arange(-radius, radius + 1, dtype=np.int64), counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return d_rows, np.repeat(-half, counts) + within


def disk_pixels(center, radius: int, size) -> tuple:
    """Pixels of a filled circle (``cv2.circle`` with thickness -1, LINE_8, no shift).

    Args:
        center: (x, y) integer centre, pixels.
        radius: integer radius >= 0, pixels.
        size: (H, W) of the image.
    """
    rows, cols, _ = disks_pixels(np.asarray([center]), radius, size)
    return rows, cols


def disks_pixels(centers: np.ndarray, radius: int, size) -> tuple:
    """Pixels of several filled circles of one radius (see :func:`disk_pixels`).

    Returns:
        (rows, cols, circle index) int64 arrays, grouped by circle in input order.
    """
    centers = np.asarray(centers, dtype=np.int64).reshape(-1, 2)
    d_rows, d_cols = _disk_offsets(int(radius))
    rows = (centers[:, 1, None] + d_rows).ravel()
    cols = (centers[:, 0, None] + d_cols).ravel()
    index = np.repeat(np.arange(len(centers)), len(d_rows))
    height, width = size
    keep = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    return rows[keep], cols[keep], index[keep]


def ellipse_polygon(center, axes, angle_deg: int, arc_start: int = 0, arc_end: int = 360,
                    delta: int = 1) -> np.ndarray:
    """Integer polygon approximating an ellipse arc, like ``cv2.ellipse2Poly``.

    Args:
        center: (x, y) integer centre, pixels.
        axes: (a, b) integer half-axes, pixels.
        angle_deg: integer rotation, degrees (x axis towards y axis).
        arc_start, arc_end: arc in whole degrees; delta: angular step in degrees.

    Returns:
        (N, 2) int64 (x, y) vertices, consecutive duplicates removed.
    """
    angle = int(angle_deg) % 360  # OpenCV wraps into [0, 360]; 0 and 360 share sin/cos
    if arc_start > arc_end:
        arc_start, arc_end = arc_end, arc_start
    while arc_start < 0:
        arc_start, arc_end = arc_start + 360, arc_end + 360
    while arc_end > 360:
        arc_start, arc_end = arc_start - 360, arc_end - 360
    if arc_end - arc_start > 360:
        arc_start, arc_end = 0, 360
    cos_a, sin_a = _SIN_TABLE[450 - angle], _SIN_TABLE[angle]
    steps = np.arange(arc_start, arc_end + delta, delta)
    steps = np.where(steps > arc_end, arc_end, steps)
    steps = np.where(steps < 0, steps + 360, steps)
    x = float(axes[0]) * _SIN_TABLE[450 - steps]
    y = float(axes[1]) * _SIN_TABLE[steps]
    px = np.rint(float(center[0]) + x * cos_a - y * sin_a).astype(np.int64)
    py = np.rint(float(center[1]) + x * sin_a + y * cos_a).astype(np.int64)
    pts = np.stack([px, py], axis=-1)
    keep = np.ones(len(pts), bool)
    keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)
    pts = pts[keep]
    if len(pts) == 1:
        pts = np.array([center, center], dtype=np.int64)
    return pts
