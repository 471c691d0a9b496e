"""Iterate a generator in a background thread, through a bounded queue (constant memory).

Used to overlap work on two cores: decoding while the estimator runs, rendering while the
encoder runs. The consuming thread keeps every progress callback (so a callback may raise
``Cancelled`` there), and leaving the ``with`` block always stops the producer thread.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator


class Background:
    """Iterate ``items`` in a background thread into a bounded queue; iterate the results here.

    ``produced`` counts items produced so far. Errors of the background thread are raised in the
    iterating thread; leaving the ``with`` block stops the thread.
    """

    _DONE = object()

    def __init__(self, items, depth: int = 8, name: str = "scail-background"):
        self._items = items
        self.produced = 0
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.05)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                self.produced += 1
                if not self._put(item):
                    return
            self._put(self._DONE)
        except BaseException as e:  # handed to the consumer, which raises it
            self._put(e)

    def __iter__(self) -> Iterator:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
