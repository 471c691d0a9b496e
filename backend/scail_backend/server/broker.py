"""The server: a ROUTER for clients, a ROUTER for workers, one poll loop between them.

Shaped after the ZeroMQ guide's load-balancing broker (lbbroker): workers announce themselves
with ``ready``, the broker hands a queued job to a free worker, and the worker's final event
makes it free again. Unlike lbbroker the client-facing socket stays on the poller while every
worker is busy, because status, cancel, uploads and heartbeats must be answered at all times;
the job queue (bounded) lives in the broker instead. Every message on both sockets is a signed
:mod:`scail_protocol.wire` message, so a worker could as well be another process.

The loop never trusts input: a message that fails validation is answered with ``error`` (when
the sender's address is known) and logged; a request that fails is answered with ``error``
naming the problem; neither stops the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Optional

from scail_protocol import messages as M
from scail_protocol.errors import ProtocolError, ScailError
from scail_protocol.outputs import describe_os_error
from scail_protocol.sequence import PoseSequence
from scail_protocol.wire import (PROTOCOL_VERSION, Message, RefusedMessage, Session,
                                 sequence_parts, version_advice)

from .. import __version__
from . import submit, workdir
from .config import ServerConfig, bind_error
from .jobs import Job, JobTable, new_job_id, remove_job_dir
from .paths import Roots
from .uploads import UploadCache
from .validate import RequestError, get_field, get_int, get_sha256
from .worker import JOB, READY, STOP, Worker

log = logging.getLogger(__name__)

TICK_MS = 100  # longest poll; housekeeping and stop() are noticed this often
MAX_BATCH = 256  # messages handled from one socket before looking at the other
WORKER_START_TIMEOUT_S = 30.0
WORKER_JOIN_TIMEOUT_S = 10.0
MAX_FETCH_BYTES = 8 * M.UPLOAD_CHUNK_BYTES
HOUSEKEEPING_S = 1.0
FAREWELL_LINGER_MS = 100  # at shutdown, "server shut down" notices get this long to leave


class Server:
    """``scail-pose serve`` as an object: ``start()``, ``serve_forever()``, ``stop()``.

    ``stop()`` may be called from any thread (or a signal handler); ``serve_forever()`` then
    returns within :data:`TICK_MS` plus the time workers take to abandon their jobs.

    Args:
        config: the settings.
        context: a zmq Context; default a new one, terminated when the server closes.
    """

    def __init__(self, config: ServerConfig, *, context=None):
        import zmq

        self.config = config
        self._own_context = context is None
        self._context = context or zmq.Context()
        # not_before: requests signed before this server started are refused, so one captured
        # from an earlier run of a server with the same key cannot be replayed against this one.
        self.session = Session(config.key, max_message_bytes=config.max_message_bytes,
                               time_window_s=config.time_window_s, not_before=time.time())
        self.roots = Roots(config.roots)
        self.work = workdir.WorkDir(config.resolved_work_dir())
        self.uploads = UploadCache(self.work.uploads, max_file_bytes=config.max_upload_bytes,
                                   max_total_bytes=config.upload_cache_bytes)
        self.jobs = JobTable(config.max_queue, config.keep_results_s)
        self.address = None
        self._stopping = threading.Event()
        self._front = self._back = None
        self._workers = {}  # identity -> {"thread", "capabilities", "job"}
        self._idle = deque()  # identities of workers waiting for a job
        self._last_seen = {}  # owner identities -> monotonic time of their last message
        self._next_heartbeat = self._next_housekeeping = 0.0
        self._handlers = {
            M.HELLO: self._on_hello, M.HEARTBEAT: self._on_heartbeat,
            M.UPLOAD_BEGIN: self._on_upload_begin, M.UPLOAD_CHUNK: self._on_upload_chunk,
            M.STATUS: self._on_status, M.CANCEL: self._on_cancel, M.ATTACH: self._on_attach,
            M.LIST_JOBS: self._on_list_jobs, M.FETCH: self._on_fetch,
            **{kind: self._on_submit for kind in submit.SUBMIT_TYPES},
        }
        self._worker_handlers = {READY: self._on_ready, M.PROGRESS: self._on_progress,
                                 M.RESULT: self._on_finished, M.ERROR: self._on_finished,
                                 M.CANCELLED: self._on_finished}

    # --- life cycle ----------------------------------------------------------------------------

    def start(self) -> str:
        """Bind the sockets, start the workers and wait for them; returns the bound address.

        Raises:
            ScailError: the endpoint cannot be bound (one line: ``config.bind_error``), or the
                workers did not start in time.
        """
        import zmq

        front = self._context.socket(zmq.ROUTER)
        for option, value in ((zmq.LINGER, 0), (zmq.ROUTER_MANDATORY, 1),
                              (zmq.MAXMSGSIZE, self.config.max_message_bytes)):
            front.setsockopt(option, value)
        try:
            front.bind(self.config.bind)
        except zmq.ZMQError as e:
            front.close(linger=0)
            self.work.close()
            if self._own_context:
                self._context.term()
            raise bind_error(self.config.bind, e) from None
        self._front = front
        self.address = front.getsockopt_string(zmq.LAST_ENDPOINT)
        self._back = self._context.socket(zmq.ROUTER)
        self._back.setsockopt(zmq.LINGER, 0)
        self._back.setsockopt(zmq.ROUTER_MANDATORY, 1)
        endpoint = f"inproc://scail-workers-{id(self):x}"
        self._back.bind(endpoint)
        for index in range(max(1, self.config.workers)):
            worker = Worker(self._context, endpoint, self.config.key, f"w{index}",
                            roots=self.roots)
            self._workers[worker.identity] = {"thread": worker, "capabilities": None, "job": None}
            worker.start()
        self._await_workers()
        log.info("listening on %s with %d worker(s); roots: %s", self.address,
                 len(self._workers), ", ".join(map(str, self.roots.roots)) or "none")
        return self.address

    def _await_workers(self) -> None:
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while any(w["capabilities"] is None for w in self._workers.values()):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._back.poll(int(remaining * 1000)):
                raise ScailError("the server's workers did not start in time")
            self._handle_worker(self._back.recv_multipart())

    def serve_forever(self) -> None:
        """Run the loop until :meth:`stop`; then shut down: owners of unfinished jobs are told,
        running jobs are cancelled, sockets close (linger 0, except a bounded
        :data:`FAREWELL_LINGER_MS` for those notices)."""
        import zmq

        if self._front is None:
            self.start()
        poller = zmq.Poller()
        poller.register(self._front, zmq.POLLIN)
        poller.register(self._back, zmq.POLLIN)
        try:
            while not self._stopping.is_set():
                events = dict(poller.poll(TICK_MS))
                if self._back in events:
                    self._drain(self._back, self._handle_worker)
                if self._front in events:
                    self._drain(self._front, self._handle_client)
                self._dispatch()
                self._housekeeping()
        finally:
            self._shutdown()

    def stop(self) -> None:
        """Ask the loop to end (thread-safe, signal-safe)."""
        self._stopping.set()

    def _shutdown(self) -> None:
        for job in self.jobs.active():
            self._send_event(job, M.ERROR, {"code": "unavailable", "message":
                                            "the server shut down; submit the job again when "
                                            "it is back"})
        for identity, worker in self._workers.items():
            worker["thread"].stopping.set()
            self._send_worker(identity, STOP)
        for worker in self._workers.values():
            worker["thread"].join(WORKER_JOIN_TIMEOUT_S)
        self._front.close(linger=FAREWELL_LINGER_MS)
        self._back.close(linger=0)
        self.work.close()
        if self._own_context:
            self._context.term()
        log.info("server on %s stopped", self.address)

    # --- receiving -----------------------------------------------------------------------------

    @staticmethod
    def _drain(sock, handle) -> None:
        import zmq

        for _ in range(MAX_BATCH):
            try:  # zmq Frames, not copies: checked as views (wire.Session.deserialize)
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            handle(frames)

    def _handle_client(self, frames: list) -> None:
        try:
            msg = self.session.deserialize(frames)
        except RefusedMessage as e:
            # Without a delimiter the envelope is unknown, but the ROUTER always put the
            # sender's routing id first.
            identities = e.identities or tuple(f.bytes for f in frames[:1])
            log.warning("refused a message from %s: %s", _peer(identities), e)
            body, version = {"code": "protocol", "message": str(e)}, self.session.version
            if e.peer_version is not None:  # answered in the client's version, so it can read it
                body, version = {"code": "version", "message": version_advice(
                    e.peer_version, peer="this client", here_program="the backend (scail-pose)",
                    peer_program="the client (the Blender add-on or scail-pose)",
                    here_version=self.session.version)}, e.peer_version
            self._send(self.session.message(M.ERROR, body, reply_to=e.msg_id,
                                            identities=identities), version)
            return
        self._seen(msg.identities)
        handler = self._handlers.get(msg.type)
        try:
            if handler is None:
                raise ProtocolError(f"unknown request type {msg.type!r}; this server answers "
                                    f"{', '.join(sorted(self._handlers))}")
            handler(msg)
        except ScailError as e:
            log.info("refused %s from %s: %s", msg.type, _peer(msg.identities), e)
            self._reply_error(msg, e)
        except OSError as e:  # the server's own disk (work dir full, ...): one line, no "bug"
            log.warning("cannot handle %s from %s: %s", msg.type, _peer(msg.identities), e)
            self._reply_error(msg, ScailError(f"the server cannot handle {msg.type}: "
                                              f"{describe_os_error(e)}"))
        except Exception as e:  # the loop's boundary: one bad request must not stop the server
            log.exception("internal error handling %s from %s", msg.type, _peer(msg.identities))
            self._reply_error(msg, RequestError("internal", f"internal error handling {msg.type}: "
                                                            f"{type(e).__name__}: {e}"))

    def _handle_worker(self, frames: list) -> None:
        try:
            msg = self.session.deserialize(frames)
        except RefusedMessage as e:
            log.error("refused a message from worker %s: %s", _peer(e.identities), e)
            return
        identity = msg.identities[0]
        if identity not in self._workers:
            log.error("message from unknown worker %r ignored", identity)
            return
        handler = self._worker_handlers.get(msg.type)
        if handler is None:
            log.error("unexpected %s from worker %r ignored", msg.type, identity)
            return
        handler(identity, msg)

    # --- sending -------------------------------------------------------------------------------

    def _send(self, msg: Message, version: Optional[int] = None) -> bool:
        """Send to a client without blocking; False when the peer is gone or too slow."""
        import zmq

        try:
            self.session.send(self._front, msg, zmq.NOBLOCK, version=version)
            return True
        except zmq.ZMQError as e:
            if e.errno == zmq.EHOSTUNREACH:
                self._peer_gone(msg.identities)
            elif e.errno == zmq.EAGAIN:
                log.warning("dropped %s for %s: its queue is full", msg.type,
                            _peer(msg.identities))
            else:
                raise
            return False

    def _reply(self, request: Message, type: str, body=None, *, arrays=None) -> bool:
        return self._send(self.session.reply(request, type, body, arrays=arrays))

    def _reply_error(self, request: Message, exc: BaseException) -> None:
        self._reply(request, M.ERROR, {"code": M.error_code(exc), "message": str(exc)})

    def _send_event(self, job: Job, type: str, body=None, *, arrays=None) -> None:
        if job.owner:
            self._send(self.session.message(type, body, arrays=arrays, job_id=job.id,
                                            identities=job.owner))

    def _send_worker(self, identity: bytes, type: str, body=None, job_id=None) -> None:
        import zmq

        msg = self.session.message(type, body, job_id=job_id, identities=(identity,))
        try:
            self.session.send(self._back, msg, zmq.NOBLOCK)
        except zmq.ZMQError as e:
            log.error("cannot reach worker %r: %s", identity, e)

    # --- peers ---------------------------------------------------------------------------------

    def _seen(self, owner: tuple) -> None:
        self._last_seen[owner] = time.monotonic()
        for job in self.jobs.active():
            if job.owner == owner and not job.owner_connected:
                job.owner_connected = True

    def _peer_gone(self, owner: tuple) -> None:
        self._last_seen.pop(owner, None)
        for job in self.jobs.jobs.values():
            if job.owner == owner and job.owner_connected:
                job.owner_connected = False
                log.info("owner of job %s disconnected; the job %s", job.id,
                         "is cancelled" if self.config.cancel_orphans and not job.terminal
                         else "keeps its result for re-attach")
                if self.config.cancel_orphans and not job.terminal:
                    self._cancel(job)

    # --- requests ------------------------------------------------------------------------------

    def _on_hello(self, msg: Message) -> None:
        workers = [{"id": identity.decode(errors="replace"), "busy": w["job"] is not None,
                    "capabilities": w["capabilities"]} for identity, w in self._workers.items()]
        limits = {"max_message_bytes": self.config.max_message_bytes,
                  "max_upload_bytes": self.config.max_upload_bytes,
                  "upload_cache_bytes": self.config.upload_cache_bytes,
                  "max_queue": self.config.max_queue, "upload_chunk_bytes": M.UPLOAD_CHUNK_BYTES,
                  "keep_results_s": self.config.keep_results_s,
                  "cancel_orphans": self.config.cancel_orphans,
                  "heartbeat_s": self.config.heartbeat_s,
                  "time_window_s": self.config.time_window_s}
        self._reply(msg, M.HELLO, {
            "protocol": PROTOCOL_VERSION, "server": {"name": "scail-pose", "version": __version__},
            "capabilities": workers[0]["capabilities"], "workers": workers, "limits": limits,
            "job_kinds": list(M.JOB_KINDS), "diagnostics": list(M.DIAGNOSTIC_KINDS),
            "roots": [str(r) for r in self.roots.roots]})

    def _on_heartbeat(self, msg: Message) -> None:
        self._reply(msg, M.HEARTBEAT, self._load())

    def _load(self) -> dict:
        return {"queued": len(self.jobs.queue), "running": len(self.jobs.running())}

    def _on_upload_begin(self, msg: Message) -> None:
        sha256 = get_sha256(msg.body, "sha256", msg.type)
        size = get_int(msg.body, "size", msg.type, 0, 2**62)
        suffix = get_field(msg.body, "suffix", str, msg.type, default="")
        have = self.uploads.begin(sha256, size, suffix)
        self._reply(msg, M.UPLOAD_STATE, {"sha256": sha256, "size": size, "have": have})

    def _on_upload_chunk(self, msg: Message) -> None:
        sha256 = get_sha256(msg.body, "sha256", msg.type)
        offset = get_int(msg.body, "offset", msg.type, 0, 2**62)
        data = msg.array("data", dtype="uint8", shape=(None,))
        have = self.uploads.write(sha256, offset, data.data)
        self._reply(msg, M.UPLOAD_STATE, {"sha256": sha256, "have": have})

    def _on_submit(self, msg: Message) -> None:
        job_id = new_job_id()
        job_dir = self.work.job_dir(job_id)
        try:
            params, pins = submit.parse(msg, submit.Submission(self.roots, self.uploads, job_dir))
            job = Job(id=job_id, kind=msg.type, params=params, owner=msg.identities,
                      job_dir=job_dir, pins=tuple(pins))
            position = self.jobs.add(job)
        except BaseException:
            remove_job_dir(job_dir)
            raise
        for sha256 in job.pins:
            self.uploads.pin(sha256)
        log.info("job %s (%s) queued for %s at position %d", job.id, job.kind,
                 _peer(msg.identities), position)
        self._reply(msg, M.ACCEPTED, {"job": job.summary(), "position": position}, )

    def _job(self, msg: Message) -> Job:
        return self.jobs.get(get_field(msg.body, "job_id", str, msg.type))

    def _on_status(self, msg: Message) -> None:
        self._reply(msg, M.STATUS, {"job": self._job(msg).summary()})

    def _on_list_jobs(self, msg: Message) -> None:
        self._reply(msg, M.JOBS, {"jobs": [job.summary() for job in self.jobs.jobs.values()],
                                  **self._load()})

    def _on_cancel(self, msg: Message) -> None:
        job = self._job(msg)
        self._cancel(job)
        self._reply(msg, M.STATUS, {"job": job.summary()})

    def _cancel(self, job: Job) -> None:
        if job.terminal:
            return
        job.cancel_requested = True
        if job.state == M.QUEUED:
            self.jobs.unqueue(job)
            self._end(job, M.CANCELLED)
        else:
            self._send_worker(job.worker, M.CANCEL, job_id=job.id)

    def _on_attach(self, msg: Message) -> None:
        job = self._job(msg)
        job.owner, job.owner_connected = msg.identities, True
        self._reply(msg, M.STATUS, {"job": job.summary()})
        if job.terminal:
            self._send_final_event(job)

    def _on_fetch(self, msg: Message) -> None:
        job = self._job(msg)
        what = get_field(msg.body, "what", str, msg.type)
        if job.state != M.DONE:
            raise RequestError("bad_state", f"job {job.id} is {job.state}; only a finished job "
                                            f"has results")
        if what == "poses":
            if not job.result.get("poses"):
                raise RequestError("bad_state", f"job {job.id} ({job.kind}) produced no poses")
            body, arrays = sequence_parts(PoseSequence.load(job.result["poses"]))
            self._reply(msg, M.POSES, body, arrays=arrays)
        elif what == "video":
            video = job.result.get("video")
            if not video:
                raise RequestError("bad_state", f"job {job.id} ({job.kind}) produced no video")
            offset = get_int(msg.body, "offset", msg.type, 0, video["bytes"])
            length = get_int(msg.body, "length", msg.type, 1, MAX_FETCH_BYTES)
            with open(video["file"], "rb") as f:
                f.seek(offset)
                data = f.read(length)
            import numpy as np

            self._reply(msg, M.CHUNK, {"offset": offset, "total": video["bytes"],
                                       "sha256": video["sha256"]},
                        arrays={"data": np.frombuffer(data, dtype=np.uint8)})
        else:
            raise ProtocolError(f"fetch: 'what' must be 'poses' or 'video', got {what!r:.40}")

    # --- workers -------------------------------------------------------------------------------

    def _on_ready(self, identity: bytes, msg: Message) -> None:
        self._workers[identity]["capabilities"] = msg.body.get("capabilities", {})
        self._idle.append(identity)

    def _worker_job(self, identity: bytes, msg: Message):
        job = self._workers[identity]["job"]
        if job is None or job.id != msg.job_id:
            log.error("worker %r reported on job %s it is not running", identity, msg.job_id)
            return None
        return job

    def _on_progress(self, identity: bytes, msg: Message) -> None:
        job = self._worker_job(identity, msg)
        if job is None:
            return
        job.stage, job.done, job.total = msg.body["stage"], msg.body["done"], msg.body["total"]
        if job.owner_connected:
            self._send_event(job, M.PROGRESS, {"stage": job.stage, "done": job.done,
                                               "total": job.total})

    def _on_finished(self, identity: bytes, msg: Message) -> None:
        job = self._worker_job(identity, msg)
        self._workers[identity]["job"] = None
        self._idle.append(identity)
        if job is None:
            return
        if msg.type == M.RESULT:
            job.result = msg.body["result"]
            self._end(job, M.DONE)
        elif msg.type == M.ERROR:
            job.error = {"code": msg.body["code"], "message": msg.body["message"]}
            self._end(job, M.FAILED)
        else:
            self._end(job, M.CANCELLED)

    def _end(self, job: Job, state: str) -> None:
        self.jobs.finish(job, state)
        for sha256 in job.pins:
            self.uploads.unpin(sha256)
        log.info("job %s %s", job.id, state)
        self._send_final_event(job)

    def _send_final_event(self, job: Job) -> None:
        if job.state == M.CANCELLED:
            self._send_event(job, M.CANCELLED, {"job": job.summary()})
        elif job.state == M.FAILED:
            self._send_event(job, M.ERROR, dict(job.error, job=job.summary()))
        elif job.state == M.DONE:
            body, arrays = self._result_body(job)
            self._send_event(job, M.RESULT, body, arrays=arrays)

    def _result_body(self, job: Job) -> tuple:
        body, arrays = {"job": job.summary(), "has_poses": False, "poses_inline": False,
                        "video": None}, {}
        video = job.result.get("video")
        if video:
            body["video"] = {k: video[k] for k in ("bytes", "sha256", "path")}
        if job.result.get("poses"):
            body["has_poses"] = True
            seq = PoseSequence.load(job.result["poses"])
            nbytes = sum(getattr(seq, n).nbytes for n in ("joints3d", "kp2d", "kp2d_score", "bbox"))
            if nbytes <= self.config.inline_poses_bytes:
                poses_body, arrays = sequence_parts(seq)
                body.update(poses_body, poses_inline=True)
        return body, arrays

    def _dispatch(self) -> None:
        """Hand queued jobs to free workers, oldest job first."""
        while self._idle and self.jobs.queue:
            identity = self._idle.popleft()
            job = self.jobs.pop_queued()
            job.state, job.worker, job.started_s = M.RUNNING, identity, time.time()
            self._workers[identity]["job"] = job
            self._send_worker(identity, JOB, {"kind": job.kind, "params": job.params,
                                              "job_dir": str(job.job_dir)}, job_id=job.id)

    # --- housekeeping --------------------------------------------------------------------------

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.config.heartbeat_s
            owners = {job.owner for job in self.jobs.active() if job.owner_connected}
            for owner in owners:
                self._send(self.session.message(M.HEARTBEAT, self._load(), identities=owner))
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + HOUSEKEEPING_S
        for job in list(self.jobs.jobs.values()):  # finished ones too: their owner may leave
            seen = self._last_seen.get(job.owner)
            if job.owner_connected and (seen is None or now - seen > self.config.peer_timeout_s):
                log.info("owner of job %s silent for %.0f s", job.id,
                         now - seen if seen else float("inf"))
                self._peer_gone(job.owner)
        for identity, worker in self._workers.items():
            job = worker["job"]
            if job is not None and not worker["thread"].is_alive():
                worker["job"] = None
                job.error = {"code": "internal", "message": f"worker {identity!r} died"}
                self._end(job, M.FAILED)
        self.jobs.expire()
        self.uploads.expire_partials()


def _peer(identities: tuple) -> str:
    return "/".join(i.hex() for i in identities) or "(unknown peer)"
