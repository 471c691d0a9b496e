"""OpenCV-compatible filled shapes in pure numpy: convex polygons and thick lines.

Companion of :mod:`scail_protocol.raster` (one-pixel lines, circles, ellipse polygons). Polygons
follow OpenCV's ``FillConvexPoly``: the outline is drawn with lines (integer Bresenham for
integer vertices, OpenCV's sub-pixel line for 16.16 fixed-point vertices) and the interior with
two edge followers stepping one row at a time in fixed point. Thick lines are such a
quadrilateral plus a filled circle at each end, as ``cv2.line`` draws them.

Functions return ``(rows, cols[, index])`` int64 arrays clipped to the image.
"""

from __future__ import annotations

import numpy as np

from .raster import (_EMPTY, _HALF, XY_ONE, XY_SHIFT, _cdiv, _clip_line, _inside, disks_pixels,
                     lines_pixels)


def _fixed_line_pixels(p0, p1, size) -> tuple:
    """Pixels of OpenCV's sub-pixel (16.16 fixed point) line, used for polygon outlines."""
    height, width = size
    clipped = _clip_line(width << XY_SHIFT, height << XY_SHIFT, p0, p1)
    if clipped is None:
        return _EMPTY
    (x1, y1), (x2, y2) = clipped
    dx, dy = x2 - x1, y2 - y1
    if abs(dx) > abs(dy):
        if dx < 0:
            x1, y1, x2, y2, dy = x2, y2, x1, y1, -dy
        ax = abs(dx)
        y_step = _cdiv(dy << XY_SHIFT, ax | 1)
        count = (x2 - x1) >> XY_SHIFT
        k = np.arange(count + 1, dtype=np.int64)
        cols = ((x1 + _HALF) >> XY_SHIFT) + k
        rows = (y1 + _HALF + k * y_step) >> XY_SHIFT
    else:
        if dy < 0:
            x1, y1, x2, y2, dx = x2, y2, x1, y1, -dx
        ay = abs(dy)
        x_step = _cdiv(dx << XY_SHIFT, ay | 1)
        count = (y2 - y1) >> XY_SHIFT
        k = np.arange(count + 1, dtype=np.int64)
        rows = ((y1 + _HALF) >> XY_SHIFT) + k
        cols = (x1 + _HALF + k * x_step) >> XY_SHIFT
    end = (np.array([(y2 + _HALF) >> XY_SHIFT]), np.array([(x2 + _HALF) >> XY_SHIFT]))
    return _inside(np.concatenate([end[0], rows]), np.concatenate([end[1], cols]), size)


def _fixed_lines_pixels(p0: np.ndarray, p1: np.ndarray, size) -> tuple:
    """Batched :func:`_fixed_line_pixels`: (rows, cols, segment index) of (M, 2) 16.16 segments."""
    height, width = size
    p0 = np.asarray(p0, np.int64).reshape(-1, 2)
    p1 = np.asarray(p1, np.int64).reshape(-1, 2)
    limit = np.array([width << XY_SHIFT, height << XY_SHIFT]) - 1
    inside = ((p0 >= 0) & (p0 <= limit) & (p1 >= 0) & (p1 <= limit)).all(1)
    parts = []
    for i in np.flatnonzero(~inside):  # clipping moves end points: one by one
        r, c = _fixed_line_pixels(tuple(p0[i]), tuple(p1[i]), size)
        parts.append((r, c, np.full(len(r), i, np.int64)))
    idx = np.flatnonzero(inside)
    if len(idx):
        a, b = p0[idx], p1[idx]
        d = b - a
        wide = np.abs(d[:, 0]) > np.abs(d[:, 1])          # x is the major axis
        major = np.where(wide, 0, 1)
        swap = d[np.arange(len(d)), major] < 0            # walk along +major
        a, b = np.where(swap[:, None], b, a), np.where(swap[:, None], a, b)
        d = b - a
        span = d[np.arange(len(d)), major]
        step = _cdiv_array(np.where(wide, d[:, 1], d[:, 0]) << XY_SHIFT, span | 1)
        counts = (span >> XY_SHIFT) + 1
        seg = np.repeat(np.arange(len(a)), counts)
        k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        w, start, st = wide[seg], a[seg], step[seg]
        along = ((np.where(w, start[:, 0], start[:, 1]) + _HALF) >> XY_SHIFT) + k
        across = (np.where(w, start[:, 1], start[:, 0]) + _HALF + k * st) >> XY_SHIFT
        rows = np.concatenate([(b[:, 1] + _HALF) >> XY_SHIFT, np.where(w, across, along)])
        cols = np.concatenate([(b[:, 0] + _HALF) >> XY_SHIFT, np.where(w, along, across)])
        ids = np.concatenate([idx, idx[seg]])
        keep = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        parts.append((rows[keep], cols[keep], ids[keep]))
    if not parts:
        return _EMPTY + (np.zeros(0, np.int64),)
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))


