"""Checking a job submission and turning it into worker parameters.

Each ``parse_<kind>`` reads a request body, resolves its paths (inside the server's roots or the
upload cache) and returns ``(params, pins)``: JSON parameters for the worker and the upload
sha256s the job needs. Everything a client can get wrong is refused here, before the job is
queued, so mistakes come back at once as an error reply.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from scail_protocol import messages as M
from scail_protocol.contract import POSES_SUFFIX, RUN_OUTPUTS, VIDEO_SUFFIX
from scail_protocol.errors import EstimatorError, OutputError, ProtocolError
from scail_protocol.outputs import same_file
from scail_protocol.wire import Message, sequence_from_message

from .. import options as option_checks
from .paths import Roots
from .tasks import MAX_SLEEP_S, MAX_SLEEP_STEPS
from .uploads import UploadCache
from .validate import get_field, get_int, get_resolution, get_sha256

INPUT_POSES_FILE = "input_poses.npz"
_ESTIMATOR_RE = re.compile(r"[a-z0-9_]{1,32}")


class Submission:
    """What the parsers need besides the message: roots, upload cache, the new job's folder."""

    def __init__(self, roots: Roots, uploads: UploadCache, job_dir):
        self.roots, self.uploads, self.job_dir = roots, uploads, job_dir


def parse(msg: Message, sub: Submission) -> tuple:
    """``(params, pins)`` for a submission of kind ``msg.type``.

    Raises:
        OutputError: an output would replace one of the job's inputs, or its name has another
            suffix than the file the job writes there (``.npz`` poses, ``.mp4`` video).
        ProtocolError, RequestError: anything else the request got wrong.
    """
    params, pins = PARSERS[msg.type](msg, sub)
    _refuse_outputs_over_inputs(msg.type, params)
    return params, pins


INPUT_PARAMS = ("video", "poses", "reference")  # worker parameters that are input files


def _refuse_outputs_over_inputs(kind: str, params: dict) -> None:
    """Never destroy an input: refuse ``out`` (or a file a job writes into ``out_dir``) that
    is, through any path or link, one of the job's input files. Not ``forbidden``: that code
    makes a client upload its files and submit again, and an uploaded input would no longer
    be seen here as the file the output replaces."""
    inputs = [params[name] for name in INPUT_PARAMS if params.get(name)]
    outputs = [params["out"]] if params.get("out") else []
    if params.get("out_dir"):
        outputs += [os.path.join(params["out_dir"], name) for name in RUN_OUTPUTS]
    for output in outputs:
        for source in inputs:
            if os.path.lexists(output) and same_file(output, source):
                raise OutputError(f"{kind}: output {output} is the input {source}; writing it "
                                  f"would destroy the input, so choose another output path")


def _video(msg: Message, sub: Submission) -> tuple:
    spec = get_field(msg.body, "video", dict, msg.type)
    if "path" in spec:
        return str(sub.roots.input_file(spec["path"], "video")), ()
    if "upload" in spec:
        sha256 = get_sha256(spec, "upload", msg.type)
        return str(sub.uploads.path(sha256)), (sha256,)
    raise ProtocolError(f"{msg.type}: 'video' must be {{\"path\": ...}} or {{\"upload\": sha256}}")


def _reference(msg: Message, sub: Submission) -> tuple:
    """``reference``: the reference image, ``{"path": ...}`` or ``{"upload": sha256, "name"?}``;
    returns (path, pins, the client's name of an upload or None)."""
    spec = get_field(msg.body, "reference", dict, msg.type)
    if "path" in spec:
        return str(sub.roots.input_file(spec["path"], "reference image")), (), None
    if "upload" in spec:
        sha256 = get_sha256(spec, "upload", msg.type)
        name = spec.get("name") if isinstance(spec.get("name"), str) else None
        return str(sub.uploads.path(sha256)), (sha256,), Path(name).name[:200] if name else None
    raise ProtocolError(f"{msg.type}: 'reference' must be {{\"path\": ...}} or "
                        f"{{\"upload\": sha256}}")


