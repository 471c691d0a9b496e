"""Animated images (GIF, animated WebP, APNG) read with Pillow, with their own frame timing.

FFmpeg (PyAV) cannot decode animated WebP and OpenCV reads only the first frame of any of them,
so all three go through Pillow, which composites each frame onto the canvas (disposal and
blending applied) and gives every frame's delay. Frame i is shown from the sum of the delays
before it, for its own delay; the clip's rate is frames / total duration (a GIF of 6-centisecond
frames: 16.7 fps).

Delays under MIN_DELAY_MS (0 or 1 centisecond, which many GIF writers put for "as fast as
possible") are taken as DEFAULT_DELAY_MS, as FFmpeg's GIF reader and web browsers do.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np

from scail_protocol.errors import VideoError

from .timing import TimedFrame

ANIMATED_EXTENSIONS = (".gif", ".webp", ".png", ".apng")
MIN_DELAY_MS = 20
DEFAULT_DELAY_MS = 100


def frame_delays(path: Path) -> Optional[List[int]]:
    """Per-frame delays in ms of an animated image, or None if it is a still (or not readable
    by Pillow as an animation; the still-image reader then handles it)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return None
    try:
        with Image.open(path) as image:
            count = getattr(image, "n_frames", 1)
            if count <= 1 and image.format != "GIF":  # a still PNG/WebP: OpenCV reads it
                return None
            delays = []
            for index in range(count):
                image.seek(index)
                if image.format == "WEBP":  # its frame delay is only read with the frame
                    image.load()
                delays.append(_delay(image.info.get("duration")))
            return delays
    except (OSError, ValueError, EOFError, SyntaxError):
        return None


def _delay(value) -> int:
    try:
        ms = int(round(float(value)))
    except (TypeError, ValueError):
        return DEFAULT_DELAY_MS
    return DEFAULT_DELAY_MS if ms < MIN_DELAY_MS else ms


def rate(delays: List[int]) -> float:
    """Average frame rate (fps) of frames shown for ``delays`` ms each."""
    return 1000.0 * len(delays) / sum(delays)


def read_frames(path: Path, delays: List[int], problems: list) -> Iterator[TimedFrame]:
    """Decode every frame as (H, W, 3) uint8 RGB (transparent parts over black), with its time.

    A frame that fails to decode ends the animation with a note in ``problems``.

    Raises:
        VideoError: the file cannot be opened any more.
    """
    from PIL import Image

    try:
        image = Image.open(path)
    except OSError as e:
        raise VideoError(f"{path} can no longer be opened ({e})") from None
    with image:
        start = Fraction(0)
        for index, delay in enumerate(delays):
            try:
                image.seek(index)
                rgb = _to_rgb(image)
            except (OSError, ValueError, EOFError) as e:
                problems.append(f"frame {index + 1} of {len(delays)} could not be decoded ({e}); "
                                f"the file may be damaged")
                return
            duration = Fraction(delay, 1000)
            yield TimedFrame(rgb, start, duration)
            start += duration


def _to_rgb(image) -> np.ndarray:
    """(H, W, 3) uint8 RGB of the current frame; transparency composited over black."""
    from PIL import Image

    rgba = image.convert("RGBA")
    black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return np.asarray(Image.alpha_composite(black, rgba).convert("RGB"), dtype=np.uint8).copy()
