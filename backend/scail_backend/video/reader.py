"""Streaming video input: a video file, a folder of images or one image, at the working size.

``open_video(path)`` probes the input (size, rate, frame count, first frame decodable) and returns
a :class:`VideoSource`; iterating it decodes frame by frame and yields each frame resized and
centre-cropped to the working size (``framing``, reference §1.2). Nothing holds more than one
frame, so a 10-minute 4K video streams in constant memory.

Differences from the reference's reader (decord): display rotation (phone videos) is applied, so
a portrait phone clip is treated as portrait; a damaged stream yields the frames that decode, with
a warning, instead of failing; image folders and single images are accepted too.
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

from scail_protocol.errors import VideoError

from .framing import Framing, Size

log = logging.getLogger(__name__)

STILL_FPS = 16.0  # reference §8's output rate: images and image folders have no rate of their own
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MAX_CONSECUTIVE_BAD_PACKETS = 200  # a stream this broken is not worth reading further
MAX_FPS = 1000.0  # PoseSequence's limit
VIDEO_HINT = ("expected a video file (mp4, mov, webm, avi, mkv), an image "
              f"({', '.join(IMAGE_EXTENSIONS)}) or a folder of images")


@dataclass
class VideoSource:
    """A probed input; iterate it for (H, W, 3) uint8 RGB frames at the working size.

    Attributes:
        path: the input (file or folder).
        kind: "video", "images" (a folder) or "image" (one still).
        fps: source frame rate, frames per second (STILL_FPS for images).
        num_frames: frame count if known before decoding (exact for most mp4/mov/avi; estimated
            from the duration for containers without a count, e.g. webm; see ``num_frames_exact``),
            None if unknown. Iteration is authoritative.
        num_frames_exact: whether ``num_frames`` came from the container's own count.
        source_size: (H, W) of the source frames after display rotation, pixels.
        framing: resize/crop onto the working size.
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
    _images: tuple = ()

    @property
    def size(self) -> Size:
        """(H, W) working size of the yielded frames, pixels."""
        return self.framing.size

    def __iter__(self) -> Iterator[np.ndarray]:
        self.problems = []
        self.frames_read = 0
        raw = _decode_video(self) if self.kind == "video" else _read_images(self)
        for frame in raw:
            self.frames_read += 1
            yield frame
        if self.num_frames_exact and 0 < self.frames_read < (self.num_frames or 0):
            self.problems.append(f"decoded {self.frames_read} of the {self.num_frames} frames "
                                 f"the file announces (truncated?)")
        if self.frames_read == 0:
            detail = f" ({'; '.join(self.problems)})" if self.problems else ""
            raise VideoError(f"{self.path}: no frame could be decoded{detail}")
        if self.problems:
            log.warning("%s: read %d frames; %s", self.path, self.frames_read,
                        "; ".join(self.problems))

    def describe(self) -> dict:
        """JSON-ready facts about the source (for PoseSequence.meta)."""
        return {"path": str(self.path), "kind": self.kind, "fps": self.fps,
                "num_frames": self.num_frames, "size": list(self.source_size),
                "working_size": list(self.size)}


def open_video(path, resolution: Optional[Size] = None) -> VideoSource:
    """Probe a video, image folder or image and prepare to stream it at the working size.

    Args:
        path: a video file, an image file (a one-frame video) or a folder of images (sorted by
            name, numbers in names compared as numbers).
        resolution: (H, W) working size for landscape sources (portrait and square get it
            swapped); None = 512 x 896 (reference §1.2).

    Returns:
        A :class:`VideoSource`; its first frame has already been decoded once to check it.

    Raises:
        VideoError: missing path, unreadable folder, empty folder, not a video, no video stream,
            or no decodable frame.
    """
    path = Path(path)
    if not path.exists():
        raise VideoError(f"input not found: {path}")
    if path.is_dir():
        return _open_folder(path, resolution)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return _open_images(path, [path], "image", resolution)
    return _open_video_file(path, resolution)


# --- video files ----------------------------------------------------------------------------------

def _open_video_file(path: Path, resolution) -> VideoSource:
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"{path} is not a readable video ({_reason(e)}): not a video, or "
                         f"damaged or truncated; {VIDEO_HINT}") from None
    with container:
        if not container.streams.video:
            raise VideoError(f"{path} has no video stream (or no frames at all); {VIDEO_HINT}")
        stream = container.streams.video[0]
        fps = _stream_fps(stream, path)
        count, exact = _frame_count(container, stream, fps)
        first = next(_decoded_frames(container, stream, problems=[]), None)
    if first is None:
        raise VideoError(f"{path}: no decodable video frame (empty, truncated or corrupt file)")
    source_size = first.shape[:2]
    return VideoSource(path=path, kind="video", fps=fps, num_frames=count, num_frames_exact=exact,
                       source_size=source_size,
                       framing=Framing.for_source(source_size, resolution))


def _decode_video(source: VideoSource) -> Iterator[np.ndarray]:
    import av

    try:
        container = av.open(str(source.path))
    except (av.FFmpegError, OSError) as e:
        raise VideoError(f"{source.path} can no longer be opened ({_reason(e)})") from None
    framings = {source.source_size: source.framing}
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: decoding is ~2x faster on 2 cores
        for frame in _decoded_frames(container, stream, source.problems):
            framing = framings.get(frame.shape[:2])
            if framing is None:  # the stream changed size mid-way: same target, own resize
                framing = framings[frame.shape[:2]] = Framing.to_target(frame.shape[:2],
                                                                        source.size)
            yield framing.apply(frame)


def _decoded_frames(container, stream, problems: list) -> Iterator[np.ndarray]:
    """Decode every frame that can be decoded; note undecodable packets in ``problems``.

    Yields (H, W, 3) uint8 RGB frames at source size, display rotation applied.
    """
    import av

    packets = container.demux(stream)
    bad, consecutive = 0, 0
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.FFmpegError as e:
            problems.append(f"the stream ends in damaged data ({_reason(e)}); the file may be "
                            f"truncated")
            break
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
            yield _to_rgb(frame)
    if bad:
        problems.append(f"{bad} packet(s) could not be decoded (corrupt or truncated data)")


def _to_rgb(frame) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a decoded frame, rotated as its display matrix says."""
    rgb = frame.to_ndarray(format="rgb24")
    quarter_turns = int(round((getattr(frame, "rotation", 0) or 0) / 90.0)) % 4
    if quarter_turns:  # the display matrix rotates counter-clockwise; np.rot90 too
        rgb = np.ascontiguousarray(np.rot90(rgb, quarter_turns))
    return rgb


def _stream_fps(stream, path: Path) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            fps = float(Fraction(rate))
            if 0 < fps <= MAX_FPS:
                return fps
    log.warning("%s: no usable frame rate in the file; assuming %g fps", path, STILL_FPS)
    return STILL_FPS


def _frame_count(container, stream, fps: float):
    """(count, exact): the container's frame count, else an estimate from the duration."""
    if stream.frames and stream.frames > 0:
        return int(stream.frames), True
    seconds = None
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE
    if seconds and math.isfinite(seconds) and seconds > 0:
        return max(1, int(round(seconds * fps))), False
    return None, False


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


def _read_images(source: VideoSource) -> Iterator[np.ndarray]:
    framings = {source.source_size: source.framing}
    target = source.size
    for image in source._images:
        rgb = _read_image(image, source.problems)
        if rgb is None:
            continue
        framing = framings.get(rgb.shape[:2])
        if framing is None:
            framing = framings[rgb.shape[:2]] = Framing.to_target(rgb.shape[:2], target)
        yield framing.apply(rgb)


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
