"""The upload cache: files sent in chunks, stored by their sha256, bounded in total size.

A client announces a file (``upload_begin``: sha256, size, suffix), then sends chunks in order
(``upload_chunk``: offset + bytes). The server answers each with how many bytes it has, so an
interrupted upload resumes where it stopped, and a file already cached is not sent again. The
finished file is checked against its sha256 before it enters the cache. When the cache would
exceed its limit, the least recently used files that no queued or running job needs go first.

On disk a finished file is ``<sha256><suffix>`` and one still arriving ``<sha256><suffix>.part``.
A new server removes every ``.part`` it finds (the upload stopped with the old server) and trusts
no file it finds until it is used: its content must hash to its name (checked once, when it is
first needed, and again when a client announces another size), else it is dropped and sent again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..file_hash import sha256_of
from .validate import RequestError

log = logging.getLogger(__name__)

PARTIAL_TTL_S = 600.0  # an upload with no chunk for this long is dropped
PARTIAL_SUFFIX = ".part"  # a file still arriving; never a cached file
_SUFFIX_RE = re.compile(r"\.[A-Za-z0-9]{1,10}")
_CACHED_RE = re.compile(r"([0-9a-f]{64})(\.[A-Za-z0-9]{1,10})?")


@dataclass
class _Partial:
    size: int
    path: Path
    have: int = 0
    hasher: "hashlib._Hash" = field(default_factory=hashlib.sha256)
    last_s: float = field(default_factory=time.monotonic)


class UploadCache:
    """Content-addressed uploads under ``directory``.

    Args:
        directory: the cache folder (created; leftover partial files are removed).
        max_file_bytes: largest accepted file.
        max_total_bytes: cached plus in-progress bytes allowed together.
    """

    def __init__(self, directory, *, max_file_bytes: int, max_total_bytes: int):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_file_bytes = int(max_file_bytes)
        self.max_total_bytes = int(max_total_bytes)
        self._files = {}  # sha256 -> Path of a complete file
        self._partials = {}  # sha256 -> _Partial
        self._pins = {}  # sha256 -> number of jobs using it
        self._unchecked = set()  # sha256s of files found at start, not yet hashed
        for path in self.directory.iterdir():
            match = _CACHED_RE.fullmatch(path.name)
            if path.name.endswith(PARTIAL_SUFFIX):  # an upload the last server did not finish
                log.info("removing unfinished upload %s", path.name)
                path.unlink(missing_ok=True)
            elif match and path.is_file():
                self._files[match.group(1)] = path
                self._unchecked.add(match.group(1))

    def total_bytes(self) -> int:
        cached = sum(_size(p) for p in self._files.values())
        return cached + sum(p.size for p in self._partials.values())

    def begin(self, sha256: str, size: int, suffix: str) -> int:
        """Start (or resume) an upload; returns the bytes the server already has.

        A cached file found at start is reused only when its content hashes to ``sha256`` (a
        damaged one is dropped and the upload starts over).

        Raises:
            RequestError: ``bad_upload`` for an empty file (``size`` 0: nothing to process) or
                a ``size`` that is not the cached file's, ``too_large`` above
                ``max_file_bytes``, ``busy`` when the cache is full.
        """
        if size == 0:
            raise RequestError("bad_upload", f"upload {sha256[:12]}… is an empty file (0 bytes); "
                                             f"nothing can be made from it, so send the full file")
        if sha256 in self._files and self._usable(sha256, size):
            os.utime(self._files[sha256])  # recently used
            return size
        if size > self.max_file_bytes:
            raise RequestError("too_large", f"upload of {size} bytes exceeds this server's limit "
                                            f"of {self.max_file_bytes} bytes (--max-upload-mb)")
        partial = self._partials.get(sha256)
        if partial is not None and partial.size == size:
            partial.last_s = time.monotonic()
            return partial.have
        self._drop_partial(sha256)
        suffix = suffix if _SUFFIX_RE.fullmatch(suffix or "") else ""
        if suffix.lower() == PARTIAL_SUFFIX:  # a finished file must never look unfinished
            suffix = ""
        self._make_room(size)
        path = self.directory / f"{sha256}{suffix}.part"
        path.write_bytes(b"")
        self._partials[sha256] = _Partial(size=size, path=path)
        return 0

    def write(self, sha256: str, offset: int, data) -> int:
        """Append one chunk at ``offset``; returns the bytes the server now has.

        A chunk at another offset than the current end is ignored (the reply tells the client
        where to continue). The last chunk completes the file, which is then checked.

        Raises:
            RequestError: no such upload (``not_found``), too many bytes or a sha256 mismatch
                (``bad_upload``; the partial file is dropped).
        """
        partial = self._partials.get(sha256)
        if partial is None:
            if sha256 in self._files:
                return _size(self._files[sha256])
            raise RequestError("not_found", f"no upload {sha256[:12]}… in progress; "
                                            f"send upload_begin first")
        partial.last_s = time.monotonic()
        if offset != partial.have:
            return partial.have
        if partial.have + len(data) > partial.size:
            self._drop_partial(sha256)
            raise RequestError("bad_upload", f"upload {sha256[:12]}… got more bytes than the "
                                             f"announced {partial.size}")
        with partial.path.open("ab") as f:
            f.write(data)
        partial.hasher.update(data)
        partial.have += len(data)
        if partial.have == partial.size:
            self._finish(sha256, partial)
        return partial.have

    def path(self, sha256: str) -> Path:
        """The cached file for ``sha256`` (marked as recently used).

        Raises:
            RequestError: ``not_found`` when it is not (or no longer) cached.
        """
        path = self._files.get(sha256)
        if path is None or not path.is_file() or not self._usable(sha256):
            self._files.pop(sha256, None)
            raise RequestError("not_found", f"upload {sha256[:12]}… is not in the server's cache "
                                            f"(evicted or never completed); upload it again")
        os.utime(path)
        return path

    def pin(self, sha256: str) -> None:
        """Keep a file from eviction while a job needs it."""
        self._pins[sha256] = self._pins.get(sha256, 0) + 1

    def unpin(self, sha256: str) -> None:
        count = self._pins.get(sha256, 0) - 1
        if count > 0:
            self._pins[sha256] = count
        else:
            self._pins.pop(sha256, None)

    def expire_partials(self) -> None:
        """Drop uploads that have been idle longer than :data:`PARTIAL_TTL_S`."""
        now = time.monotonic()
        for sha256 in [s for s, p in self._partials.items() if now - p.last_s > PARTIAL_TTL_S]:
            log.info("dropping idle upload %s", sha256[:12])
            self._drop_partial(sha256)

    def _usable(self, sha256: str, size=None) -> bool:
        """Whether the cached file of ``sha256`` may be used: its content hashes to ``sha256``
        (hashed once after a start, and again when its size is not the announced ``size``). A
        damaged file is removed from the cache (a job already reading it keeps its open file).

        Raises:
            RequestError: ``bad_upload`` when the file is intact and ``size`` is wrong.
        """
        path = self._files[sha256]
        if sha256 in self._unchecked or (size is not None and _size(path) != size):
            if _sha256(path) != sha256:
                log.warning("dropping cached upload %s: it no longer matches its sha256 "
                            "(%d bytes)", path.name, _size(path))
                del self._files[sha256]
                self._unchecked.discard(sha256)
                path.unlink(missing_ok=True)
                return False
            self._unchecked.discard(sha256)
        if size is not None and _size(path) != size:
            raise RequestError("bad_upload", f"upload {sha256[:12]}… has {_size(path)} bytes, "
                                             f"not the announced {size}; announce its real size")
        return True

    def _finish(self, sha256: str, partial: _Partial) -> None:
        del self._partials[sha256]
        if partial.hasher.hexdigest() != sha256:
            partial.path.unlink(missing_ok=True)
            raise RequestError("bad_upload", f"upload {sha256[:12]}… does not match its sha256 "
                                             f"(got {partial.hasher.hexdigest()[:12]}…); send it again")
        final = partial.path.with_name(partial.path.name[:-len(PARTIAL_SUFFIX)])
        os.replace(partial.path, final)
        self._files[sha256] = final
        self._unchecked.discard(sha256)
        log.info("cached upload %s (%d bytes)", final.name, partial.size)

    def _drop_partial(self, sha256: str) -> None:
        partial = self._partials.pop(sha256, None)
        if partial is not None:
            partial.path.unlink(missing_ok=True)

    def _make_room(self, size: int) -> None:
        excess = self.total_bytes() + size - self.max_total_bytes
        if excess <= 0:
            return
        candidates = sorted((p for s, p in self._files.items() if s not in self._pins),
                            key=lambda p: _mtime(p))
        for path in candidates:
            if excess <= 0:
                break
            excess -= _size(path)
            sha256 = _CACHED_RE.fullmatch(path.name).group(1)
            del self._files[sha256]
            self._unchecked.discard(sha256)
            path.unlink(missing_ok=True)
            log.info("evicted upload %s from the cache", path.name)
        if excess > 0:
            raise RequestError("busy", f"upload cache is full ({self.max_total_bytes} bytes, the "
                                       f"rest in use by jobs); try again later")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _sha256(path: Path) -> str:
    """The sha256 of a file ("" when it cannot be read)."""
    try:
        return sha256_of(path)
    except OSError:
        return ""


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
