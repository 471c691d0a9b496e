"""The client side of the wire, over real loopback sockets: one conversation run blocking or a
step at a time, the version policy's messages, and `scail-pose client` refusing bad options and
outputs in one line before it sends anything (issue 13 item 2, issue 15 items 1 and 4), and
what a job found (nobody, its warnings) told as the local command line tells it."""

from __future__ import annotations

import hashlib
import json
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest

from scail_protocol import conversation
from scail_protocol import messages as M
from scail_protocol.client import BackendClient
from scail_protocol.errors import Cancelled, ProtocolError
from scail_protocol.exchange import Exchange
from scail_protocol.wire import PROTOCOL_VERSION, Session

from server_helpers import KEY, WAIT_S, wait_until
from server_helpers import root, server  # noqa: F401  (fixtures)

zmq = pytest.importorskip("zmq")


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "client.key"
    path.write_bytes(KEY)
    return path


def copy_then_download(local, out):
    """A conversation: upload ``local``, copy it on the server, download the copy to ``out``."""
    sha256 = yield from conversation.upload(local)
    job_id = yield from conversation.submit(M.COPY, {"video": {"upload": sha256}})
    result = yield from conversation.wait_for(job_id)
    return (yield from conversation.save(result, None, out))


def test_one_conversation_runs_the_same_blocking_and_one_step_at_a_time(server, tmp_path):
    local = tmp_path / "clip.mp4"
    local.write_bytes(np.random.default_rng(2).integers(0, 256, 3_000_000, np.uint8).tobytes())
    with BackendClient(server.address, KEY, timeout_s=WAIT_S, heartbeat_s=0.2) as client:
        blocking_stages = []
        blocked = client.converse(copy_then_download(local, tmp_path / "a.mp4"),
                                  lambda stage, done, total: blocking_stages.append(stage))
        stepped = Exchange(client, copy_then_download(local, tmp_path / "b.mp4"))
        stepped_stages = []
        while not stepped.finished:
            # the Blender UI's timer calls step(0) every 50 ms; a short wait stands in for that
            stepped.step(0.005)
            stepped_stages.append(stepped.stage)
    assert stepped.error is None
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes() == \
        local.read_bytes()
    assert blocked.downloads["video"] == tmp_path / "a.mp4"
    assert stepped.result.downloads["video"] == tmp_path / "b.mp4"
    assert {"upload", "download"} <= set(blocking_stages) & set(stepped_stages)


def test_a_submission_cancelled_before_the_server_named_it_is_cancelled_there(server):
    with BackendClient(server.address, KEY, timeout_s=WAIT_S, heartbeat_s=0.2) as client:
        for _ in range(20):  # the reply may beat the zero-timeout read; then try again
            talk = conversation.submit(M.SLEEP, {"duration_s": 30, "steps": 300})
            exchange = Exchange(client, talk, label="sleep")
            exchange.step(0.0)  # the request is on the wire
            if not exchange.finished:  # ... and its reply not read yet
                break
            client.cancel(exchange.result)
        exchange.cancel()
        assert isinstance(exchange.error, Cancelled)
        jobs = wait_until(lambda: all(j["state"] == M.CANCELLED for j in client.list_jobs()),
                          "the orphan job to be cancelled", poll=lambda: client.poll(50))
        assert jobs and client.list_jobs()[-1]["kind"] == M.SLEEP


def test_a_newer_client_is_told_to_update_the_backend(server):
    with BackendClient(server.address, KEY, timeout_s=WAIT_S) as client:
        client.session = Session(KEY, version=PROTOCOL_VERSION + 1)
        with pytest.raises(ProtocolError, match=r"this client speaks scail-pose protocol "
                                                rf"{PROTOCOL_VERSION + 1} and the backend "
                                                r"\(scail-pose\) speaks 1: update the backend"):
            client.hello()


def test_an_older_client_is_told_to_update_itself(server):
    newer = Session(KEY, max_message_bytes=server.server.session.max_message_bytes,
                    version=PROTOCOL_VERSION + 1)
    server.server.session = newer  # the same server, speaking the next version
    with BackendClient(server.address, KEY, timeout_s=WAIT_S) as client:
        with pytest.raises(ProtocolError, match=r"update the client \(the Blender add-on or "
                                                r"scail-pose\)"):
            client.hello()


