"""The add-on's side of the backend: one connection, one job at a time, one timer.

``_STATE`` (a :class:`_Runner`) owns the ``scail_protocol.client.BackendClient`` (the DEALER
socket) and the running job, a ``scail_protocol.conversation.Exchange`` (see ``jobs``).
:func:`launch` runs a job the one way Blender allows: with a UI, :func:`_tick` (the one function
registered with ``bpy.app.timers``) steps it without waiting, copies its progress into
``WindowManager.scail_status`` for the panel and runs its completion on the main thread; in
background mode (``blender -b``: no timers) the same job runs to its end at once. No thread is
involved, so bpy is only ever touched on the main thread. :func:`shutdown` (called by
``unregister``) removes the timer, closes the socket and stops a backend that
:func:`start_local_backend` started.

The panel's bar is one :class:`StageBar` per job: a job's stages may report interleaved (the
backend decodes ahead of the estimator), and the bar follows the latest stage to start without
ever moving back, instead of jumping between them.
"""

from __future__ import annotations

import atexit
import logging
import os
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

import bpy
from scail_protocol.client import ServerTimeout
from scail_protocol.errors import Cancelled, ProtocolError, ScailError

from . import jobs, reports
from .prefs import PREFERENCES_PATH, START_COMMAND_LABEL, BackendSettings

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.05  # timer period while a job runs: ~20 polls and UI updates per second
START_CHECK_S = 3.0  # Start Local Backend waits this long for "listening on" or an early exit
STOP_WAIT_S = 5.0  # unregister: seconds a started backend gets to stop before it is killed
LISTENING = "listening on"  # the line `scail-pose serve` prints once its socket is bound


class StageBar:
    """One progress bar for a job whose stages report ``(stage, done, total)`` in turn or
    interleaved (decode runs ahead of estimate): the bar shows the latest stage to start, and
    within it never moves back. Reports of a stage that started earlier leave it alone, so it
    fills once per stage, in the order the stages start (upload, decode, estimate, ...)."""

    def __init__(self):
        self.stage, self.fraction, self._seen = "", 0.0, set()

    def update(self, stage: str, done, total) -> tuple:
        """Take one report; returns the (stage, fraction in [0, 1]) to show."""
        fraction = min(max(done / total, 0.0), 1.0) if total else 0.0
        if stage not in self._seen:  # a new stage starts: the bar follows it from here
            self._seen.add(stage)
            self.stage, self.fraction = stage, fraction
        elif stage == self.stage:
            self.fraction = max(self.fraction, fraction)
        return self.stage, self.fraction


def open_client(settings: BackendSettings):
    """A new ``BackendClient`` for the settings (reads the key file; opens no connection yet).

    Raises:
        ScailError: the key file is missing or unreadable (the message says where it looked;
            when a backend this add-on started is still starting, or exited, it says so).
    """
    from scail_protocol.client import BackendClient, default_key_file, read_key_file

    path = Path(settings.key_file or default_key_file())
    if not path.exists():
        _check_local_backend(path)
    key = read_key_file(path)
    return BackendClient(settings.address, key, timeout_s=settings.timeout_s)


def _check_local_backend(key_file: Path) -> None:
    """Explain a missing key file by the backend this add-on started, if there is one."""
    process = _STATE.local_process
    if process is None:
        return
    if process.poll() is None:
        raise ScailError(f"key file {key_file} not found yet: the backend started from Blender "
                         f"(pid {process.pid}) may still be starting; try Connect again in a "
                         f"moment")
    raise ScailError(_exited_message(process))


class _Runner:
    """The one object holding the socket and the job (module state lives here, nowhere else)."""

    def __init__(self):
        self.client = None
        self.settings = None
        self.job = None
        self.on_done = None
        self.bar = StageBar()
        self.local_process = None
        self.local_log = None  # where the started backend's output goes

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
        self.bar = StageBar()
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


