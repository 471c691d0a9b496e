"""Helpers for the server tests: in-process and subprocess servers, raw peers, line readers.

Everything talks over real ZeroMQ sockets on 127.0.0.1 with free ports; waits are polls with
deadlines, never sleeps.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scail_protocol.wire import Session

KEY = b"server-test-key-0123456789abcdef"
WAIT_S = 20.0  # generous deadline for anything that should happen quickly
FAST = dict(heartbeat_s=0.2, peer_timeout_s=1.0)  # peers time out within a test's patience


def make_config(tmp_path, **overrides):
    """A ServerConfig on a free loopback port, serving ``tmp_path/root`` (made here)."""
    from scail_backend.server import ServerConfig

    root = tmp_path / "root"
    root.mkdir(parents=True, exist_ok=True)
    settings = dict(key=KEY, bind="tcp://127.0.0.1:*", roots=(root,), work_dir=tmp_path / "work",
                    **FAST)
    settings.update(overrides)
    return ServerConfig(**settings)


# Fixtures for the test modules that import them; a module's SERVER_SETTINGS dict (if any)
# overrides make_config's settings for its ``server``.

@pytest.fixture
def server(tmp_path, request):
    running = ServerThread(make_config(tmp_path, **getattr(request.module, "SERVER_SETTINGS", {})))
    yield running
    running.close()


@pytest.fixture
def client(server):
    from scail_protocol.client import BackendClient

    with BackendClient(server.address, KEY, timeout_s=WAIT_S, heartbeat_s=0.2) as c:
        yield c


@pytest.fixture
def root(tmp_path):
    return tmp_path / "root"


class ServerThread:
    """A :class:`Server` running ``serve_forever`` in a thread (stopped by :meth:`close`)."""

    def __init__(self, config):
        from scail_backend.server import Server

        self.server = Server(config)
        self.address = self.server.start()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.stop()
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), "server thread did not stop"


class RawPeer:
    """A bare DEALER socket for sending hand-made frames; replies are decoded with KEY."""

    def __init__(self, address: str):
        import zmq

        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(address)
        self.session = Session(KEY)

    def send_frames(self, frames: list) -> None:
        self.sock.send_multipart(frames)

    def recv(self, timeout_s: float = WAIT_S):
        assert self.sock.poll(int(timeout_s * 1000)), "no reply from the server"
        return self.session.deserialize(self.sock.recv_multipart())

    def request(self, type: str, body=None, arrays=None):
        msg = self.session.message(type, body, arrays=arrays)
        self.send_frames(self.session.serialize(msg))
        return self.recv()

    def close(self) -> None:
        self.sock.close(linger=0)


class LineReader:
    """Reads a subprocess's stdout lines on a thread; :meth:`expect` waits for one matching."""

    def __init__(self, proc: subprocess.Popen):
        self.lines = queue.Queue()
        self.seen = []
        thread = threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True)
        thread.start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix: str, timeout_s: float = WAIT_S) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, remaining))
            except queue.Empty:
                raise AssertionError(f"no line starting {prefix!r} within {timeout_s} s; "
                                     f"saw {self.seen}") from None
            if line is None:
                raise AssertionError(f"process ended before {prefix!r}; saw {self.seen}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line


def start_server_process(bind: str, key_file: Path, work_dir: Path, *extra: str):
    """``scail-pose serve`` as a real subprocess; returns (Popen, LineReader, address)."""
    cmd = [sys.executable, "-m", "scail_backend.cli", "-q", "serve", "--bind", bind,
           "--key-file", str(key_file), "--work-dir", str(work_dir), *extra]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    reader = LineReader(proc)
    line = reader.expect("scail-pose serve: listening on ")
    return proc, reader, line.rsplit(" ", 1)[-1]


def wait_until(condition, what: str, poll, timeout_s: float = WAIT_S):
    """Call ``condition()`` until it returns a true value; ``poll()`` waits between calls on a
    socket (e.g. ``lambda: client.poll(50)``), so nothing sleeps."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        poll()
