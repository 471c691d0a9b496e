"""Progress reporting shared by long stages: ``progress(stage, done, total)``.

Library functions take an optional ``progress`` callable; the CLI shows it as tqdm bars, the
server forwards it as ``progress`` messages and the add-on drives Blender's progress bar.

Cancellation rides on the same callable: a callback may raise
:class:`scail_protocol.errors.Cancelled`, so every long stage calls ``progress`` at least once per
frame (or batch) and cleans up (temporary files removed) when an exception passes through it.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional

ProgressFn = Callable[[str, int, int], None]


def no_progress(stage: str, done: int, total: int) -> None:
    """The default progress callback: report nothing."""


BYTE_STAGES = frozenset({"upload", "download"})  # stages that count bytes, not frames


class TqdmProgress:
    """A progress callback that shows one tqdm bar per stage on stderr (counts and rates).

    On a terminal the bars redraw in place. When stderr is a file or a pipe (a log, CI, a batch
    worker), carriage-return redraws would glue warnings onto bar fragments, so each stage
    writes whole lines instead: when it starts, at every tenth of its total (every
    :data:`LINE_INTERVAL_S` seconds when the total is unknown) and when it ends.

    Args:
        enabled: False shows nothing (``-q``).
        unit: what ``done``/``total`` count: "frame" (default), or "B" for bytes (shown scaled,
            e.g. MB/s). Stages named in :data:`BYTE_STAGES` always count bytes.
        units: stage -> unit for stages that count something else (``{"clips": "clip"}``).

    Use as a context manager (or call :meth:`close`) so unfinished bars are closed.
    """

    def __init__(self, enabled: bool = True, unit: str = "frame", units: Optional[dict] = None):
        self.enabled = enabled and sys.stderr is not None
        self.unit = unit
        self.units = dict(units or {})
        self._bars = {}
        self._lines = {}   # stage -> _LineReport, when stderr is not a terminal

    def __call__(self, stage: str, done: int, total: int) -> None:
        from .signals import raise_if_stopped

        raise_if_stopped()  # a SIGTERM that a library swallowed still stops the command
        if not self.enabled:
            return
        unit = "B" if stage in BYTE_STAGES else self.units.get(stage, self.unit)
        if not _on_terminal(sys.stderr):
            report = self._lines.get(stage)
            if report is None:
                report = self._lines[stage] = _LineReport(stage, unit)
            report.update(done, total)
            return
        from tqdm import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(total=total or None, desc=stage, unit=unit,
                                           unit_scale=unit == "B", dynamic_ncols=True,
                                           leave=True)
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if total and done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
        for report in self._lines.values():
            report.finish()
        self._lines.clear()

    def __enter__(self) -> "TqdmProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def logs_above_bars():
    """A context in which log lines are written above the progress bars (tqdm's
    ``logging_redirect_tqdm``) when stderr is a terminal, instead of into the bar being
    redrawn; elsewhere (no bars, see :class:`TqdmProgress`) it changes nothing."""
    from contextlib import nullcontext

    if not _on_terminal(sys.stderr):
        return nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm()


LINE_INTERVAL_S = 10.0  # a stage of unknown length reports a line this often off a terminal


def _on_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or stream-like objects without a tty
        return False


class _LineReport:
    """One stage's progress as whole lines on stderr (see :class:`TqdmProgress`)."""

    def __init__(self, stage: str, unit: str):
        self.stage, self.unit = stage, unit
        self.started = time.monotonic()
        self.last_line = None   # when the last line was written (None: none yet)
        self.step = -1          # the last tenth reported
        self.done, self.total = 0, 0
        self.finished = False

    def update(self, done: int, total: int) -> None:
        self.done, self.total = done, total or 0
        now = time.monotonic()
        if self.total:
            step = min(10, int(10 * done / self.total))
            if step > self.step:
                self.step = step
                self._write(now)
            if done >= self.total:
                self.finished = True
        elif self.last_line is None or now - self.last_line >= LINE_INTERVAL_S:
            self._write(now)

    def finish(self) -> None:
        """The last line of a stage that ended without reaching its total (or had none)."""
        if not self.finished and self.last_line is not None:
            self.finished = True
            self._write(time.monotonic())

    def _write(self, now: float) -> None:
        from tqdm import tqdm

        units = "" if self.unit == "B" else f" {self.unit}s"
        counts = ("{n_fmt}/{total_fmt}" + units + " ({percentage:.0f}%)" if self.total else
                  "{n_fmt}" + units)
        line = tqdm.format_meter(self.done, self.total or None, now - self.started,
                                 prefix=self.stage, unit=self.unit, unit_scale=self.unit == "B",
                                 bar_format="{desc}: " + counts + " [{elapsed}, {rate_fmt}]")
        self.last_line = now
        print(line, file=sys.stderr, flush=True)


class RateLimited:
    """Wrap a progress callback so it fires at most every ``interval_s`` (plus the final call)."""

    def __init__(self, inner: Optional[ProgressFn], interval_s: float = 0.2):
        self.inner = inner or no_progress
        self.interval_s = interval_s
        self._last = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self._last.get(stage, -1e9) >= self.interval_s:
            self._last[stage] = now
            self.inner(stage, done, total)
