"""A batch's clips through Ray: estimation in actors, then rendering in tasks.

:class:`WorkerPool` holds the estimation actors (``worker.ClipEstimator``: models loaded once
per actor) and replaces one that dies. :class:`ClipFlow` starts each clip on an idle actor,
hands the poses it returns (through Ray's object store) to a render task
(``render.render_clip``, one CPU), and turns every finished piece of work into the clip's
outcome, a dead process included. An actor starts its next clip while the last one renders.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional

from .clipdir import remove_partial
from .inputs import Clip
from .progress import FrameProgress
from .raysession import cause
from .render import render_clip
from .report import FAILED, one_line
from .resources import render_resources
from .worker import ESTIMATED, ClipEstimator

log = logging.getLogger(__name__)

RENDER_BACKLOG_PER_WORKER = 2   # clips estimated and waiting for (or in) a render, per worker
STOP_WAIT_S = 10   # how long an interrupted batch waits for its cancelled renders to clean up


class ClipFlow:
    """Clips through estimation (an actor of the pool) then rendering (a Ray task).

    Args:
        ray: the ray module.
        pool: the estimation actors.
        out_dir: OUT_DIR.
        frames: the frame progress (told when a clip's estimation ends).
        on_end: ``on_end(clip, outcome)`` when a clip ends: its estimation failed, or its
            render ended (``render.render_clip``'s outcome, seconds of both halves).
    """

    def __init__(self, ray, pool: "WorkerPool", out_dir: Path, frames: FrameProgress, on_end):
        self.ray, self.pool, self.frames = ray, pool, frames
        self.out_dir = Path(out_dir).absolute()  # workers may run in another working folder
        self.on_end = on_end
        self.render = ray.remote(render_clip).options(max_retries=0, **render_resources())
        self.estimating = {}   # outcome ref -> (clip, worker, poses ref)
        self.rendering = {}    # outcome ref -> (clip, estimation outcome)
        self.backlog = RENDER_BACKLOG_PER_WORKER * pool.size

    @property
    def busy(self) -> bool:
        """Clips are being estimated or rendered."""
        return bool(self.estimating or self.rendering)

    def submit(self, pending: List[Clip]) -> None:
        """Start the next clips of ``pending`` on the idle actors (while renders keep up)."""
        while pending and self.pool.idle and len(self.rendering) < self.backlog:
            clip, worker = pending.pop(0), self.pool.take()
            outcome, poses = worker.estimate.options(num_returns=2).remote(
                clip.absolute().to_dict(), str(self.out_dir / clip.name))
            self.estimating[outcome] = (clip, worker, poses)

    def step(self) -> bool:
        """Handle one finished estimation or render, without waiting; False when none was."""
        ready, _ = self.ray.wait(list(self.estimating) + list(self.rendering), num_returns=1,
                                 timeout=0)
        if not ready:
            return False
        if ready[0] in self.estimating:
            self._estimated(ready[0])
        else:
            self._rendered(ready[0])
        return True

    def _estimated(self, ref) -> None:
        """An estimation ended: the clip goes on to a render task, or ends failed."""
        clip, worker, poses = self.estimating.pop(ref)
        outcome = self._estimation_outcome(ref, worker, clip)
        self.frames.clip_estimated(clip.name, outcome.get("frames") or 0)
        if outcome["status"] == ESTIMATED:
            self.rendering[self.render.remote(poses, outcome["arch"])] = (clip, outcome)
        else:
            self.on_end(clip, outcome)

    def _rendered(self, ref) -> None:
        clip, estimated = self.rendering.pop(ref)
        outcome = self._render_outcome(ref, clip)
        outcome["seconds"] = estimated["seconds"] + (outcome.get("seconds") or 0)
        self.on_end(clip, outcome)

    def _estimation_outcome(self, ref, worker, clip: Clip) -> dict:
        """The actor's outcome, or a failure when it died (it is then replaced)."""
        try:
            outcome = self.ray.get(ref)
            self.pool.give_back(worker)
            return outcome
        except self.ray.exceptions.RayActorError as e:
            self.pool.replace(worker)
            return self._failure(clip, e, "estimating")
        except self.ray.exceptions.RayError as e:
            self.pool.give_back(worker)
            return self._failure(clip, e)

    def _render_outcome(self, ref, clip: Clip) -> dict:
        """The render task's outcome, or a failure when its process died."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.WorkerCrashedError as e:
            return self._failure(clip, e, "rendering")
        except self.ray.exceptions.RayError as e:
            return self._failure(clip, e)

    def _failure(self, clip: Clip, error: Exception, died_while: Optional[str] = None) -> dict:
        """A failed outcome from a Ray error (``died_while``: what the dead process was doing);
        removes the temporaries the clip's dead work left."""
        remove_partial(self.out_dir / clip.name)
        if died_while is None:
            return {"status": FAILED, "error": one_line(cause(error)), "seconds": 0.0}
        return {"status": FAILED, "seconds": 0.0,
                "error": f"the worker process died while {died_while} this clip "
                         f"({one_line(cause(error), 200)}); run the batch again to retry it"}

    def stop(self) -> List[Path]:
        """Cancel the renders (they remove their temporaries), end the actors; returns the
        folders of the clips that were in flight."""
        for ref in self.rendering:
            self.ray.cancel(ref)
        self.pool.kill_all()
        if self.rendering:
            try:
                self.ray.wait(list(self.rendering), num_returns=len(self.rendering),
                              timeout=STOP_WAIT_S)
            except Exception:  # a second interrupt or Ray gone: the temporaries go below
                pass
        clips = [c for c, *_ in self.estimating.values()] + [
            c for c, _ in self.rendering.values()]
        return [self.out_dir / clip.name for clip in clips]


class WorkerPool:
    """The estimation actors (:class:`ClipEstimator`); hands out idle ones, replaces dead ones.

    Args:
        ray: the ray module.
        resources: each actor's ``num_cpus``/``num_gpus`` (``resources.estimation_resources``).
        size: how many actors.
        defaults: the actors' ``run_folder`` keywords.
        progress_queue: the frame progress queue, or None.
    """

    def __init__(self, ray, resources: dict, size: int, defaults: dict, progress_queue=None):
        self.ray = ray
        self.defaults = defaults
        self.queue = progress_queue
        self.size = size
        self.actor_class = ray.remote(ClipEstimator).options(
            max_restarts=0, max_task_retries=0, **resources)
        self.idle = [self._new() for _ in range(size)]
        self.busy = []
        log.info("batch: %d estimation worker(s)", size)

    def _new(self):
        return self.actor_class.remote(self.defaults, self.queue)

    def take(self):
        worker = self.idle.pop(0)
        self.busy.append(worker)
        return worker

    def give_back(self, worker) -> None:
        self.busy.remove(worker)
        self.idle.append(worker)

    def replace(self, worker) -> None:
        self.busy.remove(worker)
        self.ray.kill(worker, no_restart=True)
        self.idle.append(self._new())

    def kill_all(self) -> None:
        for worker in self.idle + self.busy:
            self.ray.kill(worker, no_restart=True)
        self.idle, self.busy = [], []

    def close(self) -> None:
        """Let each idle actor close its models, then end them all."""
        closing = [w.close.remote() for w in self.idle]
        if closing:
            try:
                self.ray.get(closing, timeout=30)
            except Exception:  # an actor that cannot close is ended all the same
                pass
        self.kill_all()
