"""How far two pose-conditioning renderings agree: foreground overlap and limb overlap.

The conditioning video is what SCAIL sees, so the most direct check of an estimator against
another (ours against the original GPU pipeline, or against a rendering of the synthetic truth)
is how well the two renderings of the same clip cover each other:

* **foreground overlap**: IoU of the drawn pixels (any channel brighter than
  :data:`DRAWN_LEVEL`; renderings are drawn on black), pooled over all frames (total
  intersection over total union, so empty frames weigh nothing);
* **limb overlap**: each drawn pixel is given the limb whose palette colour
  (``scail_protocol.palette.LIMB_COLORS_RGB8`` through the capsule shader) has the nearest hue,
  taken as the angle of its chromaticity (R, G) / (R + G + B) around white's (1/3, 1/3): shading
  scales a capsule's colour and a highlight adds white to it, and neither turns that angle.
  Pixels too close to white or grey to have a hue (:data:`MIN_CHROMA`) count for the foreground
  only. The IoU of each arm and leg segment (upper arms, forearms, thighs, shins:
  :data:`SCORED_LIMBS`) is pooled over the frames like the foreground; the limb overlap is their
  mean. It falls where a limb is drawn in the right place but for the wrong bone, or on the
  wrong side, which the foreground overlap does not see.

Both expect single-person renderings in the default palette (several people are drawn in other
palettes). A decoded and re-encoded copy of a rendering scores about 0.98, not 1.0 (codec
noise at capsule edges), which is the ceiling of such comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scail_protocol import joints as J
from scail_protocol.errors import ScailError
from scail_protocol.palette import LIMB_COLORS_RGB8, shader_rgba

DRAWN_LEVEL = 40   # 8-bit: brighter than this in any channel is drawn (codec noise stays below)
MIN_CHROMA = 0.04  # chromaticity distance from white below which a pixel has no hue
NO_HUE = -2        # label of a drawn pixel without a hue
SCORED_LIMBS = tuple(J.OPENPOSE18_LIMBS.index(pair) for pair in (
    (J.OPENPOSE18["right_shoulder"], J.OPENPOSE18["right_elbow"]),
    (J.OPENPOSE18["right_elbow"], J.OPENPOSE18["right_wrist"]),
    (J.OPENPOSE18["left_shoulder"], J.OPENPOSE18["left_elbow"]),
    (J.OPENPOSE18["left_elbow"], J.OPENPOSE18["left_wrist"]),
    (J.OPENPOSE18["right_hip"], J.OPENPOSE18["right_knee"]),
    (J.OPENPOSE18["right_knee"], J.OPENPOSE18["right_ankle"]),
    (J.OPENPOSE18["left_hip"], J.OPENPOSE18["left_knee"]),
    (J.OPENPOSE18["left_knee"], J.OPENPOSE18["left_ankle"]),
))


def limb_name(limb: int) -> str:
    """"right_shoulder-right_elbow" for a limb index of ``joints.OPENPOSE18_LIMBS``."""
    start, end = J.OPENPOSE18_LIMBS[limb]
    return f"{J.OPENPOSE18_NAMES[start]}-{J.OPENPOSE18_NAMES[end]}"


def _chroma(rgb: np.ndarray) -> np.ndarray:
    """(..., 2) chromaticity (R, G) / (R + G + B) minus white's (1/3, 1/3)."""
    rgb = np.asarray(rgb, np.float32)
    return rgb[..., :2] / np.maximum(rgb.sum(-1, keepdims=True), 1e-6) - np.float32(1.0 / 3.0)


def _hue_direction(chroma: np.ndarray) -> np.ndarray:
    return chroma / np.maximum(np.linalg.norm(chroma, axis=-1, keepdims=True), 1e-9)


_LIMB_CHROMA = _chroma(shader_rgba(LIMB_COLORS_RGB8)[:, :3])                  # (17, 2)
_LIMB_HUES = _hue_direction(_LIMB_CHROMA)
_HAS_HUE = np.linalg.norm(_LIMB_CHROMA, axis=-1) >= MIN_CHROMA               # grey has none


