"""The vocabulary spoken over the wire: message types, job kinds and states, error codes.

Shared by the server (``scail_backend.server``) and :mod:`scail_protocol.client`; the frame
format itself is :mod:`scail_protocol.wire`.

Requests (client -> server) and the reply each gets::

    hello          {}                                     -> hello {protocol, server, capabilities,
                                                             limits, job_kinds, diagnostics,
                                                             workers, roots}
    heartbeat      {}                                     -> heartbeat {queued, running}
    upload_begin   {sha256, size, suffix}                 -> upload_state {sha256, size, have}
    upload_chunk   {sha256, offset} + array "data" uint8  -> upload_state {sha256, have}
    extract        {video, estimator?, resolution?, smoothing?, out?, use_align?, reference?}
                                                          -> accepted {job, position}
    render         {poses + pose arrays | poses_path, out?} -> accepted {job, position}
    run            {video, estimator?, resolution?, smoothing?, out_dir?, use_align?, reference?}
                                                          -> accepted {job, position}
    align          {poses + pose arrays | poses_path, reference, estimator?, fallback?,
                    adapt_bones?, render?, out?}          -> accepted {job, position}
    sleep, copy    diagnostic jobs (see scail_backend.server.tasks) -> accepted {job, position}
    status         {job_id}                               -> status {job}
    cancel         {job_id}                               -> status {job}
    attach         {job_id}                               -> status {job} (+ the job's final
                                                             event again if it has ended)
    list_jobs      {}                                     -> jobs {jobs: [...], queued, running}
    fetch          {job_id, what: "poses"}                -> poses {poses} + pose arrays
    fetch          {job_id, what: "video", offset, length} -> chunk {offset, total, sha256}
                                                             + array "data" uint8

``video`` is ``{"path": "/server/visible/file.mp4"}`` or ``{"upload": sha256, "name": "a.mp4"}``;
``reference`` (the reference image of alignment) is given like ``video``; ``use_align: true``
makes extract/run align their poses to it (run then writes ``poses_aligned.npz`` and
``rendered_aligned.mp4`` into ``out_dir``); ``fallback`` is "clamped" (default) or "default",
``adapt_bones`` a bool, align's ``estimator`` defaults to "same" (the one that made the poses);
the result's ``report.alignment`` is the record stored in the poses' ``meta["alignment"]``.
The report of extract and run holds ``warnings``: lines for the user (a clip not at 16 fps, a
damaged or truncated video, an alignment fallback; absent from older backends).
``resolution`` is ``[H, W]`` or null; ``smoothing`` is null (off), a strength name ("light",
"medium", "strong", "default", "off") or a number in [0, 1] (0 = off); ``cleanup`` (extract and
run) is null or ``{max_people: int | null, order: "size" | "left_to_right", fill_gaps: frames,
take_fit: bool, foot_lock: bool}``, every field optional, all off by default (capability flag
``cleanup``);
``out``/``out_dir``/``poses_path`` are absolute server
paths inside the server's roots. ``job`` is a job summary (id, kind, state, stage, done, total,
owner_connected, times, report or error). Pose arrays are those of
:func:`scail_protocol.wire.sequence_parts` under the prefix ``poses``.

Events (server -> the job's owner, ``job_id`` set, ``reply_to`` None)::

    progress   {stage, done, total}
    result     {job, has_poses, poses_inline, video: {bytes, sha256, path} | null, poses?}
               (+ pose arrays when poses_inline; otherwise fetch them)
    error      {code, message, job}
    cancelled  {job}
    heartbeat  {queued, running}    (every heartbeat interval while the owner has active jobs)

Any refused request gets ``error {code, message}`` with ``reply_to`` set to the request's id
(None when the request could not be authenticated).
"""

from __future__ import annotations

from .errors import (AlignError, Cancelled, EstimatorError, ProtocolError, RenderError,
                     ScailError, SequenceError, VideoError, WeightsMissing)

# requests
HELLO = "hello"
HEARTBEAT = "heartbeat"
UPLOAD_BEGIN = "upload_begin"
UPLOAD_CHUNK = "upload_chunk"
STATUS = "status"
CANCEL = "cancel"
ATTACH = "attach"
LIST_JOBS = "list_jobs"
FETCH = "fetch"

# replies and events
UPLOAD_STATE = "upload_state"
ACCEPTED = "accepted"
JOBS = "jobs"
POSES = "poses"
CHUNK = "chunk"
PROGRESS = "progress"
RESULT = "result"
ERROR = "error"
CANCELLED = "cancelled"

# job kinds (each is also the request type that submits it)
EXTRACT = "extract"
ALIGN = "align"
RENDER = "render"
RUN = "run"
JOB_KINDS = (EXTRACT, ALIGN, RENDER, RUN)
SLEEP = "sleep"  # diagnostic: waits, reporting progress (tests, benchmarks, health checks)
COPY = "copy"  # diagnostic: copies the input video to the result video
DIAGNOSTIC_KINDS = (SLEEP, COPY)

# job states
QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
TERMINAL_STATES = (DONE, FAILED, CANCELLED)

UPLOAD_CHUNK_BYTES = 1 << 20  # chunk size for uploads and downloads

# error code <-> exception class (first match wins, so subclasses come first)
ERROR_CLASSES = (
    ("cancelled", Cancelled),
    ("protocol", ProtocolError),
    ("sequence", SequenceError),
    ("video", VideoError),
    ("estimator", EstimatorError),
    ("render", RenderError),
    ("weights", WeightsMissing),
    ("align", AlignError),
)


class ServerError(ScailError):
    """The server refused a request or a job failed, with a code no local class matches.

    Codes: ``not_found`` (no such job), ``busy`` (queue full), ``forbidden`` (path outside
    the server's roots), ``unavailable`` (feature not in this version), ``bad_state`` (e.g.
    fetching the result of an unfinished job), ``internal`` (a server bug; see its log), ``error``.
    ``version`` (the peers speak different protocol versions; the message says which side to
    update, docs/wire.md) arrives unauthenticated and is raised as a ProtocolError.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def error_code(exc: BaseException) -> str:
    """The wire code for an exception (``code`` attribute first, then its class)."""
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        return code
    for name, cls in ERROR_CLASSES:
        if isinstance(exc, cls):
            return name
    return "error" if isinstance(exc, ScailError) else "internal"


def error_from_reply(code, message) -> ScailError:
    """The exception a client raises for an ``error {code, message}`` it received."""
    message = str(message)
    for name, cls in ERROR_CLASSES:
        if code == name:
            return cls(message)
    return ServerError(str(code), message)
