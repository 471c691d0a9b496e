"""The wire format: round trips, and every way a message can be refused (pure and on sockets)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from scail_protocol import PoseSequence
from scail_protocol.errors import ProtocolError
from scail_protocol.wire import (DELIM, PROTOCOL_TAG, WIRE_DTYPES, RefusedMessage, Session,
                                 sequence_from_message, sequence_parts)

from wire_helpers import KEY, FakeClock


@pytest.fixture
def session() -> Session:
    return Session(KEY)


def tiny_sequence(rng, people=2, frames=3) -> PoseSequence:
    seq = PoseSequence.empty(people, frames, (48, 64), fps=25.0, meta={"estimator": "test"})
    joints = rng.normal(0, 300, (people, frames, 24, 3)).astype(np.float32)
    joints[..., 2] += 3000
    joints[0, 1, 5] = np.nan  # a missing joint
    kp2d = rng.uniform(0, 48, (people, frames, 134, 2)).astype(np.float32)
    kp2d[1, 0, 100:] = np.nan
    score = rng.uniform(0, 1, (people, frames, 134)).astype(np.float32)
    score[1, 0, 100:] = np.nan
    return seq.replace(joints3d=joints, kp2d=kp2d, kp2d_score=score,
                       track_id=np.array([7, 3][:people]))


def resign(session: Session, frames: list) -> list:
    """Re-sign frames after editing them, as a sender holding the key would."""
    split = frames.index(DELIM)
    parts = frames[split + 3:]
    return frames[:split + 2] + [session.sign(parts)] + parts


def edit_json(frames: list, index_after_delim: int, change) -> list:
    frames = list(frames)
    i = frames.index(DELIM) + index_after_delim
    value = json.loads(frames[i])
    change(value)
    frames[i] = json.dumps(value).encode()
    return frames


HEADER, BODY = 3, 4  # frame offsets after the delimiter


# --- round trips ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", sorted(WIRE_DTYPES))
@pytest.mark.parametrize("shape", [(), (0,), (5,), (2, 3, 4)])
def test_round_trip_arrays_of_every_allowed_dtype(session, rng, dtype, shape):
    values = rng.uniform(0, 200, shape).astype(dtype)
    plus_one = np.asarray(values + 1, dtype=dtype)
    msg = session.message("result", {"n": 1, "s": "ä"}, arrays={"a": values, "b.c": plus_one},
                          job_id="job-1")
    back = Session(KEY).deserialize(session.serialize(msg))
    assert (back.type, back.body, back.job_id, back.msg_id) == ("result", {"n": 1, "s": "ä"},
                                                                "job-1", msg.msg_id)
    for name, expected in (("a", values), ("b.c", plus_one)):
        got = back.arrays[name]
        assert got.dtype == WIRE_DTYPES[dtype] and got.shape == shape
        np.testing.assert_array_equal(got, expected)
        assert not got.flags.writeable


def test_round_trip_keeps_router_identities_and_reply_to(session):
    request = session.message("hello", identities=(b"\x00peer", b"broker"))
    frames = session.serialize(request)
    assert frames[:3] == [b"\x00peer", b"broker", DELIM] and frames[3] == PROTOCOL_TAG
    received = Session(KEY).deserialize(frames)
    assert received.identities == (b"\x00peer", b"broker")
    reply = session.reply(received, "hello", {"ok": True})
    back = Session(KEY).deserialize(session.serialize(reply))
    assert back.reply_to == request.msg_id and back.identities == request.identities


def test_round_trip_big_endian_and_strided_arrays(session):
    values = np.arange(24, dtype=">f8").reshape(4, 6)[:, ::2]
    back = Session(KEY).deserialize(session.serialize(session.message("x", arrays={"v": values})))
    np.testing.assert_array_equal(back.arrays["v"], values)
    assert back.arrays["v"].dtype == np.dtype("<f8")


def test_pose_sequence_round_trip_is_exact(session, rng):
    seq = tiny_sequence(rng)
    body, arrays = sequence_parts(seq)
    msg = session.message("result", dict(body, other=1), arrays=arrays)
    back = sequence_from_message(Session(KEY).deserialize(session.serialize(msg)))
    for name in ("K", "joints3d", "kp2d", "kp2d_score", "bbox", "track_id"):
        np.testing.assert_array_equal(getattr(back, name), getattr(seq, name))  # NaN == NaN here
    assert (back.fps, back.size, back.meta) == (seq.fps, seq.size, seq.meta)


# --- refused: authenticity -------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["header", "body", "buffer"])
def test_deserialize_rejects_tampered_frame(session, target):
    msg = session.message("render", {"out": "/a"}, arrays={"v": np.zeros(4, np.float32)})
    frames = session.serialize(msg)
    index = {"header": frames.index(DELIM) + HEADER, "body": frames.index(DELIM) + BODY,
             "buffer": -1}[target]
    tampered = bytearray(frames[index])
    tampered[-2] ^= 0x01
    frames[index] = bytes(tampered)
    with pytest.raises(ProtocolError, match="invalid signature"):
        Session(KEY).deserialize(frames)


def test_deserialize_rejects_bytes_moved_between_frames(session):
    frames = session.serialize(session.message("x", arrays={"a": np.zeros(2, np.uint8),
                                                            "b": np.zeros(2, np.uint8)}))
    frames[-2], frames[-1] = frames[-2] + frames[-1][:1], frames[-1][1:]
    with pytest.raises(ProtocolError, match="invalid signature"):
        Session(KEY).deserialize(frames)


def test_deserialize_rejects_unsigned_message(session):
    frames = session.serialize(session.message("hello"))
    frames[frames.index(DELIM) + 2] = b""
    with pytest.raises(ProtocolError, match="unsigned message"):
        Session(KEY).deserialize(frames)


def test_deserialize_rejects_other_key(session):
    frames = session.serialize(session.message("hello"))
    with pytest.raises(ProtocolError, match="invalid signature"):
        Session(b"another-key-0123456789").deserialize(frames)


def test_deserialize_rejects_malformed_signature(session):
    frames = session.serialize(session.message("hello"))
    frames[frames.index(DELIM) + 2] = b"Z" * 64
    with pytest.raises(ProtocolError, match="malformed signature"):
        Session(KEY).deserialize(frames)


def test_deserialize_rejects_replayed_message(session):
    receiver = Session(KEY)
    frames = session.serialize(session.message("cancel", {"job_id": "abc"}))
    receiver.deserialize(frames)
    with pytest.raises(ProtocolError, match="replayed message"):
        receiver.deserialize(frames)


@pytest.mark.parametrize("skew_s", [-301.0, 301.0])
def test_deserialize_rejects_timestamp_outside_window(skew_s):
    sender_clock, receiver_clock = FakeClock(), FakeClock()
    sender_clock.now += skew_s
    frames = Session(KEY, clock=sender_clock).serialize(
        Session(KEY, clock=sender_clock).message("hello"))
    with pytest.raises(ProtocolError, match="stale message"):
        Session(KEY, clock=receiver_clock, time_window_s=300).deserialize(frames)


def test_replay_history_bound_refuses_messages_it_can_no_longer_check():
    clock = FakeClock()
    sender, receiver = Session(KEY, clock=clock), Session(KEY, clock=clock, replay_history=3)
    old = sender.serialize(sender.message("hello"))
    receiver.deserialize(old)
    for _ in range(3):
        clock.now += 1
        receiver.deserialize(sender.serialize(sender.message("hello")))
    # The first nonce was forgotten to stay within 3 entries: its replay must still be refused.
    with pytest.raises(ProtocolError, match="too old"):
        receiver.deserialize(old)


# --- refused: framing and size -----------------------------------------------------------------

def test_deserialize_rejects_truncated_message(session):
    frames = session.serialize(session.message("hello"))
    with pytest.raises(ProtocolError, match="truncated message"):
        Session(KEY).deserialize(frames[:-1])


def test_deserialize_rejects_missing_buffer(session):
    frames = session.serialize(session.message("x", arrays={"a": np.zeros(3, np.float32)}))
    with pytest.raises(ProtocolError, match="invalid signature"):
        Session(KEY).deserialize(frames[:-1])
    # Signed without it, the description count no longer matches the buffers.
    with pytest.raises(ProtocolError, match="1 array descriptions but 0 buffer frames"):
        Session(KEY).deserialize(resign(session, frames[:-1]))


def test_deserialize_rejects_missing_delimiter(session):
    frames = session.serialize(session.message("hello"))
    frames.remove(DELIM)
    with pytest.raises(ProtocolError, match="no delimiter"):
        Session(KEY).deserialize(frames)


def test_deserialize_rejects_oversized_message(session):
    frames = session.serialize(session.message("x", arrays={"a": np.zeros(1000, np.uint8)}))
    with pytest.raises(ProtocolError, match="exceeds the limit of 900 bytes"):
        Session(KEY, max_message_bytes=900).deserialize(frames)


def test_deserialize_rejects_too_many_frames(session):
    frames = session.serialize(session.message("hello")) + [b""] * 200
    with pytest.raises(ProtocolError, match="frames, at most"):
        Session(KEY).deserialize(frames)


def test_deserialize_rejects_wrong_tag_and_version(session):
    frames = session.serialize(session.message("hello"))
    i = frames.index(DELIM) + 1
    for tag, reason in ((b"jupyter/5", "not a scail-pose message"),
                        (b"scail-pose/2", "version '2' is not supported")):
        frames[i] = tag
        with pytest.raises(ProtocolError, match=reason):
            Session(KEY).deserialize(frames)


def test_deserialize_rejects_non_bytes_frame(session):
    frames = session.serialize(session.message("hello"))
    frames[-1] = 12
    with pytest.raises(ProtocolError, match="not bytes"):
        Session(KEY).deserialize(frames)


# --- refused: content (signed by a key holder, still wrong) ------------------------------------

@pytest.mark.parametrize("change, reason", [
    (lambda h: h.pop("nonce"), "missing \\['nonce'\\]"),
    (lambda h: h.update(extra=1), "unexpected \\['extra'\\]"),
    (lambda h: h.update(type="Hello!"), "type must be"),
    (lambda h: h.update(job_id=5), "job_id must be"),
    (lambda h: h.update(ts="now"), "ts must be a number"),
    (lambda h: h.update(nonce="xyz"), "nonce must be"),
])
def test_deserialize_rejects_bad_header_fields(session, change, reason):
    frames = resign(session, edit_json(session.serialize(session.message("hello")), HEADER, change))
    with pytest.raises(ProtocolError, match=reason):
        Session(KEY).deserialize(frames)


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"x": NaN, "buffers": []}', "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
])
def test_deserialize_rejects_bad_body_json(session, raw, reason):
    frames = session.serialize(session.message("hello"))
    frames[frames.index(DELIM) + BODY] = raw
    with pytest.raises(RefusedMessage, match=reason) as info:
        Session(KEY).deserialize(resign(session, frames))
    assert info.value.msg_id is not None  # the header was authentic: an error reply can name it


@pytest.mark.parametrize("change, reason", [
    (lambda b: b["buffers"][0].update(dtype="object"), "dtype 'object'"),
    (lambda b: b["buffers"][0].update(dtype="complex64"), "dtype 'complex64'"),
    (lambda b: b["buffers"][0].update(dtype="<U4"), "dtype '<U4'"),
    (lambda b: b["buffers"][0].update(shape=[2, 3]), "= 24 bytes, but its buffer has 16"),
    (lambda b: b["buffers"][0].update(shape=[-4]), "non-negative integers"),
    (lambda b: b["buffers"][0].update(shape=[4.0]), "non-negative integers"),
    (lambda b: b["buffers"][0].update(dtype="float64"), "= 32 bytes, but its buffer has 16"),
    (lambda b: b["buffers"][0].update(name="../x"), "bad or duplicate name"),
    (lambda b: b["buffers"][0].pop("shape"), "must be {name, dtype, shape}"),
    (lambda b: b.update(buffers="all"), "must be a list"),
])
def test_deserialize_rejects_bad_buffer_descriptions(session, change, reason):
    frames = session.serialize(session.message("x", arrays={"a": np.zeros(4, np.float32)}))
    frames = resign(session, edit_json(frames, BODY, change))
    with pytest.raises(ProtocolError, match=reason):
        Session(KEY).deserialize(frames)


# --- arrays the receiver checks ------------------------------------------------------------------

def test_array_accessor_refuses_nan_where_not_allowed(session):
    values = np.array([1.0, np.nan, 3.0], np.float32)
    back = Session(KEY).deserialize(session.serialize(session.message("x", arrays={"v": values})))
    assert np.isnan(back.array("v", dtype="float32", shape=(3,))[1])  # NaN allowed by default
    with pytest.raises(ProtocolError, match="NaN or infinite"):
        back.array("v", finite=True)
    with pytest.raises(ProtocolError, match="must be float64"):
        back.array("v", dtype="float64")
    with pytest.raises(ProtocolError, match=r"shape \(\*, 2\)"):
        back.array("v", shape=(None, 2))
    with pytest.raises(ProtocolError, match="'w' is missing"):
        back.array("w")


@pytest.mark.parametrize("field, value, reason", [
    ("K", np.nan, "NaN or infinite"),
    ("joints3d", np.inf, "infinite"),
    ("kp2d_score", 3.0, r"\[0, 1\]"),
])
def test_sequence_from_message_refuses_bad_values(session, rng, field, value, reason):
    body, arrays = sequence_parts(tiny_sequence(rng))
    bad = np.array(arrays[f"poses.{field}"])
    bad.flat[4] = value
    arrays[f"poses.{field}"] = bad
    msg = Session(KEY).deserialize(session.serialize(session.message("render", body,
                                                                     arrays=arrays)))
    with pytest.raises(ProtocolError, match=reason):
        sequence_from_message(msg)


def test_sequence_from_message_refuses_wrong_dtype_and_shape(session, rng):
    body, arrays = sequence_parts(tiny_sequence(rng))
    for name, value, reason in (("poses.joints3d", arrays["poses.joints3d"].astype(np.float64),
                                 "must be float32"),
                                ("poses.kp2d", arrays["poses.kp2d"][..., :100, :],
                                 r"shape \(\*, \*, 134, 2\)")):
        msg = Session(KEY).deserialize(session.serialize(session.message(
            "render", body, arrays=dict(arrays, **{name: np.ascontiguousarray(value)}))))
        with pytest.raises(ProtocolError, match=reason):
            sequence_from_message(msg)


# --- what serialize refuses to send --------------------------------------------------------------

@pytest.mark.parametrize("arrays, body, reason", [
    ({"a": np.zeros(2, np.complex64)}, {}, "the wire carries only"),
    ({"a": np.array(["x"])}, {}, "the wire carries only"),
    ({"a": [1, 2]}, {}, "must be a numpy array"),
    ({}, {"x": math.nan}, "not JSON-serialisable"),
    ({}, {"x": object()}, "not JSON-serialisable"),
    ({}, {"buffers": []}, "reserved"),
])
def test_serialize_refuses_what_the_wire_cannot_carry(session, arrays, body, reason):
    with pytest.raises(ProtocolError, match=reason):
        session.serialize(session.message("x", body, arrays=arrays))


def test_session_refuses_short_key():
    with pytest.raises(ProtocolError, match="at least 16 bytes"):
        Session(b"short")


# --- over real sockets ---------------------------------------------------------------------------

def test_send_recv_over_loopback_router_dealer(session, rng):
    zmq = pytest.importorskip("zmq")
    context = zmq.Context()
    router, dealer = context.socket(zmq.ROUTER), context.socket(zmq.DEALER)
    try:
        port = router.bind_to_random_port("tcp://127.0.0.1")
        dealer.connect(f"tcp://127.0.0.1:{port}")
        client_session, server_session = Session(KEY), Session(KEY)
        assert server_session.recv(router, zmq.NOBLOCK) is None  # nothing there yet
        seq = tiny_sequence(rng)
        body, arrays = sequence_parts(seq)
        client_session.send(dealer, client_session.message("render", body, arrays=arrays))
        assert router.poll(5000)
        request = server_session.recv(router)
        assert len(request.identities) == 1
        np.testing.assert_array_equal(sequence_from_message(request).kp2d, seq.kp2d)
        server_session.send(router, server_session.reply(request, "accepted", {"job": 1}))
        assert dealer.poll(5000)
        reply = client_session.recv(dealer)
        assert reply.reply_to == request.msg_id and reply.body == {"job": 1}
        # A replay of raw frames over the socket is refused by the receiving session.
        frames = client_session.serialize(client_session.message("hello"))
        dealer.send_multipart(frames)
        dealer.send_multipart(frames)
        assert router.poll(5000)
        assert server_session.recv(router).type == "hello"
        assert router.poll(5000)
        with pytest.raises(ProtocolError, match="replayed"):
            server_session.recv(router)
    finally:
        router.close(linger=0)
        dealer.close(linger=0)
        context.term()

