"""YOLOX-L person detection around the ONNX model: letterbox, anchor-free decode, NMS
(docs/pipeline.md §2.1).

Everything here is numpy (+ OpenCV for the resize); the ONNX session is run by the caller.
Coordinates are pixels of the working-size frame (x = column, y = row).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import cv2
import numpy as np

INPUT_HW = (640, 640)            # YOLOX-L input (H, W)
PAD_VALUE = 114                  # letterbox fill
STRIDES = (8, 16, 32)            # output grids 80x80, 40x40, 20x20 for a 640x640 input
NMS_IOU = 0.45                   # a box is suppressed when IoU > 0.45
CANDIDATE_SCORE = 0.1            # NMS candidates: score > 0.1
PERSON_SCORE = 0.3               # final filter: score > 0.3
PERSON_CLASS = 0                 # COCO "person"


def letterbox_ratio(frame_hw: Tuple[int, int], input_hw: Tuple[int, int] = INPUT_HW) -> float:
    """Scale r = min(in_H / H, in_W / W) that fits a frame into the detector input."""
    return min(input_hw[0] / frame_hw[0], input_hw[1] / frame_hw[1])


def letterbox(frame_rgb: np.ndarray, out: np.ndarray = None,
              input_hw: Tuple[int, int] = INPUT_HW, fill: bool = True
              ) -> Tuple[np.ndarray, float]:
    """The detector's input for one frame: raw BGR, CHW float32, resized top-left on a 114 canvas.

    The frame is resized bilinearly to (floor(W·r), floor(H·r)) and pasted at the top-left of an
    input-sized canvas filled with 114; no mean/std normalisation (values 0-255).

    Args:
        frame_rgb: (H, W, 3) uint8 RGB frame.
        out: optional (3, in_H, in_W) float32 array to fill (avoids an allocation).
        input_hw: detector input size (H, W).
        fill: write the 114 padding; False when ``out`` already holds it for this frame size.

    Returns:
        (image, r): (3, in_H, in_W) float32 BGR image and the scale r (input px per frame px).
    """
    height, width = frame_rgb.shape[:2]
    r = letterbox_ratio((height, width), input_hw)
    new_w, new_h = int(width * r), int(height * r)
    resized = cv2.resize(frame_rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if out is None:
        out, fill = np.empty((3,) + tuple(input_hw), np.float32), True
    if fill:
        out[:, new_h:, :] = PAD_VALUE
        out[:, :new_h, new_w:] = PAD_VALUE
    out[:, :new_h, :new_w] = resized.transpose(2, 0, 1)[::-1]  # RGB -> BGR, HWC -> CHW
    return out, r


def grid_and_strides(input_hw: Tuple[int, int] = INPUT_HW,
                     strides: Sequence[int] = STRIDES) -> Tuple[np.ndarray, np.ndarray]:
    """Cell coordinates (A, 2) and strides (A, 1) of every anchor, grids row-major, x fastest."""
    cells, steps = [], []
    for stride in strides:
        rows, cols = input_hw[0] // stride, input_hw[1] // stride
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        steps.append(np.full((rows * cols, 1), stride))
    return (np.concatenate(cells).astype(np.float32), np.concatenate(steps).astype(np.float32))


def decode(raw: np.ndarray, grid: np.ndarray, strides: np.ndarray,
           class_index: int = PERSON_CLASS) -> Tuple[np.ndarray, np.ndarray]:
    """Anchor-free decode of one image's raw output for one class.

    Args:
        raw: (A, 5 + C) float [x, y, w, h, objectness, class probabilities...] per anchor.
        grid, strides: from :func:`grid_and_strides`.
        class_index: which class's score to return.

    Returns:
        (boxes, scores): (A, 4) x1 y1 x2 y2 in detector-input pixels, (A,) objectness × class
        probability.
    """
    centre = (raw[:, :2] + grid) * strides
    size = np.exp(raw[:, 2:4]) * strides
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    return boxes, raw[:, 4] * raw[:, 5 + class_index]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU) -> np.ndarray:
    """Greedy NMS, highest score first, areas with the "+1 pixel" convention.

    A box is suppressed when its IoU with a kept box is > ``iou_threshold``.

    Args:
        boxes: (N, 4) x1 y1 x2 y2.
        scores: (N,).

    Returns:
        (K,) int64 indices of the kept boxes, by descending score.
    """
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def class_aware_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU,
                    score_threshold: float = CANDIDATE_SCORE) -> np.ndarray:
    """NMS within each class, as YOLOX's ``multiclass_nms_class_aware``.

    Args:
        boxes: (N, 4) x1 y1 x2 y2.
        scores: (N, C) per-class scores; candidates of a class have score > ``score_threshold``.

    Returns:
        (K, 6) rows [x1, y1, x2, y2, score, class], class by class, by descending score.
    """
    rows = []
    for c in range(scores.shape[1]):
        candidates = np.flatnonzero(scores[:, c] > score_threshold)
        if candidates.size == 0:
            continue
        kept = candidates[nms(boxes[candidates], scores[candidates, c], iou_threshold)]
        rows.append(np.column_stack([boxes[kept], scores[kept, c], np.full(len(kept), c)]))
    return np.concatenate(rows) if rows else np.zeros((0, 6), np.float64)


def people(raw: np.ndarray, ratio: float, grid: np.ndarray, strides: np.ndarray
           ) -> Tuple[np.ndarray, np.ndarray]:
    """Person boxes of one image, as the reference's detector returns them.

    Class-aware NMS keeps the classes apart, so the person class is decided by the person
    scores alone: candidates > 0.1, NMS at IoU 0.45, then score > 0.3, by descending score.

    Args:
        raw: (A, 85) raw output of one image.
        ratio: letterbox scale r of that image.

    Returns:
        (boxes, scores): (N, 4) float32 x1 y1 x2 y2 in frame pixels (not clipped), (N,) float32.
    """
    scores = raw[:, 4] * raw[:, 5 + PERSON_CLASS]
    keep = np.flatnonzero(scores > CANDIDATE_SCORE)  # only candidates need decoding
    boxes, scores = decode(raw[keep], grid[keep], strides[keep], PERSON_CLASS)
    boxes = boxes / ratio
    rows = class_aware_nms(boxes, scores[:, None])
    rows = rows[rows[:, 4] > PERSON_SCORE]
    return rows[:, :4].astype(np.float32), rows[:, 4].astype(np.float32)


def whole_image_box(frame_hw: Tuple[int, int]) -> np.ndarray:
    """(1, 4) box [0, 0, W, H]: what DWPose gets when the detector found nobody."""
    return np.array([[0.0, 0.0, frame_hw[1], frame_hw[0]]], np.float32)
