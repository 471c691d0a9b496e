"""PoseSequence -> RGBA frames -> ``.mp4`` (+ PNG frames), streamed in constant memory.

Frames are rendered in small batches (capsules of every person, then the 2D overlay composited
per channel, docs/pipeline.md §6-§7) and handed to the encoder one at a time, so memory does not
grow with the sequence length. The depth-attenuation constants are computed once over the *whole*
sequence (all frames, all people), as the reference does per call (§6.3), so a frame looks the
same whether it is rendered alone in a stream or in one big call.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from scail_protocol.capsules import DepthRange, drawn_endpoint_z_range, frame_capsules
from scail_protocol.contract import composite_channels
from scail_protocol.errors import RenderError
from scail_protocol.overlay import overlay_pixels
from scail_protocol.sequence import PoseSequence

from ..background import Background
from ..progress import no_progress
from .capsule_renderer import DEFAULT_BATCH_FRAMES, CapsuleRenderer
from .taichi_runtime import generation

log = logging.getLogger(__name__)

MIN_SIDE_PX = 16     # ours: smaller frames are rejected as absurd
MAX_SIDE_PX = 8192   # ours: larger frames are rejected as absurd (H.264 level limits, memory)
STAGE = "render"     # progress stage name
ENCODE_QUEUE_FRAMES = 8  # rendered RGBA frames waiting for the encoder (~1.8 MB each at 896x512)
_RENDERERS = {}      # (H, W, arch request, taichi generation) -> CapsuleRenderer


@dataclass(frozen=True)
class RenderReport:
    """What :func:`render_sequence` wrote.

    Attributes:
        path: the ``.mp4`` written.
        frames: number of frames.
        fps: frame rate of the video (always 16, docs/pipeline.md §8).
        size: (H, W) in pixels.
        arch: taichi arch used ("cpu" or "cuda").
        seconds: wall time of rendering and encoding.
        frames_dir: folder of PNG frames, or None.
    """

    path: Path
    frames: int
    fps: int
    size: tuple
    arch: str
    seconds: float
    frames_dir: Path = None


def check_render_size(size, *, video: bool = True) -> tuple:
    """(H, W) as ints, or RenderError for absurd sizes, and with ``video`` for odd ones
    (H.264 yuv420p needs even sides)."""
    height, width = (int(v) for v in size)
    if not (MIN_SIDE_PX <= height <= MAX_SIDE_PX and MIN_SIDE_PX <= width <= MAX_SIDE_PX):
        raise RenderError(f"frame size {height}x{width} is outside {MIN_SIDE_PX}..{MAX_SIDE_PX} "
                          f"pixels per side; re-extract the poses at a sensible resolution")
    if video and (height % 2 or width % 2):
        raise RenderError(f"frame size {height}x{width} must be even on both sides for "
                          f"H.264 yuv420p")
    return height, width


def sequence_depth_range(seq: PoseSequence) -> DepthRange:
    """Depth constants over every drawn limb of every frame and person (docs/pipeline.md §6.3)."""
    z_range = drawn_endpoint_z_range(seq.openpose18_3d())
    if z_range is None:  # nothing is drawn anywhere; any constants will do
        return DepthRange.from_z_range(0.0, 0.0)
    return DepthRange.from_z_range(*z_range)


def get_renderer(size, arch: str = "auto") -> CapsuleRenderer:
    """A cached renderer for this size (kernels and buffers are reused across calls)."""
    key = (int(size[0]), int(size[1]), arch, generation())
    renderer = _RENDERERS.get(key)
    if renderer is None:
        renderer = CapsuleRenderer(size, arch=arch)
        _RENDERERS.clear()  # one size at a time is the common case; keep memory flat
        _RENDERERS[(key[0], key[1], arch, generation())] = renderer
    return renderer


def iter_rendered_frames(seq: PoseSequence, *, arch: str = "auto", batch_size: int = None,
                         overlay: bool = True, progress=None) -> Iterator[np.ndarray]:
    """Render a sequence frame by frame.

    Args:
        seq: the poses; its ``K`` and ``size`` define the camera and frame size.
        arch: taichi arch ("auto", "cpu", "cuda").
        batch_size: frames per kernel launch (default 8); memory is O(batch_size · H · W).
        overlay: composite the 2D hands/face/head overlay on top (docs/pipeline.md §7).
        progress: ``progress("render", done, total)`` after every frame; may raise
            :class:`scail_protocol.errors.Cancelled`.

    Yields:
        (H, W, 4) uint8 RGBA frames in order (views into a fresh per-batch array, so they stay
        valid after the next frame is produced).
    """
    progress = progress or no_progress
    height, width = check_render_size(seq.size, video=False)
    batch = max(int(batch_size or DEFAULT_BATCH_FRAMES), 1)
    renderer = get_renderer((height, width), arch)
    depth = sequence_depth_range(seq)
    joints = seq.openpose18_3d()  # (P, T, 18, 3) mm; O(T) but tiny next to the frames
    total = seq.num_frames
    log.info("rendering %d frames of %dx%d (width x height) on %s", total, width, height,
             renderer.arch)
    progress(STAGE, 0, total)
    for start in range(0, total, batch):
        stop = min(start + batch, total)
        scenes = [frame_capsules(joints[:, t]) for t in range(start, stop)]
        frames = renderer.render(scenes, depth, seq.K)
        for offset, frame in enumerate(frames):
            t = start + offset
            if overlay:
                _composite_overlay(frame, seq.kp2d[:, t], seq.kp2d_score[:, t], (height, width))
            yield frame
            progress(STAGE, t + 1, total)


def _composite_overlay(frame: np.ndarray, kp2d_px, score, size) -> None:
    """Per-channel composite of the frame's overlay onto ``frame`` in place (docs/pipeline.md
    §7)."""
    # each person's own two hands (issue 11; the reference's pairing mixes people, §14.6)
    index, rgb = overlay_pixels(kp2d_px, score, size, reference_hand_pairing=False)
    if len(index) == 0:
        return
    flat = frame.reshape(-1, 4)
    flat[index, :3] = composite_channels(flat[index, :3], rgb)


def _warn_if_nobody_visible(seq: PoseSequence) -> None:
    """Warn that the video came out all black although people are present (the callers say
    so already when nobody is present at all)."""
    present = seq.present()
    if present.any():
        frames = int(present.any(0).sum())
        log.warning("the video is all black: the %d frame(s) with a person draw nothing inside "
                    "the %dx%d (width x height) frame (joints off-screen, behind the camera or at "
                    "absurd coordinates); check the poses' joints3d, kp2d and K", frames,
                    seq.size[1], seq.size[0])


def render_sequence(seq: PoseSequence, out_path, *, frames_dir=None, arch: str = "auto",
                    overlay: bool = True, progress=None) -> RenderReport:
    """Render a sequence to an H.264 ``.mp4`` (16 fps, yuv420p; docs/pipeline.md §8), streaming.

    Args:
        seq: the poses to render (at least one frame).
        out_path: target ``.mp4``; written atomically (temporary file, then rename).
        frames_dir: optional folder that receives every frame as a lossless RGBA PNG
            ``frame_00000.png``, ...; it appears (or is replaced) only when everything succeeded.
        arch: taichi arch ("auto", "cpu", "cuda").
        overlay: composite the 2D overlay (docs/pipeline.md §7).
        progress: ``progress("render", done, total)``; may raise ``Cancelled``.

    Returns:
        A :class:`RenderReport`. A video that comes out all black although people are present
        is written all the same, with a warning.

    Raises:
        RenderError: empty sequence or absurd size. VideoError: the output cannot be written.
        On any error nothing is left at ``out_path`` or ``frames_dir``.
    """
    from contextlib import ExitStack

    from ..video.writer import DEFAULT_FPS, Mp4Writer, PngFrameWriter

    if seq.num_frames == 0:
        raise RenderError("the sequence has no frames; nothing to render")
    size = check_render_size(seq.size)
    progress = progress or no_progress
    began = time.perf_counter()
    progress(STAGE, 0, seq.num_frames)
    with ExitStack() as stack:
        # Frames are rendered in a background thread while this thread encodes them (two cores
        # overlap the halves of the work); progress stays on this thread, so it may cancel.
        rendered = stack.enter_context(Background(
            iter_rendered_frames(seq, arch=arch, overlay=overlay), depth=ENCODE_QUEUE_FRAMES,
            name="scail-render"))
        # PNGs before the video: the video is finalised first, and its failure discards them.
        pngs = stack.enter_context(PngFrameWriter(frames_dir)) if frames_dir else None
        video = stack.enter_context(Mp4Writer(out_path, size, fps=DEFAULT_FPS))
        drawn = False   # has any frame a pixel that is not black (checked until one has)
        for done, frame in enumerate(rendered, start=1):
            drawn = drawn or bool(frame[..., :3].any())
            video.write(frame)
            if pngs is not None:
                pngs.write(frame)
            progress(STAGE, done, seq.num_frames)
    seconds = time.perf_counter() - began
    if not drawn:
        _warn_if_nobody_visible(seq)
    arch_used = get_renderer(size, arch).arch
    log.info("rendered %d frames in %.1f s (%.1f frames/s)", seq.num_frames, seconds,
             seq.num_frames / max(seconds, 1e-9))
    return RenderReport(path=Path(out_path), frames=seq.num_frames, fps=DEFAULT_FPS, size=size,
                        arch=arch_used, seconds=seconds,
                        frames_dir=Path(frames_dir) if frames_dir else None)
