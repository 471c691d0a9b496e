"""Streaming video input: a video file, a folder of images or one image, at the working size.

``open_video(path)`` probes the input (size, rate, frame count, first frame decodable) and returns
a :class:`VideoSource`; iterating it decodes frame by frame and yields each frame resized and
centre-cropped to the working size (``framing``, docs/pipeline.md §1.2). Nothing holds more than one
frame, so a 10-minute 4K video streams in constant memory.

The video is read as players show it. Differences from the reference's reader (decord):

* display rotation (phone videos) is applied, so a portrait phone clip is treated as portrait;
* non-square pixels (anamorphic video, sample aspect ratio != 1) are made square: orientation and
  framing follow the displayed picture (a 224x256 stream at SAR 2:1 is a 448x256 landscape);
* edit lists are honoured (libavformat drops the frames a losslessly trimmed clip stores but does
  not present); the frame count is the presented one, from the edited duration;
* a damaged stream yields every frame that decodes, with a warning, instead of failing; frames
  that frame-threaded decoding loses at the damage are decoded again without threads from the
  last keyframe, so a truncated file gives what ffmpeg gives;
* image folders, single images and animated images (GIF, WebP, APNG; ``animated``) are accepted,
  animations with their own frame timing;
* optionally, the clip is resampled in time to a chosen rate (``fps=``; ``timing``).
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np

from scail_protocol.contract import OUTPUT_FPS, POSES_SUFFIX
from scail_protocol.errors import VideoError

from . import animated
from .framing import Framing, Size
from .timing import (MAX_FPS, RESAMPLING_METHOD, TimedFrame, check_fps, resample_nearest,
                     resampled_count, same_rate, steady_times)

log = logging.getLogger(__name__)

STILL_FPS = float(OUTPUT_FPS)  # the output rate: images and image folders have none of their own
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MAX_CONSECUTIVE_BAD_PACKETS = 200  # a stream this broken is not worth reading further
SHORT_OF_DURATION = 0.8  # fewer frames than this share of the duration's estimate: truncated
MIXED_ASPECT_TOLERANCE = 0.02  # |log| of the aspect ratios: images within 2 % share a framing
VIDEO_HINT = ("expected a video file (mp4, mov, webm, avi, mkv), an image "
              f"({', '.join(IMAGE_EXTENSIONS)}), an animated GIF/WebP/PNG or a folder of images")


@dataclass
class VideoSource:
    """A probed input; iterate it for (H, W, 3) uint8 RGB frames at the working size.

    Attributes:
        path: the input (file or folder).
        kind: "video", "animation" (animated image), "images" (a folder) or "image" (one still).
        fps: rate of the yielded frames, frames per second: the source's, or the rate it is
            resampled to.
        num_frames: count of yielded frames if known before decoding (exact for most
            mp4/mov/avi; estimated from the duration for containers without a count, e.g. webm,
            for edited (trimmed) mp4 and when resampling; see ``num_frames_exact``), None if
            unknown. Iteration is authoritative.
        num_frames_exact: whether ``num_frames`` came from the container's own count.
        source_size: (H, W) of the source as displayed (rotation applied, non-square pixels
            made square), pixels.
        framing: resize/crop onto the working size.
        source_fps: the source's own frame rate (STILL_FPS for images), frames per second.
        resampled: whether frames are resampled in time to ``fps`` (``timing.resample_nearest``).
        problems: human-readable notes on undecodable packets or unreadable images, filled in as
            iteration finds them.
        frames_read: frames yielded by the last (or current) iteration.

    Iterating again decodes again from the start.
    """

    path: Path
    kind: str
    fps: float
    num_frames: Optional[int]
    num_frames_exact: bool
    source_size: Size
    framing: Framing
    problems: List[str] = field(default_factory=list)
    frames_read: int = 0
    source_fps: float = 0.0
    resampled: bool = False
    sample_aspect: Fraction = Fraction(1)
    _images: tuple = ()
    _delays: tuple = ()

    def __post_init__(self):
        self.source_fps = self.source_fps or self.fps

    @property
    def size(self) -> Size:
        """(H, W) working size of the yielded frames, pixels."""
        return self.framing.size

    def __iter__(self) -> Iterator[np.ndarray]:
        self.problems = []
        self.frames_read = 0
        for frame in self._frames():
            self.frames_read += 1
            yield frame
        shortfall = self._shortfall()
        if shortfall:
            self.problems.append(shortfall)
        if self.frames_read == 0:
            detail = f" ({'; '.join(self.problems)})" if self.problems else ""
            raise VideoError(f"{self.path}: no frame could be decoded{detail}")
        if self.problems:
            log.warning("%s: read %d frames; %s", self.path, self.frames_read,
                        "; ".join(self.problems))

    def _shortfall(self) -> Optional[str]:
        """The note on fewer frames read than announced (by the container's count, or well
        short of what its duration promises), or None; the cause is added only when no problem
        noted so far gives it (every decoder problem already says what is wrong)."""
        announced = self.num_frames or 0
        if not 0 < self.frames_read < announced:
            return None
        if self.kind == "images":
            return f"the folder holds {announced} images"
        if self.num_frames_exact:
            note = f"the file announces {announced} frames"
        elif self.frames_read < SHORT_OF_DURATION * announced:
            note = f"its duration announces about {announced} frames"
        else:
            return None   # an estimate from the duration: a few frames either way are normal
        return note if self.problems else f"{note}: it is damaged or truncated"

    def timed_frames(self) -> Iterator[TimedFrame]:
        """The source's frames at the working size with their presentation times (seconds),
        not resampled. Notes problems in ``problems`` as iteration does."""
        if self.kind == "video":
            return _decode_video(self)
        if self.kind == "animation" or self._delays:
            return self._framed(animated.read_frames(self.path, list(self._delays),
                                                     self.problems))
        return steady_times(_read_images(self), self.source_fps)

    def _frames(self) -> Iterator[np.ndarray]:
        if self.resampled:
            return resample_nearest(self.timed_frames(), self.fps)
        return (timed.image for timed in self.timed_frames())

    def _framed(self, frames: Iterator[TimedFrame]) -> Iterator[TimedFrame]:
        for timed in frames:
            framing = self.framing
            if timed.image.shape[:2] != framing.source_size:
                framing = Framing.to_target(timed.image.shape[:2], self.size)
            timed.image = framing.apply(timed.image)
            yield timed

    def describe(self) -> dict:
        """JSON-ready facts about the source (for PoseSequence.meta): ``fps`` is the source's
        own rate; ``resampled_fps`` the rate it was resampled to (None when it was not)."""
        return {"path": str(self.path), "kind": self.kind, "fps": self.source_fps,
                "num_frames": self.num_frames, "size": list(self.source_size),
                "sample_aspect_ratio": str(self.sample_aspect),
                "working_size": list(self.size),
                "resampled_fps": self.fps if self.resampled else None,
                "resampling": RESAMPLING_METHOD if self.resampled else None}


def open_video(path, resolution: Optional[Size] = None, fps: Optional[float] = None
               ) -> VideoSource:
    """Probe a video, image folder or image and prepare to stream it at the working size.

    Args:
        path: a video file, an image file (a one-frame video), an animated GIF/WebP/PNG or a
            folder of images (sorted by name, numbers in names compared as numbers).
        resolution: (H, W) working size for landscape sources (portrait and square get it
            swapped); None = 512 x 896 (docs/pipeline.md §1.2).
        fps: resample the clip in time to this rate (frames per second) by nearest timestamp
            (``timing.resample_nearest``); None = keep every source frame at the source's rate.

    Returns:
        A :class:`VideoSource`; its first frame has already been decoded once to check it.

    Raises:
        VideoError: missing path, unreadable folder, empty folder, not a video, no video stream,
            no decodable frame, or a bad ``fps``.
    """
    path = Path(path)
    target_fps = None if fps is None else check_fps(fps)
    if not path.exists():
        raise VideoError(f"input not found: {path}")
    suffix = path.suffix.lower()
    delays = animated.frame_delays(path) if suffix in animated.ANIMATED_EXTENSIONS else None
    if path.is_dir():
        source = _open_folder(path, resolution)
    elif delays:
        source = _open_animation(path, delays, resolution)
    elif suffix in IMAGE_EXTENSIONS:
        source = _open_images(path, [path], "image", resolution)
    else:
        source = _open_video_file(path, resolution)
    if (target_fps is not None and source.kind != "image"
            and not same_rate(target_fps, source.source_fps)):
        source.num_frames = resampled_count(source.num_frames, source.source_fps, target_fps)
        source.num_frames_exact = False
        source.fps, source.resampled = target_fps, True
    return source


# --- video files ----------------------------------------------------------------------------------

def _open_video_file(path: Path, resolution) -> VideoSource:
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as e:
        if path.suffix.lower() == POSES_SUFFIX:
            raise VideoError(f"{path} is a poses file, not a video: `scail-pose render` turns "
                             "it into the conditioning video") from None
        raise VideoError(f"{path} is not a readable video ({_reason(e)}): not a video, or "
                         f"damaged or truncated; {VIDEO_HINT}") from None
    with container:
        if not container.streams.video:
            raise VideoError(f"{path} has no video stream (or no frames at all); {VIDEO_HINT}")
        stream = container.streams.video[0]
        fps = _stream_fps(stream, path)
        count, exact = _frame_count(container, stream, fps)
        sar = _sample_aspect(stream)
        first = next(_decoded_frames(container, stream, problems=[]), None)
    if first is None:
        raise VideoError(f"{path}: no decodable video frame (empty, truncated or corrupt file)")
    stored = first[0].shape[:2]
    shown = display_size(stored, sar, first[1])
    return VideoSource(path=path, kind="video", fps=fps, num_frames=count, num_frames_exact=exact,
                       source_size=shown, sample_aspect=sar,
                       framing=Framing.for_source(stored, resolution, shown))


def display_size(stored: Size, sar: Fraction, quarter_turns: int) -> Size:
    """(H, W) a player shows for a frame stored (after rotation) as ``stored`` = (H, W), pixels.

    The sample aspect ratio stretches the stored width, i.e. the rotated frame's height when it
    was turned a quarter (odd ``quarter_turns``).
    """
    height, width = stored
    if sar == 1:
        return int(height), int(width)
    if quarter_turns % 2:
        return max(1, int(round(height * sar))), int(width)
    return int(height), max(1, int(round(width * sar)))


def _sample_aspect(stream) -> Fraction:
    """The stream's sample (pixel) aspect ratio, width/height of one pixel; 1 when unknown."""
    for owner in (stream, stream.codec_context):
        ratio = getattr(owner, "sample_aspect_ratio", None)
        if ratio and ratio > 0:
            ratio = Fraction(ratio)
            if Fraction(1, 100) <= ratio <= 100:
                return ratio
    return Fraction(1)


