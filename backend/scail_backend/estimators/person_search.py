"""Where to look for several people, and small ones, with a one-person pose model.

MediaPipe Holistic finds one person per image. The mediapipe estimator finds several by
searching the frame in three ways, all built from the helpers here:

* **cascade**: run on the frame, paint the found body over (:func:`paint_body`: MediaPipe's
  segmentation silhouette of that person, hair and clothes included, plus its limbs as thick
  strokes, the torso and the head filled), run again on the painted frame, and so on until
  nobody is found; a find that lies mostly on paint (:func:`mostly_covered`) is the same person
  again and ends the cascade (without the silhouette, a close-up dancer's curly hair was found
  again as a "second person");
* **crops** around where people were in the previous frame (:func:`crop_around`), so someone the
  full frame misses (too small after MediaPipe's 224-pixel detector downscale, or partly hidden)
  is kept;
* **tiles** (:func:`tiles`): square windows as tall as the frame's short side (and, while
  nobody is found, half that), each searched on its own, to discover people too small for the
  full frame.

Limits measured with ``bench/multi_person.py`` (one dancer of ``dance_full`` shrunk into a
512 x 896 frame, 12-16 frames each): the full frame alone finds people down to 140 px tall
(0 % at 114 px); with crops and tiles every frame down to 50 px (40 px: 0 %). A grey band over
the bottom 75 % of the body (legs and hips) still leaves the dancer found on every frame; one
over the left 50 % too, over the left 75 % not. Three dancers of 200 px side by side: 3 found
on every frame (the full-frame cascade alone: < 0.1). ``duet``: both dancers on every frame.

Geometry is in working-frame pixels, x = column, y = row, centre of the top-left pixel (0, 0).
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from . import mediapipe_tables as T

PAINT_RGB = (128, 128, 128)      # a flat grey the detector does not take for a person
SILHOUETTE_THRESHOLD = 0.5       # MediaPipe's segmentation above this is the person
SILHOUETTE_BOX_PAD = 0.25        # the silhouette is only painted within the person's box grown
                                 # by this fraction of its size (never another person far away)
SILHOUETTE_GROW_OF_HEIGHT = 0.02  # the silhouette is dilated by this fraction of the height
LIMB_WIDTH_OF_HEIGHT = 0.16      # stroke width of a painted limb, fraction of the body height
MIN_LIMB_WIDTH_PX = 6
HEAD_RADIUS_SCALE = 1.0          # head disc radius / the spread of the face landmarks
COVERED_FRACTION = 0.5           # a find with more of its points on paint is a repeat
POINT_MIN_VISIBILITY = 0.5       # points that count for the covered test (at least 5 are used)
CROP_SCALE = 2.0                 # crop side / the larger side of the previous box
MIN_CROP_PX = 160                # crops are at least this big (MediaPipe needs context)
TILE_OVERLAP = 0.4               # neighbouring tiles overlap by this fraction of their side

# Body strokes drawn by paint_body (MediaPipe Pose landmark pairs).
PAINT_LIMBS = (
    (T.LEFT_SHOULDER, T.RIGHT_SHOULDER), (T.LEFT_SHOULDER, T.LEFT_ELBOW),
    (T.LEFT_ELBOW, T.LEFT_WRIST), (T.RIGHT_SHOULDER, T.RIGHT_ELBOW),
    (T.RIGHT_ELBOW, T.RIGHT_WRIST), (T.LEFT_WRIST, T.LEFT_INDEX), (T.RIGHT_WRIST, T.RIGHT_INDEX),
    (T.LEFT_SHOULDER, T.LEFT_HIP), (T.RIGHT_SHOULDER, T.RIGHT_HIP), (T.LEFT_HIP, T.RIGHT_HIP),
    (T.LEFT_HIP, T.LEFT_KNEE), (T.LEFT_KNEE, T.LEFT_ANKLE), (T.RIGHT_HIP, T.RIGHT_KNEE),
    (T.RIGHT_KNEE, T.RIGHT_ANKLE), (T.LEFT_ANKLE, T.LEFT_FOOT_INDEX),
    (T.RIGHT_ANKLE, T.RIGHT_FOOT_INDEX), (T.LEFT_ANKLE, T.LEFT_HEEL),
    (T.RIGHT_ANKLE, T.RIGHT_HEEL), (T.NOSE, T.LEFT_SHOULDER), (T.NOSE, T.RIGHT_SHOULDER),
)
TORSO = (T.LEFT_SHOULDER, T.RIGHT_SHOULDER, T.RIGHT_HIP, T.LEFT_HIP)
HEAD = tuple(range(T.NOSE, T.MOUTH_RIGHT + 1))

Box = Tuple[int, int, int, int]  # x0, y0, x1, y1 pixel window (x1, y1 exclusive)


def body_height_px(pose_px: np.ndarray) -> float:
    """Vertical extent of the pose landmarks, pixels (at least 1)."""
    return max(float(np.ptp(pose_px[:, 1])), 1.0)


def paint_body(image: np.ndarray, mask: np.ndarray, pose_px: np.ndarray, *,
               silhouette: np.ndarray = None, origin=(0, 0)) -> None:
    """Paint one person's body over ``image`` (grey) and mark it in ``mask``, in place.

    Args:
        image: (H, W, 3) uint8 RGB frame.
        mask: (H, W) uint8, 1 where some found person has been painted.
        pose_px: (33, 2) MediaPipe Pose landmarks, frame pixels.
        silhouette: optional (h, w) bool segmentation of the person in the window searched,
            whose top-left pixel is frame pixel ``origin`` (x, y).
    """
    import cv2

    pts = np.round(np.nan_to_num(pose_px)).astype(np.int32)
    height = body_height_px(pose_px)
    width = max(MIN_LIMB_WIDTH_PX, int(LIMB_WIDTH_OF_HEIGHT * height))
    head = pose_px[list(HEAD)]
    centre = tuple(int(v) for v in np.round(head.mean(0)))
    radius = int(HEAD_RADIUS_SCALE * max(np.ptp(head[:, 0]), np.ptp(head[:, 1])) + width / 2)
    torso = cv2.convexHull(pts[list(TORSO)])
    region = _silhouette_in_frame(silhouette, origin, pose_px, mask.shape, height)
    for target, value in ((image, PAINT_RGB), (mask, 1)):
        for a, b in PAINT_LIMBS:
            cv2.line(target, tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[b]),
                     value, width)
        cv2.fillConvexPoly(target, torso, value)
        cv2.circle(target, centre, radius, value, -1)
        if region is not None:
            target[region] = value


def _silhouette_in_frame(silhouette, origin, pose_px, shape, height):
    """(H, W) bool: the silhouette placed in the frame, dilated, kept near the person."""
    if silhouette is None or not np.asarray(silhouette).any():
        return None
    import cv2

    frame_h, frame_w = shape
    x0, y0 = (int(v) for v in origin)
    sil = np.asarray(silhouette, bool)
    h = min(sil.shape[0], frame_h - y0)
    w = min(sil.shape[1], frame_w - x0)
    region = np.zeros(shape, bool)
    region[y0:y0 + h, x0:x0 + w] = sil[:h, :w]
    grow = max(1, int(SILHOUETTE_GROW_OF_HEIGHT * height))
    region = cv2.dilate(region.astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1),
                                                         np.uint8)) > 0
    low, high = np.nanmin(pose_px, 0), np.nanmax(pose_px, 0)
    pad = (high - low) * SILHOUETTE_BOX_PAD
    bx0, by0 = np.floor(low - pad).astype(int)
    bx1, by1 = np.ceil(high + pad).astype(int)
    near = np.zeros(shape, bool)
    near[max(by0, 0):max(by1, 0), max(bx0, 0):max(bx1, 0)] = True
    return region & near


def mostly_covered(mask: np.ndarray, pose_px: np.ndarray, visibility: np.ndarray) -> bool:
    """Whether most of a find's visible points lie on already painted people (a repeat)."""
    order = np.argsort(-np.asarray(visibility))
    confident = np.flatnonzero(np.asarray(visibility) >= POINT_MIN_VISIBILITY)
    use = confident if len(confident) >= 5 else order[:5]
    pts = np.round(np.nan_to_num(pose_px[use])).astype(np.int64)
    height, width = mask.shape
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < width) & (pts[:, 1] >= 0) & (pts[:, 1] < height)
    if not inside.any():
        return False
    on_paint = mask[pts[inside, 1], pts[inside, 0]] > 0
    return float(on_paint.sum()) > COVERED_FRACTION * len(pts)


