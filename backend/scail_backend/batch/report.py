"""``OUT_DIR/batch_report.jsonl``: one JSON line per clip and outcome, appended as clips end.

Each line: ``{"clip": name, "status": "done" | "skipped" | "failed", "video": path,
"frames": n, "seconds": s, "error": one line (failed only), "warnings": [...], "redone": why
the clip's earlier outputs were made again (one line), "fingerprint": what its outputs were made
from (done and skipped only; ``fingerprint``), "time": ISO 8601 UTC}``. Lines are only ever
appended (by the batch's driver process, never by workers), each written whole and flushed to
disk before the next clip is counted, so a batch killed at any point leaves every earlier line
intact; a torn last line is skipped when the report is read.
A resumed batch appends to the same report: the last line of a clip is its current state, and
its last ``done`` or ``skipped`` line says what its outputs on disk were made from (a failed run
leaves the earlier outputs in place).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

REPORT_FILE = "batch_report.jsonl"
DONE, SKIPPED, FAILED = "done", "skipped", "failed"


def one_line(text: str, limit: int = 500) -> str:
    """``text`` on one line (whitespace runs folded), at most ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


class Report:
    """Appends outcome lines to ``OUT_DIR/batch_report.jsonl``."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / REPORT_FILE
        self._file = open(self.path, "a+b")
        if self._file.tell() > 0:  # after a line torn by a kill, start on a fresh line
            self._file.seek(-1, os.SEEK_END)
            if self._file.read(1) != b"\n":
                self._file.write(b"\n")

    def add(self, clip: str, status: str, *, video=None, frames: Optional[int] = None,
            seconds: Optional[float] = None, error: Optional[str] = None,
            warnings: Optional[List[str]] = None, redone: Optional[str] = None,
            fingerprint: Optional[dict] = None) -> dict:
        """Append one line (and fsync it); returns the record."""
        record = {"clip": clip, "status": status, "video": str(video) if video else None,
                  "frames": frames, "seconds": None if seconds is None else round(seconds, 3),
                  "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if error is not None:
            record["error"] = one_line(error)
        if warnings:
            record["warnings"] = [one_line(w) for w in warnings]
        if redone is not None:
            record["redone"] = one_line(redone)
        if fingerprint is not None:
            record["fingerprint"] = fingerprint
        self._file.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        self._file.flush()
        os.fsync(self._file.fileno())
        return record

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "Report":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_report(out_dir: Path) -> List[dict]:
    """Every whole line of ``OUT_DIR/batch_report.jsonl`` (none if there is no report)."""
    path = Path(out_dir) / REPORT_FILE
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return records
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line torn by a kill mid-write
            continue
        if isinstance(record, dict) and "clip" in record:
            records.append(record)
    return records


def latest(out_dir: Path) -> Dict[str, dict]:
    """The last record of each clip: its current state."""
    return {record["clip"]: record for record in read_report(out_dir)}


def fingerprints(out_dir: Path) -> Dict[str, Optional[dict]]:
    """What each clip's outputs on disk were made from: the fingerprint of its last ``done`` or
    ``skipped`` record (None when that record has none: an older batch wrote it). Clips with no
    such record are absent."""
    made = {}
    for record in read_report(out_dir):
        if record.get("status") in (DONE, SKIPPED):
            fingerprint = record.get("fingerprint")
            made[record["clip"]] = fingerprint if isinstance(fingerprint, dict) else None
    return made


@dataclass
class Summary:
    """Counts of one batch run. ``redone``: clips among ``done`` whose earlier outputs were
    stale; ``frames``: frames of the clips done in this run; ``seconds``: wall time of the
    run."""

    done: int = 0
    redone: int = 0
    skipped: int = 0
    failed: int = 0
    frames: int = 0
    seconds: float = 0.0
    failures: List[str] = field(default_factory=list)

    def line(self) -> str:
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        redone = f" ({self.redone} redone)" if self.redone else ""
        return (f"batch: {self.done} done{redone}, {self.skipped} skipped, {self.failed} failed; "
                f"{self.frames} frames in {self.seconds:.1f} s ({rate:.1f} frames/s overall)")
