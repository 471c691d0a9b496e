"""Jobs held by the server: their state, owner, progress and results, and how long they stay."""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from scail_protocol import messages as M

from .validate import RequestError

log = logging.getLogger(__name__)

MAX_KEPT_JOBS = 10_000  # finished jobs kept at most, oldest dropped first
_JOB_ID_RE = re.compile(r"[0-9a-f]{16}")


def new_job_id() -> str:
    """16 random hex characters: unguessable enough to name a job on a shared server."""
    return secrets.token_hex(8)


@dataclass
class Job:
    """One job: what to run, who asked, where it stands.

    Attributes:
        id, kind: the job's id and kind (``extract``, ``render``, ``run``, ``sleep``, ``copy``).
        params: resolved parameters for the worker (absolute server paths, options); JSON.
        owner: ROUTER identities of the client its events go to (changes on attach).
        owner_connected: False once the owner disconnected or went silent.
        state: queued, running, done, failed or cancelled.
        stage, done, total: the last progress report (frames or items).
        result: what the worker reported: ``{"poses": path?, "video": {...}?, "report": {...}}``.
        error: ``{"code", "message"}`` of a failed job.
        job_dir: the job's private folder under the server's work dir.
        pins: upload sha256s the job needs (kept in the cache until it ends).
        submitted_s, started_s, finished_s: wall-clock times (Unix seconds) or None.
    """

    id: str
    kind: str
    params: dict
    owner: tuple
    job_dir: Path
    pins: tuple = ()
    state: str = M.QUEUED
    owner_connected: bool = True
    stage: Optional[str] = None
    done: int = 0
    total: int = 0
    result: Optional[dict] = None
    error: Optional[dict] = None
    cancel_requested: bool = False
    worker: Optional[bytes] = None
    submitted_s: float = field(default_factory=time.time)
    started_s: Optional[float] = None
    finished_s: Optional[float] = None
    finished_mono: Optional[float] = None

    @property
    def terminal(self) -> bool:
        return self.state in M.TERMINAL_STATES

    def summary(self) -> dict:
        """The job as the wire shows it (``status``, ``jobs``, events)."""
        summary = {"id": self.id, "kind": self.kind, "state": self.state,
                   "stage": self.stage, "done": self.done, "total": self.total,
                   "owner_connected": self.owner_connected,
                   "cancel_requested": self.cancel_requested,
                   "submitted_s": self.submitted_s, "started_s": self.started_s,
                   "finished_s": self.finished_s}
        if self.error:
            summary["error"] = self.error
        if self.result:
            summary["report"] = self.result.get("report", {})
        return summary


class JobTable:
    """All jobs by id, the bounded queue of waiting ones, and retention of finished ones.

    Args:
        max_queue: queued jobs allowed; more are refused with code ``busy``.
        keep_results_s: seconds a finished job stays (then its folder is deleted).
    """

    def __init__(self, max_queue: int, keep_results_s: float):
        self.max_queue = int(max_queue)
        self.keep_results_s = float(keep_results_s)
        self.jobs = OrderedDict()  # id -> Job, in submission order
        self.queue = deque()  # queued Jobs, first in first out

    def add(self, job: Job) -> int:
        """Queue a job; returns its position (0 = next).

        Raises:
            RequestError: ``busy`` when the queue is full.
        """
        if len(self.queue) >= self.max_queue:
            raise RequestError("busy", f"the server's job queue is full ({self.max_queue} jobs); "
                                       f"try again when some have finished")
        self.jobs[job.id] = job
        self.queue.append(job)
        return len(self.queue) - 1

    def get(self, job_id) -> Job:
        """The job with this id.

        Raises:
            RequestError: ``not_found`` (never existed, expired, or the server restarted).
        """
        job = self.jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None:
            raise RequestError("not_found", f"no job {job_id!r:.40} on this server (finished jobs "
                                            f"are kept {self.keep_results_s:g} s; a restarted "
                                            f"server forgets its jobs)")
        return job

    def pop_queued(self) -> Optional[Job]:
        return self.queue.popleft() if self.queue else None

    def unqueue(self, job: Job) -> None:
        self.queue.remove(job)

    def finish(self, job: Job, state: str) -> None:
        job.state = state
        job.finished_s = time.time()
        job.finished_mono = time.monotonic()

    def running(self) -> list:
        return [job for job in self.jobs.values() if job.state == M.RUNNING]

    def active(self) -> list:
        return [job for job in self.jobs.values() if not job.terminal]

    def expire(self) -> list:
        """Forget finished jobs older than ``keep_results_s`` (or beyond :data:`MAX_KEPT_JOBS`)
        and delete their folders; returns them."""
        now = time.monotonic()
        finished = [job for job in self.jobs.values() if job.terminal]
        overflow = len(finished) - MAX_KEPT_JOBS
        gone = [job for i, job in enumerate(finished)
                if i < overflow or now - job.finished_mono > self.keep_results_s]
        for job in gone:
            del self.jobs[job.id]
            remove_job_dir(job.job_dir)
        return gone


def remove_job_dir(path: Path) -> None:
    """Delete a job folder (only folders named like a job id, as a guard)."""
    if _JOB_ID_RE.fullmatch(path.name):
        shutil.rmtree(path, ignore_errors=True)