def _decode_video(source: VideoSource) -> Iterator[TimedFrame]:
    """The frames of a video file at the working size, timed; damaged streams drained."""
    import av

    try:
        container = av.open(str(source.path))
    except (av.FFmpegError, OSError) as e:
        raise VideoError(f"{source.path} can no longer be opened ({_reason(e)})") from None
    framings = {}
    sar = source.sample_aspect
    clock = _Clock(source.source_fps)
    tally = _Tally()
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: decoding is ~2x faster on 2 cores
        threaded = stream.codec_context.thread_count != 1
        for rgb, turns, frame in _decoded_frames(container, stream, source.problems, tally):
            yield _framed(rgb, turns, frame, clock, framings, source, sar)
    if threaded and tally.frames < tally.packets:
        # Frame threads can lose the frames in flight when the stream ends in damage: decode
        # again, without threads, from the keyframe before the last frame we got.
        for rgb, turns, frame in _redecode_tail(source, tally):
            yield _framed(rgb, turns, frame, clock, framings, source, sar)


def _framed(rgb, turns, frame, clock, framings, source: VideoSource, sar) -> TimedFrame:
    key = (rgb.shape[:2], turns)
    framing = framings.get(key)
    if framing is None:  # the first frame, or the stream changed size: same working size
        shown = display_size(rgb.shape[:2], sar, turns)
        framing = framings[key] = Framing.to_target(rgb.shape[:2], source.size, shown)
    time, duration = clock.times(frame)
    return TimedFrame(framing.apply(rgb), time, duration)


