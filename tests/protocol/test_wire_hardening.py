"""Wire hardening: nothing signed before a receiver started is accepted (no replay across a
restart), and received frames are checked and decoded as views, never copied."""

from __future__ import annotations

import numpy as np
import pytest

from scail_protocol.errors import ProtocolError
from scail_protocol.wire import DELIM, Session

from wire_helpers import KEY, FakeClock


def test_a_message_signed_before_not_before_is_refused_and_a_later_one_accepted():
    clock = FakeClock()
    sender = Session(KEY, clock=clock)
    early = sender.serialize(sender.message("hello"))
    clock.now += 0.5
    receiver = Session(KEY, clock=clock, not_before=clock.now)  # "the server started now"
    with pytest.raises(ProtocolError, match="signed 0.5 s before this server started"):
        receiver.deserialize(early)
    assert receiver.deserialize(sender.serialize(sender.message("hello"))).type == "hello"


def test_without_not_before_a_recent_message_is_accepted_by_a_fresh_session():
    clock = FakeClock()
    sender = Session(KEY, clock=clock)
    frames = sender.serialize(sender.message("hello"))
    clock.now += 10
    assert Session(KEY, clock=clock).deserialize(frames).type == "hello"  # what not_before stops


def test_accepted_arrays_view_the_received_frames_without_copying():
    session = Session(KEY)
    data = np.arange(1000, dtype=np.float32)
    frames = [bytearray(f) for f in session.serialize(session.message("x", arrays={"a": data}))]
    msg = Session(KEY).deserialize(frames)
    np.testing.assert_array_equal(msg.arrays["a"], data)
    assert np.shares_memory(msg.arrays["a"], np.frombuffer(frames[-1], np.uint8))
    assert not msg.arrays["a"].flags.writeable


def test_frames_of_any_buffer_type_are_accepted_and_odd_ones_refused():
    session = Session(KEY)
    frames = session.serialize(session.message("x", arrays={"a": np.ones(4, np.int32)}))
    views = [memoryview(f) for f in frames]
    assert Session(KEY).deserialize(views).arrays["a"].tolist() == [1, 1, 1, 1]
    with pytest.raises(ProtocolError, match="a frame is int"):
        Session(KEY).deserialize([*frames[:-1], 12345])


def test_a_huge_identity_frame_is_not_a_routing_envelope():
    session = Session(KEY)
    frames = session.serialize(session.message("hello"))
    with pytest.raises(ProtocolError, match="no delimiter"):
        Session(KEY).deserialize([b"x" * 1000, *frames])
    assert frames[0] == DELIM
