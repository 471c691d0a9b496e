"""SIGTERM and SIGHUP stop a command the way Ctrl-C (SIGINT) does.

Python turns SIGINT into ``KeyboardInterrupt`` in the main thread, and every stage cleans up on
it (``with`` blocks and ``finally``: threads joined, temporary ``.part`` files and folders
removed). :func:`stop_on_signals` makes SIGTERM and SIGHUP raise :class:`Terminated`, a
``KeyboardInterrupt``, so they take exactly the same path; the CLI then exits with
``128 + signal number`` (143 for SIGTERM, 129 for SIGHUP, 130 for SIGINT), as shells do.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

EXIT_SIGINT = 128 + signal.SIGINT  # 130
EXIT_SIGPIPE = 128 + signal.SIGPIPE  # 141: what a shell reports for a reader that went away


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM or SIGHUP arrives.

    Attributes:
        signum: the signal number.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def stop_signals() -> tuple:
    """The signals treated as "stop" besides SIGINT: SIGTERM, and SIGHUP where it exists."""
    return tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


_received = []  # the first stop signal received inside stop_on_signals()
_deferring = [0]  # depth of deferred() blocks: while > 0 the handler only records the signal


@contextmanager
def stop_on_signals():
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread, and
    SIGINT ``KeyboardInterrupt`` as usual.

    Only the first SIGTERM/SIGHUP raises (a second one while cleaning up is ignored, so cleanup
    finishes; Ctrl-C again still interrupts, as Python's default does); previous handlers come
    back when the block ends. Outside the main thread this does nothing (Python delivers
    signals there only). Inside :func:`deferred` blocks the signal is held. If the first raise
    is swallowed (it landed in a callback of a library that prints exceptions and carries on,
    as Blender does), :func:`raise_if_stopped` raises it again at the next progress report.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        first = not _received
        if first:
            _received.append(signum)
        if _in_import_machinery(frame):
            return  # raised at the next progress report (raise_if_stopped) instead
        if not _deferring[0] and (first or signum == signal.SIGINT):
            raise _stop(signum)

    _received.clear()
    previous = {signum: signal.signal(signum, handler)
                for signum in (signal.SIGINT, *stop_signals())}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        _received.clear()


def _in_import_machinery(frame, depth: int = 8) -> bool:
    """Whether the interrupted code is Python's import system (or a callback of it).

    An exception raised there is swallowed ("Exception ignored in ... _get_module_lock") and
    can leave the global import lock held, so another thread's next import waits forever.
    """
    while frame is not None and depth > 0:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame, depth = frame.f_back, depth - 1
    return False


def raise_if_stopped() -> None:
    """Raise :class:`Terminated` when a stop signal has arrived (main thread only).

    Progress callbacks call this, so a stop whose first raise was swallowed still ends the
    command at the next frame.
    """
    if _received and threading.current_thread() is threading.main_thread():
        raise _stop(_received[0])


def _stop(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The exit status for a stop: 128 + the signal number (130 for Ctrl-C)."""
    return 128 + interrupt.signum if isinstance(interrupt, Terminated) else EXIT_SIGINT


def describe(interrupt: KeyboardInterrupt) -> str:
    """``"interrupted"`` for Ctrl-C, ``"stopped by SIGTERM"`` for the others."""
    if isinstance(interrupt, Terminated):
        return f"stopped by {signal.Signals(interrupt.signum).name}"
    return "interrupted"


@contextmanager
def deferred():
    """Hold stop signals during a library's critical section, then stop after it.

    For code that an exception must not interrupt (Blender crashes when one lands while it
    registers its add-ons or renders): a stop signal arriving inside the block is recorded,
    and :class:`Terminated` is raised when the block ends normally. Harmless where no
    :func:`stop_on_signals` is active (library use, the server).
    """
    _deferring[0] += 1
    try:
        yield
    finally:
        _deferring[0] -= 1
    if not _deferring[0]:
        raise_if_stopped()
