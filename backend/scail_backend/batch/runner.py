"""``scail-pose batch``: many clips through ``run``, on Ray, resumable.

The driver (this process) finds the clips (``inputs``), skips those whose outputs are already
there and valid (``clipdir.finished``), and hands the rest to W Ray actors (``worker``), one clip
at a time each, so models load once per worker. With no address Ray starts on this machine
(W CPUs); ``address="auto"`` or ``"ray://host:10001"`` joins a running cluster. A worker asks
Ray for a GPU when its estimator uses one (``nlf``) and the cluster has GPUs; else it takes one
CPU. Estimation, rendering and encoding of a clip run in its worker, as ``run`` does them (the
renderer starts during estimation, the encoder beside the renderer).

Honest and resumable: every outcome is appended to ``OUT_DIR/batch_report.jsonl`` by this
process as it arrives; a clip that fails (its one-line error recorded) does not stop the others;
a worker that dies (killed, out of memory) fails its clip with that reason and is replaced.
Outputs are written by ``run_folder`` into temporaries renamed into place at the end, so an
interrupted batch (Ctrl-C, SIGTERM, a killed worker) loses no finished clip and leaves no
half-written output: the temporaries of clips in flight are removed (now, or when the batch is
run again), and running the same command again finishes the rest.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from scail_protocol.errors import ScailError

from .clipdir import finished, remove_partial
from .inputs import Clip, discover
from .report import DONE, FAILED, SKIPPED, Report, Summary, one_line
from .worker import ClipRunner

log = logging.getLogger(__name__)

GPU_ESTIMATORS = ("nlf",)   # estimators that run on CUDA when there is a GPU
LOCAL_OBJECT_STORE_BYTES = 200 * 1024 * 1024   # clips travel as paths: the store stays small
POLL_S = 0.1   # seconds between looks at the workers' results


@dataclass
class BatchOptions:
    """How a batch runs.

    Attributes:
        workers: Ray actors (parallel clips); on a local Ray, also its CPU count.
        address: None = start Ray on this machine; "auto" or "ray://host:port" = join a cluster.
        gpus_per_worker: GPUs each worker asks for; None = 1 when the estimator uses a GPU and
            the cluster has one, else 0.
        force: run clips again even when their outputs are there.
        defaults: ``run_folder`` keywords for every clip, as ``run`` passes them (estimator
            name, resolution, arch, weights_dir, smoothing, fps, use_align, align_options,
            device, cleanup); a manifest row's options override them.
    """

    workers: int = 1
    address: Optional[str] = None
    gpus_per_worker: Optional[float] = None
    force: bool = False
    defaults: dict = None


class ClipEvents:
    """What the batch tells its caller (progress bars); does nothing by default.

    ``frames_estimated(n)``: n more frames estimated in the clips running now (live);
    ``clip_ended(clip, record)``: a clip ended (its report record; ``frames`` = its frames
    still uncounted, or 0)."""

    def start(self, total: int) -> None: ...

    def frames_estimated(self, count: int) -> None: ...

    def clip_ended(self, clip: Clip, record: dict) -> None: ...


def run_batch(inputs, out_dir, options: BatchOptions,
              events: Optional[ClipEvents] = None) -> Summary:
    """Run every clip of ``inputs`` into ``out_dir`` (see the module notes).

    Args:
        inputs: folder tree, glob or manifest (``inputs.discover``).
        out_dir: OUT_DIR (created); clip ``name`` goes to ``OUT_DIR/name``.
        options: see :class:`BatchOptions`.
        events: progress callbacks (called in this thread).

    Returns:
        The :class:`Summary` of this run.

    Raises:
        ScailError: bad inputs or OUT_DIR, Ray missing or unreachable (before any clip runs).
        KeyboardInterrupt: after stopping the workers and removing their temporaries.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    defaults = dict(options.defaults or {})
    _check_out_dir(out_dir)
    clips = discover(inputs, exclude=[out_dir])
    out_dir.mkdir(parents=True, exist_ok=True)
    events = events or ClipEvents()
    summary = Summary()
    with Report(out_dir) as report:
        todo = []
        for clip in clips:
            folder = out_dir / clip.name
            frames = None if options.force else finished(folder, bool(defaults.get("use_align")))
            if frames is None:
                todo.append(clip)
                continue
            summary.skipped += 1
            report.add(clip.name, SKIPPED, video=clip.video, frames=frames)
        events.start(len(clips))
        for clip in clips:
            if clip not in todo:
                events.clip_ended(clip, {"status": SKIPPED, "frames": 0})
        if todo:
            _run_on_ray(todo, out_dir, options, defaults, report, summary, events)
    summary.seconds = time.perf_counter() - start
    return summary


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ScailError(f"-o {out_dir} is a file; give a folder for the outputs")
    parent = out_dir.parent if str(out_dir.parent) else Path(".")
    if not out_dir.exists() and not parent.is_dir():
        raise ScailError(f"the folder that should hold {out_dir} does not exist: {parent}")


