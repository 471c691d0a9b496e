"""Helpers for the add-on tests: preferences, a real backend subprocess, the timer, checks.

Everything talks over real ZeroMQ sockets on 127.0.0.1 with free ports.

The backend always runs in its own process, from :func:`backend_python`: the add-on tests also
run on Blender's newer Python (bpy 5.1+ is Python 3.13), where the backend's own dependencies
(mediapipe, taichi) do not install, so CI points ``SCAIL_BACKEND_PYTHON`` at the main
environment's interpreter (see ``.ci/run``).
"""

from __future__ import annotations

import importlib.util
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


def backend_python():
    """The interpreter that runs ``scail_backend``: ``$SCAIL_BACKEND_PYTHON``, else this one
    when it has the backend installed, else None (tests needing a backend skip)."""
    configured = os.environ.get("SCAIL_BACKEND_PYTHON")
    if configured:
        return configured
    return sys.executable if importlib.util.find_spec("scail_backend") is not None else None


def require_backend_python() -> str:
    """:func:`backend_python`, or skip the test when there is none."""
    python = backend_python()
    if python is None:
        pytest.skip("no Python with scail_backend: set SCAIL_BACKEND_PYTHON")
    return python


def run_backend(code: str, timeout_s: float = 300.0) -> str:
    """Run Python ``code`` with the backend's interpreter; returns its stdout.

    Raises:
        AssertionError: the code failed (its stderr is in the message).
    """
    env = dict(os.environ, TI_SKIP_VERSION_CHECK="ON")
    env.pop("PYTHONPATH", None)  # the backend's own environment, not this one's
    result = subprocess.run([require_backend_python(), "-c", code], capture_output=True,
                            text=True, timeout=timeout_s, env=env)
    assert result.returncode == 0, f"backend code failed: {result.stderr[-3000:]}"
    return result.stdout


def synthetic_clip(out_dir: Path, *, motion: str = "wave", num_frames: int = 12,
                   size=(256, 192)) -> Path:
    """A short synthetic video of one person made by the backend's synth; its driving.mp4."""
    run_backend("from scail_backend.synth.clip import make_clip; "
                f"make_clip({str(out_dir)!r}, motion={motion!r}, num_frames={num_frames}, "
                f"size={tuple(size)!r})")
    return Path(out_dir) / "driving.mp4"


def load_build_module():
    """``blender_addon/build.py`` as a module (it is a script, not part of the add-on)."""
    path = Path(__file__).resolve().parents[2] / "blender_addon" / "build.py"
    spec = importlib.util.spec_from_file_location("scail_addon_build", path)
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return module


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
        command = [require_backend_python(), "-m", "scail_backend.cli", "serve", "--bind",
                   self.address,
                   "--key-file", str(self.key_file), "--root", str(self.root), "--root",
                   str(tmp_path), "--work-dir", str(tmp_path / "work")]
        env = dict(os.environ, TI_SKIP_VERSION_CHECK="ON")
        env.pop("PYTHONPATH", None)
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


_RIGIFY_CHILD = """
import json, os, sys
sys.path[:0] = [{tests!r}]
import importlib.util
from conftest import ADDON_DIR
spec = importlib.util.spec_from_file_location("scail_pose_studio", ADDON_DIR / "__init__.py",
                                              submodule_search_locations=[str(ADDON_DIR)])
addon = importlib.util.module_from_spec(spec); sys.modules["scail_pose_studio"] = addon
spec.loader.exec_module(addon); addon.register()
import {module} as T
print(json.dumps(T.{function}(addon)), flush=True)
os._exit(0)  # a registered Rigify keeps the interpreter from exiting
"""


def run_with_rigify(folder: Path, module: str, function: str, timeout_s: float = 300.0) -> dict:
    """``module.function(addon)`` (a test module of tests/addon; it enables Rigify) in a child
    process with the add-on registered, and the dict it returns (JSON). A registered Rigify
    keeps the interpreter from exiting, so it never runs in the test process.

    Skips the calling test when this Blender has no Rigify."""
    import json

    script = Path(folder) / f"{function}.py"
    script.write_text(_RIGIFY_CHILD.format(tests=str(Path(__file__).resolve().parent),
                                           module=module, function=function))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=timeout_s)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines and "armature_human_metarig_add" in done.stderr:
        pytest.skip("this Blender has no Rigify")
    assert lines, done.stderr[-3000:]
    return json.loads(lines[-1])
