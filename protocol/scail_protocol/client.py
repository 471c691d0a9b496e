"""``BackendClient``: talk to a ``scail-pose serve`` backend over one ZeroMQ DEALER socket.

Used by the Blender add-on (inside Blender's Python: numpy and pyzmq only) and by
``scail-pose client ...``. The socket, signing, heartbeats and timeouts live here; what is said
over it (upload, extract, render, download, ...) is written once in
:mod:`scail_protocol.conversation`, run blocking with :meth:`BackendClient.run` or a step at a
time from a UI timer with :class:`~scail_protocol.exchange.Exchange`. The blocking
shortcuts below (``hello``, ``upload``, ``wait``, ``download_video``, ...) run those
conversations; ``poll(timeout_ms=0)`` returns whatever events arrived without waiting.

Every blocking call has a timeout and says which address it tried. After a timeout the socket is
replaced (a late reply to the old request cannot be mistaken for a new one); jobs keep running on
the server and :meth:`BackendClient.attach` picks one up again by id.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from pathlib import Path
from typing import Optional

from . import conversation as C
from .exchange import Exchange
from . import messages as M
from .conversation import JobResult, ProgressFn
from .errors import ProtocolError, ScailError, ServerTimeout
from .sequence import PoseSequence
from .wire import DEFAULT_MAX_MESSAGE_BYTES, Message, RefusedMessage, Session, version_advice

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
DEFAULT_TIMEOUT_S = 10.0  # silence after which a blocking call gives up
HEARTBEAT_S = 2.0  # how often a client with active jobs says it is alive
MAX_POLL_S = 86400.0  # longest single socket wait (zmq_poll takes a C int of milliseconds);
# a longer wait is made of several
KEY_FILE_NAME = "server.key"

__all__ = ["BackendClient", "JobResult", "ServerTimeout", "DEFAULT_ADDRESS", "DEFAULT_TIMEOUT_S",
           "default_key_file", "read_key_file"]


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


def _seconds(value, name: str) -> float:
    """A positive number of seconds (infinity allowed: wait on), as a float.

    Raises:
        ScailError: anything else, one line naming ``name``.
    """
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        seconds = math.nan
    if isinstance(value, bool) or not seconds > 0:
        raise ScailError(f"{name} must be a positive number of seconds, got {value!r:.40}")
    return seconds


def _poll_ms(wait_s: float) -> int:
    """``wait_s`` as the milliseconds of one socket poll: 0 or more, at most
    :data:`MAX_POLL_S` (a longer or infinite wait would overflow zmq_poll's C int)."""
    wait_s = min(float(wait_s), MAX_POLL_S)
    return max(0, int(wait_s * 1000)) if wait_s == wait_s else 0


class BackendClient:
    """A connection to one backend; owns one DEALER socket. Not thread-safe: one thread uses it.

    Args:
        address: the server's ZeroMQ endpoint, e.g. ``"tcp://127.0.0.1:5555"``.
        key: the shared key (bytes), as in the server's key file.
        timeout_s: how long a blocking call waits for the server before raising
            :class:`ServerTimeout` (any positive number; a huge one means "wait on").
        heartbeat_s: interval of heartbeats while this client has active jobs.
        max_message_bytes: largest message accepted from the server.
        context: a ``zmq.Context`` (default: the process-wide instance).

    Raises:
        ScailError: ``timeout_s`` or ``heartbeat_s`` is not a positive number, or ``address``
            is not a ZeroMQ endpoint.
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, key: bytes = b"", *,
                 timeout_s: float = DEFAULT_TIMEOUT_S, heartbeat_s: float = HEARTBEAT_S,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, context=None):
        self.address = address
        self.timeout_s = _seconds(timeout_s, "timeout_s")
        self.heartbeat_s = _seconds(heartbeat_s, "heartbeat_s")
        self.session = Session(key, max_message_bytes=max_message_bytes)
        self._max_message_bytes = max_message_bytes
        self._context = context
        self._socket = None
        self._events = deque()  # job events received while waiting for something else
        self.watching = set()  # ids of this client's jobs not yet finished
        self.abandoned = set()  # ids of requests whose replies nobody waits for any more
        self._last_sent = self._last_heard = time.monotonic()
        self._connect()

    # --- connection ----------------------------------------------------------------------------

    def _connect(self) -> None:
        import zmq

        context = self._context or zmq.Context.instance()
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self._max_message_bytes)
        try:
            sock.connect(self.address)
        except (zmq.ZMQError, TypeError) as e:
            sock.close(linger=0)
            raise ScailError(f"cannot connect to {self.address!r}: {e}; give an address such "
                             f"as {DEFAULT_ADDRESS}") from None
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
                timeout_s: Optional[float] = None) -> Message:
        """Send a request and wait for its reply; job events arriving meanwhile are kept.

        Raises:
            ServerTimeout: no reply within ``timeout_s`` (default: the client's).
            ScailError: the server answered with an error (class chosen by its code).
        """
        return self.converse(C.request(type, body, arrays), timeout_s=timeout_s)

    def poll(self, timeout_ms: int = 0) -> list:
        """Job events that have arrived, waiting at most ``timeout_ms`` for the first one.

        Sends a heartbeat when one is due. With ``timeout_ms=0`` it never blocks. Heartbeats are
        handled here and not returned.

        Returns:
            list of :class:`Message` (``progress``, ``result``, ``error``, ``cancelled``, ...).

        Raises:
            ServerTimeout: this client watches active jobs and the server has been silent longer
                than ``timeout_s`` (call :meth:`reconnect`, then :meth:`attach`).
            RefusedMessage: a message from the server failed validation (e.g. a different key).
        """
        events, wait_s = [], max(0.0, timeout_ms / 1000.0)
        try:
            while (msg := self.receive(wait_s)) is not None:
                events.append(msg)
                wait_s = 0.0
        except BaseException:
            self._events.extendleft(reversed(events))  # nothing is lost if this raises
            raise
        for msg in events:
            if msg.type == M.ACCEPTED:
                self.watching.add(msg.body["job"]["id"])
            elif msg.type in (M.RESULT, M.ERROR, M.CANCELLED) and msg.reply_to is None:
                self.watching.discard(msg.job_id)
        if self.watching and self.silent_for_s > self.timeout_s:
            raise ServerTimeout(self.silence_message(f"within {self.timeout_s:g} s"))
        return events

    def hand_back(self, messages) -> None:
        """Keep ``messages`` (received, not used) for the next :meth:`receive` or :meth:`poll`."""
        self._events.extend(messages)

    def receive(self, wait_s: float = 0.0) -> Optional[Message]:
        """The next message: one set aside while :meth:`request` waited, else one from the
        socket (waiting at most ``wait_s``); None when none came. Heartbeats are absorbed."""
        if self._events:
            return self._events.popleft()
        return self._read(wait_s)

    def _read(self, wait_s: float) -> Optional[Message]:
        """One message from the socket (None when none came in ``wait_s``)."""
        import zmq

        self._heartbeat_if_due()
        wait_s = min(wait_s, self.heartbeat_s) if self.watching else wait_s
        while self._socket.poll(_poll_ms(wait_s)):
            frames = self._socket.recv_multipart(zmq.NOBLOCK)
            self._last_heard = time.monotonic()
            try:
                msg = self.session.deserialize(frames)
            except RefusedMessage as e:
                raise RefusedMessage(self._refusal_message(e)) from None
            if msg.type != M.HEARTBEAT:
                return msg
            wait_s = 0.0  # a heartbeat: take whatever else is already there
        return None

    def _refusal_message(self, e: RefusedMessage) -> str:
        if e.peer_version is not None:
            return version_advice(e.peer_version, peer=f"the backend at {self.address}",
                                  peer_program="the backend (scail-pose)",
                                  here_program="this client (the Blender add-on or scail-pose)",
                                  here_version=self.session.version)
        return (f"message from {self.address} refused: {e} (do the client and the server use "
                f"the same key file?)")

    def _heartbeat_if_due(self) -> None:
        if self.watching and time.monotonic() - self._last_sent >= self.heartbeat_s:
            self.send(M.HEARTBEAT)

    def silence_message(self, within: str) -> str:
        """"no reply from ADDRESS {within}; is `scail-pose serve` running?\""""
        return f"no reply from {self.address} {within}; is `scail-pose serve` running?"

    def refused(self, body: dict) -> ScailError:
        """The error for an ``error`` the server could not tie to a request of ours (it could
        not authenticate it, or it speaks another protocol version)."""
        if body.get("code") == "version":
            return ProtocolError(str(body.get("message")))
        return ProtocolError(f"{self.address} refused a message: {body.get('message')} (do the "
                             f"client and the server use the same key file?)")

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

    # --- conversations, blocking ---------------------------------------------------------------

    def converse(self, conversation, progress: Optional[ProgressFn] = None, *,
                 timeout_s: Optional[float] = None):
        """Run a conversation of :mod:`scail_protocol.conversation` to its end; its result.

        Args:
            conversation: the generator.
            progress: called as ``progress(stage, done, total)`` for each report.
            timeout_s: longest silence from the server (default: the client's).

        Raises:
            ServerTimeout: the server went silent (not running, unreachable, killed).
            ScailError: the server refused, or the job failed or was cancelled.
        """
        saved, self.timeout_s = self.timeout_s, self.timeout_s if timeout_s is None else timeout_s
        try:
            return Exchange(self, conversation, progress=progress).run()
        finally:
            self.timeout_s = saved

    def upload(self, path, progress: Optional[ProgressFn] = None) -> str:
        """Upload a local file into the server's cache; its sha256 (see ``conversation.upload``)."""
        return self.converse(C.upload(path), progress)

    def fetch_poses(self, job_id: str) -> PoseSequence:
        """The PoseSequence a finished extract or run job produced."""
        return self.converse(C.fetch_poses(job_id))

    def download_video(self, job_id: str, path, progress: Optional[ProgressFn] = None) -> Path:
        """Download a finished job's video to ``path`` (chunks; sha256 checked; atomic)."""
        return self.converse(C.download_video(job_id, path), progress)

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
        self._last_heard = time.monotonic()
        return self.converse(C.wait_for(job_id), progress, timeout_s=timeout_s)

    def result_from(self, msg: Message) -> JobResult:
        """Turn a job's final event into a :class:`JobResult` (or raise its error)."""
        return self.converse(C.outcome(msg))
