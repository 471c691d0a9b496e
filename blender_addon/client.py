"""The add-on's side of the backend: one connection, one job at a time, one timer.

``_STATE`` (a :class:`_Runner`) owns the ``scail_protocol.client.BackendClient`` (the DEALER
socket) and the running job, a ``scail_protocol.conversation.Exchange`` (see ``jobs``).
:func:`launch` runs a job the one way Blender allows: with a UI, :func:`_tick` (the one function
registered with ``bpy.app.timers``) steps it without waiting, copies its progress into
``WindowManager.scail_status`` for the panel and runs its completion on the main thread; in
background mode (``blender -b``: no timers) the same job runs to its end at once. No thread is
involved, so bpy is only ever touched on the main thread. :func:`shutdown` (called by
``unregister``) removes the timer and closes the socket.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from pathlib import Path

import bpy
from scail_protocol.client import ServerTimeout
from scail_protocol.errors import Cancelled, ProtocolError, ScailError

from . import jobs, reports
from .prefs import BackendSettings

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.05  # timer period while a job runs: ~20 polls and UI updates per second


def open_client(settings: BackendSettings):
    """A new ``BackendClient`` for the settings (reads the key file; opens no connection yet).

    Raises:
        ScailError: the key file is missing or unreadable (the message says where it looked).
    """
    from scail_protocol.client import BackendClient, default_key_file, read_key_file

    key = read_key_file(settings.key_file or default_key_file())
    return BackendClient(settings.address, key, timeout_s=settings.timeout_s)


class _Runner:
    """The one object holding the socket and the job (module state lives here, nowhere else)."""

    def __init__(self):
        self.client = None
        self.settings = None
        self.job = None
        self.on_done = None
        self.local_process = None

    def backend(self, settings: BackendSettings):
        """The shared client, re-created when the settings changed."""
        if self.client is None or settings != self.settings:
            self.close_client()
            self.client = open_client(settings)
            self.settings = settings
        return self.client

    def close_client(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def check_idle(self) -> None:
        if self.busy:
            raise ScailError(f"SCAIL is busy ({self.job.label}); wait or press Cancel")

    def start(self, job, on_done=None) -> None:
        self.check_idle()
        self.job, self.on_done = job, on_done
        _set_status(busy=True, stage=job.stage, progress=0.0, error="", message=f"{job.label}...")
        if not bpy.app.timers.is_registered(_tick):
            bpy.app.timers.register(_tick, first_interval=0.0, persistent=True)

    @property
    def busy(self) -> bool:
        return self.job is not None and not self.job.finished


_STATE = _Runner()


def start(job, on_done=None) -> None:
    """Run a job from the timer; ``on_done(result)`` runs on the main thread when it succeeds.

    Raises:
        ScailError: another job is still running.
    """
    _STATE.start(job, on_done)


def launch(job, on_done=None, *, blocking: bool = False):
    """Run a job: from the timer (:func:`start`; returns None), or with ``blocking`` to its end
    here (background mode has no timers), returning ``on_done(result)`` (or the result).

    Raises:
        ScailError: another job is still running; with ``blocking``, whatever the job raised.
    """
    if not blocking:
        start(job, on_done)
        return None
    _STATE.check_idle()
    result = job.run()
    return on_done(result) if on_done else result


def backend(settings: BackendSettings):
    """The add-on's ``BackendClient`` for these settings (created on first use)."""
    return _STATE.backend(settings)


def busy() -> bool:
    return _STATE.busy


def cancel() -> bool:
    """Ask the running job to stop; False when nothing runs."""
    if not _STATE.busy:
        return False
    _STATE.job.cancel()
    return True


def connect(settings: BackendSettings, *, blocking: bool = False):
    """Say hello; the panel shows the backend's device and estimators (see :func:`launch`)."""
    return launch(jobs.hello(backend(settings)), on_done=show_hello, blocking=blocking)


def start_local_backend(settings: BackendSettings) -> int:
    """Launch ``settings.start_command`` (no shell) as a detached process; returns its pid.

    Raises:
        ScailError: no command is set or it cannot be started.
    """
    command = shlex.split(settings.start_command or "")
    if not command:
        raise ScailError("no start command set in the SCAIL add-on preferences")
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as e:
        raise ScailError(f"cannot start the backend with {command[0]!r}: {e.strerror}") from None
    _STATE.local_process = process
    return process.pid


