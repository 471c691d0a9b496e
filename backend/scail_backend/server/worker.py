"""A worker: runs one job at a time for the broker, lbbroker-style.

The worker owns a DEALER socket connected to the broker's worker-facing ROUTER and speaks the
same signed wire format as clients do. It announces itself with ``ready {capabilities}``, then
receives ``job`` messages one at a time and answers each with ``progress`` events and one final
``result``, ``error`` or ``cancelled``, which also means "ready again". While a job runs, its
progress callback and ``wait`` look for ``cancel`` / ``stop`` from the broker and raise
:class:`Cancelled`, so the stage that is running cleans up.

Workers are threads of the server process today; because they talk only through the socket,
the same loop could run in another process or on another machine behind the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from scail_protocol import messages as M
from scail_protocol.errors import Cancelled, ScailError
from scail_protocol.outputs import describe_os_error
from scail_protocol.wire import RefusedMessage, Session

from . import capabilities
from .tasks import TaskContext, run_task

log = logging.getLogger(__name__)

READY = "ready"
JOB = "job"
STOP = "stop"
PROGRESS_INTERVAL_S = 0.1  # progress events per job are sent at most this often
IDLE_POLL_MS = 200  # how often an idle worker checks its stop flag


class _Stop(Exception):
    """The broker asked the worker to exit."""


class Worker(threading.Thread):
    """One worker thread.

    Args:
        context: the zmq Context shared with the broker (inproc needs the same one).
        endpoint: the broker's worker-facing ROUTER endpoint.
        key: the shared key.
        name: the worker's identity (bytes on the wire), unique per broker.
        roots: the server's :class:`~.paths.Roots`; outputs under them are checked against
            them again right before their final rename. None: no such check.
    """

    def __init__(self, context, endpoint: str, key: bytes, name: str, *, roots=None):
        super().__init__(name=f"scail-worker-{name}", daemon=True)
        self.context = context
        self.endpoint = endpoint
        self.key = key
        self.roots = roots
        self.identity = name.encode()
        self.stopping = threading.Event()

    def run(self) -> None:
        import zmq

        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTING_ID, self.identity)
        sock.connect(self.endpoint)
        session = Session(self.key)
        try:
            session.send(sock, session.message(READY, {"capabilities": capabilities.detect()}))
            while not self.stopping.is_set():
                if not sock.poll(IDLE_POLL_MS):
                    continue
                msg = _recv(session, sock)
                if msg is None or msg.type == M.CANCEL:
                    continue  # a cancel that arrived after its job ended
                if msg.type == STOP:
                    break
                if msg.type == JOB:
                    self._run_job(session, sock, msg)
        except _Stop:
            pass
        finally:
            sock.close(linger=0)

    def _run_job(self, session: Session, sock, msg) -> None:
        job_id = msg.job_id
        state = _JobState(self, session, sock, job_id)
        ctx = TaskContext(Path(msg.body["job_dir"]), state.progress, state.wait,
                          check_output=self.roots.confine if self.roots else None)
        log.info("job %s (%s) started", job_id, msg.body["kind"])
        try:
            result = run_task(msg.body["kind"], msg.body["params"], ctx)
        except Cancelled:
            log.info("job %s cancelled", job_id)
            reply = session.message(M.CANCELLED, job_id=job_id)
        except ScailError as e:
            log.info("job %s failed: %s", job_id, e)
            reply = session.message(M.ERROR, {"code": M.error_code(e), "message": str(e)},
                                    job_id=job_id)
        except OSError as e:  # what the OS refused (a file, the disk): the job's error, in a line
            log.warning("job %s failed: %s", job_id, e)
            where = f"{e.filename}: " if e.filename else ""
            reply = session.message(M.ERROR, {"code": "error", "message":
                                              f"job {job_id}: {where}{describe_os_error(e)}"},
                                    job_id=job_id)
        except Exception as e:  # the worker boundary: a bug must not kill the worker
            log.exception("job %s crashed", job_id)
            reply = session.message(M.ERROR, {"code": "internal", "message":
                                              f"internal error in job {job_id}: "
                                              f"{type(e).__name__}: {e}"}, job_id=job_id)
        else:
            log.info("job %s done", job_id)
            reply = session.message(M.RESULT, {"result": result}, job_id=job_id)
        session.send(sock, reply)
        if state.stop_requested:
            raise _Stop()


class _JobState:
    """Progress, waiting and cancellation for the job a worker is running."""

    def __init__(self, worker: Worker, session: Session, sock, job_id: str):
        self.worker, self.session, self.sock, self.job_id = worker, session, sock, job_id
        self.cancelled = False
        self.stop_requested = False
        self._last_stage = None
        self._last_sent = 0.0

    def progress(self, stage: str, done: int, total: int) -> None:
        self._check(0)
        now = time.monotonic()
        final = total > 0 and done >= total
        if stage != self._last_stage or final or now - self._last_sent >= PROGRESS_INTERVAL_S:
            self._last_stage, self._last_sent = stage, now
            body = {"stage": str(stage), "done": int(done), "total": int(total)}
            self.session.send(self.sock, self.session.message(M.PROGRESS, body,
                                                              job_id=self.job_id))

    def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + max(0.0, seconds)
        while True:
            remaining = deadline - time.monotonic()
            self._check(max(0, int(remaining * 1000)))
            if remaining <= 0:
                return

    def _check(self, timeout_ms: int) -> None:
        """Handle broker messages (waiting up to ``timeout_ms`` for one); raise if cancelled."""
        if self.worker.stopping.is_set():
            self.stop_requested = self.cancelled = True
        while not self.cancelled and self.sock.poll(timeout_ms):
            timeout_ms = 0
            msg = _recv(self.session, self.sock)
            if msg is None:
                continue
            if msg.type == STOP:
                self.stop_requested = self.cancelled = True
            elif msg.type == M.CANCEL and msg.job_id == self.job_id:
                self.cancelled = True
        if self.cancelled:
            raise Cancelled(f"job {self.job_id} was cancelled")


def _recv(session: Session, sock):
    import zmq

    try:
        return session.recv(sock, zmq.NOBLOCK)
    except RefusedMessage as e:
        log.error("worker refused a message from the broker: %s", e)
        return None
