"""``scail-pose batch``: many clips through ``run``'s two halves, on Ray, resumable.

The driver (this process) finds the clips (``inputs``), skips those whose outputs are already
there and valid (``clipdir.finished``) and were made from the same video (and reference image,
with ``--use-align``) with the same settings (``fingerprint``; a clip whose outputs are stale is
redone, saying why), and sends the rest through two kinds of Ray work (``flow``):

1. **estimation** in W actors (``worker.ClipEstimator``), one clip at a time each, so models
   load once per worker; an actor asks for a GPU when its estimator uses one and the cluster
   has GPUs, else one CPU (``resources``);
2. **rendering and encoding** in Ray tasks of one CPU (``render.render_clip``), given the poses
   the actor returned through Ray's object store; they write the clip's outputs.

An actor starts its next clip while the last one renders. Ray starts on this machine without an
address, or joins a cluster (``raysession``).

Honest and resumable: every outcome is appended to ``OUT_DIR/batch_report.jsonl`` by this
process as it arrives; a clip that fails (its one-line error recorded) does not stop the others;
a worker that dies (killed, out of memory) fails its clip with that reason (and an actor is
replaced). Outputs are written into temporaries renamed into place at the end, so an
interrupted batch (Ctrl-C, SIGTERM, a killed worker) loses no finished clip and leaves no
half-written output: the temporaries of clips in flight are removed (now, or when the batch is
run again), and running the same command again finishes the rest.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from scail_protocol.contract import RUN_OUTPUTS, run_outputs
from scail_protocol.errors import ScailError

from .clipdir import finished, in_input_terms, remove_outputs, remove_partial
from .fingerprint import fingerprint, keeps_other_outputs, why_redo
from .flow import ClipFlow, WorkerPool
from .inputs import Clip, discover
from .progress import ClipEvents, FrameProgress
from .raysession import import_ray, signal_interrupt, start_ray
from .render import render_clip
from .report import DONE, FAILED, SKIPPED, Report, Summary, fingerprints
from .resources import batch_estimator, estimation_device, estimation_resources, fit_workers
from .worker import ESTIMATED, ClipEstimator, run_options

log = logging.getLogger(__name__)

POLL_S = 0.1   # seconds between looks at the workers' results


@dataclass
class BatchOptions:
    """How a batch runs.

    Attributes:
        workers: estimation actors (clips estimated in parallel); a local Ray gets two CPUs
            per worker (its actor and a render task).
        address: None = start Ray on this machine; "auto", "HOST:PORT" or "ray://HOST:PORT" =
            join a cluster (``raysession``).
        gpus_per_worker: GPUs each estimation actor asks for; None = 1 when the estimator uses
            a GPU and the cluster has one (shared when there are fewer GPUs than workers),
            else 0.
        force: run clips again even when their outputs are there and current.
        defaults: ``run_folder`` keywords for every clip, as ``run`` passes them (estimator
            name, resolution, arch, weights_dir, smoothing, fps, use_align, align_options,
            device, cleanup); a manifest row's options override them.
    """

    workers: int = 1
    address: Optional[str] = None
    gpus_per_worker: Optional[float] = None
    force: bool = False
    defaults: dict = None


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
        ScailError: bad inputs or OUT_DIR, Ray missing or unreachable, a cluster without room
            for the batch (before any clip runs).
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
        recorded, estimators = fingerprints(out_dir), {}
        plans = {clip.name: _plan(clip, out_dir, defaults, recorded, estimators, options.force)
                 for clip in clips}
        for clip in clips:
            if plans[clip.name].skipped is not None:
                summary.skipped += 1
                report.add(clip.name, SKIPPED, video=clip.video, frames=plans[clip.name].skipped,
                           fingerprint=plans[clip.name].fingerprint)
        todo = [clip for clip in clips if plans[clip.name].skipped is None]
        ray = import_ray() if todo else None   # a missing Ray is said before any bar shows
        events.start(len(clips))
        for clip in clips:
            if plans[clip.name].skipped is not None:
                events.clip_ended(clip, {"status": SKIPPED})
        if todo:
            _run_on_ray(ray, todo, out_dir, options, defaults,
                        lambda clip, outcome: _record(clip, outcome, report, summary, events,
                                                      plans[clip.name]),
                        events)
    summary.seconds = time.perf_counter() - start
    return summary


@dataclass
class ClipPlan:
    """What the batch does with a clip.

    Attributes:
        fingerprint: what its outputs are made from in this run (``fingerprint``); None when
            its options cannot be read (its run then fails, saying why).
        skipped: the frame count of its finished, current outputs (the clip is skipped), or
            None (it runs).
        redone: why its finished outputs are made again (one line), or None.
        stale: outputs of the other layout in its folder that no longer go with its poses
            (made from another video or with other settings), removed once it is done.
    """

    fingerprint: Optional[dict] = None
    skipped: Optional[int] = None
    redone: Optional[str] = None
    stale: tuple = ()


def _plan(clip: Clip, out_dir: Path, defaults: dict, recorded: dict, estimators: dict,
          force: bool) -> ClipPlan:
    """Skip the clip when its outputs are there, valid and made as this run would make them;
    else run it (said in one line when it had finished outputs). ``recorded``: the report's
    fingerprints (``report.fingerprints``); ``estimators``: kept across the clips."""
    try:
        options = run_options(defaults, clip.options)
        current = fingerprint(clip.video, clip.reference, options, estimators)
    except (ScailError, ValueError):   # a bad option: the worker fails the clip with it
        return ClipPlan()
    folder = out_dir / clip.name
    use_align = bool(options.get("use_align"))
    if not any((folder / name).exists() for name in RUN_OUTPUTS):
        return ClipPlan(current)
    earlier = recorded.get(clip.name)
    others = [name for name in RUN_OUTPUTS if name not in run_outputs(use_align)]
    stale = () if keeps_other_outputs(earlier, current) else tuple(
        name for name in others if (folder / name).exists())
    frames = None if force else finished(folder, use_align)
    why = None if force else why_redo(earlier, current, clip.video, folder)
    if frames is not None and why is None:
        return ClipPlan(current, skipped=frames)
    if why is not None and (frames is not None or earlier is not None):
        log.warning("%s: redone: %s", clip.name, why)   # its outputs were there, made otherwise
        return ClipPlan(current, redone=why, stale=stale)
    return ClipPlan(current, stale=stale)


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ScailError(f"-o {out_dir} is a file; give a folder for the outputs")
    parent = out_dir.parent if str(out_dir.parent) else Path(".")
    if not out_dir.exists() and not parent.is_dir():
        raise ScailError(f"the folder that should hold {out_dir} does not exist: {parent}")


def _record(clip: Clip, outcome: dict, report: Report, summary: Summary,
            events: ClipEvents, plan: Optional[ClipPlan] = None) -> None:
    """Count a clip's outcome, append it to the report and tell the events (its error and
    warnings name the user's files, not the links in the clip's output folder); ``plan``: why
    it was redone, and its fingerprint, recorded when it is done."""
    said = lambda text: in_input_terms(text, clip, report.path.parent / clip.name)
    error = said(outcome["error"]) if outcome.get("error") else None
    warnings = [said(text) for text in outcome.get("warnings") or ()]
    status = outcome.get("status", FAILED)
    plan = plan or ClipPlan()
    if status == DONE:
        summary.done += 1
        summary.redone += plan.redone is not None
        remove_outputs(report.path.parent / clip.name, plan.stale)
        summary.frames += int(outcome.get("frames") or 0)
    else:
        summary.failed += 1
        summary.failures.append(f"{clip.name}: {error}")
        log.warning("%s failed: %s", clip.name, error)
    for text in warnings:   # the workers' own logs stay on their nodes
        log.warning("%s: %s", clip.name, text)
    record = report.add(clip.name, status, video=clip.video, frames=outcome.get("frames"),
                        seconds=outcome.get("seconds"), error=error, warnings=warnings,
                        redone=plan.redone,
                        fingerprint=plan.fingerprint if status == DONE else None)
    events.clip_ended(clip, record)


# --- on Ray ---------------------------------------------------------------------------------------

def _run_on_ray(ray, clips: List[Clip], out_dir: Path, options: BatchOptions, defaults: dict,
                on_end, events: ClipEvents) -> None:
    """Estimate and render ``clips`` on Ray (the imported module ``ray``); ``on_end(clip,
    outcome)`` as each ends."""
    started = start_ray(ray, options.address, options.workers)
    frames = pool = None
    stopped = []   # folders of the clips in flight when the batch was interrupted
    try:
        workers = fit_workers(min(options.workers, len(clips)),
                              ray.cluster_resources().get("CPU", 0))
        resources = _estimation_resources(ray, workers, options, defaults, clips)
        frames = FrameProgress(events)
        actor_defaults = dict(defaults, device=estimation_device(defaults.get("device"),
                                                                 resources))
        if defaults.get("weights_dir"):  # workers may run in another working folder
            actor_defaults["weights_dir"] = Path(defaults["weights_dir"]).absolute()
        pool = WorkerPool(ray, resources, workers, actor_defaults, frames.queue)
        flow = ClipFlow(ray, pool, out_dir, frames, on_end)
        pending = list(clips)
        try:
            while pending or flow.busy:
                flow.submit(pending)
                # Poll, sleeping in Python: a signal that lands inside Ray's C++ wait comes out
                # as a plain KeyboardInterrupt, and SIGTERM must stay SIGTERM (exit 143).
                progressed = flow.step()
                frames.poll()
                if not progressed:
                    time.sleep(POLL_S)
        except BaseException as e:  # Ctrl-C, SIGTERM (as KeyboardInterrupt) or a Ray failure
            stopped = flow.stop()
            raise signal_interrupt(e)
    finally:
        if pool is not None:
            pool.close()
        if frames is not None:
            frames.close()
        if started:
            ray.shutdown()
        for folder in stopped:  # after the workers are gone: nothing writes there any more
            remove_partial(folder)


def _estimation_resources(ray, workers: int, options: BatchOptions, defaults: dict,
                          clips: List[Clip]) -> dict:
    """An estimation actor's Ray resources on this cluster (``resources``), sized for the most
    demanding estimator among the clips."""
    estimator = batch_estimator(defaults, [clip.options.get("estimator") for clip in clips])
    resources = estimation_resources(
        estimator, float(ray.cluster_resources().get("GPU", 0)),
        workers=workers, gpus_per_worker=options.gpus_per_worker,
        device=defaults.get("device"))
    log.info("batch: estimation actors ask for %g CPU and %g GPU each; render tasks for 1 CPU",
             resources["num_cpus"], resources["num_gpus"])
    return resources


def plain_loop(clips: List[Clip], out_dir: Path, defaults: dict) -> Summary:
    """The same clips run one after another in this process, without Ray: each estimated then
    rendered, models loaded once (the benchmark's reference for Ray's overhead)."""
    start = time.perf_counter()
    estimator = ClipEstimator(defaults)
    summary = Summary()
    try:
        for clip in clips:
            outcome, poses = estimator.estimate(clip.to_dict(), str(Path(out_dir) / clip.name))
            if outcome["status"] == ESTIMATED:
                outcome = render_clip(poses, outcome["arch"])
            if outcome["status"] == DONE:
                summary.done += 1
                summary.frames += outcome["frames"]
            else:
                summary.failed += 1
    finally:
        estimator.close()
    summary.seconds = time.perf_counter() - start
    return summary
