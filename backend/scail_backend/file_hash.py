"""The sha256 of a file, read in chunks: what a poses file records of its source video, and what
the weights manifest records of each model file."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Callable, Optional

CHUNK_BYTES = 1 << 20
ByteProgress = Callable[[str, int, int], None]  # (file name, bytes done, bytes total or 0)


def sha256_of(path, progress: Optional[ByteProgress] = None,
              cancelled: Optional[threading.Event] = None) -> Optional[str]:
    """Hex sha256 of the file ``path``; None when ``cancelled`` was set before the end.

    Args:
        path: the file.
        progress: ``progress(name, bytes_done, bytes_total)`` after each chunk.
        cancelled: stops the reading when set (another thread's request).

    Raises:
        OSError: the file cannot be read.
    """
    path = Path(path)
    digest = hashlib.sha256()
    total = path.stat().st_size if progress else 0
    done = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            if cancelled is not None and cancelled.is_set():
                return None
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(path.name, done, total)
    return digest.hexdigest()