def _redecode_tail(source: VideoSource, tally: "_Tally"):
    """Frames after ``tally.last_pts``, decoded single-threaded from the keyframe before it."""
    import av

    try:
        container = av.open(str(source.path))
    except (av.FFmpegError, OSError):
        return
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        start = max((k for k in tally.keyframes if tally.last_pts is None or k <= tally.last_pts),
                    default=None)
        if start is not None:
            try:
                container.seek(start, stream=stream, backward=True, any_frame=False)
            except (av.FFmpegError, OSError):
                container.seek(0)
        problems: list = []
        recovered = 0
        for rgb, turns, frame in _decoded_frames(container, stream, problems, _Tally()):
            if tally.last_pts is not None and (frame.pts is None or frame.pts <= tally.last_pts):
                continue
            recovered += 1
            yield rgb, turns, frame
    source.problems.extend(p for p in problems if p not in source.problems)
    if recovered:
        log.debug("%s: %d frame(s) lost by threaded decoding recovered without threads",
                  source.path, recovered)


class _Tally:
    """What the decode loop saw: presented packets sent, frames out, keyframe and last pts."""

    def __init__(self):
        self.packets = 0
        self.frames = 0
        self.keyframes: list = []
        self.last_pts = None


class _Clock:
    """Presentation time and duration of decoded frames, seconds (exact).

    From each frame's pts and time base; frames without a pts, or whose pts does not move
    forward (broken files), are placed one nominal frame interval after the previous one.
    """

    def __init__(self, fps: float):
        self.step = Fraction(fps).limit_denominator(1_000_000) ** -1
        self.previous = None

    def times(self, frame):
        time = None
        if frame.pts is not None and frame.time_base:
            time = frame.pts * Fraction(frame.time_base)
        if time is None or (self.previous is not None and time <= self.previous):
            time = Fraction(0) if self.previous is None else self.previous + self.step
        duration = self.step
        if frame.duration and frame.time_base:
            duration = frame.duration * Fraction(frame.time_base) or self.step
        self.previous = time
        return time, duration