def _run_on_ray(clips: List[Clip], out_dir: Path, options: BatchOptions, defaults: dict,
                report: Report, summary: Summary, events: ClipEvents) -> None:
    ray = _import_ray()
    started = _start_ray(ray, options)
    frames = _FrameProgress(ray, events)
    pool = _WorkerPool(ray, options, defaults, len(clips), frames.queue)
    in_flight = {}  # object ref -> (clip, worker)
    pending = list(clips)
    try:
        while pending or in_flight:
            while pending and pool.idle:
                clip, worker = pending.pop(0), pool.take()
                ref = worker.run.remote(clip.to_dict(), str(out_dir / clip.name))
                in_flight[ref] = (clip, worker)
            # Poll, sleeping in Python: a signal that lands inside Ray's C++ wait comes out
            # as a plain KeyboardInterrupt, and SIGTERM must stay SIGTERM (exit 143).
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0)
            frames.poll()
            if not ready:
                time.sleep(POLL_S)
                continue
            clip, worker = in_flight.pop(ready[0])
            outcome = _outcome(ray, ready[0], pool, worker, out_dir / clip.name)
            counted = frames.clip_ended(clip.name)
            _record(clip, outcome, report, summary, events, counted)
    except BaseException as e:  # Ctrl-C, SIGTERM (as KeyboardInterrupt) or a Ray failure
        pool.kill_all()
        for clip, _ in in_flight.values():
            remove_partial(out_dir / clip.name)
        raise _signal_interrupt(e)
    finally:
        pool.close()
        frames.close()
        if started:
            ray.shutdown()


class _FrameProgress:
    """Frames estimated so far in the running clips, from the workers (a Ray queue actor),
    turned into ``events.frames_estimated`` calls."""

    def __init__(self, ray, events: ClipEvents):
        self.events = events
        self.seen = {}  # clip name -> frames counted
        try:
            from ray.util.queue import Queue

            self.queue = Queue(maxsize=1000, actor_options={"num_cpus": 0})
        except Exception as e:  # no live frame count then; clips still count
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

    def clip_ended(self, clip: str) -> int:
        """Frames of ``clip`` already counted live."""
        self.poll()
        return self.seen.pop(clip, 0)

    def close(self) -> None:
        if self.queue is not None:
            try:
                self.queue.shutdown()
            except Exception:
                pass
            self.queue = None


def _signal_interrupt(error: BaseException) -> BaseException:
    """The signal's own interrupt (``signals.Terminated``) when Ray wrapped it in a plain
    KeyboardInterrupt; else ``error``."""
    from ..signals import Terminated

    seen = error
    while seen is not None and isinstance(error, KeyboardInterrupt):
        if isinstance(seen, Terminated):
            return seen
        seen = seen.__context__ or seen.__cause__
    return error


def _outcome(ray, ref, pool: "_WorkerPool", worker, folder: Path) -> dict:
    """The worker's result, or a failure when the worker died (it is then replaced)."""
    try:
        result = ray.get(ref)
        pool.give_back(worker)
        return result
    except ray.exceptions.RayActorError as e:
        remove_partial(folder)
        pool.replace(worker)
        return {"status": FAILED, "error": f"the worker process died while running this clip "
                                           f"({one_line(_cause(e), 200)}); run the batch "
                                           f"again to retry it"}
    except ray.exceptions.RayError as e:
        remove_partial(folder)
        pool.give_back(worker)
        return {"status": FAILED, "error": one_line(_cause(e))}