def start_local_backend(settings: BackendSettings, *, check_s: float = START_CHECK_S) -> int:
    """Launch ``settings.start_command`` (no shell) in its own session; returns its pid.

    Its output goes to a log file in the temporary folder (named in errors). Waits up to
    ``check_s`` seconds for it to say it listens, so that a backend that exits at once (the
    port is taken, a bad option) is reported instead of started; one that is still starting
    after that counts as started. :func:`shutdown` stops it when the add-on is disabled.

    Raises:
        ScailError: no command is set, it is not found or cannot be run, it exited at once
            (its last line of output is the message), or the backend started earlier is
            still running.
    """
    command = shlex.split(settings.start_command or "")
    where = f"{START_COMMAND_LABEL} ({PREFERENCES_PATH})"
    if not command:
        raise ScailError(f"no start command set: enter one in {where}")
    running = _STATE.local_process
    if running is not None and running.poll() is None:
        raise ScailError(f"the backend started from Blender (pid {running.pid}) is still running;"
                         f" press Connect")
    handle, log_path = tempfile.mkstemp(prefix="scail-pose-serve-", suffix=".log")
    try:
        with os.fdopen(handle, "wb") as log_file:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file,
                                       stderr=subprocess.STDOUT, start_new_session=True)
    except FileNotFoundError:
        os.unlink(log_path)
        raise ScailError(f"cannot start the backend: {command[0]!r} was not found; set the full "
                         f"path of scail-pose in {where}, e.g. /path/to/venv/bin/scail-pose "
                         f"serve") from None
    except OSError as e:
        os.unlink(log_path)
        raise ScailError(f"cannot start the backend with {command[0]!r}: {e.strerror}; check "
                         f"{where}") from None
    _STATE.local_process, _STATE.local_log = process, Path(log_path)
    atexit.unregister(stop_local_backend)
    atexit.register(stop_local_backend)  # Blender quitting without disabling add-ons
    deadline = time.monotonic() + check_s
    while process.poll() is None and time.monotonic() < deadline:
        if LISTENING in _log_text(_STATE.local_log):
            break
        time.sleep(POLL_INTERVAL_S)
    if process.poll() is not None:
        raise ScailError(_exited_message(process))
    return process.pid


def stop_local_backend(wait_s: float = STOP_WAIT_S) -> bool:
    """Stop the backend :func:`start_local_backend` started (SIGTERM: a clean shutdown; killed
    after ``wait_s``); False when there is none running."""
    process, _STATE.local_process = _STATE.local_process, None
    atexit.unregister(stop_local_backend)
    if process is None or process.poll() is not None:
        return False
    process.terminate()
    try:
        process.wait(wait_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(wait_s)
    if _STATE.local_log is not None:  # a clean stop: its log is of no more use
        Path(_STATE.local_log).unlink(missing_ok=True)
        _STATE.local_log = None
    return True


def _exited_message(process) -> str:
    """One line for a started backend that has exited: its last line of output and its log."""
    lines = [line.strip() for line in _log_text(_STATE.local_log).splitlines() if line.strip()]
    said = f": {lines[-1]}" if lines else ""
    return (f"the backend started from Blender exited (code {process.returncode}){said} "
            f"(log: {_STATE.local_log})")


def _log_text(path) -> str:
    try:
        return Path(path).read_text(errors="replace") if path else ""
    except OSError:
        return ""


def shutdown() -> None:
    """Stop the timer, drop the job, close the socket and stop the backend this add-on
    started, if it still runs (``unregister``: disabling the add-on or quitting Blender)."""
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
    if _STATE.busy:
        _STATE.job.cancel()
    _STATE.job = _STATE.on_done = None
    _STATE.close_client()
    stop_local_backend()


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
        stage, fraction = _STATE.bar.update(job.stage, job.done, job.total)
        _set_status(stage=stage, progress=fraction, message=f"{job.label}: {stage}")
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

