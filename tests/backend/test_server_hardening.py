"""Server hardening over real loopback sockets: no replay across a restart, outputs that are
inputs refused, outputs re-checked right before their final rename, settings and request
options checked up front (as the CLI checks them), one-line errors from ``serve``."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from scail_protocol import messages as M
from scail_protocol.client import BackendClient
from scail_protocol.errors import ProtocolError
from scail_protocol.messages import ServerError
from scail_protocol.wire import Session

from mount_helpers import can_mount_tmpfs
from server_helpers import KEY, WAIT_S, RawPeer, ServerThread, make_config
from server_helpers import client, root, server  # noqa: F401  (fixtures)

zmq = pytest.importorskip("zmq")


# --- replay across a restart ---------------------------------------------------------------------

def test_a_request_captured_before_a_restart_is_refused_by_the_new_server(tmp_path):
    first = ServerThread(make_config(tmp_path / "a"))
    try:
        session = Session(KEY)
        captured = session.serialize(session.message(M.SLEEP, {"duration_s": 0, "steps": 1}))
        peer = RawPeer(first.address)
        peer.send_frames(captured)
        assert peer.recv().type == M.ACCEPTED  # the original request, to the original server
        peer.close()
    finally:
        first.close()
    restarted = ServerThread(make_config(tmp_path / "b"))  # same key, fresh replay history
    try:
        peer = RawPeer(restarted.address)
        peer.send_frames(captured)
        reply = peer.recv()
        assert reply.type == M.ERROR and reply.body["code"] == "protocol"
        assert "before this server started" in reply.body["message"]
        assert peer.request(M.HELLO).type == M.HELLO  # fresh requests are served
        peer.close()
    finally:
        restarted.close()


# --- never destroy an input ----------------------------------------------------------------------

@pytest.mark.parametrize("alias", ["same", "symlink", "hard-link"])
def test_a_job_whose_output_is_its_input_is_refused(client, root, alias):
    video = root / "clip.mp4"
    video.write_bytes(b"precious")
    out = {"same": video, "symlink": root / "link.mp4", "hard-link": root / "hard.mp4"}[alias]
    if alias == "symlink":
        out.symlink_to(video)
    elif alias == "hard-link":
        os.link(video, out)
    with pytest.raises(ServerError) as info:
        client.submit(M.COPY, {"video": {"path": str(video)}, "out": str(out)})
    # not "forbidden": that would make a client upload the input and submit again (see below)
    assert info.value.code == "error" and "is the input" in str(info.value)
    assert video.read_bytes() == b"precious"


def test_a_run_whose_out_dir_holds_its_video_as_an_output_name_is_refused(client, root):
    video = root / "rendered.mp4"
    video.write_bytes(b"precious")
    with pytest.raises(ServerError, match="is the input") as info:
        client.submit(M.RUN, {"video": {"path": str(video)}, "out_dir": str(root)})
    assert info.value.code == "error" and video.read_bytes() == b"precious"


def test_an_input_refused_as_the_output_is_not_uploaded_and_written_over(server, root):
    """A client uploads its files when the server refuses their paths ("forbidden"); the
    refusal of an output that is an input must not start that, or the upload's job would
    write over the user's video (abuse 3 #2)."""
    from scail_protocol import conversation as C

    video = root / "rendered.mp4"
    video.write_bytes(b"precious")
    with BackendClient(server.address, KEY, timeout_s=WAIT_S) as c:
        with pytest.raises(ServerError, match="is the input"):
            c.converse(C.run(video, {"out_dir": str(root)}, upload_video="auto"))
    assert video.read_bytes() == b"precious"
    assert list(server.server.work.uploads.iterdir()) == []  # nothing was uploaded


# --- an output's name says what it holds, as the CLI's -o (abuse 3 #2) ----------------------------

@pytest.mark.parametrize("kind, target, suffix", [
    (M.EXTRACT, "precious.mp4", ".npz"),
    (M.ALIGN, "precious.mp4", ".npz"),
    (M.RENDER, "keep.npz", ".mp4"),
    (M.COPY, "keep.npz", ".mp4"),
])
def test_an_output_named_for_another_kind_of_file_is_refused_before_any_work(
        client, root, kind, target, suffix):
    video, poses, image = root / "clip.mp4", root / "poses.npz", root / "ref.png"
    for path in (video, poses, image):
        path.write_bytes(b"input")
    out = root / target
    out.write_bytes(b"precious")
    body = {M.EXTRACT: {"video": {"path": str(video)}},
            M.ALIGN: {"poses_path": str(poses), "reference": {"path": str(image)}},
            M.RENDER: {"poses_path": str(poses)},
            M.COPY: {"video": {"path": str(video)}}}[kind]
    with pytest.raises(ServerError) as info:
        client.submit(kind, dict(body, out=str(out)))
    message = str(info.value)
    assert info.value.code == "error" and "\n" not in message
    assert message == (f"out {out}: this writes a {suffix} file; name it "
                       f"{out.with_suffix(suffix).name}")
    assert out.read_bytes() == b"precious" and client.list_jobs() == []