def _decoded_frames(container, stream, problems: list, tally: Optional[_Tally] = None):
    """Decode every frame that can be decoded; note undecodable packets in ``problems``.

    Yields (rgb, quarter_turns, frame): (H, W, 3) uint8 RGB at stored size with the display
    rotation applied, the quarter turns applied, and the PyAV frame (for its timing). Counts
    presented packets and frames in ``tally``.
    """
    import av

    tally = tally if tally is not None else _Tally()
    packets = container.demux(stream)
    bad, consecutive = 0, 0
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.FFmpegError as e:
            problems.append(f"the stream ends early ({_reason(e)}): the file is damaged or "
                            f"truncated")
            break
        if packet.size and not packet.is_discard:  # discarded: outside the edit list
            tally.packets += 1
            if packet.is_keyframe and packet.pts is not None:
                tally.keyframes.append(packet.pts)
        try:
            frames = packet.decode()
        except av.FFmpegError as e:
            bad += 1
            consecutive += 1
            if consecutive >= MAX_CONSECUTIVE_BAD_PACKETS:
                problems.append(f"gave up after {consecutive} undecodable packets in a row "
                                f"({_reason(e)})")
                break
            continue
        consecutive = 0
        for frame in frames:
            tally.frames += 1
            tally.last_pts = frame.pts if frame.pts is not None else tally.last_pts
            rgb, turns = _to_rgb(frame)
            yield rgb, turns, frame
    if bad:
        problems.append(f"{bad} packet(s) could not be decoded: the file is damaged or "
                        f"truncated")


def _to_rgb(frame):
    """((H, W, 3) uint8 RGB, quarter turns) of a decoded frame, rotated as its display matrix
    says."""
    rgb = frame.to_ndarray(format="rgb24")
    quarter_turns = int(round((getattr(frame, "rotation", 0) or 0) / 90.0)) % 4
    if quarter_turns:  # the display matrix rotates counter-clockwise; np.rot90 too
        rgb = np.ascontiguousarray(np.rot90(rgb, quarter_turns))
    return rgb, quarter_turns


def _stream_fps(stream, path: Path) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            fps = float(Fraction(rate))
            if 0 < fps <= MAX_FPS:
                return fps
    log.warning("%s: no usable frame rate in the file; assuming %g fps", path, STILL_FPS)
    return STILL_FPS


