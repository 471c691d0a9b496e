"""``BackendClient``: talk to a ``scail-pose serve`` backend over one ZeroMQ DEALER socket.

Used by the Blender add-on (inside Blender's Python: numpy and pyzmq only) and by
``scail-pose client ...``. Two ways to use it:

* blocking: ``hello()``, ``extract(...)`` / ``render(...)`` / ``run(...)`` return a job id,
  ``wait(job_id, progress=...)`` returns a :class:`JobResult`, ``download_video(...)``;
* non-blocking: submit, then call ``poll(timeout_ms=0)`` from a timer; it returns the decoded
  events (``progress``, ``result``, ``error``, ``cancelled``) and never waits.

Every blocking call has a timeout and says which address it tried. After a timeout the socket is
replaced (a late reply to the old request cannot be mistaken for a new one); jobs keep running on
the server and :meth:`BackendClient.attach` picks one up again by id.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from . import messages as M
from .errors import Cancelled, ProtocolError, ScailError
from .sequence import PoseSequence
from .wire import (DEFAULT_MAX_MESSAGE_BYTES, Message, RefusedMessage, Session,
                   sequence_from_message, sequence_parts)

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
DEFAULT_TIMEOUT_S = 10.0  # silence after which a blocking call gives up
HEARTBEAT_S = 2.0  # how often a client with active jobs says it is alive
KEY_FILE_NAME = "server.key"

ProgressFn = Callable[[str, int, int], None]
_JOB_EVENTS = (M.PROGRESS, M.RESULT, M.ERROR, M.CANCELLED)


class ServerTimeout(ScailError):
    """The server did not answer in time (not running, unreachable, or stuck)."""


@dataclass(frozen=True)
class JobResult:
    """The outcome of a finished job.

    Attributes:
        job_id: the job's id.
        job: the server's summary of the job (kind, state, times, report, ...).
        poses: the estimated PoseSequence (extract, run), else None.
        video: the rendered video on the server, ``{"bytes", "sha256", "path"}`` (``path`` only
            when it was written under one of the server's roots), else None. Download it with
            :meth:`BackendClient.download_video`.
    """

    job_id: str
    job: dict
    poses: Optional[PoseSequence] = None
    video: Optional[dict] = None


def default_key_file() -> Path:
    """Where ``scail-pose serve`` keeps its key unless told otherwise:
    ``$XDG_CONFIG_HOME/scail-pose/server.key`` (``~/.config/...`` when the variable is unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "scail-pose" / KEY_FILE_NAME


def read_key_file(path) -> bytes:
    """The shared key stored in ``path`` (surrounding whitespace removed).

    Raises:
        ScailError: the file is missing, unreadable or empty.
    """
    path = Path(path)
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        raise ScailError(f"key file {path} not found; start `scail-pose serve` once to create it, "
                         f"or copy the server's key file here") from None
    except OSError as e:
        raise ScailError(f"cannot read key file {path}: {e.strerror}") from None
    if not key:
        raise ScailError(f"key file {path} is empty")
    return key


class BackendClient:
    """A connection to one backend; owns one DEALER socket. Not thread-safe: one thread uses it.

    Args:
        address: the server's ZeroMQ endpoint, e.g. ``"tcp://127.0.0.1:5555"``.
        key: the shared key (bytes), as in the server's key file.
        timeout_s: how long a blocking call waits for the server before raising
            :class:`ServerTimeout`.
        heartbeat_s: interval of heartbeats while this client has active jobs.
        max_message_bytes: largest message accepted from the server.
        context: a ``zmq.Context`` (default: the process-wide instance).
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, key: bytes = b"", *,
                 timeout_s: float = DEFAULT_TIMEOUT_S, heartbeat_s: float = HEARTBEAT_S,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, context=None):
        self.address = address
        self.timeout_s = float(timeout_s)
        self.heartbeat_s = float(heartbeat_s)
        self.session = Session(key, max_message_bytes=max_message_bytes)
        self._max_message_bytes = max_message_bytes
        self._context = context
        self._socket = None
        self._events = deque()  # job events received while waiting for something else
        self.watching = set()  # ids of this client's jobs not yet finished
        self._last_sent = self._last_heard = time.monotonic()
        self._connect()

    # --- connection ----------------------------------------------------------------------------

    def _connect(self) -> None:
        import zmq

        context = self._context or zmq.Context.instance()
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self._max_message_bytes)
        sock.connect(self.address)
        self._socket = sock
        self._last_heard = time.monotonic()

    def close(self) -> None:
        """Close the socket (pending outgoing messages are dropped)."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def reconnect(self) -> None:
        """Replace the socket with a new one (the server sees a new peer; re-attach jobs)."""
        self.close()
        self._connect()

    def __enter__(self) -> "BackendClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def silent_for_s(self) -> float:
        """Seconds since anything arrived from the server."""
        return time.monotonic() - self._last_heard

    # --- messages ------------------------------------------------------------------------------

    def send(self, type: str, body: Optional[dict] = None, *, arrays=None,
             job_id: Optional[str] = None) -> Message:
        """Send one message without waiting; returns it (its ``msg_id`` names the reply)."""
        if self._socket is None:
            self._connect()
        msg = self.session.message(type, body, arrays=arrays, job_id=job_id)
        self.session.send(self._socket, msg)
        self._last_sent = time.monotonic()
        return msg

    def request(self, type: str, body: Optional[dict] = None, *, arrays=None,
                job_id: Optional[str] = None, timeout_s: Optional[float] = None) -> Message:
        """Send a request and wait for its reply; job events arriving meanwhile are kept.

        Raises:
            ServerTimeout: no reply within ``timeout_s`` (default: the client's).
            ScailError: the server answered with an error (class chosen by its code).
        """
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        sent = self.send(type, body, arrays=arrays, job_id=job_id)
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._give_up(f"within {timeout_s:g} s")
            reply = self._receive(remaining)
            if reply is None:
                continue
            if reply.reply_to == sent.msg_id:
                if reply.type == M.ERROR:
                    raise M.error_from_reply(reply.body.get("code"), reply.body.get("message"))
                return reply
            if reply.type == M.ERROR and reply.reply_to is None and reply.job_id is None:
                # The server could not authenticate a message from us; it cannot say which.
                raise ProtocolError(f"{self.address} refused a message: "
                                    f"{reply.body.get('message')}")
            self._events.append(reply)

    def poll(self, timeout_ms: int = 0) -> list:
        """Job events that have arrived, waiting at most ``timeout_ms`` for the first one.

        Sends a heartbeat when one is due. Meant for a UI timer: with ``timeout_ms=0`` it never
        blocks. Heartbeats are handled here and not returned.

        Returns:
            list of :class:`Message` (``progress``, ``result``, ``error``, ``cancelled``, ...).

        Raises:
            ServerTimeout: this client watches active jobs and the server has been silent longer
                than ``timeout_s`` (call :meth:`reconnect`, then :meth:`attach`).
            RefusedMessage: a message from the server failed validation (e.g. a different key).
        """
        wait_s = max(0.0, timeout_ms / 1000.0) if not self._events else 0.0
        while True:  # kept in self._events until the end, so nothing is lost if this raises
            msg = self._receive(wait_s)
            if msg is None:
                break
            self._events.append(msg)
            wait_s = 0.0
        events = list(self._events)
        self._events.clear()
        for msg in events:
            if msg.type == M.ACCEPTED:
                self.watching.add(msg.body["job"]["id"])
            elif msg.type in (M.RESULT, M.ERROR, M.CANCELLED) and msg.reply_to is None:
                self.watching.discard(msg.job_id)
        if self.watching and self.silent_for_s > self.timeout_s:
            raise ServerTimeout(self._silence_message(f"within {self.timeout_s:g} s"))
        return events

    def _receive(self, wait_s: float) -> Optional[Message]:
        """One message from the server (None when none came in ``wait_s``); heartbeats absorbed."""
        import zmq

        self._heartbeat_if_due()
        wait_s = min(wait_s, self.heartbeat_s) if self.watching else wait_s
        while self._socket.poll(max(0, int(wait_s * 1000))):
            frames = self._socket.recv_multipart(zmq.NOBLOCK)
            self._last_heard = time.monotonic()
            try:
                msg = self.session.deserialize(frames)
            except RefusedMessage as e:
                raise RefusedMessage(f"message from {self.address} refused: {e} (do the client "
                                     f"and the server use the same key file?)") from None
            if msg.type != M.HEARTBEAT:
                return msg
            wait_s = 0.0  # a heartbeat: take whatever else is already there
        return None

    def _heartbeat_if_due(self) -> None:
        if self.watching and time.monotonic() - self._last_sent >= self.heartbeat_s:
            self.send(M.HEARTBEAT)

    def _silence_message(self, within: str) -> str:
        return f"no reply from {self.address} {within}; is `scail-pose serve` running?"

    def _give_up(self, within: str):
        self.reconnect()
        raise ServerTimeout(self._silence_message(within))

    # --- requests ------------------------------------------------------------------------------

    def hello(self) -> dict:
        """The server's hello: protocol and server versions, capabilities, limits, workers."""
        return self.request(M.HELLO).body

    def status(self, job_id: str) -> dict:
        """The server's summary of one job (state, stage, frames done and total, ...)."""
        return self.request(M.STATUS, {"job_id": job_id}).body["job"]

    def cancel(self, job_id: str) -> dict:
        """Ask the server to cancel a job; its ``cancelled`` event follows when it has stopped."""
        return self.request(M.CANCEL, {"job_id": job_id}).body["job"]

    def list_jobs(self) -> list:
        """Summaries of every job the server holds (queued, running and recently finished)."""
        return self.request(M.LIST_JOBS).body["jobs"]

    def attach(self, job_id: str) -> dict:
        """Become the owner of a job (after a reconnect or from another process).

        Its events come here from now on; a finished job's final event is sent again.
        """
        job = self.request(M.ATTACH, {"job_id": job_id}).body["job"]
        self.watching.add(job_id)
        return job

    def submit(self, kind: str, body: Optional[dict] = None, *, arrays=None) -> str:
        """Submit a job of ``kind`` (a request type of :mod:`scail_protocol.messages`)."""
        job = self.request(kind, body, arrays=arrays).body["job"]
        self.watching.add(job["id"])
        return job["id"]

    def extract(self, video, *, upload: bool = False, estimator: str = "auto", resolution=None,
                smoothing=None, out: Optional[str] = None) -> str:
        """Submit video -> poses. ``video`` is a server-visible path, or a local file with
        ``upload=True``. ``resolution``: working (H, W) in pixels for landscape input, None =
        the server's default. ``smoothing``: temporal smoothing strength, None = off, else
        "light", "medium", "strong", "default" or a number in [0, 1] (the server checks it).
        ``out``: optional server path for ``poses.npz`` (under a root)."""
        body = {"video": self._video_spec(video, upload), "estimator": estimator,
                "resolution": _size_list(resolution), "smoothing": smoothing, "out": out}
        return self.submit(M.EXTRACT, body)

    def render(self, poses, *, out: Optional[str] = None) -> str:
        """Submit poses -> conditioning video. ``poses`` is a PoseSequence (sent inline) or a
        server-visible ``.npz`` path. ``out``: optional server path for the ``.mp4``."""
        if isinstance(poses, PoseSequence):
            body, arrays = sequence_parts(poses)
            return self.submit(M.RENDER, dict(body, out=out), arrays=arrays)
        return self.submit(M.RENDER, {"poses_path": os.path.abspath(poses), "out": out})

    def run(self, video, *, upload: bool = False, estimator: str = "auto", resolution=None,
            smoothing=None, out_dir: Optional[str] = None) -> str:
        """Submit the whole pipeline: video -> poses -> conditioning video (options as
        :meth:`extract`; ``out_dir``: optional server folder for both outputs)."""
        body = {"video": self._video_spec(video, upload), "estimator": estimator,
                "resolution": _size_list(resolution), "smoothing": smoothing, "out_dir": out_dir}
        return self.submit(M.RUN, body)

    def _video_spec(self, video, upload: bool) -> dict:
        if upload:
            return {"upload": self.upload(video), "name": Path(video).name}
        return {"path": os.path.abspath(video)}

    # --- files ---------------------------------------------------------------------------------

    def upload(self, path, progress: Optional[ProgressFn] = None) -> str:
        """Upload a local file into the server's cache (resumes; skipped when already there).

        Returns:
            the file's sha256 (hex), which names it in later requests.
        """
        path = Path(path)
        sha256, size = _file_sha256(path)
        body = {"sha256": sha256, "size": size, "suffix": path.suffix}
        have = self.request(M.UPLOAD_BEGIN, body).body["have"]
        import numpy as np

        with path.open("rb") as f:
            while have < size:
                if progress:
                    progress("upload", have, size)
                f.seek(have)
                chunk = np.frombuffer(f.read(M.UPLOAD_CHUNK_BYTES), dtype=np.uint8)
                have = self.request(M.UPLOAD_CHUNK, {"sha256": sha256, "offset": have},
                                    arrays={"data": chunk}).body["have"]
        if progress:
            progress("upload", size, size)
        return sha256

    def fetch_poses(self, job_id: str) -> PoseSequence:
        """The PoseSequence a finished extract or run job produced."""
        reply = self.request(M.FETCH, {"job_id": job_id, "what": "poses"})
        return sequence_from_message(reply)

    def download_video(self, job_id: str, path, progress: Optional[ProgressFn] = None) -> Path:
        """Download a finished job's video to ``path`` (chunks; sha256 checked; atomic)."""
        path = Path(path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part",
                                       dir=path.parent if str(path.parent) else ".")
        except OSError as e:
            raise ScailError(f"cannot write {path}: {e.strerror}") from None
        digest, offset, total = hashlib.sha256(), 0, None
        try:
            with os.fdopen(fd, "wb") as f:
                while total is None or offset < total:
                    reply = self.request(M.FETCH, {"job_id": job_id, "what": "video",
                                                   "offset": offset,
                                                   "length": M.UPLOAD_CHUNK_BYTES})
                    data = reply.array("data", dtype="uint8", shape=(None,))
                    total, expected = reply.body["total"], reply.body["sha256"]
                    if reply.body["offset"] != offset or (not len(data) and offset < total):
                        raise ProtocolError(f"download of job {job_id}: bad chunk at {offset}")
                    f.write(data.data)
                    digest.update(data.data)
                    offset += len(data)
                    if progress:
                        progress("download", offset, total)
            if digest.hexdigest() != expected:
                raise ProtocolError(f"download of job {job_id}: sha256 mismatch "
                                    f"(got {digest.hexdigest()}, server says {expected})")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    # --- waiting -------------------------------------------------------------------------------

    def wait(self, job_id: str, progress: Optional[ProgressFn] = None,
             timeout_s: Optional[float] = None) -> JobResult:
        """Block until a job of this client ends, forwarding its progress.

        Args:
            job_id: a job submitted or attached by this client.
            progress: called as ``progress(stage, done, total)`` for each progress event.
            timeout_s: longest silence from the server before giving up (default: the client's);
                a healthy server answers heartbeats, so a long job does not time out.

        Raises:
            ServerTimeout: the server went silent (killed, unreachable); the job may be lost.
            Cancelled: the job was cancelled.
            ScailError: the job failed (class chosen by the server's error code).
        """
        silence_s = self.timeout_s if timeout_s is None else timeout_s
        self.watching.add(job_id)
        self._last_heard = time.monotonic()
        while True:
            for index, msg in enumerate(self._events):
                if msg.job_id == job_id and msg.type in _JOB_EVENTS:
                    del self._events[index]
                    break
            else:
                msg = self._receive(max(0.0, silence_s - self.silent_for_s))
                if msg is None:
                    if self.silent_for_s >= silence_s:
                        self._give_up(f"within {silence_s:g} s while waiting for job {job_id}")
                    continue
                if msg.job_id != job_id or msg.type not in _JOB_EVENTS:
                    self._events.append(msg)
                    continue
            if msg.type == M.PROGRESS:
                if progress:
                    progress(msg.body["stage"], msg.body["done"], msg.body["total"])
                continue
            self.watching.discard(job_id)
            return self.result_from(msg)

    def result_from(self, msg: Message) -> JobResult:
        """Turn a job's final event into a :class:`JobResult` (or raise its error)."""
        if msg.type == M.CANCELLED:
            raise Cancelled(f"job {msg.job_id} was cancelled")
        if msg.type == M.ERROR:
            raise M.error_from_reply(msg.body.get("code"), msg.body.get("message"))
        if msg.type != M.RESULT:
            raise ProtocolError(f"expected a job's final event, got {msg.type}")
        poses = None
        if msg.body.get("poses_inline"):
            poses = sequence_from_message(msg)
        elif msg.body.get("has_poses"):
            poses = self.fetch_poses(msg.job_id)
        return JobResult(job_id=msg.job_id, job=msg.body["job"], poses=poses,
                         video=msg.body.get("video"))


def _size_list(size):
    return None if size is None else [int(v) for v in size]


def _file_sha256(path: Path) -> tuple:
    digest, size = hashlib.sha256(), 0
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(M.UPLOAD_CHUNK_BYTES), b""):
                digest.update(block)
                size += len(block)
    except OSError as e:
        raise ScailError(f"cannot read {path} for upload: {e.strerror}") from None
    return digest.hexdigest(), size