def _cdiv_array(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Element-wise integer division truncating toward zero (C semantics)."""
    q = np.abs(num) // np.abs(den)
    return np.where((num >= 0) == (den > 0), q, -q)


def _spans(rows: list, lefts: list, rights: list, size) -> tuple:
    if not rows:
        return _EMPTY
    rows = np.asarray(rows, np.int64)
    lefts = np.asarray(lefts, np.int64)
    counts = np.asarray(rights, np.int64) - lefts + 1
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(rows, counts), np.repeat(lefts, counts) + within


def convex_polygon_pixels(vertices, size, shift: int = 0) -> tuple:
    """Pixels of OpenCV's ``fillConvexPoly`` (LINE_8): outline lines plus the scan-line interior.

    Args:
        vertices: (N, 2) integer (x, y) vertices; with ``shift`` they carry that many fraction bits.
        size: (H, W) of the image.
        shift: number of fractional bits of the vertex coordinates (0 or 16 here).
    """
    height, width = size
    v = [(int(x), int(y)) for x, y in np.asarray(vertices).reshape(-1, 2)]
    n = len(v)
    if n == 0:
        return _EMPTY
    up = XY_SHIFT - shift
    outline = []
    if shift == 0:
        pts = np.asarray(v, dtype=np.int64)
        outline.append(lines_pixels(np.roll(pts, 1, axis=0), pts, size)[:2])
    else:
        prev = (v[-1][0] << up, v[-1][1] << up)
        for x, y in v:
            cur = (x << up, y << up)
            outline.append(_fixed_line_pixels(prev, cur, size))
            prev = cur
    fill = _spans(*_scan_convex(v, shift, size), size)
    rows = np.concatenate([o[0] for o in outline] + [fill[0]])
    cols = np.concatenate([o[1] for o in outline] + [fill[1]])
    return rows, cols


def _scan_convex(v: list, shift: int, size) -> tuple:
    """Interior spans of a convex polygon walked by two edge followers (OpenCV's FillConvexPoly).

    Returns:
        (rows, lefts, rights) lists of inclusive pixel spans inside the image.
    """
    height, width = size
    n = len(v)
    delta = (1 << shift) >> 1
    xs = [p[0] for p in v]
    ys = [p[1] for p in v]
    imin = int(np.argmin(ys))
    xmin, xmax = (min(xs) + delta) >> shift, (max(xs) + delta) >> shift
    ymin, ymax = (ys[imin] + delta) >> shift, (max(ys) + delta) >> shift
    if n < 3 or xmax < 0 or ymax < 0 or xmin >= width or ymin >= height:
        return [], [], []
    ymax = min(ymax, height - 1)
    up = XY_SHIFT - shift
    edges = n
    # Each follower: [idx, di, x, dx, ye]
    followers = [[imin, 1, -XY_ONE, 0, ymin], [imin, n - 1, -XY_ONE, 0, ymin]]
    rows, lefts, rights = [], [], []
    y = ymin
    while True:
        for e in followers:
            if y < e[4]:
                continue
            idx0 = e[0]
            idx = (idx0 + e[1]) % n
            while True:
                ok = edges > 0
                edges -= 1
                if not ok:
                    break
                ty = (v[idx][1] + delta) >> shift
                if ty > y:
                    xs0, xe0 = v[idx0][0] << up, v[idx][0] << up
                    e[4] = ty
                    e[3] = _cdiv((xe0 - xs0) * 2 + (ty - y), 2 * (ty - y))
                    e[2] = xs0
                    e[0] = idx
                    break
                idx0 = idx
                idx = (idx + e[1]) % n
        if edges < 0:
            break
        if y >= 0:
            left, right = sorted((followers[0][2], followers[1][2]))
            x1, x2 = (left + _HALF) >> XY_SHIFT, (right + _HALF) >> XY_SHIFT
            if x2 >= 0 and x1 < width:
                rows.append(y)
                lefts.append(max(x1, 0))
                rights.append(min(x2, width - 1))
        # Rows above the image draw nothing: jump over them (exactly, x advances by dx a row).
        step = 1
        if y + 1 < 0:
            step = max(1, min(0, followers[0][4], followers[1][4]) - y)
        followers[0][2] += followers[0][3] * step
        followers[1][2] += followers[1][3] * step
        y += step
        if y > ymax:
            break
    return rows, lefts, rights


def thick_line_pixels(p0, p1, thickness: int, size) -> tuple:
    """Pixels of ``cv2.line`` with the given thickness (LINE_8, no shift).

    Thickness 1 is the Bresenham line; thicker lines are a filled quadrilateral of half-width
    thickness/2 (16.16 fixed point, outline included) plus filled circles at both ends.
    """
    rows, cols, _ = thick_lines_pixels(np.asarray([p0]), np.asarray([p1]), thickness, size)
    return rows, cols


def thick_lines_pixels(p0: np.ndarray, p1: np.ndarray, thickness: int, size) -> tuple:
    """Pixels of several ``cv2.line`` calls of one thickness (see :func:`thick_line_pixels`).

    Args:
        p0, p1: (N, 2) integer (x, y) end points, pixels.
        thickness: line thickness in pixels (>= 1).
        size: (H, W) of the image.

    Returns:
        (rows, cols, line index) int64 arrays, sorted (stably) by line index, so painting them
        in order reproduces drawing the lines one after the other.
    """
    thickness = int(thickness)
    p0 = np.asarray(p0, dtype=np.int64).reshape(-1, 2)
    p1 = np.asarray(p1, dtype=np.int64).reshape(-1, 2)
    if thickness <= 1:
        return lines_pixels(p0, p1, size)
    a, b = p0 << XY_SHIFT, p1 << XY_SHIFT
    dx = (a[:, 0] - b[:, 0]) / XY_ONE
    dy = (b[:, 1] - a[:, 1]) / XY_ONE
    r2 = dx * dx + dy * dy
    half = thickness << (XY_SHIFT - 1)
    has_body = np.abs(r2) > np.finfo(np.float64).eps
    scale = (half + (thickness & 1) * XY_ONE * 0.5) / np.sqrt(np.where(has_body, r2, 1.0))
    offset = np.stack([np.rint(dy * scale), np.rint(dx * scale)], -1).astype(np.int64)
    quads = np.stack([a + offset, a - offset, b - offset, b + offset], 1)[has_body]  # (M, 4, 2)
    body = np.flatnonzero(has_body)
    parts = []
    # quadrilateral outlines (OpenCV draws each edge from the previous vertex)
    outline = _fixed_lines_pixels(np.roll(quads, 1, axis=1).reshape(-1, 2),
                                  quads.reshape(-1, 2), size)
    parts.append((outline[0], outline[1], body[outline[2] // 4]))
    rows, lefts, rights, ids = [], [], [], []
    for q, line in zip(quads.tolist(), body.tolist()):
        r, left, right = _scan_convex([tuple(p) for p in q], XY_SHIFT, size)
        rows += r
        lefts += left
        rights += right
        ids += [line] * len(r)
    fill = _spans(rows, lefts, rights, size)
    parts.append(fill + (np.repeat(np.asarray(ids, np.int64),
                                   np.asarray(rights, np.int64) - lefts + 1)
                         if ids else np.zeros(0, np.int64),))
    cap_radius = (half + _HALF) >> XY_SHIFT
    caps = disks_pixels(np.concatenate([p0, p1]), cap_radius, size)
    parts.append((caps[0], caps[1], caps[2] % len(p0)))
    rows, cols, line = (np.concatenate([p[k] for p in parts]) for k in range(3))
    order = np.argsort(line, kind="stable")
    return rows[order], cols[order], line[order]


