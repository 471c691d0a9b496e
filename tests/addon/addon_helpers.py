"""Helpers for the add-on tests: preferences, a real backend subprocess, the timer, checks.

Everything talks over real ZeroMQ sockets on 127.0.0.1 with free ports.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

PACKAGE = "scail_pose_studio"  # the extension id; Blender imports it as bl_ext.<repo>.<id>
TEST_KEY = b"addon-test-key-0123456789abcdef"
SERVER_START_S = 60.0


def set_backend_prefs(address: str, key_file, timeout_s: float = 5.0):
    """Enable the add-on's preferences entry (factory settings drop it) and fill it in."""
    import bpy

    addons = bpy.context.preferences.addons
    entry = addons.get(PACKAGE) or addons.new()
    entry.module = PACKAGE
    prefs = entry.preferences
    prefs.backend_address = address
    prefs.key_file = str(key_file)
    prefs.timeout_s = timeout_s
    return prefs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``scail-pose serve`` in a subprocess on a free loopback port (killed by :meth:`kill`)."""

    def __init__(self, tmp_path: Path, key: bytes = TEST_KEY):
        self.key_file = tmp_path / "server.key"
        self.key_file.write_bytes(key)
        self.key_file.chmod(0o600)  # the server warns about keys others can read
        self.root = tmp_path / "root"
        self.root.mkdir(exist_ok=True)
        self.address = f"tcp://127.0.0.1:{free_port()}"
        command = [sys.executable, "-m", "scail_backend.cli", "serve", "--bind", self.address,
                   "--key-file", str(self.key_file), "--root", str(self.root), "--root",
                   str(tmp_path), "--work-dir", str(tmp_path / "work")]
        env = dict(os.environ, TI_SKIP_VERSION_CHECK="ON")
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if "listening on" in line:
                return
        self.kill()
        pytest.fail(f"scail-pose serve did not start (exit code {self.proc.poll()})")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()


def drive_timer(addon, timeout_s: float = 60.0, until=None) -> None:
    """Call the add-on's timer function as Blender would, until its job ends (or ``until()``)."""
    client = addon.client
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        interval = client._tick()
        if until is not None and until():
            return
        if interval is None and not client.busy():
            return
        time.sleep(interval or 0.0)
    pytest.fail(f"the add-on's job did not finish within {timeout_s} s")


def armature_objects():
    import bpy

    return [o for o in bpy.data.objects if o.type == "ARMATURE"]


def assert_nothing_imported():
    """No armature, action, camera or movie clip left in the file."""
    import bpy

    assert not armature_objects()
    assert len(bpy.data.armatures) == 0
    assert len(bpy.data.actions) == 0
    assert len(bpy.data.cameras) == 0
    assert len(bpy.data.movieclips) == 0


def write_test_video(path: Path, num_frames: int = 8, size=(64, 48), fps: int = 16) -> Path:
    """A tiny H.264 video (moving gradient) for camera backgrounds and bad-input tests."""
    import av

    height, width = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(num_frames):
            img = np.zeros((height, width, 3), np.uint8)
            img[..., 0] = (np.arange(width)[None, :] * 4 + t * 10) % 256
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
