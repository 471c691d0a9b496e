"""Option values, checked once, up front, the same way for the CLI and the server.

Every entry point (``scail-pose extract/run/render``, the server's request parsing) calls these
before any work, so a value that a later stage would refuse is refused at once, with the same
one-line message whichever way it came in:

* :func:`check_resolution`: a working size that the reader accepts *and* the renderer can
  render (``extract --resolution 8 8`` used to be accepted, and ``render`` then refused it);
* :func:`check_estimator`: a name of the estimator registry;
* :func:`check_arch`: a renderer arch, with ``cuda`` refused at once where taichi finds no
  CUDA GPU (instead of after a long estimation);

(Smoothing strengths have their own home, :func:`scail_backend.smoothing.parse_strength`.)
"""

from __future__ import annotations

from typing import Optional, Tuple

from scail_protocol.errors import EstimatorError, RenderError, VideoError


def check_resolution(resolution) -> Optional[Tuple[int, int]]:
    """The landscape working size ``(H, W)`` as ints, or None for the default.

    Both orders (portrait swaps it) must be a size the renderer draws and H.264 encodes.

    Raises:
        VideoError: not two even integers within the reader's and the renderer's limits.
    """
    if resolution is None:
        return None
    from .render.pipeline import MAX_SIDE_PX, MIN_SIDE_PX
    from .video.framing import MAX_RESOLUTION_SIDE, check_resolution as reader_check

    low, high = MIN_SIDE_PX, min(MAX_SIDE_PX, MAX_RESOLUTION_SIDE)
    try:
        height, width = reader_check(resolution)  # the reader's rule (even, positive)
        if not (low <= height <= high and low <= width <= high):  # and the renderer's
            raise VideoError("outside the renderer's limits")
    except VideoError:
        shown = " ".join(str(v) for v in resolution) if isinstance(resolution, (list, tuple)) \
            else repr(resolution)
        raise VideoError(f"resolution must be two even integers H W in {low}..{high} (what the "
                         f"renderer and H.264 accept), got {shown[:40]}") from None
    return height, width


def check_estimator(name: str) -> str:
    """A registered estimator name (``auto`` included).

    Raises:
        EstimatorError: unknown name; the message lists the names.
    """
    from .estimators.registry import names

    if not isinstance(name, str) or name not in names():
        raise EstimatorError(f"unknown estimator {str(name)[:40]!r}; choose one of "
                             f"{', '.join(names())}")
    return name


def check_arch(arch: str) -> str:
    """A renderer arch ("auto", "cpu", "cuda"); ``cuda`` only where CUDA is usable.

    Raises:
        RenderError: unknown arch, or ``cuda`` on a machine without a usable CUDA GPU.
    """
    from .render.taichi_runtime import ARCHES, cuda_available

    if arch not in ARCHES:
        raise RenderError(f"unknown renderer arch {str(arch)[:40]!r}; use one of "
                          f"{', '.join(ARCHES)}")
    if arch == "cuda" and not cuda_available():
        raise RenderError("--arch cuda: no usable CUDA GPU here; use --arch cpu (or auto)")
    return arch