def test_a_backend_that_cannot_run_the_estimator_says_why_before_any_upload(server, tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"never sent")
    options = conversation.extract_options(estimator="bogus")
    with BackendClient(server.address, KEY, timeout_s=WAIT_S) as client:
        with pytest.raises(Exception, match="cannot run the estimator 'bogus'"):
            client.converse(conversation.extract(clip, options, upload_video=True))
        assert client.list_jobs() == []


# --- the command line ----------------------------------------------------------------------------

EXIT_NOBODY = 3


def run_cli(*args, preexec_fn=None, command=("client",)):
    return subprocess.run([sys.executable, "-m", "scail_backend.cli", "-q", *command, *args],
                          capture_output=True, text=True, timeout=120, preexec_fn=preexec_fn)


def assert_one_line_error(out, *fragments):
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def silent_address():
    """An address where a ROUTER listens but never answers: reaching it would time out."""
    with zmq.Context() as context:
        sock = context.socket(zmq.ROUTER)
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        yield f"tcp://127.0.0.1:{port}"
        sock.close(linger=0)


def test_cli_garbage_address_is_one_line(key_file):
    out = run_cli("jobs", "--connect", "garbage", "--key-file", str(key_file))
    assert_one_line_error(out, "cannot connect to 'garbage'", "tcp://")


def test_cli_timeout_must_be_a_positive_number(key_file):
    for value in ("nan", "-1", "0", "inf"):
        out = run_cli("jobs", "--timeout", value, "--key-file", str(key_file))
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert "must be a positive number of seconds" in out.stderr


@pytest.mark.parametrize("action, make_output, fragment", [
    ("render", lambda tmp: tmp, "is a folder"),
    ("extract", lambda tmp: tmp, "is a folder"),
    ("run", lambda tmp: tmp / "poses.npz", "is a file"),
    ("run", lambda tmp: tmp / "missing" / "deeper", "does not exist"),
])
def test_cli_outputs_are_checked_before_anything_is_sent(action, make_output, fragment, tmp_path,
                                                        key_file, silent_address):
    from scail_backend.render.samples import walking_sequence

    poses = walking_sequence(2, (64, 96)).save(tmp_path / "poses.npz")
    output = make_output(tmp_path)
    out = run_cli(action, str(poses), "-o", str(output), "--connect", silent_address,
                  "--key-file", str(key_file), "--timeout", "30")
    assert_one_line_error(out, "-o", fragment)  # at once: not "no reply from ..." after 30 s


def _small_files():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))


def test_cli_download_that_cannot_be_written_is_one_line_and_leaves_nothing(server, tmp_path,
                                                                            key_file):
    payload = tmp_path / "big.mp4"
    payload.write_bytes(bytes(1_000_000))
    with BackendClient(server.address, KEY, timeout_s=WAIT_S) as client:
        job_id = client.submit(M.COPY, {"video": {"upload": client.upload(payload)}})
        client.wait(job_id)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # a file-size limit makes the download fail as a full disk does (the write is refused)
    out = run_cli("wait", job_id, "-o", str(out_dir), "--connect", server.address,
                  "--key-file", str(key_file), preexec_fn=_small_files)
    assert_one_line_error(out, "cannot write", "rendered.mp4")
    assert list(out_dir.iterdir()) == []


def test_cli_extract_resamples_in_time_with_fps(server, tmp_path, key_file):
    from scail_protocol.sequence import PoseSequence
    from video_helpers import write_clip

    clip = write_clip(tmp_path / "root" / "clip.mp4", frames=32, fps=16)
    out = run_cli("extract", str(clip), "--fps", "8", "-o", str(tmp_path / "poses.npz"),
                  "--connect", server.address, "--key-file", str(key_file))
    assert out.returncode == EXIT_NOBODY, out.stderr[-2000:]  # a pattern: nobody in it
    assert "clip.mp4 (16 fps) is resampled to 8 fps" in out.stderr  # the job's warning
    seq = PoseSequence.load(tmp_path / "poses.npz")
    assert seq.fps == 8.0 and seq.num_frames == 16
    bad = run_cli("extract", str(clip), "--fps", "0", "--connect", server.address,
                  "--key-file", str(key_file))
    assert_one_line_error(bad, "--fps")


