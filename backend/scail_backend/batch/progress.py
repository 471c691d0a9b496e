"""What a batch tells its caller about progress: the events, and live frame counts from the
estimation actors (through a Ray queue)."""

from __future__ import annotations

import logging

from .inputs import Clip

log = logging.getLogger(__name__)


class ClipEvents:
    """What the batch tells its caller (progress bars); does nothing by default.

    ``start(total)``: the number of clips; ``frames_estimated(n)``: n more frames estimated
    (live while clips run when ``live_frames``, else as each clip's estimation ends);
    ``clip_ended(clip, record)``: a clip ended (its report record)."""

    live_frames = False   # True: count frames as the actors estimate them (a Ray queue actor)

    def start(self, total: int) -> None: ...

    def frames_estimated(self, count: int) -> None: ...

    def clip_ended(self, clip: Clip, record: dict) -> None: ...


class FrameProgress:
    """Frames estimated so far, from the actors (a Ray queue actor, when the events want them
    live) and from each clip's end, turned into ``events.frames_estimated`` calls."""

    def __init__(self, events: ClipEvents):
        self.events = events
        self.seen = {}  # clip name -> frames counted
        self.queue = None
        if not getattr(events, "live_frames", False):
            return
        try:
            from ray.util.queue import Queue

            self.queue = Queue(maxsize=1000, actor_options={"num_cpus": 0})
        except Exception as e:  # no live frame count then; clips still count at their end
            log.debug("no live frame progress: %s", e)
            self.queue = None

    def poll(self) -> None:
        if self.queue is None:
            return
        from ray.util.queue import Empty

        while True:
            try:
                clip, done = self.queue.get_nowait()
            except Empty:
                return
            except Exception:  # the queue actor died: progress only
                self.queue = None
                return
            self._count(clip, done)

    def _count(self, clip: str, done: int) -> None:
        extra = done - self.seen.get(clip, 0)
        if extra > 0:
            self.seen[clip] = done
            self.events.frames_estimated(extra)

    def clip_estimated(self, clip: str, frames: int) -> None:
        """``clip``'s estimation ended with ``frames`` frames (0 when it failed)."""
        self.poll()
        self._count(clip, frames)
        self.seen.pop(clip, None)

    def close(self) -> None:
        if self.queue is not None:
            try:
                self.queue.shutdown()
            except Exception:
                pass
            self.queue = None
