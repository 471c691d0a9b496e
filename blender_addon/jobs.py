"""Units of work the UI runs without freezing: backend jobs and local generator jobs. No bpy here.

A job is advanced by :meth:`step`, which never blocks: backend jobs read their socket with
``BackendClient.poll(timeout_ms=0)`` and send at most a request or a file chunk per step; a local
job advances its generator by one item (one rendered frame). After each step the owner reads
``stage``, ``done`` and ``total``; when ``finished`` is set, ``result`` or ``error`` holds the
outcome. ``client.py`` owns the jobs and the socket and runs ``step`` from a Blender timer.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path

from scail_protocol import messages as M
from scail_protocol.client import ServerTimeout
from scail_protocol.errors import Cancelled, ProtocolError, ScailError
from scail_protocol.wire import sequence_from_message, sequence_parts

log = logging.getLogger(__name__)

HASH_BLOCK_BYTES = 8 << 20  # bytes hashed per step before an upload (keeps each step short)


class Job:
    """Base class: progress attributes and the outcome."""

    label = "job"

    def __init__(self):
        self.stage, self.done, self.total = "start", 0, 0
        self.finished = False
        self.result = None
        self.error = None

    def step(self) -> None:
        """Advance a little; never blocks. Errors end the job (``error``), they are not raised."""
        if self.finished:
            return
        try:
            self._advance()
        except ScailError as e:
            self._fail(e)

    def cancel(self) -> None:
        """Ask the job to stop; it finishes with a ``Cancelled`` error."""
        self._fail(Cancelled(f"{self.label} cancelled"))

    def abort(self, error: BaseException) -> None:
        """End the job with ``error`` (used by the timer when a step raised something else)."""
        self._fail(error)

    def _advance(self) -> None:
        raise NotImplementedError

    def _finish(self, result) -> None:
        self.result, self.finished = result, True

    def _fail(self, error: BaseException) -> None:
        if not self.finished:
            self.error, self.finished = error, True
            self._cleanup()

    def _cleanup(self) -> None:
        """Release what the job holds (files, server jobs); called once when it fails."""


class LocalJob(Job):
    """Runs a generator one item per step; items are ``(stage, done, total)``.

    The generator's return value becomes ``result``. Cancelling closes it, so its ``finally``
    blocks clean up. The generator may touch bpy: a local job is stepped on the main thread.
    """

    def __init__(self, label: str, generator):
        super().__init__()
        self.label = label
        self._gen = generator

    def _advance(self) -> None:
        try:
            self.stage, self.done, self.total = next(self._gen)
        except StopIteration as stop:
            self._finish(stop.value)

    def _cleanup(self) -> None:
        self._gen.close()


class BackendJob(Job):
    """A conversation with the backend: requests with reply handlers, then the job's events."""

    def __init__(self, client):
        super().__init__()
        self.client = client
        self.job_id = None
        self._pending = None  # (msg_id, handler, deadline) of the request awaiting its reply

    def _send(self, msg_type: str, body: dict, handler, *, arrays=None) -> None:
        msg = self.client.send(msg_type, body, arrays=arrays)
        self._pending = (msg.msg_id, handler, time.monotonic() + self.client.timeout_s)

    def _advance(self) -> None:
        self._before_poll()
        for msg in self.client.poll(timeout_ms=0):
            if self.finished:
                return
            if self._pending is not None and msg.reply_to == self._pending[0]:
                _, handler, _ = self._pending
                self._pending = None
                if msg.type == M.ERROR:
                    self._on_refused(M.error_from_reply(msg.body.get("code"),
                                                        msg.body.get("message")))
                else:
                    handler(msg)
            elif msg.type == M.ACCEPTED:
                # A submission cancelled before the server named its job: stop it there too.
                orphan = msg.body["job"]["id"]
                self.client.watching.discard(orphan)
                self.client.send(M.CANCEL, {"job_id": orphan})
            elif self.job_id is not None and msg.job_id == self.job_id and msg.reply_to is None:
                self._on_event(msg)
            elif msg.type == M.ERROR and msg.reply_to is None and msg.job_id is None:
                raise ProtocolError(f"{self.client.address} refused a message: "
                                    f"{msg.body.get('message')} (do Blender and the backend use "
                                    f"the same key file?)")
        if self._pending is not None and time.monotonic() > self._pending[2]:
            raise ServerTimeout(f"no reply from {self.client.address} within "
                                f"{self.client.timeout_s:g} s; is `scail-pose serve` running "
                                f"there? (check the address in the add-on preferences)")

    def _before_poll(self) -> None:
        """Hook: work done each step before reading the socket (hashing, chunking)."""

    def _on_refused(self, error: ScailError) -> None:
        raise error

    def _on_accepted(self, msg) -> None:
        self.job_id = msg.body["job"]["id"]
        self.client.watching.add(self.job_id)
        self.stage = "queued"

    def _on_event(self, msg) -> None:
        if msg.type == M.PROGRESS:
            self.stage, self.done, self.total = (msg.body.get("stage", ""), msg.body.get("done", 0),
                                                 msg.body.get("total", 0))
            return
        self.client.watching.discard(self.job_id)
        if msg.type == M.CANCELLED:
            self._fail(Cancelled(f"{self.label} cancelled"))
        elif msg.type == M.ERROR:
            self._fail(M.error_from_reply(msg.body.get("code"), msg.body.get("message")))
        elif msg.type == M.RESULT:
            self._on_result(msg)

    def _on_result(self, msg) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        if self.finished:
            return
        if self.job_id is None:
            # Nothing runs on the server yet (or the server has not named the job): stop here.
            # A submission already on the wire may still run there; its result is ignored.
            super().cancel()
            return
        self.client.send(M.CANCEL, {"job_id": self.job_id})
        self.stage = "cancelling"

    def _cleanup(self) -> None:
        if self.job_id is not None:
            self.client.watching.discard(self.job_id)
        if isinstance(self.error, (ServerTimeout, ProtocolError)):
            self.client.reconnect()  # a fresh socket: late replies cannot be mistaken for new ones


