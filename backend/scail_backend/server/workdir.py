"""The server's own folder: ``uploads/`` (the cache) and ``jobs/<instance>/<job_id>/``.

Each running server makes its own instance folder under ``jobs/`` and holds a lock on it; at
start, instance folders whose lock nobody holds (left by a server that was killed) are deleted,
so two servers may share a work dir without removing each other's jobs. (Locks need ``fcntl``;
where it is missing, leftovers are kept.)
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from pathlib import Path

from scail_protocol.errors import ScailError
from scail_protocol.outputs import describe_os_error

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"


class WorkDir:
    """Folders of one server instance under ``root`` (created, owner-only)."""

    def __init__(self, root):
        """Make (or reuse) the folders.

        Raises:
            ScailError: the folder cannot be used (read-only, not a folder, no permission),
                one line naming it and what to do.
        """
        self.root = Path(root)
        self.uploads = self.root / "uploads"
        jobs = self.root / "jobs"
        try:
            for folder in (self.root, self.uploads, jobs):
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            _remove_stale_instances(jobs)
            self.jobs = jobs / secrets.token_hex(4)
            self.jobs.mkdir(mode=0o700)
            self._lock = _lock(self.jobs / LOCK_FILE)
        except OSError as e:
            where = f"{e.filename}: " if e.filename and str(e.filename) != str(self.root) else ""
            raise ScailError(f"cannot use the work dir {self.root}: {where}"
                             f"{describe_os_error(e)}; choose a writable folder with "
                             f"--work-dir") from None

    def job_dir(self, job_id: str) -> Path:
        """A new, empty folder for one job."""
        path = self.jobs / job_id
        path.mkdir(mode=0o700)
        return path

    def close(self) -> None:
        """Delete this instance's job folders and release its lock."""
        shutil.rmtree(self.jobs, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def _lock(path: Path):
    """An exclusive lock held for the life of the process (None where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _remove_stale_instances(jobs: Path) -> None:
    try:
        import fcntl
    except ImportError:
        return
    for instance in jobs.iterdir():
        lock = instance / LOCK_FILE
        if not instance.is_dir() or not lock.exists():
            continue
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a live server holds it
        log.info("removing job folders left by a stopped server: %s", instance)
        shutil.rmtree(instance, ignore_errors=True)
        os.close(fd)
