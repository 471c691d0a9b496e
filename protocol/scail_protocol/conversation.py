"""Every exchange with the backend, written once: generators that say what to send and wait for.

A conversation (hello, upload, extract, render, run, download, attach, ...) is a generator that
yields *actions* and gets answers back:

* ``reply = yield Request(type, body, arrays)`` -- send a request; the reply :class:`Message`
  comes back, or an error reply is raised at the ``yield`` (a ``ScailError`` subclass chosen by
  its code, :func:`scail_protocol.messages.error_from_reply`);
* ``event = yield NextEvent(job_id)`` -- the job's next event (progress, result, error,
  cancelled);
* ``yield Progress(stage, done, total)`` -- report progress (nothing comes back).

Its return value is the conversation's result. :class:`scail_protocol.exchange.Exchange` runs
one against a :class:`~scail_protocol.client.BackendClient`, blocking (the command-line client,
headless Blender) or a step per UI timer tick, with the same code path. Cleaning up (a
half-written download, say) happens in the generators' ``finally`` blocks, whichever way they
end. No bpy, no backend: numpy only (the socket is the client's).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from . import contract
from . import messages as M
from .errors import Cancelled, ProtocolError, ScailError
from .outputs import atomic_file, output_error
from .sequence import PoseSequence
from .wire import sequence_from_message, sequence_parts

log = logging.getLogger(__name__)

HASH_BLOCK_BYTES = 8 << 20  # bytes hashed between two progress reports (keeps UI ticks short)
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Request:
    """Action: send a request and resume with its reply."""

    type: str
    body: dict = field(default_factory=dict)
    arrays: Optional[dict] = None


@dataclass(frozen=True)
class NextEvent:
    """Action: resume with the next event of job ``job_id``."""

    job_id: str


@dataclass(frozen=True)
class Progress:
    """Action: report progress (``done`` of ``total`` units of ``stage``); resumes at once."""

    stage: str
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class JobResult:
    """The outcome of a finished job.

    Attributes:
        job_id: the job's id.
        job: the server's summary of the job (kind, state, times, report, ...).
        poses: the estimated PoseSequence (extract, run), else None.
        video: the rendered video on the server, ``{"bytes", "sha256", "path"}`` (``path`` only
            when it was written under one of the server's roots), else None.
        downloads: local paths this conversation saved, by what they hold ("poses", "video").
        warnings: what the job warned about, one line each (the job report's ``warnings``: a
            clip not at 16 fps, a damaged or truncated video, an alignment fallback), for the
            user to see as the local command line shows them; () when none.
    """

    job_id: str
    job: dict
    poses: Optional[PoseSequence] = None
    video: Optional[dict] = None
    downloads: dict = field(default_factory=dict)
    warnings: tuple = ()


# --- conversations ---------------------------------------------------------------------------------

def request(type: str, body: Optional[dict] = None, arrays=None):
    """One request; its reply (an error reply is raised)."""
    return (yield Request(type, dict(body or {}), arrays))


def hello():
    """The server's hello (protocol, server, capabilities, limits, workers, roots).

    A hello queued before a freshly started server was listening was signed before it started,
    and the server refuses such a message as a possible replay; it is sent again once.
    """
    try:
        return (yield Request(M.HELLO)).body
    except ProtocolError as e:
        if "before this server started" not in str(e):
            raise
        return (yield Request(M.HELLO)).body


def submit(kind: str, body: Optional[dict] = None, arrays=None):
    """Submit a job of ``kind``; returns its id."""
    return (yield Request(kind, dict(body or {}), arrays)).body["job"]["id"]


def upload(path):
    """Upload a local file into the server's cache (resumes; skipped when already there).

    Reports ``("upload", bytes, size)`` while hashing and sending. Returns the sha256 (hex).

    Raises:
        ScailError: the file cannot be read, or is empty (nothing is sent).
    """
    path = Path(path)
    digest, size, hashed = hashlib.sha256(), _size(path), 0
    if size == 0:
        raise ScailError(f"{path} is empty (0 bytes): there is nothing to upload; "
                         f"choose the full file")
    with _open(path) as f:
        for block in iter(lambda: f.read(HASH_BLOCK_BYTES), b""):
            digest.update(block)
            hashed += len(block)
            yield Progress("upload", hashed, size)
    sha256 = digest.hexdigest()
    reply = yield Request(M.UPLOAD_BEGIN, {"sha256": sha256, "size": size, "suffix": path.suffix})
    have = int(reply.body["have"])
    with _open(path) as f:
        while have < size:
            yield Progress("upload", have, size)
            f.seek(have)
            chunk = np.frombuffer(f.read(M.UPLOAD_CHUNK_BYTES), dtype=np.uint8)
            reply = yield Request(M.UPLOAD_CHUNK, {"sha256": sha256, "offset": have},
                                  {"data": chunk})
            have = int(reply.body["have"])
    yield Progress("upload", size, size)
    return sha256


def wait_for(job_id: str):
    """Follow a job to its end: forward its progress, then return its :class:`JobResult`.

    Raises:
        Cancelled: the job was cancelled.
        ScailError: the job failed (class chosen by the server's error code).
    """
    while True:
        event = yield NextEvent(job_id)
        if event.type == M.PROGRESS:
            body = event.body
            yield Progress(body.get("stage", ""), body.get("done", 0), body.get("total", 0))
            continue
        return (yield from outcome(event))


def outcome(event):
    """A job's final event as a :class:`JobResult` (poses fetched when not inline), or raised.

    Raises:
        Cancelled: the event says the job was cancelled.
        ScailError: the job failed (class chosen by the server's error code).
        ProtocolError: the event is not a job's final event.
    """
    if event.type == M.CANCELLED:
        raise Cancelled(f"job {event.job_id} was cancelled")
    if event.type == M.ERROR:
        raise M.error_from_reply(event.body.get("code"), event.body.get("message"))
    if event.type != M.RESULT:
        raise ProtocolError(f"expected a job's final event, got {event.type}")
    poses = None
    if event.body.get("poses_inline"):
        poses = sequence_from_message(event)
    elif event.body.get("has_poses"):
        poses = yield from fetch_poses(event.job_id)
    job = event.body["job"]
    return JobResult(job_id=event.job_id, job=job, poses=poses, video=event.body.get("video"),
                     warnings=job_warnings(job))


def job_warnings(job: dict) -> tuple:
    """The lines a job summary's report warns about (``report.warnings``); () when none, or
    from a backend too old to send them."""
    warnings = (job.get("report") or {}).get("warnings") or ()
    if not isinstance(warnings, (list, tuple)):
        return ()
    return tuple(str(line) for line in warnings)


def fetch_poses(job_id: str):
    """The PoseSequence a finished extract or run job produced."""
    yield Progress("download")
    return sequence_from_message((yield Request(M.FETCH, {"job_id": job_id, "what": "poses"})))


def download_video(job_id: str, path):
    """Download a finished job's video to ``path``: chunks, sha256 checked, written atomically
    (nothing at ``path`` unless the whole file arrived intact). Returns ``path``."""
    path = Path(path)
    digest, offset, total, expected = hashlib.sha256(), 0, None, None
    with atomic_file(path) as f:
        while total is None or offset < total:
            yield Progress("download", offset, total or 0)
            reply = yield Request(M.FETCH, {"job_id": job_id, "what": "video", "offset": offset,
                                            "length": M.UPLOAD_CHUNK_BYTES})
            data = reply.array("data", dtype="uint8", shape=(None,))
            total, expected = int(reply.body["total"]), reply.body["sha256"]
            if reply.body["offset"] != offset or (not len(data) and offset < total):
                raise ProtocolError(f"download of job {job_id}: bad chunk at {offset}")
            f.write(data.data)
            digest.update(data.data)
            offset += len(data)
        if digest.hexdigest() != expected:
            raise ProtocolError(f"download of job {job_id}: sha256 mismatch (got "
                                f"{digest.hexdigest()}, server says {expected})")
    yield Progress("download", offset, total)
    return path


def attach(job_id: str, *, poses_path=None, video_path=None):
    """Become the owner of a job (after a reconnect, or from another process), follow it to its
    end and save what it produced (see :func:`save`)."""
    yield Request(M.ATTACH, {"job_id": job_id})
    return (yield from save((yield from wait_for(job_id)), poses_path, video_path))


def extract(video, options: dict, *, upload_video="auto", reference=None, poses_path=None,
            address: str = "the backend", wait: bool = True, on_hello=None):
    """Video -> poses on the backend.

    Starts with a hello and :func:`check_capabilities`. The video (and, with
    ``options["use_align"]``, the ``reference`` image) is named by path; when ``upload_video``
    is True it is uploaded first, and when it is "auto" it is uploaded only after the server
    refuses the path (``forbidden``: a remote machine, a folder outside its roots).

    Args:
        video: local path of the video.
        options: request fields besides the files (:func:`extract_options`, ``out``).
        upload_video: True, False or "auto".
        reference: local path of the reference image (used with ``use_align``).
        poses_path: save the poses here (``.npz``), or None.
        address: the server's address, for messages.
        wait: False returns the job id once the server accepted it.
        on_hello: called with the server's hello before its capabilities are checked (the
            Blender panel shows what the backend can run).

    Returns:
        :class:`JobResult` whose ``poses`` is the PoseSequence (or the job id, see ``wait``).
    """
    yield Progress("connecting")
    check_capabilities((yield from _hello_shown(on_hello)), address, options)
    files = {"video": video, "reference": reference if options.get("use_align") else None}
    result = yield from _submit_with_files(M.EXTRACT, options, files, upload_video, wait)
    if not wait:
        return result
    if result.poses is None:
        raise ProtocolError(f"extract job {result.job_id} finished without poses")
    return (yield from save(result, poses_path, None))


def run(video, options: dict, *, upload_video="auto", reference=None, poses_path=None,
        video_path=None, address: str = "the backend", wait: bool = True, on_hello=None):
    """Video -> poses -> conditioning video on the backend (as :func:`extract`); saves the
    poses at ``poses_path`` and the video at ``video_path`` when given."""
    yield Progress("connecting")
    check_capabilities((yield from _hello_shown(on_hello)), address, options)
    files = {"video": video, "reference": reference if options.get("use_align") else None}
    result = yield from _submit_with_files(M.RUN, options, files, upload_video, wait)
    return (yield from save(result, poses_path, video_path)) if wait else result


RUN_POSES, RUN_VIDEO = contract.POSES_FILE, contract.RENDERED_FILE  # what `run` writes


def render(poses, *, out=None, video_path=None, wait: bool = True):
    """Poses -> conditioning video on the backend's renderer.

    Args:
        poses: a PoseSequence (sent inline) or a server-visible ``.npz`` path.
        out: optional server path for the ``.mp4`` (under one of its roots).
        video_path: download the video here, or None.
        wait: False returns the job id once the server accepted it.
    """
    yield Progress("submit")
    if isinstance(poses, PoseSequence):
        body, arrays = sequence_parts(poses)
        job_id = yield from submit(M.RENDER, dict(body, out=out), arrays)
    else:
        job_id = yield from submit(M.RENDER, {"poses_path": os.path.abspath(poses), "out": out})
    if not wait:
        return job_id
    result = yield from wait_for(job_id)
    if video_path is not None and result.video is None:
        raise ProtocolError(f"render job {job_id} finished without a video")
    return (yield from save(result, None, video_path))


def save(result: JobResult, poses_path=None, video_path=None):
    """Save a result's poses and video locally (each when asked for and present); returns the
    result with ``downloads`` filled in."""
    downloads = {}
    for path in (poses_path, video_path):  # a new output folder is made only now, at the end
        if path is not None:
            _make_folder(Path(path).parent)
    if poses_path is not None and result.poses is not None:
        downloads["poses"] = result.poses.save(poses_path)
    if video_path is not None and result.video is not None:
        downloads["video"] = yield from download_video(result.job_id, video_path)
    return replace(result, downloads=downloads)


def _hello_shown(on_hello):
    body = yield from hello()
    if on_hello is not None:
        on_hello(body)
    return body


def _submit_with_files(kind: str, options: dict, files: dict, upload_files, follow: bool):
    """Submit ``kind`` naming ``files`` by path (or by upload, see :func:`extract`); then follow
    the job to its end (its JobResult) or not (its id)."""
    named = {name: Path(path) for name, path in files.items() if path is not None}
    files = {name: path.resolve() for name, path in named.items()}
    specs = {name: {"path": str(path)} for name, path in files.items()}
    if upload_files is True:
        specs = yield from _upload_all(files)
    yield Progress("submit")
    try:
        job_id = yield from submit(kind, dict(options, **specs))
    except M.ServerError as e:
        if e.code != "forbidden" or upload_files != "auto":
            raise
        log.info("the backend cannot read the files by path (%s); uploading them", e)
        specs = yield from _upload_all(files)
        yield Progress("submit")
        job_id = yield from submit(kind, dict(options, **specs))
    if not follow:
        return job_id
    yield Progress("queued")
    uploads = {spec["upload"]: named[name] for name, spec in specs.items() if "upload" in spec}
    try:
        return (yield from wait_for(job_id))
    except ScailError as e:
        raise _naming_local_files(e, uploads)


def _upload_all(files: dict):
    specs = {}
    for name, path in files.items():
        specs[name] = {"upload": (yield from upload(path)), "name": path.name}
    return specs


def _naming_local_files(error: ScailError, uploads: dict) -> ScailError:
    """``error`` with each server path of an uploaded file (``.../<sha256><suffix>`` in the
    server's upload cache, which the user never saw) replaced by the local file it came from;
    ``uploads`` maps sha256 -> local path."""
    text = str(error)
    for sha256, path in uploads.items():
        text = re.sub(rf"[^\s'\"(]*{sha256}(?:\.[A-Za-z0-9]{{1,10}})?",
                      lambda _: str(path), text)
    if text != str(error):
        error.args = (text,)
    return error


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(exist_ok=True)
    except OSError as e:
        raise output_error(folder, e) from None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as e:
        raise ScailError(f"cannot read {path} for upload: {e.strerror}") from None


def _open(path: Path):
    try:
        return path.open("rb")
    except OSError as e:
        raise ScailError(f"cannot read {path} for upload: {e.strerror}") from None


# --- what the request says -------------------------------------------------------------------------

def resolution_hw(value):
    """[H, W] of a resolution setting ("DEFAULT", "512x896", or an (H, W) pair), or None for the
    backend's default.

    Raises:
        ValueError: anything else.
    """
    if value in (None, "", "DEFAULT"):
        return None
    if isinstance(value, str):
        value = value.lower().split("x")
    try:
        height, width = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"resolution must be 'DEFAULT', 'HxW' or (H, W), got {value!r}") from None
    return [height, width]


def extract_options(*, estimator: str = "auto", resolution=None, smoothing=None,
                    use_align: bool = False, cleanup: Optional[dict] = None,
                    fps: Optional[float] = None) -> dict:
    """Body fields of an ``extract`` or ``run`` request besides the files.

    Args:
        estimator: a name the server offers (case-insensitive), "auto" by default.
        resolution: see :func:`resolution_hw`; None/"DEFAULT" = the backend's (512 x 896).
        smoothing: None or 0 = off (the backend's default); a number in (0, 1] or a strength
            name ("light", "medium", "strong", "default"); the server checks it.
        use_align: align to the reference image (the backend must say
            ``capabilities.align`` in its hello).
        cleanup: the ``cleanup`` field (see :func:`cleanup_field`); None or {} = the backend's
            defaults (every person, no gap filling, no foot locking).
        fps: resample the clip in time to this rate (frames/s) by nearest timestamp; None =
            keep every frame (the backend's default); the server checks it.
    """
    options = {"estimator": str(estimator).lower()}
    if resolution_hw(resolution) is not None:
        options["resolution"] = resolution_hw(resolution)
    if smoothing not in (None, 0, 0.0):
        options["smoothing"] = smoothing
    if use_align:
        options["use_align"] = True
    if cleanup:
        options["cleanup"] = dict(cleanup)
    if fps is not None:
        options["fps"] = float(fps)
    return options


def cleanup_field(*, max_people: int = 0, fill_gaps: int = 0, take_fit: bool = False,
                  foot_lock: bool = False, order: str = "size") -> dict:
    """The ``cleanup`` request field from panel-style values (messages.py): ``max_people`` 0 =
    every person, ``fill_gaps`` 0 = off; only values that differ from the defaults are sent,
    so an empty dict means "the defaults"."""
    body = {}
    if int(max_people) > 0:
        body["max_people"] = int(max_people)
    if int(fill_gaps) > 0:
        body["fill_gaps"] = int(fill_gaps)
    if take_fit:
        body["take_fit"] = True
    if foot_lock:
        body["foot_lock"] = True
    if order != "size":
        body["order"] = str(order)
    return body


def check_capabilities(hello_body: dict, address: str, options: dict) -> None:
    """Raise ScailError when the backend's hello says it cannot do what ``options`` ask.

    New features are capability flags in ``hello["capabilities"]`` (docs/wire.md), so a
    backend older than the feature says so here, before any upload or job.
    """
    caps = hello_body.get("capabilities") or {}
    if caps.get("extract") is False:
        raise ScailError(f"the backend at {address} cannot extract poses (its pipeline is not "
                         f"installed there)")
    if options.get("smoothing") and not caps.get("smoothing"):
        raise ScailError(f"the backend at {address} cannot smooth poses in this version; set "
                         f"Smoothing to 0 or update the backend")
    if options.get("cleanup") and not caps.get("cleanup"):
        raise ScailError(f"the backend at {address} cannot keep fewer people, fill gaps or lock "
                         f"feet in this version; set those options off or update the backend")
    if options.get("use_align") and not caps.get("align"):
        raise ScailError(f"the backend at {address} cannot align to a reference image in this "
                         f"version; turn Align off or update the backend")
    estimators = caps.get("estimators") or {}
    names, wanted = estimators.get("names"), options.get("estimator", "auto")
    if names and wanted not in names:
        why = ((estimators.get("all") or {}).get(wanted) or {}).get("reason")
        raise ScailError(f"the backend at {address} cannot run the estimator {wanted!r}"
                         f"{': ' + why if why else ''} (it offers {', '.join(names)})")