def _align_options(msg: Message, estimator: bool) -> dict:
    """``fallback`` ("clamped" | "default") and ``adapt_bones`` (bool); with ``estimator``
    also ``estimator`` (default "same": the one that made the poses)."""
    from ..align import CLAMPED, FALLBACKS, SAME

    fallback = get_field(msg.body, "fallback", str, msg.type, default=CLAMPED)
    if fallback not in FALLBACKS:
        raise ProtocolError(f"{msg.type}: 'fallback' must be one of {', '.join(FALLBACKS)}, "
                            f"got {fallback!r:.40}")
    options = {"fallback": fallback,
               "adapt": get_field(msg.body, "adapt_bones", bool, msg.type, default=False)}
    if estimator:
        options["estimator"] = _estimator(msg, default=SAME)
    return options


def _with_alignment(msg: Message, sub: Submission, params: dict, pins: tuple) -> tuple:
    """extract and run: with ``use_align: true`` add the reference image and align options."""
    if not get_field(msg.body, "use_align", bool, msg.type, default=False):
        return params, pins
    reference, more, name = _reference(msg, sub)
    return dict(params, use_align=True, reference=reference,
                align=dict(_align_options(msg, estimator=False), name=name)), \
        tuple(pins) + tuple(more)


def _estimator(msg: Message, default: str = "auto") -> str:
    name = get_field(msg.body, "estimator", str, msg.type, default=default)
    if not _ESTIMATOR_RE.fullmatch(name):
        raise ProtocolError(f"{msg.type}: 'estimator' must be a name like 'auto' or 'mediapipe', "
                            f"got {name!r:.40}")
    return name


def _smoothing(msg: Message):
    """``smoothing``: absent/null = off, else a strength name or a number in [0, 1] (0 = off);
    returns the strength as a number in (0, 1], or None."""
    from ..smoothing import parse_strength, strength_choices

    value = get_field(msg.body, "smoothing", (str, int, float), msg.type, default=None)
    try:
        return parse_strength(value)
    except ValueError:
        raise ProtocolError(f"{msg.type}: 'smoothing' must be {strength_choices()}, "
                            f"got {value!r:.40}") from None


def _fps(msg: Message):
    """``fps``: absent/null = keep the source's frames, else the rate (frames per second) to
    resample the clip to in time (``video.timing``)."""
    from scail_protocol.errors import VideoError

    from ..video.timing import check_fps

    value = get_field(msg.body, "fps", (int, float), msg.type, default=None)
    if value is None:
        return None
    try:
        return check_fps(value)
    except VideoError as e:
        raise ProtocolError(f"{msg.type}: 'fps': {e}") from None


def _options(msg: Message) -> dict:
    """The options extract and run share (checked as the CLI checks them: ``options``)."""
    estimator = _estimator(msg)
    try:
        option_checks.check_estimator(estimator)
    except EstimatorError as e:
        raise ProtocolError(f"{msg.type}: {e}") from None
    return {"estimator": estimator, "resolution": get_resolution(msg.body, msg.type),
            "smoothing": _smoothing(msg), "fps": _fps(msg), "cleanup": _cleanup(msg),
            "video_name": _upload_name(msg.body.get("video"))}


def _upload_name(spec):
    """The client's name of an uploaded file (``{"upload": sha256, "name": ...}``), which the
    job's warnings then name instead of the cache's; None for a path or without a name."""
    if not isinstance(spec, dict) or "upload" not in spec or not isinstance(spec.get("name"), str):
        return None
    return Path(spec["name"]).name[:200] or None


