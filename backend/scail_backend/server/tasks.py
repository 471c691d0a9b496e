"""What a worker runs for each job kind.

Real kinds: ``extract`` (video -> poses), ``render`` (poses -> conditioning video), ``run``
(both) and ``align`` (poses + reference image -> aligned poses, optionally rendered); extract and
run align too when asked (``use_align``). The pipeline modules are imported when a job runs, never at import.

Diagnostic kinds, for health checks, tests and benchmarks (they touch no model):

* ``sleep {duration_s, steps, fail?}``: waits ``duration_s`` in ``steps`` steps, reporting
  progress (stage ``"sleep"``) and honouring cancel at every step; with ``fail`` it then fails
  with that message. At most :data:`MAX_SLEEP_S` seconds.
* ``copy {video, out?}``: copies the input video into the job's result video (stage ``"copy"``),
  which exercises uploads, roots, result download and ``out`` paths.

Every task gets the resolved parameters the server checked (absolute paths inside the roots or
the upload cache) and a :class:`TaskContext`; it returns a JSON-ready result dict.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path

from scail_protocol import messages as M
from scail_protocol.contract import (ALIGNED_POSES_FILE, ALIGNED_RENDERED_FILE, POSES_FILE,
                                     RENDERED_FILE)
from scail_protocol.errors import ScailError
from scail_protocol.outputs import atomic_path, write_atomically
from scail_protocol.sequence import PoseSequence

log = logging.getLogger(__name__)

MAX_SLEEP_S = 60.0
MAX_SLEEP_STEPS = 1000
COPY_BLOCK_BYTES = 1 << 20


class TaskContext:
    """What a running task may use besides its parameters.

    Attributes:
        job_dir: the job's private folder (exists, empty at start).
        progress: ``progress(stage, done, total)``; raises Cancelled once cancel is asked.
        wait: ``wait(seconds)``: pause, raising Cancelled at once when cancel is asked.
        check_output: ``check_output(real_path)`` raises when an output would land outside the
            server's roots; called right before each final rename (None: no check).
    """

    def __init__(self, job_dir: Path, progress, wait, check_output=None):
        self.job_dir = Path(job_dir)
        self.progress = progress
        self.wait = wait
        self.check_output = check_output


def run_task(kind: str, params: dict, ctx: TaskContext) -> dict:
    """Run one job; returns ``{"poses": path?, "video": {...}?, "report": {...}}``.

    The report of extract and run holds ``warnings``: the lines the pipeline warned about (the
    clip's rate against 16 fps, a damaged or truncated input, an alignment fallback), which the
    server would otherwise keep in its log; clients show them to their user.

    Raises:
        Cancelled: cancel was asked (temporary files removed by the stage that was running).
        ScailError: the job failed for a reason the client should see.
    """
    try:
        task = TASKS[kind]
    except KeyError:
        raise ScailError(f"the worker cannot run jobs of kind {kind!r}") from None
    return task(params, ctx)


def _extract(params: dict, ctx: TaskContext) -> dict:
    seq, warnings = _extract_sequence(params, ctx)
    alignment = None
    if params.get("use_align"):
        seq, alignment = _align_sequence(seq, params["reference"], params.get("align"), ctx)
    poses = seq.save(ctx.job_dir / POSES_FILE)
    out = params.get("out")
    if out:
        _save_output(seq, out, ctx)
    report = _sequence_report(seq, out, alignment)
    return {"poses": str(poses), "report": dict(report, warnings=_warnings(warnings, alignment))}


def _align(params: dict, ctx: TaskContext) -> dict:
    options = {k: params[k] for k in ("estimator", "fallback", "adapt", "name") if k in params}
    seq, alignment = _align_sequence(PoseSequence.load(params["poses"]), params["reference"],
                                     options, ctx)
    poses = seq.save(ctx.job_dir / ALIGNED_POSES_FILE)
    out = params.get("out")
    if out:
        _save_output(seq, out, ctx)
    result = {"poses": str(poses), "report": _sequence_report(seq, out, alignment)}
    if params.get("render"):
        video, render_report = _render_sequence(seq, ctx)
        result["video"] = _video_info(video, None)
        result["report"]["render"] = render_report
    return result


def _render(params: dict, ctx: TaskContext) -> dict:
    seq = PoseSequence.load(params["poses"])
    video, report = _render_sequence(seq, ctx)
    out = params.get("out")
    if out:
        _copy_file(video, Path(out), ctx)
    return {"video": _video_info(video, out), "report": report}


def _run(params: dict, ctx: TaskContext) -> dict:
    seq, warnings = _extract_sequence(params, ctx)
    out_dir = params.get("out_dir")
    unaligned, alignment, poses_name, video_name = seq, None, POSES_FILE, RENDERED_FILE
    if params.get("use_align"):
        seq, alignment = _align_sequence(seq, params["reference"], params.get("align"), ctx)
        poses_name, video_name = ALIGNED_POSES_FILE, ALIGNED_RENDERED_FILE
    poses = seq.save(ctx.job_dir / poses_name)
    video, render_report = _render_sequence(seq, ctx)
    if out_dir:
        if alignment is not None:  # the unaligned poses too, as `run DIR --use-align` does
            _save_output(unaligned, Path(out_dir) / POSES_FILE, ctx)
        _save_output(seq, Path(out_dir) / poses_name, ctx)
        _copy_file(video, Path(out_dir) / video_name, ctx)
    report = dict(_sequence_report(seq, out_dir, alignment), render=render_report,
                  warnings=_warnings(warnings, alignment))
    out_video = str(Path(out_dir) / video_name) if out_dir else None
    return {"poses": str(poses), "video": _video_info(video, out_video), "report": report}


def _sleep(params: dict, ctx: TaskContext) -> dict:
    duration_s, steps = float(params["duration_s"]), int(params["steps"])
    for step in range(steps):
        ctx.progress("sleep", step, steps)
        ctx.wait(duration_s / steps)
    ctx.progress("sleep", steps, steps)
    if params.get("fail"):
        raise ScailError(str(params["fail"]))
    return {"report": {"slept_s": duration_s, "steps": steps}}


def _copy(params: dict, ctx: TaskContext) -> dict:
    source = Path(params["video"])
    target = ctx.job_dir / ("video" + source.suffix)
    total = source.stat().st_size
    with source.open("rb") as src, target.open("wb") as dst:
        done = 0
        ctx.progress("copy", 0, total)
        for block in iter(lambda: src.read(COPY_BLOCK_BYTES), b""):
            dst.write(block)
            done += len(block)
            ctx.progress("copy", done, total)
    out = params.get("out")
    if out:
        _copy_file(target, Path(out), ctx)
    return {"video": _video_info(target, out), "report": {"bytes": total}}


TASKS = {M.EXTRACT: _extract, M.RENDER: _render, M.RUN: _run, M.ALIGN: _align, M.SLEEP: _sleep,
         M.COPY: _copy}


# --- helpers -------------------------------------------------------------------------------------

def _extract_sequence(params: dict, ctx: TaskContext) -> tuple:
    """(the PoseSequence, the lines the pipeline warned about) of the job's video."""
    from ..pipeline import extract_video

    warnings = []
    options = {"estimator": params.get("estimator") or "auto", "progress": ctx.progress,
               "warnings": warnings}
    if params.get("resolution") is not None:
        options["resolution"] = params["resolution"]
    if params.get("smoothing") is not None:
        options["smoothing"] = params["smoothing"]
    if params.get("fps") is not None:
        options["fps"] = params["fps"]
    if params.get("cleanup") is not None:
        options["cleanup"] = params["cleanup"]
    seq = extract_video(params["video"], **options)
    shown = params.get("video_name")
    if shown:  # an upload: the lines name the client's file, not the cache's
        cached = Path(params["video"]).name
        warnings = [line.replace(cached, shown) for line in warnings]
    return seq, warnings


def _warnings(warnings: list, alignment) -> list:
    """The report's ``warnings``: the pipeline's, then an alignment fallback's message (the
    aligned poses kept the unaligned camera, as ``run --use-align`` warns)."""
    if alignment is not None and alignment.get("fallback"):
        return [*warnings, alignment["message"]]
    return list(warnings)


def _align_sequence(seq: PoseSequence, reference: str, options, ctx: TaskContext) -> tuple:
    """(aligned sequence, its alignment record) (``scail_backend.align``)."""
    from ..align import align_to_reference

    result = align_to_reference(seq, reference, progress=ctx.progress, **(options or {}))
    return result.sequence, dict(result.record, message=result.message)


def _render_sequence(seq: PoseSequence, ctx: TaskContext) -> tuple:
    from ..render.pipeline import render_sequence

    video = ctx.job_dir / RENDERED_FILE
    report = render_sequence(seq, video, progress=ctx.progress)
    return video, _jsonable(report)


def _sequence_report(seq: PoseSequence, out, alignment=None) -> dict:
    report = {"frames": seq.num_frames, "people": seq.num_people, "fps": seq.fps,
              "size": list(seq.size), "estimator": seq.meta.get("estimator"),
              "out": str(out) if out else None}
    if alignment is not None:
        report["alignment"] = alignment
    return report


def _video_info(path: Path, out) -> dict:
    """What clients learn about a result video: size, sha256, and the server path of ``out``."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(COPY_BLOCK_BYTES), b""):
            digest.update(block)
    return {"file": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest(),
            "path": str(out) if out else None}


def _copy_file(source: Path, target: Path, ctx: TaskContext) -> None:
    """Copy atomically (temporary file beside ``target``, then rename), checking right before
    the rename that the output still lands inside the server's roots."""
    with source.open("rb") as src:
        write_atomically(target, lambda dst: shutil.copyfileobj(src, dst, COPY_BLOCK_BYTES),
                         before_rename=ctx.check_output)


def _save_output(seq: PoseSequence, target, ctx: TaskContext) -> None:
    """``seq.save(target)`` for a path outside the job folder (checked as :func:`_copy_file`)."""
    with atomic_path(target, before_rename=ctx.check_output) as temp:
        seq.save(temp)


def _jsonable(report) -> dict:
    """A library report (dataclass, dict or None) as plain JSON data."""
    if report is None:
        return {}
    if dataclasses.is_dataclass(report):
        report = dataclasses.asdict(report)
    elif not isinstance(report, dict):
        report = {"report": str(report)}
    return json.loads(json.dumps(report, default=str))