class HelloJob(BackendJob):
    """Ask the backend who it is; ``result`` is the hello body."""

    label = "connect"

    def __init__(self, client):
        super().__init__(client)
        self.stage = "connecting"
        self._send(M.HELLO, {}, lambda msg: self._finish(dict(msg.body)))

    def _on_result(self, msg) -> None:  # pragma: no cover - hello has no job events
        pass


def resolution_hw(value):
    """[H, W] of a resolution setting ("DEFAULT", "512x896", or an (H, W) pair), or None for the
    backend's default."""
    if value in (None, "", "DEFAULT"):
        return None
    if isinstance(value, str):
        value = value.lower().split("x")
    try:
        height, width = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"resolution must be 'DEFAULT', 'HxW' or (H, W), got {value!r}") from None
    return [height, width]


def extract_options(*, estimator: str = "auto", resolution="DEFAULT", smoothing: float = 0.0,
                    use_align: bool = False, reference_path=None) -> dict:
    """Body fields of an ``extract`` request besides the video (``scail_protocol.messages``).

    ``resolution`` "DEFAULT" and ``smoothing`` 0 leave the backend's defaults (512 x 896,
    smoothing off); otherwise ``resolution`` is "HxW" or (H, W) (see :func:`resolution_hw`);
    ``smoothing`` in (0, 1] is the backend's temporal smoothing strength (0.25 light, 0.5 medium,
    0.75 strong); ``use_align`` sends the reference image's path (the backend must say
    ``capabilities.align`` in its hello).
    """
    options = {"estimator": estimator.lower()}
    if resolution_hw(resolution) is not None:
        options["resolution"] = resolution_hw(resolution)
    if smoothing > 0:
        options["smoothing"] = float(smoothing)
    if use_align:
        options["use_align"] = True
        options["reference"] = {"path": str(Path(reference_path).resolve())}
    return options


def check_capabilities(hello: dict, address: str, options: dict) -> None:
    """Raise ScailError when the backend's hello says it cannot do what ``options`` ask."""
    caps = hello.get("capabilities") or {}
    if caps.get("extract") is False:
        raise ScailError(f"the backend at {address} cannot extract poses (its pipeline is not "
                         f"installed there)")
    if options.get("smoothing") and not caps.get("smoothing"):
        raise ScailError(f"the backend at {address} cannot smooth poses in this version; set "
                         f"Smoothing to 0 or update the backend")
    if options.get("use_align") and not caps.get("align"):
        raise ScailError(f"the backend at {address} cannot align to a reference image in this "
                         f"version; turn Align off")
    names = (caps.get("estimators") or {}).get("names")
    wanted = options.get("estimator", "auto")
    if names and wanted not in names:
        raise ScailError(f"the backend at {address} has no estimator {wanted!r} "
                         f"(it offers {', '.join(names)})")


