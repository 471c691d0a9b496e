"""The ZeroMQ server and client over real loopback sockets: jobs, files, security, failures.

Job-flow tests use the server's diagnostic ``sleep`` and ``copy`` jobs (no model involved), so
they are fast and exact; ``test_server_pipeline.py`` runs the real extract and render.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from scail_protocol import messages as M
from scail_protocol import PoseSequence
from scail_protocol.client import BackendClient, ServerTimeout
from scail_protocol.errors import Cancelled, ProtocolError, ScailError
from scail_protocol.messages import ServerError
from scail_protocol.wire import DELIM, Session, sequence_parts

import server_helpers as H
from server_helpers import (KEY, WAIT_S, LineReader, RawPeer, ServerThread,
                            start_server_process, wait_until)
from server_helpers import client, root, server  # noqa: F401  (fixtures)

zmq = pytest.importorskip("zmq")

MAX_MESSAGE_BYTES = 4 * 2**20  # small, so oversized messages are cheap to make
SERVER_SETTINGS = dict(max_message_bytes=MAX_MESSAGE_BYTES)


def make_config(tmp_path, **overrides):
    return H.make_config(tmp_path, **{**SERVER_SETTINGS, **overrides})


def first_progress(client: BackendClient, job_id: str):
    """Poll until the job reports progress (it is running); returns that event."""
    events = []

    def got_progress():
        return next((m for m in events if m.type == M.PROGRESS and m.job_id == job_id), None)

    return wait_until(got_progress, f"progress of {job_id}", poll=lambda: events.extend(
        client.poll(50)))


def tiny_sequence(frames: int = 2) -> PoseSequence:
    seq = PoseSequence.empty(1, frames, (32, 48), fps=16.0)
    joints = np.tile(np.linspace(-200, 200, 72, dtype=np.float32).reshape(24, 3), (1, frames, 1, 1))
    return seq.replace(joints3d=joints + np.float32(2500))


# --- requests ------------------------------------------------------------------------------------

def test_hello_reports_versions_capabilities_and_limits(client, root):
    hello = client.hello()
    assert hello["protocol"] == 1 and hello["server"]["name"] == "scail-pose"
    assert hello["limits"]["max_message_bytes"] == MAX_MESSAGE_BYTES
    assert set(hello["capabilities"]) >= {"estimators", "device", "extract", "render", "align"}
    assert hello["capabilities"]["align"] is True
    assert hello["capabilities"]["smoothing"] is True
    assert hello["capabilities"]["multi_person"] is True
    assert hello["capabilities"]["cleanup"] is True
    assert hello["roots"] == [str(root.resolve())]
    assert hello["workers"][0]["busy"] is False


def test_sleep_job_streams_progress_and_returns_its_result(client):
    seen = []
    job_id = client.submit(M.SLEEP, {"duration_s": 0.3, "steps": 3})
    result = client.wait(job_id, progress=lambda *p: seen.append(p))
    assert result.job["state"] == M.DONE and result.job["report"] == {"slept_s": 0.3, "steps": 3}
    assert seen[0] == ("sleep", 0, 3) and seen[-1] == ("sleep", 3, 3)
    assert client.status(job_id)["state"] == M.DONE


def test_job_outlives_client_timeout_thanks_to_heartbeats(server):
    # The job takes longer than the client's timeout and reports no progress meanwhile.
    with BackendClient(server.address, KEY, timeout_s=0.8, heartbeat_s=0.2) as c:
        job_id = c.submit(M.SLEEP, {"duration_s": 2.0, "steps": 1})
        assert c.wait(job_id).job["state"] == M.DONE


def test_poll_with_zero_timeout_drives_a_job_without_blocking(client):
    sent = client.send(M.SLEEP, {"duration_s": 0.2, "steps": 2})
    events = []
    final = wait_until(lambda: next((m for m in events if m.type == M.RESULT), None),
                       "result event", poll=lambda: events.extend(client.poll(0) or
                                                                  client.poll(20)))
    accepted = next(m for m in events if m.type == M.ACCEPTED)
    assert accepted.reply_to == sent.msg_id and final.job_id == accepted.body["job"]["id"]
    assert any(m.type == M.PROGRESS for m in events)
    assert client.result_from(final).job["state"] == M.DONE
    assert client.poll(0) == []


def test_failed_job_raises_its_error(client):
    job_id = client.submit(M.SLEEP, {"duration_s": 0, "steps": 1, "fail": "boom on purpose"})
    with pytest.raises(ScailError, match="boom on purpose"):
        client.wait(job_id)
    assert client.status(job_id)["state"] == M.FAILED


def test_cancel_running_and_queued_jobs(client):
    running = client.submit(M.SLEEP, {"duration_s": 30, "steps": 300})
    queued = client.submit(M.SLEEP, {"duration_s": 30, "steps": 300})
    first_progress(client, running)
    assert client.cancel(queued)["state"] == M.CANCELLED
    assert client.cancel(running)["cancel_requested"] is True
    for job_id in (running, queued):
        with pytest.raises(Cancelled):
            client.wait(job_id)
    # The worker is free again.
    assert client.wait(client.submit(M.SLEEP, {"duration_s": 0, "steps": 1})).job["state"] == M.DONE


def test_align_requests_are_checked_before_queueing(client, root):
    with pytest.raises(ProtocolError, match="send the poses inline"):
        client.submit(M.ALIGN, {"reference": {"path": "/nowhere.png"}})
    with pytest.raises(ProtocolError, match="'fallback' must be one of clamped, default"):
        client.submit(M.ALIGN, {"poses_path": "/x.npz", "fallback": "maybe",
                                "reference": {"path": "/nowhere.png"}})
    video = root / "clip.mp4"
    video.write_bytes(b"not checked before the job runs")
    with pytest.raises(ProtocolError, match="field 'reference' is required"):
        client.submit(M.EXTRACT, {"video": {"path": str(video)}, "use_align": True})


def test_unknown_job_and_fetch_of_unfinished_job_are_refused(client):
    with pytest.raises(ServerError, match="no job 'ffffffffffffffff'") as info:
        client.status("ffffffffffffffff")
    assert info.value.code == "not_found"
    job_id = client.submit(M.SLEEP, {"duration_s": 30, "steps": 300})
    with pytest.raises(ServerError, match="only a finished job has results"):
        client.fetch_poses(job_id)
    client.cancel(job_id)


def test_queue_bound_refuses_submissions_when_full(tmp_path):
    running = ServerThread(make_config(tmp_path, max_queue=2))
    try:
        with BackendClient(running.address, KEY, timeout_s=WAIT_S) as c:
            jobs = [c.submit(M.SLEEP, {"duration_s": 30, "steps": 300})]
            first_progress(c, jobs[0])  # running, so out of the queue
            jobs += [c.submit(M.SLEEP, {"duration_s": 30, "steps": 300}) for _ in range(2)]
            with pytest.raises(ServerError, match="queue is full") as info:
                c.submit(M.SLEEP, {"duration_s": 0})
            assert info.value.code == "busy"
            for job_id in jobs:
                c.cancel(job_id)
    finally:
        running.close()


def test_finished_jobs_expire_after_keep_results_s(tmp_path):
    running = ServerThread(make_config(tmp_path, keep_results_s=0.3))
    try:
        with BackendClient(running.address, KEY, timeout_s=WAIT_S) as c:
            job_id = c.submit(M.SLEEP, {"duration_s": 0, "steps": 1})
            c.wait(job_id)

            def gone():
                try:
                    c.status(job_id)
                except ServerError as e:
                    return e.code == "not_found"
                return False

            wait_until(gone, "job expiry", poll=lambda: c.poll(100))
    finally:
        running.close()


# --- files ---------------------------------------------------------------------------------------

def test_upload_copy_and_download_round_trip(client, root, tmp_path):
    payload = np.random.default_rng(5).integers(0, 256, 2_500_000, dtype=np.uint8).tobytes()
    local = tmp_path / "clip.mp4"
    local.write_bytes(payload)
    steps = []
    sha256 = client.upload(local, progress=lambda *p: steps.append(p))
    assert steps[-1] == ("upload", len(payload), len(payload)) and len(steps) >= 3  # chunked
    assert client.upload(local) == sha256  # already cached: nothing re-sent
    job_id = client.submit(M.COPY, {"video": {"upload": sha256}, "out": str(root / "copy.mp4")})
    result = client.wait(job_id)
    assert result.video["bytes"] == len(payload) and result.video["path"] == str(
        (root / "copy.mp4").resolve())
    assert (root / "copy.mp4").read_bytes() == payload
    downloaded = client.download_video(job_id, tmp_path / "down.mp4")
    assert downloaded.read_bytes() == payload


def test_upload_that_does_not_match_its_sha256_is_refused(client):
    begin = client.request(M.UPLOAD_BEGIN, {"sha256": "0" * 64, "size": 4, "suffix": ".mp4"})
    assert begin.body["have"] == 0
    with pytest.raises(ServerError, match="does not match its sha256"):
        client.request(M.UPLOAD_CHUNK, {"sha256": "0" * 64, "offset": 0},
                       arrays={"data": np.frombuffer(b"abcd", np.uint8)})
    with pytest.raises(ServerError, match="not in the server's cache"):
        client.submit(M.COPY, {"video": {"upload": "0" * 64}})


def test_upload_over_the_size_limit_is_refused(tmp_path):
    running = ServerThread(make_config(tmp_path, max_upload_bytes=1000))
    try:
        with BackendClient(running.address, KEY, timeout_s=WAIT_S) as c:
            with pytest.raises(ServerError, match="exceeds this server's limit of 1000 bytes"):
                c.request(M.UPLOAD_BEGIN, {"sha256": "1" * 64, "size": 1001})
    finally:
        running.close()


@pytest.mark.parametrize("make_path", [
    lambda root, outside: "../outside/secret.mp4",
    lambda root, outside: str(outside / "secret.mp4"),
    lambda root, outside: f"{root}/../outside/secret.mp4",
    lambda root, outside: str(root / "link.mp4"),  # a symlink inside the root, pointing out
    lambda root, outside: str(root / "linkdir" / "secret.mp4"),
], ids=["relative", "absolute-outside", "dotdot", "symlink-file", "symlink-dir"])
def test_paths_outside_the_roots_are_refused(client, root, tmp_path, make_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.mp4").write_bytes(b"secret")
    (root / "link.mp4").symlink_to(outside / "secret.mp4")
    (root / "linkdir").symlink_to(outside)
    path = make_path(root, outside)
    for body in ({"video": {"path": path}}, {"video": {"path": str(root / "x.mp4")},
                                             "out": path}):
        if "out" in body:
            (root / "x.mp4").write_bytes(b"ok")
        with pytest.raises(ServerError) as info:
            client.submit(M.COPY, body)
        assert info.value.code == "forbidden", info.value
        assert "outside the server's roots" in str(info.value) or "relative" in str(info.value)
    assert (outside / "secret.mp4").read_bytes() == b"secret"
    assert client.hello()["protocol"] == 1


def test_server_without_roots_refuses_every_path(tmp_path):
    running = ServerThread(make_config(tmp_path, roots=()))
    try:
        with BackendClient(running.address, KEY, timeout_s=WAIT_S) as c:
            with pytest.raises(ServerError, match="started without --root"):
                c.submit(M.COPY, {"video": {"path": str(tmp_path)}})
    finally:
        running.close()


# --- bad input: refused with an error reply, the server keeps serving -------------------------

def _signed(session, type, body=None, arrays=None):
    return session.serialize(session.message(type, body, arrays=arrays))


def _tampered(session):
    frames = _signed(session, M.HELLO)
    frames[-1] = frames[-1].replace(b"}", b" }")
    return frames


def _unsigned(session):
    frames = _signed(session, M.HELLO)
    frames[frames.index(DELIM) + 2] = b""
    return frames


def _bad_dtype(session):
    frames = _signed(session, M.UPLOAD_CHUNK, {"sha256": "2" * 64, "offset": 0},
                     {"data": np.zeros(8, np.uint8)})
    i = frames.index(DELIM)
    frames[i + 4] = frames[i + 4].replace(b'"uint8"', b'"object"')
    return frames[:i + 2] + [session.sign(frames[i + 3:])] + frames[i + 3:]


def _nan_poses(field, value):
    def make(session):
        body, arrays = sequence_parts(tiny_sequence())
        bad = np.array(arrays[f"poses.{field}"])
        bad.flat[0] = value
        return _signed(session, M.RENDER, body, dict(arrays, **{f"poses.{field}": bad}))
    return make


BAD_MESSAGES = {
    "garbage": (lambda s: [b"GET / HTTP/1.1\r\n\r\n"], "protocol", "no delimiter"),
    "delimiter-only": (lambda s: [DELIM], "protocol", "truncated message"),
    "wrong-tag": (lambda s: [DELIM, b"jupyter/5"] + _signed(s, M.HELLO)[2:], "protocol",
                  "not a scail-pose message"),
    "bad-signature": (_tampered, "protocol", "invalid signature"),
    "unsigned": (_unsigned, "protocol", "unsigned message"),
    "other-key": (lambda s: _signed(Session(b"not-the-server-key-0123"), M.HELLO), "protocol",
                  "invalid signature"),
    "stale": (lambda s: _signed(Session(KEY, clock=lambda: time.time() - 3600), M.HELLO),
              "protocol", "stale message"),
    "oversized-total": (lambda s: _signed(s, M.HELLO, arrays={
        f"a{i}": np.zeros(MAX_MESSAGE_BYTES // 3, np.uint8) for i in range(4)}), "protocol",
        "exceeds the limit"),
    "bad-dtype": (_bad_dtype, "protocol", "dtype 'object'"),
    "unknown-type": (lambda s: _signed(s, "frobnicate"), "protocol", "unknown request type"),
    "wrong-type-job-id": (lambda s: _signed(s, M.STATUS, {"job_id": 5}), "protocol",
                          "'job_id' must be str, got int"),
    "wrong-type-video": (lambda s: _signed(s, M.EXTRACT, {"video": "clip.mp4"}), "protocol",
                         "'video' must be dict"),
    "wrong-type-duration": (lambda s: _signed(s, M.SLEEP, {"duration_s": "long"}), "protocol",
                            "'duration_s' must be int or float"),
    "bool-for-int": (lambda s: _signed(s, M.SLEEP, {"duration_s": True}), "protocol",
                     "must be int or float, got bool"),
    "bad-resolution": (lambda s: _signed(s, M.EXTRACT, {"video": {"path": "/x"},
                                                        "resolution": [5, -1]}), "protocol",
                       "'resolution' must be"),
    "smoothing-out-of-range": (lambda s: _signed(s, M.EXTRACT, {"video": {"path": "/x"},
                                                                "smoothing": 1.5}), "protocol",
                               "'smoothing' must be light, medium, strong"),
    "smoothing-unknown-name": (lambda s: _signed(s, M.RUN, {"video": {"path": "/x"},
                                                            "smoothing": "wobbly"}), "protocol",
                               "got 'wobbly'"),
    "smoothing-wrong-type": (lambda s: _signed(s, M.EXTRACT, {"video": {"path": "/x"},
                                                              "smoothing": [0.5]}), "protocol",
                             "'smoothing' must be str or int or float, got list"),
    "smoothing-bool": (lambda s: _signed(s, M.RUN, {"video": {"path": "/x"},
                                                    "smoothing": True}), "protocol",
                       "got bool"),
    "cleanup-wrong-type": (lambda s: _signed(s, M.EXTRACT, {"video": {"path": "/x"},
                                                            "cleanup": "all"}), "protocol",
                           "'cleanup' must be dict, got str"),
    "cleanup-unknown-field": (lambda s: _signed(s, M.RUN, {"video": {"path": "/x"},
                                                           "cleanup": {"feet": True}}),
                              "protocol", "unknown cleanup option(s) feet"),
    "cleanup-max-people-zero": (lambda s: _signed(s, M.EXTRACT, {"video": {"path": "/x"},
                                                                 "cleanup": {"max_people": 0}}),
                                "protocol", "max_people must be a positive integer"),
    "cleanup-negative-gap": (lambda s: _signed(s, M.RUN, {"video": {"path": "/x"},
                                                          "cleanup": {"fill_gaps": -2}}),
                             "protocol", "gap length must be a whole number"),
    "cleanup-take-fit-text": (lambda s: _signed(s, M.EXTRACT, {"video": {"path": "/x"},
                                                               "cleanup": {"take_fit": "yes"}}),
                              "protocol", "take_fit must be true or false"),
    "fps-zero": (lambda s: _signed(s, M.EXTRACT, {"video": {"path": "/x"}, "fps": 0}),
                 "protocol", "'fps': fps must be a number in"),
    "fps-wrong-type": (lambda s: _signed(s, M.RUN, {"video": {"path": "/x"}, "fps": "16"}),
                       "protocol", "'fps' must be int or float, got str"),
    "nan-in-K": (_nan_poses("K", np.nan), "protocol", "NaN or infinite"),
    "inf-in-joints": (_nan_poses("joints3d", np.inf), "protocol", "infinite values"),
    "partly-nan-joint": (_nan_poses("joints3d", np.nan), "protocol", "partly-NaN"),
    "missing-arrays": (lambda s: _signed(s, M.RENDER, sequence_parts(tiny_sequence())[0]),
                       "protocol", "is missing"),
}


@pytest.mark.parametrize("name", sorted(BAD_MESSAGES))
def test_bad_message_is_refused_with_an_error_and_the_server_keeps_serving(server, name):
    make, code, reason = BAD_MESSAGES[name]
    peer = RawPeer(server.address)
    try:
        peer.send_frames(make(Session(KEY)))
        reply = peer.recv()
        assert reply.type == M.ERROR and reply.body["code"] == code, reply.body
        assert reason in reply.body["message"], reply.body["message"]
        assert peer.request(M.HELLO).type == M.HELLO  # the next good request succeeds
    finally:
        peer.close()


def test_replayed_request_is_refused(server):
    peer = RawPeer(server.address)
    try:
        frames = _signed(Session(KEY), M.HELLO)
        peer.send_frames(frames)
        assert peer.recv().type == M.HELLO
        peer.send_frames(frames)
        reply = peer.recv()
        assert reply.type == M.ERROR and "replayed message" in reply.body["message"]
        assert peer.request(M.HELLO).type == M.HELLO
    finally:
        peer.close()


def test_frame_over_max_message_size_drops_only_that_connection(server):
    peer = RawPeer(server.address)
    try:
        frames = _signed(Session(KEY), M.HELLO, arrays={
            "big": np.zeros(MAX_MESSAGE_BYTES + 1, np.uint8)})
        peer.send_frames(frames)  # ZMQ_MAXMSGSIZE: ZeroMQ drops the connection, no reply
        assert not peer.sock.poll(300)
    finally:
        peer.close()
    with BackendClient(server.address, KEY, timeout_s=WAIT_S) as c:
        assert c.hello()["protocol"] == 1


def test_client_with_the_wrong_key_gets_a_clear_error(server):
    with BackendClient(server.address, b"wrong-key-0123456789abcd", timeout_s=WAIT_S) as c:
        with pytest.raises(ProtocolError, match="same key file"):
            c.hello()


def test_client_timeout_names_the_address():
    with zmq.Context() as context:
        sock = context.socket(zmq.ROUTER)  # bound but silent: a server that never answers
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        address = f"tcp://127.0.0.1:{port}"
        with BackendClient(address, KEY, timeout_s=0.3, context=context) as c:
            with pytest.raises(ServerTimeout, match=f"no reply from {address} within 0.3 s; "
                                                    f"is `scail-pose serve` running"):
                c.hello()
        sock.close(linger=0)


# --- load ----------------------------------------------------------------------------------------

def test_twenty_clients_five_jobs_each_all_complete(server):
    results, errors = {}, []

    def one_client(index: int):
        try:
            with BackendClient(server.address, KEY, timeout_s=WAIT_S, heartbeat_s=0.5) as c:
                jobs = [c.submit(M.SLEEP, {"duration_s": 0.0, "steps": 1}) for _ in range(5)]
                results[index] = [(job_id, c.wait(job_id).job["state"]) for job_id in jobs]
        except Exception as e:  # collected and reported by the main thread
            errors.append(repr(e))

    threads = [threading.Thread(target=one_client, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    job_ids = [job_id for per_client in results.values() for job_id, _ in per_client]
    assert len(results) == 20 and len(set(job_ids)) == 100
    assert all(state == M.DONE for per_client in results.values() for _, state in per_client)
    with BackendClient(server.address, KEY, timeout_s=WAIT_S) as c:
        listed = {job["id"]: job["state"] for job in c.list_jobs()}
    assert all(listed[job_id] == M.DONE for job_id in job_ids)


# --- processes that die --------------------------------------------------------------------------

CLIENT_SCRIPT = """
import sys
from scail_protocol.client import BackendClient
client = BackendClient(sys.argv[1], sys.argv[2].encode(), timeout_s=20)
job_id = client.submit("sleep", {"duration_s": float(sys.argv[3]), "steps": 20})
print("job", job_id, flush=True)
client.wait(job_id, progress=lambda stage, done, total: print("progress", done, flush=True))
print("finished", flush=True)
"""


@pytest.mark.parametrize("cancel_orphans", [False, True])
def test_client_killed_mid_job(tmp_path, cancel_orphans):
    running = ServerThread(make_config(tmp_path, cancel_orphans=cancel_orphans))
    proc = subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT, running.address,
                             KEY.decode(), "1.5"], stdout=subprocess.PIPE, text=True)
    try:
        lines = LineReader(proc)
        job_id = lines.expect("job ").split()[1]
        lines.expect("progress")
        proc.send_signal(signal.SIGKILL)
        proc.wait(WAIT_S)
        with BackendClient(running.address, KEY, timeout_s=WAIT_S) as c:
            wait_until(lambda: not c.status(job_id)["owner_connected"], "owner to be seen gone",
                       poll=lambda: c.poll(50))
            c.attach(job_id)
            if cancel_orphans:
                with pytest.raises(Cancelled):
                    c.wait(job_id)
            else:
                result = c.wait(job_id)
                assert result.job["state"] == M.DONE and result.job["report"]["steps"] == 20
    finally:
        if proc.poll() is None:
            proc.kill()
        running.close()


def test_a_finished_jobs_owner_is_seen_gone_once_the_client_exits(tmp_path):
    running = ServerThread(make_config(tmp_path))
    try:
        done = subprocess.run([sys.executable, "-c", CLIENT_SCRIPT, running.address,
                               KEY.decode(), "0.1"], capture_output=True, text=True,
                              timeout=WAIT_S)
        assert "finished" in done.stdout, done.stderr
        job_id = done.stdout.split()[1]
        with BackendClient(running.address, KEY, timeout_s=WAIT_S) as c:
            assert c.status(job_id)["state"] == M.DONE
            wait_until(lambda: not c.status(job_id)["owner_connected"], "owner to be seen gone",
                       poll=lambda: c.poll(50))
    finally:
        running.close()


def test_server_killed_mid_job_then_restarted(tmp_path):
    key_file, work = tmp_path / "key", tmp_path / "work"
    proc, _, address = start_server_process("tcp://127.0.0.1:*", key_file, work)
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    key = key_file.read_bytes().strip()
    try:
        with BackendClient(address, key, timeout_s=1.5, heartbeat_s=0.3) as c:
            job_id = c.submit(M.SLEEP, {"duration_s": 30, "steps": 300})
            first_progress(c, job_id)
            proc.send_signal(signal.SIGKILL)
            proc.wait(WAIT_S)
            with pytest.raises(ServerTimeout, match=f"no reply from {address} within 1.5 s while "
                                                    f"waiting for job {job_id}; is `scail-pose "
                                                    f"serve` running"):
                c.wait(job_id)
            proc, _, again = start_server_process(address, key_file, work)
            assert again == address
            c.timeout_s = WAIT_S
            result = c.wait(c.submit(M.SLEEP, {"duration_s": 0.1, "steps": 2}))
            assert result.job["state"] == M.DONE
            with pytest.raises(ServerError, match="a restarted server forgets its jobs"):
                c.status(job_id)
        # The killed server's job folders were removed by the new one.
        assert len(list((work / "jobs").iterdir())) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT_S)


def test_server_stops_cleanly_on_sigterm(tmp_path):
    proc, _, address = start_server_process("tcp://127.0.0.1:*", tmp_path / "key",
                                            tmp_path / "work")
    try:
        key = (tmp_path / "key").read_bytes().strip()
        with BackendClient(address, key, timeout_s=WAIT_S) as c:
            job_id = c.submit(M.SLEEP, {"duration_s": 30, "steps": 300})
            first_progress(c, job_id)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(WAIT_S) == 0
            with pytest.raises(ServerError, match="the server shut down"):
                c.wait(job_id)
        assert list((tmp_path / "work" / "jobs").iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_client_hello_prints_json(tmp_path):
    proc, _, address = start_server_process("tcp://127.0.0.1:*", tmp_path / "key",
                                            tmp_path / "work")
    try:
        out = subprocess.run([sys.executable, "-m", "scail_backend.cli", "client", "hello",
                              "--connect", address, "--key-file", str(tmp_path / "key")],
                             capture_output=True, text=True, timeout=WAIT_S)
        assert out.returncode == 0, out.stderr
        import json

        assert json.loads(out.stdout)["protocol"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(WAIT_S)


def test_cli_client_sends_smoothing_and_the_server_checks_it_too(server, client, root, tmp_path,
                                                                  capsys):
    from scail_backend.cli import main

    key_file = tmp_path / "client.key"
    key_file.write_bytes(KEY)
    clip = root / "clip.mp4"
    clip.write_bytes(b"not decoded: the request is refused or queued first")
    common = ["--connect", server.address, "--key-file", str(key_file), "--no-wait"]
    with pytest.raises(SystemExit) as info:  # refused here, before anything is sent
        main(["-q", "client", "extract", str(clip), "--smooth", "1.5", *common])
    assert info.value.code == 2 and "smoothing strength must be" in capsys.readouterr().err
    with pytest.raises(ProtocolError, match="'smoothing' must be"):  # and there, from any client
        client.submit(M.EXTRACT, {"video": {"path": str(clip)}, "smoothing": 1.5})
    assert main(["-q", "client", "run", str(clip), "--smooth", "0.4", *common]) == 0
    assert main(["-q", "client", "extract", str(clip), "--smooth", *common]) == 0
    assert len(capsys.readouterr().out.split()) == 2  # two job ids


def test_cli_client_reports_missing_server_with_its_address(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("x" * 32)
    with zmq.Context() as context:
        sock = context.socket(zmq.ROUTER)
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        from scail_backend.cli import main

        code = main(["-q", "client", "jobs", "--connect", f"tcp://127.0.0.1:{port}",
                     "--key-file", str(key_file), "--timeout", "0.2"])
        sock.close(linger=0)
    assert code == 2


def test_key_file_is_created_owner_only_and_reused(tmp_path):
    from scail_backend.server import load_or_create_key

    key, path, created = load_or_create_key(tmp_path / "cfg" / "server.key")
    assert created and len(key) == 64 and (path.stat().st_mode & 0o777) == 0o600
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    again, _, created_again = load_or_create_key(path)
    assert again == key and not created_again
    assert os.path.samefile(path, tmp_path / "cfg" / "server.key")


def test_second_server_on_a_busy_address_says_so(server, tmp_path):
    from scail_backend.server import Server

    (tmp_path / "second").mkdir()
    second = Server(make_config(tmp_path / "second", bind=server.address))
    with pytest.raises(ScailError, match=f"cannot bind {server.address}.*another server"):
        second.start()
