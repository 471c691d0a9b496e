"""`scail-pose batch --address` joins a real, running Ray cluster (issue 17).

A head node is started here with ``ray start --head --block`` in its own process group, with
token authentication on, and ended by that group at the end (never with ``ray stop``, which
would end every Ray on the machine), whatever the tests did; the tests skip when it does not
start within HEAD_START_S. The batch runs in a subprocess, as a user runs it, and joins the
cluster at each address form: the head's GCS address HOST:PORT, ``auto`` with RAY_ADDRESS,
and ``ray://`` (Ray Client).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from scail_backend.batch.clipdir import finished

from video_helpers import write_clip

HEAD_START_S = 60
HAS_RAY_CLIENT = importlib.util.find_spec("grpc") is not None  # Ray Client (ray://) needs grpcio
RESOLUTION = ["256", "448"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _end_group(process: subprocess.Popen) -> None:
    """End the head and everything it started (its process group): SIGTERM, then SIGKILL."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            process.poll()  # reap the head itself
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


@pytest.fixture(scope="module")
def ray_head():
    """A running single-node Ray cluster (2 CPUs): its addresses and the environment that
    reaches it (the token)."""
    pytest.importorskip("ray")
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.is_file():
        pytest.skip(f"no `ray` command beside {sys.executable}")
    temp = Path(tempfile.mkdtemp(prefix="scail-ray-"))  # short: Ray's socket paths are long
    home = temp / "home"  # Ray keeps its token in ~/.ray/auth_token: not the user's home
    home.mkdir()
    env = dict(os.environ, TI_SKIP_VERSION_CHECK="ON", RAY_AUTH_MODE="token", HOME=str(home),
               RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")
    port, client_port = _free_port(), _free_port()
    command = [str(ray_cli), "start", "--head", f"--port={port}", "--num-cpus=2",
               "--include-dashboard=false", "--disable-usage-stats", "--block",
               f"--dashboard-agent-listen-port={_free_port()}", f"--temp-dir={temp}"]
    if HAS_RAY_CLIENT:  # the head refuses to start a client server without grpcio
        command.append(f"--ray-client-server-port={client_port}")
    log_path = temp / "head.log"
    with open(log_path, "wb") as log:
        head = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + HEAD_START_S
        while b"Ray runtime started" not in log_path.read_bytes():
            if head.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-500:]
                pytest.skip(f"the Ray head did not start in {HEAD_START_S} s: {tail}")
            time.sleep(0.2)
        yield {"gcs": f"127.0.0.1:{port}", "client": f"ray://127.0.0.1:{client_port}",
               "env": env, "logs": temp / "session_latest" / "logs"}
    finally:
        _end_group(head)
        shutil.rmtree(temp, ignore_errors=True)


def _batch(inputs: Path, out: Path, address: str, env: dict, *extra):
    command = [sys.executable, "-m", "scail_backend.cli", "-q", "batch", str(inputs), "-o",
               str(out), "--estimator", "mediapipe", "--resolution", *RESOLUTION,
               "--address", address, *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_batch_joins_a_running_cluster_at_its_address_and_through_auto(ray_head, tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    for name in ("a", "b"):
        (inputs / name).mkdir(parents=True)
        write_clip(inputs / name / "driving.mp4", frames=4)
    result = _batch(inputs, out, ray_head["gcs"], ray_head["env"], "--workers", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 done, 0 skipped, 0 failed" in result.stderr
    assert finished(out / "a") == 4 and finished(out / "b") == 4
    # the batch's driver joined this cluster: its log is in the head's session
    assert list(ray_head["logs"].glob("python-core-driver-*"))

    (out / "b" / "rendered.mp4").unlink()  # resumed through `auto`, which reads RAY_ADDRESS
    result = _batch(inputs, out, "auto", dict(ray_head["env"], RAY_ADDRESS=ray_head["gcs"]))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 done, 1 skipped, 0 failed" in result.stderr
    assert finished(out / "b") == 4


@pytest.mark.skipif(not HAS_RAY_CLIENT,
                    reason="Ray Client (ray://) needs grpcio (the cluster extra installs it)")
def test_batch_joins_through_ray_client(ray_head, tmp_path):
    (tmp_path / "a").mkdir()
    write_clip(tmp_path / "a" / "driving.mp4", frames=4)
    result = _batch(tmp_path / "a", tmp_path / "client", ray_head["client"], ray_head["env"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert finished(tmp_path / "client" / "a") == 4


def test_a_cluster_that_refuses_the_batch_is_a_one_line_error(ray_head, tmp_path):
    (tmp_path / "in").mkdir()
    write_clip(tmp_path / "in" / "driving.mp4", frames=1)
    env = {k: v for k, v in ray_head["env"].items() if not k.startswith("RAY_AUTH")}
    env["RAY_NUM_REDIS_GET_RETRIES"] = "2"  # Ray's retries, not ours: fail in seconds
    result = _batch(tmp_path / "in", tmp_path / "out", ray_head["gcs"], env)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("scail-pose batch: error: cannot start or reach the Ray cluster at")
    assert "RAY_AUTH_MODE=token" in error
