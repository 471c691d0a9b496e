"""Output writers: the H.264 ``.mp4`` of the conditioning video and lossless RGBA PNG frames.

Neither leaves half-written output behind:

* :class:`Mp4Writer` encodes into a temporary file beside the target (``.NAME.XXXX.part``) and
  renames it over the target only when the ``with`` block ends without an exception; on any
  exception (cancellation and signals included) the temporary file is removed and the target
  is untouched.
* :class:`PngFrameWriter` writes ``frame_00000.png``, ... into a temporary sibling folder and
  swaps it into place on success (an existing folder of that name is replaced only then); on
  failure the temporary folder is deleted, so a folder of that name is always complete.

Both go through :mod:`scail_protocol.outputs` (fsync, the umask's permissions, a full disk
reported in one line).

Video settings are the reference's (docs/pipeline.md §8): libx264, preset medium, CRF 23, yuv420p,
16 fps, RGB only (alpha dropped), no audio.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path

import numpy as np

from scail_protocol.contract import OUTPUT_FPS
from scail_protocol.errors import VideoError
from scail_protocol.outputs import atomic_folder, atomic_path, check_output_folder, output_error

log = logging.getLogger(__name__)

DEFAULT_FPS = OUTPUT_FPS    # the pose video's rate (scail_protocol.contract)
CODEC = "libx264"           # docs/pipeline.md §8
PIX_FMT = "yuv420p"         # docs/pipeline.md §8 (and §12: what SCAIL decodes)
CRF = 23                    # docs/pipeline.md §8: libx264's default quality
PRESET = "medium"           # docs/pipeline.md §8
FRAME_NAME = "frame_{:05d}.png"
FRAME_GLOB = FRAME_NAME.replace("{:05d}", "*")  # what an existing frames folder may hold


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
        self._output = None
        self._container = None
        self._stream = None

    def __enter__(self) -> "Mp4Writer":
        import av

        self._output = ExitStack()
        try:
            self._tmp = self._output.enter_context(atomic_path(self.path))
            self._container = av.open(str(self._tmp), mode="w", format="mp4")
            stream = self._container.add_stream(CODEC, rate=Fraction(self.fps))
            stream.width, stream.height = self.width, self.height
            stream.pix_fmt = PIX_FMT
            stream.time_base = Fraction(1, self.fps)
            stream.options = {"crf": str(self.crf), "preset": self.preset}
            self._stream = stream
        except BaseException as e:
            self._abort(e)
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
            self._abort(exc)
            return
        import av

        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
        except (av.error.FFmpegError, OSError) as e:
            self._abort(e)
            raise VideoError(f"cannot finish {self.path}: {e}") from None
        except BaseException as e:
            self._abort(e)
            raise
        output, self._output = self._output, None
        output.close()  # fsync, permissions, rename (OutputError on failure)
        log.debug("wrote %s (%d frames, %d fps)", self.path, self.frames, self.fps)

    def _abort(self, exc: BaseException) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception as e:  # already failing; the temp file goes anyway
                log.debug("closing %s after an error: %s", self._tmp, e)
            self._container = None
        if self._output is not None:
            output, self._output = self._output, None
            output.__exit__(type(exc), exc, exc.__traceback__)  # removes the temporary file


class PngFrameWriter:
    """Write every frame as a lossless RGBA PNG ``frame_00000.png``, ... into a folder.

    Frames go to a temporary sibling folder that replaces ``folder`` only when the ``with``
    block succeeds (see the module docstring). Uses OpenCV's PNG encoder (backend only).

    Args:
        folder: the target folder; its parent must exist. An existing folder is replaced on
            success, and only when it holds nothing but ``frame_*.png`` files (a folder of
            the user's own files is never swept away).

    Raises:
        OutputError: the folder holds other files, is the current folder, is a file, or its
            parent is missing (``scail_protocol.outputs.check_output_folder``).
    """

    def __init__(self, folder):
        self.folder = check_output_folder(folder, what="frames folder", only=FRAME_GLOB)
        self.frames = 0
        self._tmp = None
        self._output = None

    def __enter__(self) -> "PngFrameWriter":
        # Import before the temporary folder exists: a stop signal that lands inside an import
        # is swallowed by the import machinery (and can leave its lock held).
        import cv2  # noqa: F401

        self._output = ExitStack()
        self._tmp = self._output.enter_context(atomic_folder(self.folder))
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
            raise output_error(self.folder / name, e) from None
        self.frames += 1
        return self.folder / name

    def __exit__(self, exc_type, exc, tb) -> None:
        output, self._output = self._output, None
        output.__exit__(exc_type, exc, tb)  # swaps the folder in, or deletes the temporary one
        if exc_type is None:
            log.info("wrote %d PNG frames into %s", self.frames, self.folder)
