"""The reference's 2D overlay drawn with OpenCV itself, straight from docs/pipeline.md §7 (test
oracle).

Used only by the tests to check :mod:`scail_protocol.overlay` (pure numpy) pixel for pixel.
Inputs use the same layout as ``draw_overlay``: (P, 134, 2) pixels and (P, 134) scores, NaN =
missing; hand/face points below the 0.3 threshold become -1 as in the reference (§2.4).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from scail_protocol import joints as J
from scail_protocol import palette


def _hsv_edge_color(e: int, n: int):
    h = e / float(n)
    i = int(h * 6.0)
    f = h * 6.0 - i
    q, t = 1.0 - f, f
    rgb = [(1, t, 0), (q, 1, 0), (0, 1, t), (0, q, 1), (t, 0, 1), (1, 0, q)][i % 6]
    return [c * 255.0 for c in rgb]


def reference_overlay(kp2d_px, score, size) -> np.ndarray:
    H, W = size
    t = min(max(int(min(H, W) / 300), 1), 2)
    kp2d_px = np.asarray(kp2d_px, np.float64)
    score = np.asarray(score, np.float64)
    present = [p for p in range(len(kp2d_px)) if np.isfinite(kp2d_px[p]).all(-1).any()]
    # DWPose-style masking: invisible hand/face points become -1; body validity is "subset".
    def masked(points, sc):
        keep = (np.nan_to_num(sc, nan=-1) >= 0.3) & np.isfinite(points).all(-1)
        return np.where(keep[:, None], points, -1.0)
    hands = [masked(kp2d_px[p, J.LEFT_HAND], score[p, J.LEFT_HAND]) for p in present] + \
            [masked(kp2d_px[p, J.RIGHT_HAND], score[p, J.RIGHT_HAND]) for p in present]
    frame = np.zeros((H, W, 3), np.uint8)
    for i, p in enumerate(present):
        canvas = np.zeros((H, W, 3), np.uint8)
        body = kp2d_px[p, J.BODY]
        subset = (np.nan_to_num(score[p, J.BODY], nan=-1) > 0.3) & np.isfinite(body).all(-1)
        for (a, b), color in zip(J.CHEEK_LIMBS, palette.CHEEK_LIMB_COLORS_RGB8):
            if not (subset[a] and subset[b]):
                continue
            Y = body[[a, b], 0]
            X = body[[a, b], 1]
            mX, mY = np.mean(X), np.mean(Y)
            length = ((X[0] - X[1]) ** 2 + (Y[0] - Y[1]) ** 2) ** 0.5
            angle = math.degrees(math.atan2(X[0] - X[1], Y[0] - Y[1]))
            polygon = cv2.ellipse2Poly((int(mY), int(mX)), (int(length / 2), 4), int(angle),
                                       0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, color)
        canvas = (canvas * 0.6).astype(np.uint8)
        for k, color in zip(J.CHEEK_POINTS, palette.CHEEK_POINT_COLORS_RGB8):
            if subset[k]:
                x, y = body[k]
                cv2.circle(canvas, (int(x), int(y)), 4, color, thickness=-1)
        for hand in hands[2 * i:2 * i + 2]:
            for e, (a, b) in enumerate(J.HAND21_EDGES):
                x1, y1 = int(hand[a][0]), int(hand[a][1])
                x2, y2 = int(hand[b][0]), int(hand[b][1])
                if x1 > 0.01 and y1 > 0.01 and x2 > 0.01 and y2 > 0.01:
                    cv2.line(canvas, (x1, y1), (x2, y2), _hsv_edge_color(e, len(J.HAND21_EDGES)),
                             thickness=t)
            for x, y in hand:
                x, y = int(x), int(y)
                if x > 0.01 and y > 0.01:
                    cv2.circle(canvas, (x, y), t, (0, 0, 255), thickness=-1)
        face = masked(kp2d_px[p, J.FACE], score[p, J.FACE])
        for k in J.FACE68_DRAWN:
            x, y = int(face[k][0]), int(face[k][1])
            if x > 0.01 and y > 0.01:
                cv2.circle(canvas, (x, y), t, (255, 255, 255), thickness=-1)
        frame += canvas
    return frame