# --- what a job found reaches the client's user as the local command line says it (abuse 3 #8) --

def _error_lines(out) -> list:
    return [line for line in out.stderr.splitlines() if "error:" in line]


@pytest.mark.parametrize("action", ["extract", "run"])
def test_cli_nobody_found_exits_3_with_the_local_line_even_under_q(action, server, tmp_path,
                                                                   key_file):
    from video_helpers import write_clip

    clip = write_clip(tmp_path / "blank.mp4", frames=6)  # gradients and a block: nobody
    output = tmp_path / ("poses.npz" if action == "extract" else "out")
    out = run_cli(action, str(clip), "--upload", "-o", str(output), "--connect",
                  server.address, "--key-file", str(key_file))
    assert out.returncode == EXIT_NOBODY, out.stderr[-2000:]
    assert json.loads(out.stdout)["report"]["people"] == 0  # the outputs are written all the same
    [line] = _error_lines(out)
    if action == "extract":
        assert (output.is_file() and "scail-pose client extract: error: no person found in any "
                f"of the 6 frames; {output} holds only missing (NaN) poses" in line), line
        local = run_cli(str(clip), "-o", str(tmp_path / "local.npz"), command=("extract",))
        assert local.returncode == EXIT_NOBODY
        [expected] = _error_lines(local)
        assert line.replace("client extract", "extract").replace(str(output), "X") == \
            expected.replace(str(tmp_path / "local.npz"), "X")
    else:
        assert sorted(p.name for p in output.iterdir()) == ["poses.npz", "rendered.mp4"]
        assert line.startswith("scail-pose client run: error: no person found in any of the 6 "
                               "frames; rendered.mp4 is all black ("), line


def test_cli_forwards_the_jobs_warnings_under_q_naming_the_uploaded_file(server, tmp_path,
                                                                        key_file):
    from video_helpers import noise_frame, write_clip

    whole = write_clip(tmp_path / "whole.mp4", frames=20, fps=12, make=noise_frame,
                       options={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"  # truncated: the index is at the front, the tail is lost
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.7)])
    out = run_cli("extract", str(cut), "--upload", "-o", str(tmp_path / "cut.npz"),
                  "--connect", server.address, "--key-file", str(key_file))
    assert out.returncode == EXIT_NOBODY, out.stderr[-2000:]
    warnings = [line for line in out.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 2, out.stderr
    assert "cut.mp4 is 12 fps; the conditioning video is always 16 fps" in warnings[0]
    assert "cut.mp4: " in warnings[1] and "damaged or truncated" in warnings[1]
    report = json.loads(out.stdout)["report"]
    assert [w in line for w, line in zip(report["warnings"], warnings)] == [True, True]
    sha256 = hashlib.sha256(cut.read_bytes()).hexdigest()
    assert sha256 not in out.stderr  # the user's file, not the server's cache, is named


def test_the_conversation_hands_the_jobs_warnings_to_any_client(server, root):
    """The add-on runs the same conversation: its JobResult carries the warnings, the same
    after a re-attach; a clip at 16 fps, intact, has none."""
    from video_helpers import write_clip

    slow = write_clip(root / "slow.mp4", frames=4, fps=8)
    steady = write_clip(root / "steady.mp4", frames=4, fps=16)
    options = conversation.extract_options()
    with BackendClient(server.address, KEY, timeout_s=WAIT_S) as client:
        result = client.converse(conversation.extract(slow, options))
        assert len(result.warnings) == 1 and "slow.mp4 is 8 fps" in result.warnings[0]
        again = client.converse(conversation.attach(result.job_id))
        assert again.warnings == result.warnings
        assert client.converse(conversation.extract(steady, options)).warnings == ()
