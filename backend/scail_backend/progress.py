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

    Args:
        enabled: False shows nothing (``-q``).
        unit: what ``done``/``total`` count: "frame" (default), or "B" for bytes (shown scaled,
            e.g. MB/s). Stages named in :data:`BYTE_STAGES` always count bytes.

    Use as a context manager (or call :meth:`close`) so unfinished bars are closed.
    """

    def __init__(self, enabled: bool = True, unit: str = "frame"):
        self.enabled = enabled and sys.stderr is not None
        self.unit = unit
        self._bars = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from .signals import raise_if_stopped

        raise_if_stopped()  # a SIGTERM that a library swallowed still stops the command
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            unit = "B" if stage in BYTE_STAGES else self.unit
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

    def __enter__(self) -> "TqdmProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
