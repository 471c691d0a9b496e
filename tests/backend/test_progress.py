"""Progress callbacks: tqdm bars per stage (frames or bytes) and rate limiting."""

import io
import sys

from scail_backend.progress import RateLimited, TqdmProgress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_tqdm_progress_counts_frames_and_bytes_per_stage(monkeypatch):
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    with TqdmProgress() as progress:
        for done in range(0, 11):
            progress("estimate", done, 10)
        progress("upload", 3 * 2**20, 4 * 2**20)
    text = err.getvalue()
    assert "estimate" in text and "10/10" in text and "frame" in text
    assert "4.19M" in text and "B/s" in text  # byte stages are scaled bytes, not frames


def test_off_a_terminal_each_stage_writes_whole_lines_at_each_tenth(monkeypatch):
    err = io.StringIO()   # a log file or a pipe: no carriage-return redraws to glue onto
    monkeypatch.setattr(sys, "stderr", err)
    with TqdmProgress() as progress:
        for done in range(0, 51):
            progress("estimate", done, 50)
        progress("upload", 3 * 2**20, 4 * 2**20)   # left unfinished: a last line on close
        progress("decode", 7, 0)                   # no total known
    lines = err.getvalue().splitlines()
    assert "\r" not in err.getvalue()
    estimate = [line for line in lines if line.startswith("estimate: ")]
    assert len(estimate) == 11 and estimate[0].startswith("estimate: 0/50 frames (0%)")
    assert estimate[-1].startswith("estimate: 50/50 frames (100%)")
    assert [line.split(" [")[0] for line in lines if not line.startswith("estimate")] == [
        "upload: 3.15M/4.19M (75%)", "decode: 7 frames",
        "upload: 3.15M/4.19M (75%)", "decode: 7 frames"]


def test_on_a_terminal_a_warning_is_written_above_the_bars_not_into_them(monkeypatch):
    import logging
    import re

    from scail_backend.cli import configure_logging
    from scail_backend.progress import logs_above_bars

    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    configure_logging(False, False)
    try:
        with logs_above_bars(), TqdmProgress() as progress:
            progress("estimate", 5, 10)
            logging.getLogger("scail_backend.test").warning("careful")
            progress("estimate", 10, 10)
    finally:
        configure_logging(False, False)  # back onto the real stderr
    text = err.getvalue()
    assert re.search(r"(^|[\r\n])WARNING scail_backend.test: careful\n", text), repr(text)


def test_tqdm_progress_disabled_writes_nothing(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with TqdmProgress(enabled=False) as progress:
        progress("render", 5, 10)
    assert err.getvalue() == ""


def test_rate_limited_passes_first_and_final_calls_only_within_the_interval():
    calls = []
    limited = RateLimited(lambda *a: calls.append(a), interval_s=3600)
    for done in range(1, 6):
        limited("render", done, 5)
    assert calls == [("render", 1, 5), ("render", 5, 5)]
