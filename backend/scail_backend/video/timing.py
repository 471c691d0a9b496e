"""Frame timing: presentation times of decoded frames, and resampling a clip to another rate.

The conditioning video is always 16 fps (docs/pipeline.md §8), so a clip shot at another rate plays
at another speed once rendered (a 60 fps clip 3.75x slower). ``resample_nearest`` turns a clip into
a constant-rate one at a chosen rate by *nearest timestamp*: output frame k, at time k / fps from
the first frame, is the source frame whose presentation time (pts) is closest to it (a tie goes
to the earlier frame). Frames are repeated (upsampling) or
skipped (downsampling); none is blended, so every output frame is a real picture of the person
and poses are never averaged between two positions. The clip's length in seconds is kept: the
output has the frames whose times fall before the end of the last source frame.

Times are exact fractions of a second (``fractions.Fraction``), so the many exact ties of common
rate pairs (60 -> 16: every other output lies midway between two source frames) resolve the
same way on every machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Iterator, Optional

import numpy as np

from scail_protocol.errors import VideoError

MIN_FPS = 0.01            # one frame per 100 s: slower asks are typos (1e-7 for 1e7?)
MAX_FPS = 1000.0          # PoseSequence's limit
RATE_TOLERANCE = 1e-3     # rates closer than this (fps) count as the same rate
RESAMPLING_METHOD = "nearest timestamp"


@dataclass
class TimedFrame:
    """One decoded frame and when it is shown.

    Attributes:
        image: (H, W, 3) uint8 RGB frame (any size).
        time: presentation time, seconds (exact), from the container.
        duration: how long it is shown, seconds (exact, > 0).
    """

    image: np.ndarray
    time: Fraction
    duration: Fraction


def check_fps(fps) -> float:
    """Validate a requested output rate (``--fps``): a finite number in [MIN_FPS, MAX_FPS].

    The one check of the rate for the CLI (``extract``, ``run``, ``batch``), batch manifests and
    server jobs.

    Raises:
        VideoError: not a finite number from MIN_FPS to MAX_FPS (one line).
    """
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise VideoError(f"fps must be a number of frames per second, got {fps!r}") from None
    if not math.isfinite(value) or not MIN_FPS <= value <= MAX_FPS:
        raise VideoError(f"fps must be a number in [{MIN_FPS:g}, {MAX_FPS:g}] frames per "
                         f"second, got {fps!r}")
    return value


def frame_step(fps: float) -> Fraction:
    """The time between frames at ``fps`` (> 0), seconds, exact.

    The rate is read as the nearest fraction with a denominator up to 1,000,000 (29.97 ->
    2997/100, so exact ties fall the same way everywhere); a rate too small for that (below
    about 5e-7) is taken exactly as the float it is, so no positive rate divides by zero.

    Raises:
        VideoError: ``fps`` is not a positive finite number.
    """
    value = float(fps)
    if not math.isfinite(value) or value <= 0:
        raise VideoError(f"fps must be a positive number of frames per second, got {fps!r}")
    rate = Fraction(value).limit_denominator(1_000_000)
    return 1 / (rate if rate > 0 else Fraction(value))


def same_rate(a: float, b: float) -> bool:
    """Whether two frame rates (fps) are equal within RATE_TOLERANCE."""
    return abs(float(a) - float(b)) < RATE_TOLERANCE


def resampled_count(num_frames: Optional[int], source_fps: float, fps: float) -> Optional[int]:
    """Approximate output frame count of a constant-rate clip resampled from ``source_fps``."""
    if not num_frames:
        return num_frames
    return max(1, math.ceil(num_frames * fps / source_fps - 1e-9))


def steady_times(frames: Iterable[np.ndarray], fps: float) -> Iterator[TimedFrame]:
    """Time frames that carry no timing of their own (image folders): frame i at i / fps.

    Raises:
        VideoError: ``fps`` is not a positive finite number.
    """
    step = frame_step(fps)
    for index, image in enumerate(frames):
        yield TimedFrame(image, index * step, step)


def resample_nearest(frames: Iterable[TimedFrame], fps: float) -> Iterator[np.ndarray]:
    """Resample timed frames to a constant ``fps`` by nearest timestamp (see the module notes).

    Args:
        frames: TimedFrame in presentation order (times strictly increasing).
        fps: output rate, frames per second.

    Yields:
        The chosen source images, in order: output k is the frame nearest to k / fps seconds
        after the first frame. Streams: holds one source frame at a time.

    Raises:
        VideoError: ``fps`` is outside what :func:`check_fps` accepts.
    """
    step = frame_step(check_fps(fps))
    index, previous, start = 0, None, None
    for frame in frames:
        if start is None:
            start = frame.time
        if previous is not None:
            midpoint = (previous.time + frame.time) / 2 - start
            while index * step <= midpoint:
                yield previous.image
                index += 1
        previous = frame
    if previous is not None:
        end = previous.time + previous.duration - start
        while index * step < end:
            yield previous.image
            index += 1
