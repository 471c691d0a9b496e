"""Shared by the wire tests: the test key and a clock the tests set by hand."""

from __future__ import annotations

KEY = b"test-key-0123456789abcdef"


class FakeClock:
    """A settable clock (the Session's ``clock`` argument), seconds since the epoch."""

    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now
