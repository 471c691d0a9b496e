"""Checking a job submission and turning it into worker parameters.

Each ``parse_<kind>`` reads a request body, resolves its paths (inside the server's roots or the
upload cache) and returns ``(params, pins)``: JSON parameters for the worker and the upload
sha256s the job needs. Everything a client can get wrong is refused here, before the job is
queued, so mistakes come back at once as an error reply.
"""

from __future__ import annotations

import re

from scail_protocol import messages as M
from scail_protocol.errors import ProtocolError
from scail_protocol.wire import Message, sequence_from_message

from .paths import Roots
from .tasks import MAX_SLEEP_S, MAX_SLEEP_STEPS
from .uploads import UploadCache
from .validate import RequestError, get_field, get_int, get_resolution, get_sha256

INPUT_POSES_FILE = "input_poses.npz"
_ESTIMATOR_RE = re.compile(r"[a-z0-9_]{1,32}")


class Submission:
    """What the parsers need besides the message: roots, upload cache, the new job's folder."""

    def __init__(self, roots: Roots, uploads: UploadCache, job_dir):
        self.roots, self.uploads, self.job_dir = roots, uploads, job_dir


def parse(msg: Message, sub: Submission) -> tuple:
    """``(params, pins)`` for a submission of kind ``msg.type``."""
    if msg.type == M.ALIGN:
        raise RequestError("unavailable", "align is not available in this version of the server; "
                                          "extract, render and run are")
    return PARSERS[msg.type](msg, sub)


def _video(msg: Message, sub: Submission) -> tuple:
    spec = get_field(msg.body, "video", dict, msg.type)
    if "path" in spec:
        return str(sub.roots.input_file(spec["path"], "video")), ()
    if "upload" in spec:
        sha256 = get_sha256(spec, "upload", msg.type)
        return str(sub.uploads.path(sha256)), (sha256,)
    raise ProtocolError(f"{msg.type}: 'video' must be {{\"path\": ...}} or {{\"upload\": sha256}}")


def _estimator(msg: Message) -> str:
    name = get_field(msg.body, "estimator", str, msg.type, default="auto")
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


def _options(msg: Message) -> dict:
    """The options extract and run share."""
    return {"estimator": _estimator(msg), "resolution": get_resolution(msg.body, msg.type),
            "smoothing": _smoothing(msg)}


def _out_file(msg: Message, sub: Submission, name: str = "out"):
    text = get_field(msg.body, name, str, msg.type, default=None)
    return None if text is None else str(sub.roots.output_file(text, name))


def parse_extract(msg: Message, sub: Submission) -> tuple:
    options = _options(msg)
    video, pins = _video(msg, sub)
    return dict(options, video=video, out=_out_file(msg, sub)), pins


def parse_run(msg: Message, sub: Submission) -> tuple:
    options = _options(msg)
    out_dir = get_field(msg.body, "out_dir", str, msg.type, default=None)
    video, pins = _video(msg, sub)
    out_dir = None if out_dir is None else str(sub.roots.output_dir(out_dir))
    return dict(options, video=video, out_dir=out_dir), pins


def parse_render(msg: Message, sub: Submission) -> tuple:
    if "poses" in msg.body:
        seq = sequence_from_message(msg)  # NaN in K, infinities, bad shapes: refused here
        poses = str(seq.save(sub.job_dir / INPUT_POSES_FILE))
    elif "poses_path" in msg.body:
        text = get_field(msg.body, "poses_path", str, msg.type)
        poses = str(sub.roots.input_file(text, "poses file"))
    else:
        raise ProtocolError(f"{msg.type}: send the poses inline ('poses' + arrays) or as "
                            f"'poses_path' on the server")
    return {"poses": poses, "out": _out_file(msg, sub)}, ()


def parse_sleep(msg: Message, sub: Submission) -> tuple:
    duration_s = get_field(msg.body, "duration_s", (int, float), msg.type)
    if not 0 <= duration_s <= MAX_SLEEP_S:
        raise ProtocolError(f"sleep: 'duration_s' must be in [0, {MAX_SLEEP_S:g}], "
                            f"got {duration_s}")
    steps = get_int(msg.body, "steps", msg.type, 1, MAX_SLEEP_STEPS, default=10)
    fail = get_field(msg.body, "fail", str, msg.type, default=None)
    return {"duration_s": float(duration_s), "steps": steps, "fail": fail}, ()


def parse_copy(msg: Message, sub: Submission) -> tuple:
    video, pins = _video(msg, sub)
    return {"video": video, "out": _out_file(msg, sub)}, pins


PARSERS = {M.EXTRACT: parse_extract, M.RUN: parse_run, M.RENDER: parse_render,
           M.SLEEP: parse_sleep, M.COPY: parse_copy}
SUBMIT_TYPES = tuple(PARSERS) + (M.ALIGN,)
