"""The add-on's units of work, as :class:`scail_protocol.exchange.Exchange` objects. No bpy here
(a job's warnings reach the user through ``reports``, imported only when one arrives).

Each exchange runs one conversation of :mod:`scail_protocol.conversation` (written once there
for the command line and Blender alike), or a local generator such as Blender's frame-by-frame
render. ``client.launch`` runs it: a step per timer tick with a UI, to the end in background
mode; the exchange is the same either way.
"""

from __future__ import annotations

from scail_protocol import conversation as conv
from scail_protocol.conversation import check_capabilities, extract_options, resolution_hw
from scail_protocol.exchange import Exchange

__all__ = ["Exchange", "check_capabilities", "extract_options", "resolution_hw", "hello",
           "import_video", "render_on_backend", "local"]


def hello(client) -> Exchange:
    """Ask the backend who it is; the result is the hello body."""
    return Exchange(client, conv.hello(), label="connect")


def import_video(client, video, *, reference_path=None, estimator: str = "auto",
                 resolution="DEFAULT", smoothing: float = 0.0, use_align: bool = False,
                 cleanup=None, progress=None, on_hello=None, on_warning=None) -> Exchange:
    """Video -> PoseSequence on the backend (uploaded when the backend cannot read the path);
    the result is the PoseSequence. Options as :func:`~scail_protocol.conversation.extract_options`;
    ``on_hello(body)`` sees the backend's hello first; ``on_warning(line)`` gets each line the
    job warned about (a clip not at 16 fps, a damaged or truncated video), by default shown
    to the user as a warning (``reports.warn``).
    """
    options = extract_options(estimator=estimator, resolution=resolution, smoothing=smoothing,
                              use_align=use_align, cleanup=cleanup)
    talk = conv.extract(video, options, reference=reference_path, address=client.address,
                        on_hello=on_hello)
    return Exchange(client, _warned(talk, "poses", on_warning or _warn_user), label="import",
                    progress=progress)


def render_on_backend(client, seq, path, progress=None) -> Exchange:
    """PoseSequence -> conditioning video by the backend's renderer, downloaded to ``path``;
    the result is the path."""
    talk = conv.render(seq, video_path=path)
    return Exchange(client, _downloaded(talk, "video"), label="render", progress=progress)


def local(label: str, steps, progress=None) -> Exchange:
    """A generator of ``(stage, done, total)`` run on the main thread (it may touch bpy); the
    result is its return value."""
    return Exchange(None, steps, label=label, progress=progress)


def _warned(talk, name: str, on_warning):
    """The result's field ``name``, once each of the job's warnings went to ``on_warning``."""
    result = yield from talk
    for line in result.warnings:
        on_warning(line)
    return getattr(result, name)


def _warn_user(line: str) -> None:
    from . import reports  # bpy: only once a job has ended in Blender

    reports.warn(line)


def _downloaded(talk, what: str):
    return (yield from talk).downloads[what]