def test_an_output_that_is_a_link_to_another_kind_of_file_is_refused(client, root):
    video = root / "clip.mp4"
    video.write_bytes(b"input")
    precious = root / "precious.mp4"
    precious.write_bytes(b"precious")
    (root / "poses.npz").symlink_to(precious)
    with pytest.raises(ServerError, match=r"poses\.npz is a link to .*precious\.mp4"):
        client.submit(M.EXTRACT, {"video": {"path": str(video)}, "out": str(root / "poses.npz")})
    assert precious.read_bytes() == b"precious"


def test_an_output_with_the_right_suffix_in_any_case_is_accepted(client, root):
    video = root / "clip.mp4"
    video.write_bytes(b"video bytes")
    job = client.submit(M.COPY, {"video": {"path": str(video)}, "out": str(root / "COPY.MP4")})
    client.wait(job)
    assert (root / "COPY.MP4").read_bytes() == b"video bytes"


# --- numbers of any size, in requests and in the client (abuse 3 #11) -----------------------------

@pytest.mark.parametrize("body, field", [
    ({"fps": 10**400}, "'fps'"),
    ({"fps": -10**400}, "'fps'"),
    ({"smoothing": 10**400}, "'smoothing'"),
    ({"cleanup": {"max_people": 10**400}}, "'cleanup.max_people'"),
    ({"resolution": [10**400, 512]}, r"'resolution\[0\]'"),
])
def test_huge_numbers_in_a_request_are_refused_in_one_line(client, root, body, field):
    video = root / "clip.mp4"
    video.write_bytes(b"x")
    with pytest.raises(ProtocolError, match=field + r" is out of range .*below 2\*\*63") as info:
        client.submit(M.EXTRACT, dict({"video": {"path": str(video)}}, **body))
    assert len(str(info.value)) < 200 and client.list_jobs() == []


@pytest.mark.parametrize("timeout_s", [1e7, 1e300, float("inf")])
def test_a_client_timeout_of_any_size_waits_without_overflow(server, timeout_s):
    with BackendClient(server.address, KEY, timeout_s=timeout_s, heartbeat_s=0.2) as c:
        assert c.hello()["protocol"] == 1
        job = c.submit(M.SLEEP, {"duration_s": 0.2, "steps": 2})
        assert c.wait(job).job["state"] == M.DONE


@pytest.mark.parametrize("timeout_s", [0, -1, float("nan"), "abc", None])
def test_a_client_timeout_that_is_not_a_positive_number_is_one_line(timeout_s):
    from scail_protocol.errors import ScailError

    with pytest.raises(ScailError, match="timeout_s must be a positive number of seconds"):
        BackendClient("tcp://127.0.0.1:9", KEY, timeout_s=timeout_s)


# --- outputs re-checked right before the final rename ---------------------------------------------

def test_an_output_folder_swapped_for_a_link_during_the_job_stays_inside_the_roots(
        client, root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "sub").mkdir()
    video = root / "clip.mp4"
    video.write_bytes(b"video bytes")
    blocker = client.submit(M.SLEEP, {"duration_s": 30, "steps": 300})  # holds the one worker
    copy = client.submit(M.COPY, {"video": {"path": str(video)},
                                  "out": str(root / "sub" / "out.mp4")})  # checked: inside
    (root / "sub").rename(root / "old_sub")
    (root / "sub").symlink_to(outside)  # swapped while the job waits in the queue
    client.cancel(blocker)
    with pytest.raises(ServerError) as info:
        client.wait(copy)
    assert info.value.code == "forbidden" and "outside the server's roots" in str(info.value)
    assert list(outside.iterdir()) == [] and list((root / "old_sub").iterdir()) == []


def test_an_os_error_in_a_job_is_its_one_line_error_not_an_internal_one(client, root):
    video = root / "clip.mp4"
    video.write_bytes(b"video bytes")
    blocker = client.submit(M.SLEEP, {"duration_s": 30, "steps": 300})
    copy = client.submit(M.COPY, {"video": {"path": str(video)}})  # checked: it exists
    video.unlink()  # gone before the job runs
    client.cancel(blocker)
    with pytest.raises(ServerError) as info:
        client.wait(copy)
    assert info.value.code == "error"
    assert str(info.value) == f"job {copy}: {video}: No such file or directory"


# --- options, as the CLI checks them ------------------------------------------------------------

@pytest.mark.parametrize("body, words", [
    ({"resolution": [5000, 5000]}, "'resolution'"),
    ({"resolution": [8, 8]}, "16..4096"),
    ({"estimator": "bogus"}, "unknown estimator 'bogus'"),
])
def test_submissions_with_options_the_pipeline_would_refuse_are_refused_at_once(
        client, root, body, words):
    video = root / "clip.mp4"
    video.write_bytes(b"x")
    with pytest.raises(ProtocolError, match=words):  # the server's code "protocol"
        client.submit(M.EXTRACT, dict({"video": {"path": str(video)}}, **body))
    assert client.list_jobs() == []


