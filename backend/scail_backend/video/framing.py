"""The reference's working-resolution rule: orientation, resize and centre crop (docs/pipeline.md
§1.2).

Every frame the estimators see is the source frame resized (aspect kept) so that it covers the
target size, then centre-cropped to it:

* target (H, W): landscape sources (height < width) get ``(res[0], res[1])`` = 512 x 896 by
  default; portrait **and square** sources get ``(res[1], res[0])`` = 896 x 512.
* resized size: if src_W/src_H > tgt_W/tgt_H, height tgt_H and width floor(src_W·tgt_H/src_H);
  otherwise width tgt_W and height floor(src_H·tgt_W/src_W). Integer arithmetic, so the floor is
  exact (the reference computes it in floating point; they agree on every realistic size).
* crop: top = (h − tgt_H) // 2, left = (w − tgt_W) // 2.

Non-square pixels (anamorphic video, a sample aspect ratio other than 1:1): the rule applies to
the *display* size, the picture as a player shows it (stored width × SAR), and the stored frame
is resized straight to the resized size, stretching it to its displayed proportions on the way
(one resize, not two).

Interpolation. The reference resizes with torchvision's bicubic on uint8 tensors, which
antialiases when it downscales (the kernel widens by the scale factor, Keys a = −0.5, as PIL's
BICUBIC). OpenCV's INTER_CUBIC does not antialias (dance_a, 2.1x down: mean |Δ| 0.69, max 86
levels against an antialiased bicubic of our own), PIL's BICUBIC costs ~27 ms per 2048x1080 frame
here, and OpenCV's INTER_AREA at a non-integer factor ~11 ms of CPU (mean |Δ| 0.23). We downscale
in two steps: an exact integer box reduction (INTER_AREA at factor k = floor(scale) when k >= 2
divides both source sides, OpenCV's fast path), then INTER_CUBIC for the remaining factor
(< 2): mean |Δ| 0.35, max 35 levels on dance_a, ~2 ms of CPU (on 1-pixel stripes, the worst
case: 4.2 against INTER_AREA's 2.0 and plain bicubic's 7.2). Otherwise a downscale uses
INTER_AREA directly, and an upscale INTER_CUBIC (antialiasing does nothing there). The
estimators are insensitive to such differences; ``tests/backend/test_video_reader.py`` measures
them against the float64 antialiased bicubic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from scail_protocol.contract import DEFAULT_RESOLUTION
from scail_protocol.errors import VideoError

# DEFAULT_RESOLUTION (scail_protocol.contract): --resolution default, (H, W) of a landscape clip
MAX_RESOLUTION_SIDE = 4096       # larger working sizes are a typo, not a wish
RESOLUTION_MULTIPLE = 2          # H.264 4:2:0 output needs even sides

Size = Tuple[int, int]


def check_resolution(resolution) -> Size:
    """Validate a ``--resolution H W`` pair (landscape order) and return it as ints.

    Raises:
        VideoError: not two positive even integers up to MAX_RESOLUTION_SIDE.
    """
    try:
        first, second = (int(v) for v in resolution)
    except (TypeError, ValueError):
        raise VideoError(f"resolution must be two integers H W, got {resolution!r}") from None
    for value in (first, second):
        if not 0 < value <= MAX_RESOLUTION_SIDE or value % RESOLUTION_MULTIPLE:
            raise VideoError(f"resolution sides must be even integers in 2..{MAX_RESOLUTION_SIDE} "
                             f"(H.264 4:2:0 needs even sizes), got {first} {second}")
    return first, second


def target_size(source_size: Size, resolution: Optional[Size] = None) -> Size:
    """Working (H, W) for a source of size (H, W), from its orientation (docs/pipeline.md §1.2).

    Args:
        source_size: (H, W) of the source frame in pixels.
        resolution: (H, W) for landscape sources; portrait and square sources get it swapped.
            None = DEFAULT_RESOLUTION (512, 896).
    """
    res = DEFAULT_RESOLUTION if resolution is None else check_resolution(resolution)
    src_h, src_w = source_size
    return (res[0], res[1]) if src_h < src_w else (res[1], res[0])


def resized_size(source_size: Size, target: Size) -> Size:
    """(h, w) the source is resized to before the centre crop; covers ``target`` (§1.2)."""
    src_h, src_w = (int(v) for v in source_size)
    tgt_h, tgt_w = (int(v) for v in target)
    if src_h <= 0 or src_w <= 0:
        raise VideoError(f"source frame has no pixels: {src_h}x{src_w}")
    if src_w * tgt_h > tgt_w * src_h:  # src_W/src_H > tgt_W/tgt_H, without rounding
        return tgt_h, src_w * tgt_h // src_h
    return src_h * tgt_w // src_w, tgt_w


def crop_offsets(resized: Size, target: Size) -> Size:
    """(top, left) of the centre crop of ``target`` inside ``resized`` (docs/pipeline.md §1.2)."""
    return (resized[0] - target[0]) // 2, (resized[1] - target[1]) // 2


@dataclass(frozen=True)
class Framing:
    """How one source frame size becomes the working size: resize, then centre crop.

    Attributes:
        source_size: (H, W) of decoded source frames as stored, pixels.
        display_size: (H, W) the source is shown at (stored size with non-square pixels made
            square); the orientation and the aspect ratio kept by the resize come from it.
        resized_size: (h, w) after the display-aspect-keeping resize; covers ``size``.
        size: (H, W) working size (the crop), pixels.
        top, left: crop offsets inside the resized frame, pixels.
    """

    source_size: Size
    display_size: Size
    resized_size: Size
    size: Size
    top: int
    left: int

    @classmethod
    def to_target(cls, source_size: Size, target: Size,
                  display_size: Optional[Size] = None) -> "Framing":
        """The framing of ``source_size`` frames (shown at ``display_size``, default the same)
        onto a given working size."""
        source = (int(source_size[0]), int(source_size[1]))
        shown = source if display_size is None else (int(display_size[0]), int(display_size[1]))
        resized = resized_size(shown, target)
        top, left = crop_offsets(resized, target)
        return cls(source, shown, resized, (int(target[0]), int(target[1])), top, left)

    @classmethod
    def for_source(cls, source_size: Size, resolution: Optional[Size] = None,
                   display_size: Optional[Size] = None) -> "Framing":
        """The reference framing: target from the displayed orientation, then resize and crop.

        Args:
            source_size: (H, W) of the stored frames, pixels.
            resolution: landscape working size (H, W); None = DEFAULT_RESOLUTION.
            display_size: (H, W) as shown (non-square pixels made square); None = source_size.
        """
        shown = source_size if display_size is None else display_size
        return cls.to_target(source_size, target_size(shown, resolution), shown)

    @property
    def downscales(self) -> bool:
        """True when the resize shrinks the frame along both axes (then it antialiases)."""
        return (self.resized_size[0] < self.source_size[0]
                and self.resized_size[1] < self.source_size[1])

    @property
    def box_factor(self) -> int:
        """Integer factor k >= 2 of the exact box pre-reduction, or 1 when there is none."""
        (src_h, src_w), (h, w) = self.source_size, self.resized_size
        k = min(src_h // h, src_w // w) if self.downscales else 1
        while k >= 2 and (src_h % k or src_w % k):
            k -= 1
        return max(k, 1)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Resize and crop one frame.

        Args:
            frame: (src_H, src_W, 3) uint8 RGB, the size this framing was built for.

        Returns:
            (H, W, 3) uint8 RGB, C-contiguous, at the working size.
        """
        import cv2

        if frame.shape[:2] != self.source_size:
            raise VideoError(f"frame is {frame.shape[0]}x{frame.shape[1]}, this framing expects "
                             f"{self.source_size[0]}x{self.source_size[1]}")
        h, w = self.resized_size
        k = self.box_factor
        if k > 1:  # exact k x k box average: antialiasing for most of the reduction, cheaply
            src_h, src_w = self.source_size
            frame = cv2.resize(frame, (src_w // k, src_h // k), interpolation=cv2.INTER_AREA)
        if frame.shape[:2] != (h, w):
            interpolation = cv2.INTER_AREA if self.downscales and k == 1 else cv2.INTER_CUBIC
            frame = cv2.resize(frame, (w, h), interpolation=interpolation)
        h, w = self.size
        return np.ascontiguousarray(frame[self.top:self.top + h, self.left:self.left + w])
