"""Host-side preparation of a batch of frames for the capsule kernel (numpy, vectorised).

Every capsule becomes one row of float32 geometry (end points, unit axis, length, base colour,
alpha, "near the camera" flag) and one row of int32 screen bounds: the pixel rectangle its rays
can hit. Frames become one row
of int32 (first capsule, capsule count, union of their bounds). The kernel only tests a pixel
against capsules whose rectangle contains it, and does nothing for pixels outside the union.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GEOMETRY_COLUMNS = 15      # see PackedBatch.geometry
COL_START, COL_END, COL_AXIS, COL_LENGTH, COL_RGB, COL_ALPHA, COL_NEAR = 0, 3, 6, 9, 10, 13, 14
MAX_ABS_COORD_MM = 1e7     # ours: capsules farther than 10 km are dropped (float32 safety)
FRONT_MARGIN_MM = 1.0      # spheres nearer than this to the camera plane get the whole image
BOUNDS_MARGIN_PX = 1       # safety margin (px) around the exact projected extent
DEGENERATE_LENGTH_MM = 1e-6  # shorter segments are spheres (docs/pipeline.md §6.3 uses 1e-8)
EMPTY_RECT = (1, 1, 0, 0)  # x0 > x1: contains no pixel


@dataclass(frozen=True)
class PackedBatch:
    """Kernel inputs of B frames.

    Attributes:
        geometry: (N, 15) float32 per capsule: start xyz and end xyz (mm, camera frame), unit
            axis xyz, length (mm), base RGB in [0, 1], alpha, and 1.0 when the capsule comes
            near or behind the camera plane (the ray origin may then lie inside it), else 0.0.
        bounds: (N, 4) int32 per capsule: x0, y0, x1, y1 inclusive pixel rectangle (empty when
            x0 > x1).
        frames: (B, 6) int32 per frame: first capsule row, capsule count, x0, y0, x1, y1 (union of
            the frame's rectangles).
    """

    geometry: np.ndarray
    bounds: np.ndarray
    frames: np.ndarray


def _sphere_extent(center_mm: np.ndarray, radius_mm: float, focal: float, principal: float,
                   axis: int) -> tuple:
    """Exact pixel range along one image axis of spheres entirely in front of the camera.

    The extreme rays are tangent to the sphere: angle φ ± asin(r/ρ) in the (axis, z) plane.
    """
    lateral = center_mm[:, axis].astype(np.float64)
    z = center_mm[:, 2].astype(np.float64)
    rho = np.hypot(lateral, z)
    phi = np.arctan2(lateral, z)
    alpha = np.arcsin(np.clip(radius_mm / np.maximum(rho, 1e-9), 0.0, 1.0))
    return focal * np.tan(phi - alpha) + principal, focal * np.tan(phi + alpha) + principal


def capsule_bounds(starts: np.ndarray, ends: np.ndarray, radius_mm: float, K: np.ndarray,
                   size, znear_mm: float) -> np.ndarray:
    """Conservative inclusive pixel rectangles of capsules, clipped to the image.

    A capsule is the convex hull of its two end spheres, so when both lie entirely in front of
    the camera its image is inside the union of their projected extents. A capsule that reaches
    behind the camera plane gets the whole image; one entirely behind ``znear`` gets none.

    Args:
        starts, ends: (N, 3) segment end points, camera frame, mm.
        radius_mm: capsule radius, mm.
        K: (3, 3) intrinsics, pixels.
        size: (H, W) of the image.
        znear_mm: rays start this far along their direction.

    Returns:
        (N, 4) int32 x0, y0, x1, y1; empty rectangles have x0 > x1.
    """
    height, width = size
    n = len(starts)
    out = np.empty((n, 4), np.int64)
    out[:] = (0, 0, width - 1, height - 1)
    if n == 0:
        return out.astype(np.int32)
    z = np.stack([starts[:, 2], ends[:, 2]], -1).astype(np.float64)
    in_front = z.min(-1) - radius_mm > FRONT_MARGIN_MM
    behind = z.max(-1) + radius_mm < znear_mm
    if in_front.any():
        limits = []
        for axis, (focal, principal) in enumerate(((K[0, 0], K[0, 2]), (K[1, 1], K[1, 2]))):
            lo_a, hi_a = _sphere_extent(starts[in_front], radius_mm, focal, principal, axis)
            lo_b, hi_b = _sphere_extent(ends[in_front], radius_mm, focal, principal, axis)
            limits.append((np.floor(np.minimum(lo_a, lo_b)) - BOUNDS_MARGIN_PX,
                           np.ceil(np.maximum(hi_a, hi_b)) + BOUNDS_MARGIN_PX))
        (x0, x1), (y0, y1) = limits
        rect = np.stack([x0, y0, x1, y1], -1)
        out[in_front] = np.clip(rect, -2 * (width + height), 2 * (width + height))
    empty = behind | (out[:, 2] < 0) | (out[:, 3] < 0) | (out[:, 0] >= width) \
        | (out[:, 1] >= height) | (out[:, 0] > out[:, 2]) | (out[:, 1] > out[:, 3])
    out[:, 0:2] = np.maximum(out[:, 0:2], 0)
    out[:, 2] = np.minimum(out[:, 2], width - 1)
    out[:, 3] = np.minimum(out[:, 3], height - 1)
    out[empty] = EMPTY_RECT
    return out.astype(np.int32)


def pack_batch(scenes, radius_mm: float, K, size, znear_mm: float) -> PackedBatch:
    """Kernel inputs for a batch of frames.

    Args:
        scenes: sequence of B :class:`CapsuleScene` (camera frame, mm), one per frame.
        radius_mm, K, size, znear_mm: see :func:`capsule_bounds`.
    """
    K = np.asarray(K, dtype=np.float64)
    scenes = list(scenes)
    counts = np.array([len(s) for s in scenes], np.int64)
    if counts.sum():
        starts = np.concatenate([s.starts for s in scenes]).astype(np.float64)
        ends = np.concatenate([s.ends for s in scenes]).astype(np.float64)
        colors = np.concatenate([s.colors for s in scenes]).astype(np.float64)
    else:
        starts = ends = np.zeros((0, 3))
        colors = np.zeros((0, 4))
    frame_of = np.repeat(np.arange(len(scenes)), counts)
    sane = (np.abs(starts) < MAX_ABS_COORD_MM).all(-1) & (np.abs(ends) < MAX_ABS_COORD_MM).all(-1)
    if not sane.all():
        starts, ends, colors, frame_of = starts[sane], ends[sane], colors[sane], frame_of[sane]
        counts = np.bincount(frame_of, minlength=len(scenes))
    axis = ends - starts
    length = np.linalg.norm(axis, axis=-1)
    degenerate = length < DEGENERATE_LENGTH_MM
    unit = np.where(degenerate[:, None], (0.0, 0.0, 1.0), axis / np.maximum(length, 1e-30)[:, None])
    near = np.minimum(starts[:, 2], ends[:, 2]) - radius_mm <= FRONT_MARGIN_MM
    geometry = np.concatenate([starts, ends, unit, np.where(degenerate, 0.0, length)[:, None],
                               colors, near[:, None]], -1).astype(np.float32)
    bounds = capsule_bounds(starts, ends, radius_mm, K, size, znear_mm)
    frames = np.zeros((len(scenes), 6), np.int64)
    frames[:, 0] = np.cumsum(counts) - counts
    frames[:, 1] = counts
    frames[:, 2:] = EMPTY_RECT
    nonempty = bounds[:, 0] <= bounds[:, 2]
    for f in np.unique(frame_of[nonempty]):
        mine = bounds[(frame_of == f) & nonempty]
        frames[f, 2:4] = mine[:, 0:2].min(0)
        frames[f, 4:6] = mine[:, 2:4].max(0)
    return PackedBatch(geometry=np.ascontiguousarray(geometry),
                       bounds=np.ascontiguousarray(bounds),
                       frames=frames.astype(np.int32))