def _cause(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return next((line for line in text if line.strip()), type(error).__name__)


def _record(clip: Clip, outcome: dict, report: Report, summary: Summary,
            events: ClipEvents, counted: int = 0) -> None:
    status = outcome.get("status", FAILED)
    if status == DONE:
        summary.done += 1
        summary.frames += int(outcome.get("frames") or 0)
    else:
        summary.failed += 1
        summary.failures.append(f"{clip.name}: {outcome.get('error')}")
        log.warning("%s failed: %s", clip.name, outcome.get("error"))
    record = report.add(clip.name, status, video=clip.video, frames=outcome.get("frames"),
                        seconds=outcome.get("seconds"), error=outcome.get("error"),
                        warnings=outcome.get("warnings"))
    uncounted = int(outcome.get("frames") or 0) - counted if status == DONE else 0
    events.clip_ended(clip, dict(record, frames=max(uncounted, 0)))


# --- Ray ------------------------------------------------------------------------------------------

def _import_ray():
    try:
        import ray
    except ImportError:
        raise ScailError("scail-pose batch runs on Ray, which is not installed here; install "
                         "it with: pip install -e '.[cluster]'") from None
    return ray


def _start_ray(ray, options: BatchOptions) -> bool:
    """Connect to Ray (start a local one without an address); True when this call started it."""
    if ray.is_initialized():
        return False
    quiet = not log.isEnabledFor(logging.DEBUG)
    # Ray's own lines: INFO with -v, WARNING by default, ERROR under -q (as other libraries)
    level = logging.INFO if not quiet else logging.ERROR if not log.isEnabledFor(
        logging.INFO) else logging.WARNING
    kwargs = dict(include_dashboard=False, log_to_driver=not quiet, logging_level=level)
    os.environ.setdefault("TI_SKIP_VERSION_CHECK", "ON")  # taichi's online check hangs offline
    runtime_env = {"env_vars": {"TI_SKIP_VERSION_CHECK": "ON"}}
    try:
        with _signal_handlers_kept():
            if options.address:
                ray.init(address=options.address, runtime_env=runtime_env, **kwargs)
            else:
                ray.init(address="local", num_cpus=max(1, options.workers),
                         runtime_env=runtime_env, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                         **kwargs)
    except Exception as e:  # ConnectionError, RuntimeError, ValueError from a bad address
        where = options.address or "a local Ray"
        raise ScailError(f"cannot start or reach {where}: {one_line(_cause(e), 200)}") from None
    return True


@contextmanager
def _signal_handlers_kept():
    """Put back this process's SIGTERM/SIGHUP/SIGINT handlers after the block: ``ray.init``
    installs its own (SIGTERM would then exit 1 at once instead of stopping the batch cleanly,
    as the command line's handlers do)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = ("SIGTERM", "SIGHUP", "SIGINT")
    saved = {getattr(signal, n): signal.getsignal(getattr(signal, n)) for n in names
             if hasattr(signal, n)}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            if handler is not None:
                signal.signal(signum, handler)


class _WorkerPool:
    """W Ray actors running :class:`ClipRunner`; hands out idle ones, replaces dead ones."""

    def __init__(self, ray, options: BatchOptions, defaults: dict, clips: int,
                 progress_queue=None):
        self.ray = ray
        self.defaults = defaults
        self.queue = progress_queue
        gpus = options.gpus_per_worker
        if gpus is None:
            gpus = 1 if self._estimator_uses_gpu(defaults) and self._cluster_gpus() >= 1 else 0
        self.actor_class = ray.remote(ClipRunner).options(
            num_cpus=1, num_gpus=gpus, max_restarts=0, max_task_retries=0)
        self.idle = [self._new() for _ in range(max(1, min(options.workers, clips)))]
        self.busy = []
        log.info("batch: %d worker(s), %g GPU each", len(self.idle), gpus)

    def _estimator_uses_gpu(self, defaults: dict) -> bool:
        from ..estimators.registry import choose

        name = defaults.get("estimator") or "auto"
        if defaults.get("device") == "cpu":
            return False
        try:
            chosen, _ = choose(name, weights_dir=defaults.get("weights_dir"))
        except ScailError:
            return False
        return chosen in GPU_ESTIMATORS

    def _cluster_gpus(self) -> float:
        return float(self.ray.cluster_resources().get("GPU", 0))

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
        """Let each idle worker close its models, then end them."""
        closing = [w.close.remote() for w in self.idle]
        if closing:
            try:
                self.ray.get(closing, timeout=30)
            except Exception:  # a worker that cannot close is ended all the same
                pass
        self.kill_all()


def plain_loop(clips: List[Clip], out_dir: Path, defaults: dict) -> Summary:
    """The same clips run one after another in this process, without Ray (for the benchmark's
    overhead figure: what a shell loop of ``scail-pose run`` would do, models loaded once)."""
    start = time.perf_counter()
    runner = ClipRunner(defaults)
    summary = Summary()
    try:
        for clip in clips:
            outcome = runner.run(clip.to_dict(), str(Path(out_dir) / clip.name))
            if outcome["status"] == DONE:
                summary.done += 1
                summary.frames += outcome["frames"]
            else:
                summary.failed += 1
    finally:
        runner.close()
    summary.seconds = time.perf_counter() - start
    return summary