class ExtractJob(BackendJob):
    """Video -> PoseSequence on the backend; ``result`` is the PoseSequence.

    Starts with a hello (a quick check of address, key and capabilities). The video is named by
    path first; if the backend cannot see that path (it refuses with ``forbidden``, e.g. a
    remote machine or a folder outside its roots) the file is uploaded in chunks and the request
    repeated.
    """

    label = "import"

    def __init__(self, client, video_path, options: dict):
        super().__init__(client)
        self.video = Path(video_path).resolve()
        self.options = dict(options)
        self._upload = None
        self.stage = "connecting"
        self._send(M.HELLO, {}, self._on_hello)

    def _on_hello(self, msg) -> None:
        check_capabilities(msg.body, self.client.address, self.options)
        self.stage = "submit"
        self._submit({"path": str(self.video)})

    def _submit(self, video_spec: dict) -> None:
        self._send(M.EXTRACT, dict(self.options, video=video_spec), self._on_accepted)

    def _on_refused(self, error: ScailError) -> None:
        if getattr(error, "code", None) == "forbidden" and self._upload is None:
            log.info("backend cannot read %s directly (%s); uploading it", self.video, error)
            self._upload = _Upload(self.video)
            self.stage = "upload"
            return
        raise error

    def _before_poll(self) -> None:
        upload = self._upload
        if upload is None or self._pending is not None or self.job_id is not None:
            return
        if upload.sha256 is None:
            upload.hash_some()
            self.done, self.total = upload.hashed, upload.size
            if upload.sha256 is not None:
                body = {"sha256": upload.sha256, "size": upload.size, "suffix": self.video.suffix}
                self._send(M.UPLOAD_BEGIN, body, self._on_upload_state)
        elif upload.have >= upload.size and not upload.submitted:
            upload.submitted = True
            self.stage = "submit"
            self._submit({"upload": upload.sha256, "name": self.video.name})

    def _on_upload_state(self, msg) -> None:
        upload = self._upload
        upload.have = int(msg.body["have"])
        self.done, self.total = upload.have, upload.size
        if upload.have < upload.size:
            chunk = upload.read_chunk()
            self._send(M.UPLOAD_CHUNK, {"sha256": upload.sha256, "offset": upload.have},
                       self._on_upload_state, arrays={"data": chunk})

    def _on_result(self, msg) -> None:
        if msg.body.get("poses_inline"):
            self._finish(sequence_from_message(msg))
        elif msg.body.get("has_poses"):
            self.stage = "download"
            self._send(M.FETCH, {"job_id": self.job_id, "what": "poses"},
                       lambda reply: self._finish(sequence_from_message(reply)))
        else:
            self._fail(ProtocolError(f"job {self.job_id} finished without poses"))


class RenderJob(BackendJob):
    """PoseSequence -> conditioning video by the backend's renderer, downloaded to ``out_path``;
    ``result`` is the output path."""

    label = "render"

    def __init__(self, client, seq, out_path):
        super().__init__(client)
        self.out_path = Path(out_path)
        self._file = None
        self._tmp = None
        self._digest = hashlib.sha256()
        self._offset = 0
        self.stage = "submit"
        body, arrays = sequence_parts(seq)
        self._send(M.RENDER, dict(body, out=None), self._on_accepted, arrays=arrays)

    def _on_result(self, msg) -> None:
        if not msg.body.get("video"):
            self._fail(ProtocolError(f"render job {self.job_id} finished without a video"))
            return
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.out_path.name}.", suffix=".part",
                                         dir=self.out_path.parent)
        self._file = os.fdopen(fd, "wb")
        self.stage = "download"
        self._fetch_chunk()

    def _fetch_chunk(self) -> None:
        body = {"job_id": self.job_id, "what": "video", "offset": self._offset,
                "length": M.UPLOAD_CHUNK_BYTES}
        self._send(M.FETCH, body, self._on_chunk)

    def _on_chunk(self, msg) -> None:
        data = msg.array("data", dtype="uint8", shape=(None,))
        total, expected = int(msg.body["total"]), msg.body["sha256"]
        if int(msg.body["offset"]) != self._offset or (not len(data) and self._offset < total):
            raise ProtocolError(f"download of job {self.job_id}: bad chunk at {self._offset}")
        self._file.write(data.data)
        self._digest.update(data.data)
        self._offset += len(data)
        self.done, self.total = self._offset, total
        if self._offset < total:
            self._fetch_chunk()
            return
        self._file.close()
        self._file = None
        if self._digest.hexdigest() != expected:
            raise ProtocolError(f"download of job {self.job_id}: sha256 mismatch")
        os.replace(self._tmp, self.out_path)
        self._tmp = None
        self._finish(self.out_path)

    def _cleanup(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tmp is not None:
            Path(self._tmp).unlink(missing_ok=True)
        super()._cleanup()


class _Upload:
    """Incremental hashing and chunked reading of a file to upload."""

    def __init__(self, path: Path):
        self.path = path
        self.size = path.stat().st_size
        self.hashed = 0
        self.have = 0
        self.sha256 = None
        self.submitted = False
        self._digest = hashlib.sha256()

    def hash_some(self) -> None:
        with self.path.open("rb") as f:
            f.seek(self.hashed)
            block = f.read(HASH_BLOCK_BYTES)
        self._digest.update(block)
        self.hashed += len(block)
        if not block or self.hashed >= self.size:
            self.sha256 = self._digest.hexdigest()

    def read_chunk(self):
        import numpy as np

        with self.path.open("rb") as f:
            f.seek(self.have)
            return np.frombuffer(f.read(M.UPLOAD_CHUNK_BYTES), dtype=np.uint8)
