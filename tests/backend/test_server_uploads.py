"""The server's upload cache on a real folder: resume, verification, LRU eviction, restart."""

from __future__ import annotations

import hashlib
import os

import pytest

from scail_backend.server.uploads import UploadCache
from scail_backend.server.validate import RequestError


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


def test_cache_survives_a_restart_and_drops_partial_files(tmp_path):
    cache = UploadCache(tmp_path, max_file_bytes=100, max_total_bytes=1000)
    done = put(cache, b"complete file")
    partial = sha(b"half of it")
    cache.begin(partial, 10, ".mov")
    cache.write(partial, 0, b"half")
    again = UploadCache(tmp_path, max_file_bytes=100, max_total_bytes=1000)
    assert again.path(done).read_bytes() == b"complete file"
    assert not any(p.name.endswith(".part") for p in tmp_path.iterdir())
    assert again.begin(partial, 10, ".mov") == 0


def test_upload_larger_than_the_file_limit_is_refused(tmp_path):
    cache = UploadCache(tmp_path, max_file_bytes=10, max_total_bytes=1000)
    with pytest.raises(RequestError, match="exceeds this server's limit of 10 bytes") as info:
        cache.begin("a" * 64, 11, ".mp4")
    assert info.value.code == "too_large"
