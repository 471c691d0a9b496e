"""Exceptions shared by the backend, the server and the Blender add-on.

Errors are raised low (where the problem is found) and caught high: the CLI's ``main``,
the server loop and the add-on's operators. Every message says what was expected, what
arrived and, where there is one, what to do about it.
"""

from __future__ import annotations


class ScailError(Exception):
    """Base class of every error this project raises on purpose."""


class SequenceError(ScailError):
    """A PoseSequence (or its ``.npz`` file) is malformed: wrong shape, dtype, value or version."""


class ProtocolError(ScailError):
    """A wire message is malformed, unsigned, forged, replayed or too large."""


class ServerTimeout(ScailError):
    """The server did not answer in time (not running, unreachable, or stuck)."""


class WeightsMissing(ScailError):
    """Model weights an estimator needs are not on disk."""


class VideoError(ScailError):
    """A video or image input cannot be read, or an output video cannot be written."""


class EstimatorError(ScailError):
    """An estimator cannot be created or fails while estimating."""


class RenderError(ScailError):
    """The renderer cannot render the given input or write its output."""


class AlignError(ScailError):
    """Alignment to a reference image cannot be done (nobody in the image, nobody to align)."""


class OutputError(ScailError):
    """An output cannot be written where asked: it would replace an input, its folder is
    missing or was replaced meanwhile, or the OS refused (full disk, read-only, permissions)."""


class Cancelled(ScailError):
    """Work was cancelled (a progress callback raises this to stop a long stage cleanly)."""