def _frame_count(container, stream, fps: float):
    """(count, exact): the frames the file presents, if known before decoding.

    The container's frame count when it agrees with the duration; the duration x rate when the
    count is larger (an edit list presents fewer frames than are stored: a losslessly trimmed
    clip keeps the frames before its cut point for decoding, and they are not shown) or when
    the container has no count.
    """
    seconds = None
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE
    presented = None
    if seconds and math.isfinite(seconds) and seconds > 0:
        presented = max(1, int(round(seconds * fps)))
    stored = int(stream.frames) if stream.frames and stream.frames > 0 else None
    if stored is not None and (presented is None or stored <= presented + 1):
        return stored, True
    return presented, False


# --- images -------------------------------------------------------------------------------------

def _open_folder(path: Path, resolution) -> VideoSource:
    try:
        names = os.listdir(path)
    except OSError as e:
        raise VideoError(f"cannot read folder {path}: {e.strerror}") from None
    images = sorted((path / n for n in names
                     if not n.startswith(".") and Path(n).suffix.lower() in IMAGE_EXTENSIONS
                     and (path / n).is_file()), key=_natural_key)
    if not images:
        raise VideoError(f"folder {path} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                         f"{VIDEO_HINT}")
    return _open_images(path, images, "images", resolution)


def _open_images(path: Path, images: list, kind: str, resolution) -> VideoSource:
    problems: list = []
    first = None
    for image in images:  # the first readable image sets the size and orientation
        first = _read_image(image, problems)
        if first is not None:
            break
    if first is None:
        raise VideoError(f"{path}: no readable image ({'; '.join(problems[:3])})")
    source_size = first.shape[:2]
    return VideoSource(path=path, kind=kind, fps=STILL_FPS, num_frames=len(images),
                       num_frames_exact=True, source_size=source_size,
                       framing=Framing.for_source(source_size, resolution),
                       _images=tuple(images))


def _open_animation(path: Path, delays: list, resolution) -> VideoSource:
    """An animated GIF/WebP/PNG (or a one-frame GIF, a still) read with Pillow."""
    problems: list = []
    first = next(animated.read_frames(path, delays[:1], problems), None)
    if first is None:
        raise VideoError(f"{path}: no readable frame ({'; '.join(problems[:1])})")
    source_size = first.image.shape[:2]
    moving = len(delays) > 1
    return VideoSource(path=path, kind="animation" if moving else "image",
                       fps=animated.rate(delays) if moving else STILL_FPS,
                       num_frames=len(delays), num_frames_exact=True, source_size=source_size,
                       framing=Framing.for_source(source_size, resolution),
                       _delays=tuple(delays))


def _read_images(source: VideoSource) -> Iterator[np.ndarray]:
    framings = {source.source_size: source.framing}
    target = source.size
    noted = False
    for image in source._images:
        rgb = _read_image(image, source.problems)
        if rgb is None:
            continue
        framing = framings.get(rgb.shape[:2])
        if framing is None:
            framing = framings[rgb.shape[:2]] = Framing.to_target(rgb.shape[:2], target)
            if not noted and _other_shape(rgb.shape[:2], source.source_size):
                source.problems.append(_mixed_shapes_note(source, image, rgb.shape[:2]))
                noted = True
        yield framing.apply(rgb)


def _other_shape(size: Size, first: Size) -> bool:
    """Whether an image of (H, W) ``size`` has another aspect ratio than the folder's first."""
    return abs(np.log((size[1] / size[0]) / (first[1] / first[0]))) > MIXED_ASPECT_TOLERANCE


def _mixed_shapes_note(source: VideoSource, image: Path, size: Size) -> str:
    first = f"{source.source_size[1]}x{source.source_size[0]}"
    return (f"the images differ in shape (the first is {first}, {image.name} {size[1]}x"
            f"{size[0]}, width x height): each is fitted to {source.size[1]}x"
            f"{source.size[0]} on its own, so the framing jumps between frames and people "
            f"may not be tracked across them")


def _read_image(path: Path, problems: list) -> Optional[np.ndarray]:
    """(H, W, 3) uint8 RGB of an image file (EXIF orientation applied), or None if unreadable."""
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # imdecode: non-ASCII paths work everywhere
    except OSError as e:
        problems.append(f"cannot read {path.name}: {e.strerror}")
        return None
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        problems.append(f"{path.name} is not a readable image")
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _natural_key(path: Path):
    """Sort key comparing digit runs as numbers: frame2 < frame10."""
    return [int(part) if part.isdigit() else part.lower()
            for part in re.split(r"(\d+)", path.name)]


def _reason(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return text.strip() or type(error).__name__
