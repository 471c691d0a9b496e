"""The server's upload cache on a real folder (resume, verification, LRU eviction, restart) and
over real sockets (a server stopped mid-upload, empty files, errors naming the user's file)."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from scail_backend.server.uploads import UploadCache
from scail_backend.server.validate import RequestError
from scail_protocol import messages as M
from scail_protocol.client import BackendClient

from server_helpers import KEY, WAIT_S, RawPeer, ServerThread, make_config
from server_helpers import root, server  # noqa: F401  (fixtures)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(cache: UploadCache, data: bytes, suffix: str = ".mp4") -> str:
    digest = sha(data)
    have = cache.begin(digest, len(data), suffix)
    while have < len(data):
        have = cache.write(digest, have, data[have:have + 4])
    return digest


def test_upload_resumes_from_the_offset_the_server_reports(tmp_path):
    cache = UploadCache(tmp_path, max_file_bytes=100, max_total_bytes=1000)
    data = b"0123456789abcdef"
    digest = sha(data)
    assert cache.begin(digest, len(data), ".mp4") == 0
    assert cache.write(digest, 0, data[:6]) == 6
    assert cache.write(digest, 2, data[2:8]) == 6  # wrong offset: ignored, told where to go on
    assert cache.begin(digest, len(data), ".mp4") == 6  # a reconnecting client resumes
    assert cache.write(digest, 6, data[6:]) == len(data)
    assert cache.path(digest).read_bytes() == data
    assert cache.path(digest).name == digest + ".mp4"
    assert cache.begin(digest, len(data), ".mp4") == len(data)  # cached: nothing to send


def test_upload_with_wrong_content_or_too_many_bytes_is_dropped(tmp_path):
    cache = UploadCache(tmp_path, max_file_bytes=100, max_total_bytes=1000)
    digest = sha(b"expected")
    cache.begin(digest, 8, ".mp4")
    with pytest.raises(RequestError, match="does not match its sha256"):
        cache.write(digest, 0, b"tampered")
    cache.begin(digest, 4, ".mp4")
    with pytest.raises(RequestError, match="more bytes than the announced 4"):
        cache.write(digest, 0, b"12345")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RequestError, match="send upload_begin first"):
        cache.write(digest, 0, b"x")


def test_cache_evicts_least_recently_used_files_but_not_pinned_ones(tmp_path):
    cache = UploadCache(tmp_path, max_file_bytes=100, max_total_bytes=30)
    a, b = put(cache, b"a" * 10), put(cache, b"b" * 10)
    os.utime(cache.path(a), (1, 1))  # a is the oldest ...
    cache.pin(a)  # ... but a queued job needs it
    os.utime(cache.path(b), (2, 2))
    c = put(cache, b"c" * 10)
    d = put(cache, b"d" * 10)  # needs room: b goes, a stays pinned
    assert cache.path(a) and cache.path(c) and cache.path(d)
    with pytest.raises(RequestError, match="not in the server's cache"):
        cache.path(b)
    cache.pin(c)
    cache.pin(d)
    with pytest.raises(RequestError, match="upload cache is full"):
        cache.begin(sha(b"e" * 10), 10, ".mp4")
    cache.unpin(a)
    put(cache, b"e" * 10)  # now a can go
    with pytest.raises(RequestError, match="not in the server's cache"):
        cache.path(a)


@pytest.mark.parametrize("suffix", [".mov", "", ".part", ".PART"])
def test_cache_survives_a_restart_and_drops_partial_files(tmp_path, suffix):
    cache = UploadCache(tmp_path, max_file_bytes=100, max_total_bytes=1000)
    done = put(cache, b"complete file", suffix)
    partial = sha(b"half of it")
    cache.begin(partial, 10, suffix)
    cache.write(partial, 0, b"half")
    again = UploadCache(tmp_path, max_file_bytes=100, max_total_bytes=1000)
    assert again.path(done).read_bytes() == b"complete file"  # even one sent as ".part"
    assert sorted(p.name for p in tmp_path.iterdir()) == [done + ("" if "part" in suffix.lower()
                                                                 else suffix)]
    assert again.begin(partial, 10, suffix) == 0
    with pytest.raises(RequestError, match="not in the server's cache"):
        again.path(partial)


def test_a_cached_file_changed_on_disk_is_dropped_when_used_after_a_restart(tmp_path):
    cache = UploadCache(tmp_path, max_file_bytes=100, max_total_bytes=1000)
    short, same_size = put(cache, b"0123456789"), put(cache, b"abcdefghij")
    cache.path(short).write_bytes(b"01234")  # lost its tail (a crash before it reached the disk)
    cache.path(same_size).write_bytes(b"abcdeXXXXX")  # damaged in place
    again = UploadCache(tmp_path, max_file_bytes=100, max_total_bytes=1000)
    assert again.begin(short, 10, ".mp4") == 0  # size differs: sent again
    assert again.begin(same_size, 10, ".mp4") == 0  # content differs: sent again
    with pytest.raises(RequestError, match="not in the server's cache"):
        again.path(same_size)
    assert put(again, b"abcdefghij") == same_size
    assert again.path(same_size).read_bytes() == b"abcdefghij"
    with pytest.raises(RequestError, match="has 10 bytes, not the announced 11") as info:
        again.begin(same_size, 11, ".mp4")  # an intact file is kept; the client is wrong
    assert info.value.code == "bad_upload"
    assert again.path(same_size).read_bytes() == b"abcdefghij"


def test_an_empty_upload_is_refused_and_leaves_nothing(tmp_path):
    cache = UploadCache(tmp_path, max_file_bytes=100, max_total_bytes=1000)
    with pytest.raises(RequestError, match="is an empty file") as info:
        cache.begin(sha(b""), 0, ".mp4")
    assert info.value.code == "bad_upload" and list(tmp_path.iterdir()) == []


def test_upload_larger_than_the_file_limit_is_refused(tmp_path):
    cache = UploadCache(tmp_path, max_file_bytes=10, max_total_bytes=1000)
    with pytest.raises(RequestError, match="exceeds this server's limit of 10 bytes") as info:
        cache.begin("a" * 64, 11, ".mp4")
    assert info.value.code == "too_large"


# --- over real sockets: a server restarted during an upload, empty files, errors (abuse 3) ------

def _chunk(data: bytes):
    return {"data": np.frombuffer(data, dtype=np.uint8)}


@pytest.mark.parametrize("name", ["take2_noext", "take (copy)", "clip.mp4"])
def test_an_upload_a_stopped_server_left_half_done_is_sent_again_in_full(tmp_path, name):
    local = tmp_path / name
    data = os.urandom(300_000)
    local.write_bytes(data)
    digest = sha(data)
    first = ServerThread(make_config(tmp_path))
    try:
        peer = RawPeer(first.address)
        peer.request(M.UPLOAD_BEGIN, {"sha256": digest, "size": len(data),
                                      "suffix": local.suffix})
        half = peer.request(M.UPLOAD_CHUNK, {"sha256": digest, "offset": 0},
                            _chunk(data[:len(data) // 2]))
        assert half.body["have"] == len(data) // 2
        peer.close()
    finally:
        first.close()  # stopped during the upload
    uploads = tmp_path / "work" / "uploads"
    assert [p.name for p in uploads.iterdir()] == [f"{digest}{local.suffix}.part"]
    second = ServerThread(make_config(tmp_path))  # the same work dir
    try:
        assert list(uploads.iterdir()) == []  # the leftover is gone, not taken as the file
        sent = []
        with BackendClient(second.address, KEY, timeout_s=WAIT_S) as client:
            assert client.upload(local, lambda stage, done, total: sent.append(done)) == digest
            job = client.submit(M.COPY, {"video": {"upload": digest}})
            result = client.wait(job)
        assert 0 in sent  # sent from the start, not "already there"
        assert result.video["sha256"] == digest and result.video["bytes"] == len(data)
        assert second.server.uploads.path(digest).read_bytes() == data
    finally:
        second.close()


def test_a_cached_upload_truncated_on_disk_is_sent_again_after_a_restart(tmp_path):
    local = tmp_path / "clip.mp4"
    data = os.urandom(200_000)
    local.write_bytes(data)
    first = ServerThread(make_config(tmp_path))
    try:
        with BackendClient(first.address, KEY, timeout_s=WAIT_S) as client:
            digest = client.upload(local)
    finally:
        first.close()
    cached = tmp_path / "work" / "uploads" / f"{digest}.mp4"
    cached.write_bytes(data[:1000])
    second = ServerThread(make_config(tmp_path))
    try:
        with BackendClient(second.address, KEY, timeout_s=WAIT_S) as client:
            sent = []
            client.upload(local, lambda stage, done, total: sent.append(done))
        assert 0 in sent and cached.read_bytes() == data
    finally:
        second.close()


def test_an_empty_file_is_refused_by_the_client_and_by_the_server(server, tmp_path):
    from scail_protocol.errors import ScailError

    empty = tmp_path / "in" / "zero.mp4"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    with BackendClient(server.address, KEY, timeout_s=WAIT_S) as client:
        with pytest.raises(ScailError) as info:
            client.upload(empty)
        assert str(info.value).startswith(f"{empty} is empty (0 bytes)")
        peer = RawPeer(server.address)  # a client that sends it all the same
        reply = peer.request(M.UPLOAD_BEGIN, {"sha256": sha(b""), "size": 0, "suffix": ".mp4"})
        peer.close()
        assert reply.type == M.ERROR and reply.body["code"] == "bad_upload"
        assert "empty file" in reply.body["message"]
        assert client.hello()["protocol"] == 1
    assert list(server.server.work.uploads.iterdir()) == []


def test_a_job_on_an_unreadable_upload_names_the_users_file(server, tmp_path):
    from scail_protocol import conversation as C
    from scail_protocol.errors import ScailError

    text = tmp_path / "in" / "text.mp4"
    text.parent.mkdir()
    text.write_text("not a video at all\n" * 50)
    with BackendClient(server.address, KEY, timeout_s=WAIT_S) as client:
        with pytest.raises(ScailError) as info:
            client.converse(C.extract(text, C.extract_options(), upload_video=True))
    digest = sha(text.read_bytes())
    message = str(info.value)
    assert f"{text} is not a readable video" in message, message
    assert digest not in message and "uploads" not in message