def _cleanup(msg: Message):
    """``cleanup``: absent/null = the defaults (every person, no gap filling or foot locking),
    else a dict of ``cleanup.CleanupOptions`` fields (max_people, order, fill_gaps, foot_lock);
    returns the checked dict, or None."""
    from dataclasses import asdict

    from ..cleanup import CleanupOptions

    value = get_field(msg.body, "cleanup", dict, msg.type, default=None)
    if value is None:
        return None
    try:
        return asdict(CleanupOptions.from_value(value))
    except (ValueError, TypeError) as e:
        raise ProtocolError(f"{msg.type}: 'cleanup': {e}") from None


def _out_file(msg: Message, sub: Submission, suffix, name: str = "out"):
    """``out``: None, or the server path the job writes its ``suffix`` file to (the suffix
    rule of the CLI's ``-o``: ``Roots.output_file``)."""
    text = get_field(msg.body, name, str, msg.type, default=None)
    return None if text is None else str(sub.roots.output_file(text, name, suffix=suffix))


def parse_extract(msg: Message, sub: Submission) -> tuple:
    options = _options(msg)
    video, pins = _video(msg, sub)
    out = _out_file(msg, sub, POSES_SUFFIX)
    return _with_alignment(msg, sub, dict(options, video=video, out=out), pins)


def parse_run(msg: Message, sub: Submission) -> tuple:
    options = _options(msg)
    out_dir = get_field(msg.body, "out_dir", str, msg.type, default=None)
    video, pins = _video(msg, sub)
    out_dir = None if out_dir is None else str(sub.roots.output_dir(out_dir))
    return _with_alignment(msg, sub, dict(options, video=video, out_dir=out_dir), pins)


def parse_render(msg: Message, sub: Submission) -> tuple:
    return {"poses": _poses(msg, sub), "out": _out_file(msg, sub, VIDEO_SUFFIX)}, ()


def parse_align(msg: Message, sub: Submission) -> tuple:
    """``align {poses + arrays | poses_path, reference, estimator?, fallback?, adapt_bones?,
    render?, out?}``."""
    options = _align_options(msg, estimator=True)
    render = get_field(msg.body, "render", bool, msg.type, default=False)
    poses = _poses(msg, sub)
    reference, pins, name = _reference(msg, sub)
    return dict(options, name=name, poses=poses, reference=reference, render=render,
                out=_out_file(msg, sub, POSES_SUFFIX)), pins


def _poses(msg: Message, sub: Submission) -> str:
    """The poses of render and align: inline (saved into the job folder) or a server path."""
    if "poses" in msg.body:
        seq = sequence_from_message(msg)  # NaN in K, infinities, bad shapes: refused here
        poses = str(seq.save(sub.job_dir / INPUT_POSES_FILE))
    elif "poses_path" in msg.body:
        text = get_field(msg.body, "poses_path", str, msg.type)
        poses = str(sub.roots.input_file(text, "poses file"))
    else:
        raise ProtocolError(f"{msg.type}: send the poses inline ('poses' + arrays) or as "
                            f"'poses_path' on the server")
    return poses


def parse_sleep(msg: Message, sub: Submission) -> tuple:
    duration_s = get_field(msg.body, "duration_s", (int, float), msg.type)
    if not 0 <= duration_s <= MAX_SLEEP_S:
        raise ProtocolError(f"sleep: 'duration_s' must be in [0, {MAX_SLEEP_S:g}], "
                            f"got {duration_s}")
    steps = get_int(msg.body, "steps", msg.type, 1, MAX_SLEEP_STEPS, default=10)
    fail = get_field(msg.body, "fail", str, msg.type, default=None)
    return {"duration_s": float(duration_s), "steps": steps, "fail": fail}, ()


def parse_copy(msg: Message, sub: Submission) -> tuple:
    video, pins = _video(msg, sub)  # a copy keeps its input's type
    return {"video": video, "out": _out_file(msg, sub, Path(video).suffix.lower() or None)}, pins


PARSERS = {M.EXTRACT: parse_extract, M.RUN: parse_run, M.RENDER: parse_render,
           M.ALIGN: parse_align, M.SLEEP: parse_sleep, M.COPY: parse_copy}
SUBMIT_TYPES = tuple(PARSERS)