def shutdown() -> None:
    """Stop the timer, drop the job and close the socket (``unregister``)."""
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
    if _STATE.busy:
        _STATE.job.cancel()
    _STATE.job = _STATE.on_done = None
    _STATE.close_client()


def _tick():
    """The timer: step the job, publish its progress, finish it. Returns the next interval.

    This is the add-on's boundary for jobs: whatever a step or a completion raises ends the job
    with the error shown in the panel; the timer itself never raises (Blender would drop it and
    leave the panel busy).
    """
    job = _STATE.job
    if job is None:
        return None
    try:
        job.step()
    except Exception as e:  # noqa: BLE001 - boundary: a bpy or programming error ends the job
        log.exception("SCAIL %s step failed", job.label)
        job.abort(e)
    if not job.finished:
        fraction = job.done / job.total if job.total else 0.0
        _set_status(stage=job.stage, progress=min(max(fraction, 0.0), 1.0),
                    message=f"{job.label}: {job.stage}")
        return POLL_INTERVAL_S
    on_done, _STATE.job, _STATE.on_done = _STATE.on_done, None, None
    if job.client is not None and not isinstance(job.error, Cancelled):
        _set_status(connected=not isinstance(job.error, (ServerTimeout, ProtocolError)))
    if job.error is not None:
        cancelled = isinstance(job.error, Cancelled)
        _set_status(busy=False, progress=0.0, stage="",
                    message=f"{job.label} cancelled" if cancelled else "",
                    error="" if cancelled else str(job.error))
        if not cancelled:
            log.error("SCAIL %s failed: %s", job.label, job.error)
        reports.to_user("INFO" if cancelled else "ERROR",
                        f"{job.label} cancelled" if cancelled
                        else f"SCAIL {job.label} failed: {reports.one_line(job.error)}")
        return None
    try:
        value = on_done(job.result) if on_done else job.result
    except Exception as e:  # noqa: BLE001 - boundary, as above
        if not isinstance(e, ScailError):
            log.exception("SCAIL %s could not be completed", job.label)
        _set_status(busy=False, stage="", progress=0.0, error=str(e))
        reports.to_user("ERROR", f"SCAIL {job.label} failed: {reports.one_line(e)}")
        return None
    if hasattr(value, "armatures"):  # the timer changed the file (an import): one undo step
        in_window_context(bpy.ops.ed.undo_push, message=f"SCAIL {job.label}")
    _set_status(busy=False, stage="", progress=1.0, error="", message=describe(value, job.label))
    reports.to_user("INFO", describe(value, job.label))
    return None


def describe(value, label: str) -> str:
    """The panel's (or the operator's report's) line for what a job produced."""
    if isinstance(value, str):
        return value
    if hasattr(value, "armatures"):
        return f"imported {len(value.armatures)} armature(s)"
    if isinstance(value, Path):
        return f"wrote {value}"
    return f"{label} finished"


def show_hello(hello: dict) -> str:
    """Show what the backend can do: its device, the estimators it can run (the panel's
    estimator menu offers these), why the others cannot, and whether it aligns."""
    caps = hello.get("capabilities") or {}
    device = (caps.get("device") or {}).get("name", "?")
    estimators = caps.get("estimators") or {}
    names = [str(n) for n in estimators.get("names") or []]
    unavailable = [f"{name}: {info.get('reason')}"
                   for name, info in (estimators.get("all") or {}).items()
                   if isinstance(info, dict) and not info.get("available", True)]
    server = hello.get("server") or {}
    _set_status(connected=True, device=str(device), estimators=", ".join(names),
                unavailable="; ".join(unavailable), can_align=bool(caps.get("align")),
                server=str(server.get("version", server) if isinstance(server, dict) else server))
    return f"connected: {device}"


def _set_status(**values) -> None:
    """Copy values onto ``WindowManager.scail_status`` and redraw the 3D views' sidebars."""
    wm = bpy.context.window_manager
    status = getattr(wm, "scail_status", None) if wm is not None else None
    if status is None:
        return
    for name, value in values.items():
        setattr(status, name, value)
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def in_window_context(function, *args, **kwargs):
    """Call ``function`` with a window in the context (timers have none; bones need edit mode)."""
    wm = bpy.context.window_manager
    window = wm.windows[0] if wm is not None and len(wm.windows) else None
    if window is None or bpy.context.window is not None:
        return function(*args, **kwargs)
    with bpy.context.temp_override(window=window):
        return function(*args, **kwargs)