def drawn_mask(rgb: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of an (H, W, 3+) uint8 rendering that are drawn (not black)."""
    return np.asarray(rgb)[..., :3].max(-1) > DRAWN_LEVEL


def limb_labels(rgb: np.ndarray) -> np.ndarray:
    """(H, W) int16: limb index (``joints.OPENPOSE18_LIMBS``) of each drawn pixel by its hue,
    :data:`NO_HUE` for a drawn pixel without one, -1 for the background.

    Limbs that share a colour (the two eye-to-ear strokes, say) resolve to the lower index.
    """
    rgb = np.asarray(rgb)[..., :3]
    drawn = drawn_mask(rgb)
    labels = np.full(drawn.shape, -1, np.int16)
    chroma = _chroma(rgb[drawn])                                          # (n, 2)
    closeness = _hue_direction(chroma) @ _LIMB_HUES[_HAS_HUE].T           # cosines, (n, limbs)
    hued = np.flatnonzero(_HAS_HUE)[closeness.argmax(-1)]
    labels[drawn] = np.where(np.linalg.norm(chroma, axis=-1) >= MIN_CHROMA, hued, NO_HUE)
    return labels


@dataclass
class Overlap:
    """Pooled overlap of two renderings (see the module docstring).

    Attributes:
        frames: frames compared.
        foreground_iou: IoU of the drawn pixels, in [0, 1]; NaN when neither draws anything.
        limb_iou: mean of ``per_limb`` over the limbs either rendering draws; NaN when none.
        per_limb: IoU of each of :data:`SCORED_LIMBS` that either rendering draws, by
            :func:`limb_name`.
    """

    frames: int = 0
    foreground_iou: float = float("nan")
    limb_iou: float = float("nan")
    per_limb: dict = field(default_factory=dict)


class OverlapCounter:
    """Accumulates intersections and unions frame by frame, in constant memory."""

    def __init__(self):
        self.frames = 0
        self._fg = np.zeros(2, np.int64)                          # intersection, union
        self._limbs = np.zeros((len(SCORED_LIMBS), 2), np.int64)

    def add(self, ours: np.ndarray, reference: np.ndarray) -> None:
        """Count one pair of (H, W, 3+) uint8 frames of the same size.

        Raises:
            ScailError: the frames differ in size.
        """
        if ours.shape[:2] != reference.shape[:2]:
            raise ScailError(f"the renderings differ in size ({ours.shape[1]}x{ours.shape[0]} "
                             f"vs {reference.shape[1]}x{reference.shape[0]}); compare "
                             "renderings made at the same resolution")
        a, b = limb_labels(ours), limb_labels(reference)
        fa, fb = a != -1, b != -1
        self._fg += ((fa & fb).sum(), (fa | fb).sum())
        for row, limb in enumerate(SCORED_LIMBS):
            la, lb = a == limb, b == limb
            self._limbs[row] += ((la & lb).sum(), (la | lb).sum())
        self.frames += 1

    def result(self) -> Overlap:
        fg = self._fg[0] / self._fg[1] if self._fg[1] else float("nan")
        per_limb = {limb_name(limb): float(i / u)
                    for limb, (i, u) in zip(SCORED_LIMBS, self._limbs) if u}
        limb = float(np.mean(list(per_limb.values()))) if per_limb else float("nan")
        return Overlap(frames=self.frames, foreground_iou=float(fg), limb_iou=limb,
                       per_limb=per_limb)


def compare_renderings(ours, reference) -> Overlap:
    """Overlap of two rendering videos of the same clip, frame by frame.

    The reference is read at our rendering's size, framed the way the pipeline frames a driving
    video (scaled to cover, centre-cropped; ``video.framing``), so a rendering made at the
    source's own size by the original pipeline compares directly. Frames are paired in order;
    the shorter video sets how many are compared.

    Args:
        ours, reference: paths of two videos (or image folders) readable by
            :func:`scail_backend.video.reader.open_video`.

    Returns:
        :class:`Overlap`.

    Raises:
        VideoError: a video is missing or unreadable.
    """
    return compare_many_renderings([ours], reference)[0]


def compare_many_renderings(ours: list, reference) -> list:
    """:func:`compare_renderings` of each of ``ours`` against one reference, which is decoded
    once per distinct size among them (once, for renderings of the same clip).

    Returns:
        list of :class:`Overlap`, in the order of ``ours``.
    """
    from scail_backend.video.reader import open_video

    sizes = [_landscape(open_video(Path(path)).source_size) for path in ours]  # as they are
    results = [None] * len(ours)
    for size in dict.fromkeys(sizes):
        indices = [i for i, s in enumerate(sizes) if s == size]
        readers = [open_video(Path(ours[i]), resolution=size) for i in indices]
        counters = [OverlapCounter() for _ in indices]
        for reference_frame, *frames in zip(open_video(Path(reference), resolution=size),
                                            *readers):
            for counter, frame in zip(counters, frames):
                counter.add(frame, reference_frame)
        for i, counter in zip(indices, counters):
            results[i] = counter.result()
    return results


def _landscape(size) -> tuple:
    """(H, W) as a working-size request: ``open_video`` swaps it for portrait sources itself."""
    height, width = size
    return (min(height, width), max(height, width))
