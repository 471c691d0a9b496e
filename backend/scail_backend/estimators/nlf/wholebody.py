"""DWPose-L whole-body keypoints around the ONNX model: crops, SimCC decode, 133 -> 134
(docs/pipeline.md §2.2-2.3).

Numpy + OpenCV; the ONNX session is run by the caller. Pixel coordinates of the working-size
frame; "input pixels" are those of the 288 x 384 model input.
"""

from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np

from scail_protocol import joints as J

INPUT_HW = (384, 288)            # DWPose-L input (H, W)
BOX_PADDING = 1.25               # box size x 1.25 before the aspect fix
SIMCC_SPLIT = 2.0                # SimCC bins per input pixel
# ImageNet RGB constants applied to B, G, R (an inherited DWPose quirk kept for parity, §2.2)
MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)
NECK_SCORE_MIN = 0.3             # the synthesised neck scores 1 when both shoulders score > 0.3
NUM_COCO_WHOLEBODY = 133
COCO_SHOULDERS = (5, 6)          # left, right


def centre_scale(boxes: np.ndarray, input_hw: Tuple[int, int] = INPUT_HW,
                 padding: float = BOX_PADDING) -> Tuple[np.ndarray, np.ndarray]:
    """Crop centre and size of each box: padded ×1.25, short side enlarged to the input aspect.

    Args:
        boxes: (N, 4) x1 y1 x2 y2, pixels.

    Returns:
        (centre, scale): (N, 2) box midpoints and (N, 2) crop (w, h), pixels, w / h = in_W / in_H.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    scale = (boxes[:, 2:] - boxes[:, :2]) * padding
    aspect = input_hw[1] / input_hw[0]
    w, h = scale[:, :1], scale[:, 1:]
    scale = np.where(w > h * aspect, np.hstack([w, w / aspect]), np.hstack([h * aspect, h]))
    return centre, scale


def warp_matrix(centre: np.ndarray, scale: np.ndarray,
                input_hw: Tuple[int, int] = INPUT_HW) -> np.ndarray:
    """(2, 3) affine map, frame pixels -> input pixels, of one crop (no rotation).

    Uniform scale s = in_W / scale_w; the crop centre lands on the input centre.
    """
    s = input_hw[1] / float(scale[0])
    return np.array([[s, 0.0, input_hw[1] / 2 - s * centre[0]],
                     [0.0, s, input_hw[0] / 2 - s * centre[1]]])


def crops(frame_rgb: np.ndarray, centre: np.ndarray, scale: np.ndarray, out: np.ndarray,
          input_hw: Tuple[int, int] = INPUT_HW) -> np.ndarray:
    """The model input of each crop: affine warp (bilinear, black border), BGR, normalised, NCHW.

    Normalisation is (pixel − MEAN) / STD with the ImageNet *RGB* constants applied to the B, G, R
    channels in that order (the reference's quirk).

    Args:
        frame_rgb: (H, W, 3) uint8 RGB frame.
        centre, scale: (N, 2) from :func:`centre_scale`.
        out: (N, 3, in_H, in_W) float32 array to fill.

    Returns:
        ``out``.
    """
    size = (input_hw[1], input_hw[0])
    for i in range(len(centre)):
        patch = cv2.warpAffine(frame_rgb, warp_matrix(centre[i], scale[i], input_hw), size,
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=(0, 0, 0))
        rgb = cv2.split(patch)
        for c in range(3):  # output channel c is BGR channel c = RGB channel 2 - c
            # (pixel - mean) / std in one pass: pixel * (1 / std) + (-mean / std)
            cv2.addWeighted(rgb[2 - c], 1.0 / STD[c], rgb[2 - c], 0.0, -MEAN[c] / STD[c],
                            dst=out[i, c], dtype=cv2.CV_32F)
    return out


def simcc_decode(simcc_x: np.ndarray, simcc_y: np.ndarray, split: float = SIMCC_SPLIT
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Keypoints from SimCC vectors: argmax per axis, score = min of the two maxima.

    Args:
        simcc_x: (N, K, Wx) float; simcc_y: (N, K, Wy) float.

    Returns:
        (points, scores): (N, K, 2) float32 input pixels = argmax / split (−1 / split where the
        score is ≤ 0), (N, K) float32.
    """
    x = np.argmax(simcc_x, axis=-1)
    y = np.argmax(simcc_y, axis=-1)
    max_x = np.take_along_axis(simcc_x, x[..., None], -1)[..., 0]
    max_y = np.take_along_axis(simcc_y, y[..., None], -1)[..., 0]
    scores = np.minimum(max_x, max_y).astype(np.float32)
    points = np.stack([x, y], axis=-1).astype(np.float32)
    points[scores <= 0] = -1
    return points / split, scores


def to_frame(points: np.ndarray, centre: np.ndarray, scale: np.ndarray,
             input_hw: Tuple[int, int] = INPUT_HW) -> np.ndarray:
    """Input pixels -> frame pixels: p / (in_W, in_H) · scale + centre − scale / 2.

    Args:
        points: (N, K, 2); centre, scale: (N, 2).
    """
    size = np.array([input_hw[1], input_hw[0]], np.float64)
    return (points / size * scale[:, None] + centre[:, None] - scale[:, None] / 2).astype(
        np.float32)


# whole-body-134 index <- index into the 133 points with the neck inserted at 17 (docs/pipeline.md
# §2.3)
_FROM_INSERTED = np.concatenate([
    [J.OPENPOSE18_FROM_COCO17[0]],
    [17],  # neck
    J.OPENPOSE18_FROM_COCO17[2:],
    np.arange(18, 134),
]).astype(np.int64)


def to_wholebody134(points: np.ndarray, scores: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """COCO-WholeBody-133 -> the project's 134 layout: neck synthesised, OpenPose body order.

    The neck is the mean of the shoulders (5, 6); its score is 1 when both shoulder scores are
    > 0.3, else 0. It is inserted at 17 and the body points are reordered to OpenPose-18.

    Args:
        points: (N, 133, 2); scores: (N, 133).

    Returns:
        (points, scores): (N, 134, 2), (N, 134) float32.
    """
    points = np.asarray(points, np.float32)
    scores = np.asarray(scores, np.float32)
    if points.shape[1:] != (NUM_COCO_WHOLEBODY, 2):
        raise ValueError(f"expected (N, 133, 2) keypoints, got {points.shape}")
    left, right = COCO_SHOULDERS
    neck = points[:, [left, right]].mean(axis=1, keepdims=True)
    neck_score = ((scores[:, left] > NECK_SCORE_MIN)
                  & (scores[:, right] > NECK_SCORE_MIN)).astype(np.float32)[:, None]
    inserted = np.concatenate([points[:, :17], neck, points[:, 17:]], axis=1)
    inserted_scores = np.concatenate([scores[:, :17], neck_score, scores[:, 17:]], axis=1)
    return inserted[:, _FROM_INSERTED], inserted_scores[:, _FROM_INSERTED]
