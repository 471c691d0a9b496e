"""Output writers: the H.264 ``.mp4`` of the conditioning video and lossless RGBA PNG frames.

Neither leaves half-written output behind:

* :class:`Mp4Writer` encodes into a temporary file beside the target (``.NAME.XXXX.part``) and
  renames it over the target only when the ``with`` block ends without an exception; on any
  exception (cancellation included) the temporary file is removed and the target is untouched.
* :class:`PngFrameWriter` writes ``frame_00000.png``, ... into a temporary sibling folder and
  swaps it into place on success (an existing folder of that name is replaced only then); on
  failure the temporary folder is deleted, so a folder of that name is always complete.

Video settings are the reference's (reference §8): libx264, preset medium, CRF 23, yuv420p,
16 fps, RGB only (alpha dropped), no audio.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from scail_protocol.errors import VideoError

log = logging.getLogger(__name__)

DEFAULT_FPS = 16            # reference §8: the pose video is always 16 fps
CODEC = "libx264"           # reference §8
PIX_FMT = "yuv420p"         # reference §8 (and §12: what SCAIL decodes)
CRF = 23                    # reference §8: libx264's default quality
PRESET = "medium"           # reference §8
FRAME_NAME = "frame_{:05d}.png"


def _temp_beside(path: Path, suffix: str, directory: bool = False) -> Path:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise VideoError(f"cannot write {path}: folder {parent} does not exist")
    try:
        if directory:
            return Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=suffix, dir=parent))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=parent)
        os.close(fd)
        return Path(tmp)
    except OSError as e:
        raise VideoError(f"cannot write into {parent}: {e.strerror}") from None


class Mp4Writer:
    """Encode RGB(A) frames to an H.264 ``.mp4``, atomically (see the module docstring).

    Use as a context manager::

        with Mp4Writer("out.mp4", (512, 896)) as video:
            for frame in frames:          # (H, W, 3 or 4) uint8, RGB(A)
                video.write(frame)

    Args:
        path: target file; its folder must exist.
        size: (H, W) in pixels; both even (yuv420p halves the chroma planes).
        fps: frames per second written into the file.
        crf, preset: libx264 quality and speed settings.
    """

    def __init__(self, path, size, *, fps: int = DEFAULT_FPS, crf: int = CRF,
                 preset: str = PRESET):
        self.path = Path(path)
        self.height, self.width = (int(v) for v in size)
        if self.height <= 0 or self.width <= 0 or self.height % 2 or self.width % 2:
            raise VideoError(f"H.264 yuv420p needs an even, positive frame size, got "
                             f"{self.height}x{self.width}")
        if self.path.is_dir():
            raise VideoError(f"cannot write {self.path}: it is a folder")
        self.fps = int(fps)
        self.crf, self.preset = int(crf), str(preset)
        self.frames = 0
        self._tmp = None
        self._container = None
        self._stream = None

    def __enter__(self) -> "Mp4Writer":
        import av

        self._tmp = _temp_beside(self.path, ".part")
        try:
            self._container = av.open(str(self._tmp), mode="w", format="mp4")
            stream = self._container.add_stream(CODEC, rate=Fraction(self.fps))
            stream.width, stream.height = self.width, self.height
            stream.pix_fmt = PIX_FMT
            stream.time_base = Fraction(1, self.fps)
            stream.options = {"crf": str(self.crf), "preset": self.preset}
            self._stream = stream
        except BaseException:
            self._abort()
            raise
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) RGB or (H, W, 4) RGBA uint8 frame (alpha is dropped)."""
        import av

        if self._stream is None:
            raise VideoError(f"{self.path}: write() needs an open writer (use it in a with block)")
        frame = np.asarray(frame)
        if frame.shape[:2] != (self.height, self.width) or frame.ndim != 3 \
                or frame.shape[2] not in (3, 4) or frame.dtype != np.uint8:
            raise VideoError(f"frame must be ({self.height}, {self.width}, 3|4) uint8, "
                             f"got {frame.shape} {frame.dtype}")
        rgb = np.ascontiguousarray(frame[..., :3])
        video_frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        video_frame.pts = self.frames
        video_frame.time_base = Fraction(1, self.fps)
        try:
            for packet in self._stream.encode(video_frame):
                self._container.mux(packet)
        except av.error.FFmpegError as e:
            raise VideoError(f"encoding frame {self.frames} of {self.path} failed: {e}") from None
        self.frames += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._abort()
            return
        import av

        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
            os.replace(self._tmp, self.path)
        except (av.error.FFmpegError, OSError) as e:
            self._abort()
            raise VideoError(f"cannot finish {self.path}: {e}") from None
        except BaseException:
            self._abort()
            raise
        log.debug("wrote %s (%d frames, %d fps)", self.path, self.frames, self.fps)

    def _abort(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception as e:  # already failing; the temp file goes anyway
                log.debug("closing %s after an error: %s", self._tmp, e)
            self._container = None
        if self._tmp is not None:
            Path(self._tmp).unlink(missing_ok=True)


class PngFrameWriter:
    """Write every frame as a lossless RGBA PNG ``frame_00000.png``, ... into a folder.

    Frames go to a temporary sibling folder that replaces ``folder`` only when the ``with``
    block succeeds (see the module docstring). Uses OpenCV's PNG encoder (backend only).

    Args:
        folder: the target folder; its parent must exist. An existing folder is replaced on
            success; an existing *file* of that name is an error.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise VideoError(f"cannot write frames into {self.folder}: it is a file")
        self.frames = 0
        self._tmp = None

    def __enter__(self) -> "PngFrameWriter":
        self._tmp = _temp_beside(self.folder, ".part", directory=True)
        return self

    def write(self, frame: np.ndarray) -> Path:
        """Write the next (H, W, 4) RGBA (or (H, W, 3) RGB) uint8 frame; returns its final path."""
        import cv2

        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] not in (3, 4) or frame.dtype != np.uint8:
            raise VideoError(f"frame must be (H, W, 3|4) uint8, got {frame.shape} {frame.dtype}")
        code = cv2.COLOR_RGBA2BGRA if frame.shape[2] == 4 else cv2.COLOR_RGB2BGR
        ok, data = cv2.imencode(".png", cv2.cvtColor(frame, code))
        if not ok:
            raise VideoError(f"PNG encoding of frame {self.frames} failed")
        name = FRAME_NAME.format(self.frames)
        try:
            (self._tmp / name).write_bytes(data.tobytes())
        except OSError as e:
            raise VideoError(f"cannot write {self.folder / name}: {e.strerror}") from None
        self.frames += 1
        return self.folder / name

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            return
        old = None
        try:
            if self.folder.exists():
                old = _temp_beside(self.folder, ".old", directory=True)
                os.replace(self.folder, old / self.folder.name)
            os.replace(self._tmp, self.folder)
        except OSError as e:
            shutil.rmtree(self._tmp, ignore_errors=True)
            if old is not None and not self.folder.exists():
                os.replace(old / self.folder.name, self.folder)  # put the old folder back
            raise VideoError(f"cannot put frames into {self.folder}: {e.strerror}") from None
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        log.info("wrote %d PNG frames into %s", self.frames, self.folder)