def crop_around(box, size, *, scale: float = CROP_SCALE, min_side: int = MIN_CROP_PX) -> Box:
    """A square window around a person box, ``scale`` times its larger side, inside the frame.

    Args:
        box: (4,) x1, y1, x2, y2 pixels.
        size: (H, W) of the frame.

    Returns:
        (x0, y0, x1, y1) integer window, as square as the frame allows.
    """
    height, width = (int(v) for v in size)
    x1, y1, x2, y2 = (float(v) for v in box)
    side = int(round(min(max(max(x2 - x1, y2 - y1) * scale, min_side), min(height, width))))
    cx, cy = 0.5 * (x1 + x2), 0.5 * (y1 + y2)
    x0 = int(round(np.clip(cx - side / 2, 0, width - side)))
    y0 = int(round(np.clip(cy - side / 2, 0, height - side)))
    return x0, y0, x0 + side, y0 + side


def tiles(size, *, side: int = None, overlap: float = TILE_OVERLAP) -> List[Box]:
    """Square windows of ``side`` (default: the short side) covering the frame, overlapping.

    Returns:
        (x0, y0, x1, y1) windows, row by row.
    """
    height, width = (int(v) for v in size)
    side = int(min(side or min(height, width), height, width))
    step = max(1, int(side * (1.0 - overlap)))

    def starts(extent: int) -> np.ndarray:
        if extent <= side:
            return np.zeros(1, np.int64)
        count = int(np.ceil((extent - side) / step)) + 1
        return np.round(np.linspace(0, extent - side, count)).astype(np.int64)

    return [(int(x), int(y), int(x) + side, int(y) + side)
            for y in starts(height) for x in starts(width)]


def box_covered(box, boxes, mask: np.ndarray) -> bool:
    """Whether a previous box is already accounted for: its centre lies on a painted person."""
    height, width = mask.shape
    cx = int(np.clip(round(0.5 * (box[0] + box[2])), 0, width - 1))
    cy = int(np.clip(round(0.5 * (box[1] + box[3])), 0, height - 1))
    return bool(mask[cy, cx]) or any(_iou(box, other) > 0.3 for other in boxes)


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