def test_default_message_limit_fits_an_upload_chunk_and_refuses_big_frames_unread(tmp_path):
    from scail_backend.server.config import DEFAULT_MAX_MESSAGE_BYTES

    assert M.UPLOAD_CHUNK_BYTES * 2 <= DEFAULT_MAX_MESSAGE_BYTES <= 64 * 2**20
    running = ServerThread(make_config(tmp_path))  # the default limit
    try:
        peer = RawPeer(running.address)
        big = np.zeros(DEFAULT_MAX_MESSAGE_BYTES + 1, np.uint8)  # unsigned junk, one frame
        peer.send_frames([b"<SCAIL|MSG>", b"scail-pose/1", b"", b"{}", b"{}", big])
        assert not peer.sock.poll(300)  # ZMQ_MAXMSGSIZE: dropped by the socket, no reply
        peer.close()
        with BackendClient(running.address, KEY, timeout_s=WAIT_S) as c:
            chunk = np.ones(M.UPLOAD_CHUNK_BYTES, np.uint8)
            sha = "ab" * 32
            c.request(M.UPLOAD_BEGIN, {"sha256": sha, "size": 2 * len(chunk), "suffix": ".mp4"})
            state = c.request(M.UPLOAD_CHUNK, {"sha256": sha, "offset": 0},
                              arrays={"data": chunk})
            assert state.body["have"] == len(chunk)  # a full-size chunk goes through
    finally:
        running.close()


def test_frames_under_the_limit_that_add_up_over_it_are_refused(tmp_path):
    running = ServerThread(make_config(tmp_path, max_message_bytes=4 * 2**20))
    try:
        peer = RawPeer(running.address)
        part = np.zeros(3 * 2**20, np.uint8)
        peer.send_frames([b"<SCAIL|MSG>", b"scail-pose/1", b"0" * 64, b"{}", b"{}", part, part])
        reply = peer.recv()
        assert reply.type == M.ERROR and "exceeds the limit" in reply.body["message"]
        assert peer.request(M.HELLO).type == M.HELLO
        peer.close()
    finally:
        running.close()


# --- serve: settings and its work dir, one line each -------------------------------------------

def _serve(tmp_path, *args, prefix=()):
    cmd = [*prefix, sys.executable, "-m", "scail_backend.cli", "serve", "--bind",
           "tcp://127.0.0.1:*", "--key-file", str(tmp_path / "key"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT_S)


@pytest.mark.parametrize("args, words", [
    (["--max-message-mb", "0"], "--max-message-mb"),
    (["--max-message-mb", "nan"], "--max-message-mb"),
    (["--max-queue", "-5"], "--max-queue"),
    (["--workers", "0"], "--workers"),
    (["--keep-results-s", "nan"], "--keep-results-s"),
    (["--upload-cache-mb", "1", "--max-upload-mb", "2"], "--upload-cache-mb"),
])
def test_serve_refuses_bad_settings_in_one_line_before_binding(tmp_path, args, words):
    proc = _serve(tmp_path, "--work-dir", str(tmp_path / "work"), *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr, lines
    assert not (tmp_path / "work").exists()


def test_serve_with_a_work_dir_under_a_file_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    proc = _serve(tmp_path, "--work-dir", str(tmp_path / "afile" / "work"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot use the work dir" in lines[0] and "--work-dir" in lines[0]


@pytest.mark.skipif(not can_mount_tmpfs("ro"),
                    reason="needs unshare and user namespaces to mount a read-only tmpfs")
def test_serve_on_a_read_only_work_dir_is_one_line(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    script = (f"mount -t tmpfs -o ro t {folder} && exec {sys.executable} -m scail_backend.cli "
              f"serve --bind tcp://127.0.0.1:* --key-file {tmp_path / 'key'} "
              f"--work-dir {folder / 'work'}")
    proc = subprocess.run(["unshare", "-Urm", "sh", "-c", script], capture_output=True,
                          text=True, timeout=WAIT_S)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "read-only" in lines[0] and str(folder / "work") in lines[0]


@pytest.mark.parametrize("taken, words", [
    (False, "not one of this machine's"),  # 192.0.2.1: TEST-NET-1, on no machine
    (True, "is another server running there?"),
])
def test_serve_on_an_address_it_cannot_bind_says_why_in_one_line(tmp_path, taken, words):
    bind = "tcp://192.0.2.1:5555"
    blocker = None
    if taken:
        blocker = zmq.Context.instance().socket(zmq.ROUTER)
        port = blocker.bind_to_random_port("tcp://127.0.0.1")
        bind = f"tcp://127.0.0.1:{port}"
    try:
        proc = _serve(tmp_path, "--bind", bind, "--work-dir", str(tmp_path / "work"))
    finally:
        if blocker is not None:
            blocker.close(linger=0)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot bind {bind}" in lines[0] and words in lines[0], lines
    assert ("another server" in lines[0]) == taken
