"""The ZeroMQ message format: signed multipart messages with JSON and raw array buffers.

One :class:`Session` (built from the shared key) turns a :class:`Message` into a list of frames
and back. The pure half (:meth:`Session.serialize`, :meth:`Session.deserialize`) never touches a
socket; :meth:`Session.send` and :meth:`Session.recv` are thin pyzmq wrappers, and pyzmq is
imported only there, so the format itself needs nothing but numpy.

Nothing received is ever unpickled or executed: headers and bodies are JSON, arrays are raw
bytes whose dtype comes from a short allow-list and whose length must match the declared shape.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np

from .errors import ProtocolError, SequenceError
from .sequence import PoseSequence

PROTOCOL_NAME = b"scail-pose"
PROTOCOL_VERSION = 1
PROTOCOL_TAG = PROTOCOL_NAME + b"/" + str(PROTOCOL_VERSION).encode()
DELIM = b"<SCAIL|MSG>"  # separates ROUTER identities from the message

MIN_KEY_BYTES = 16  # shorter shared keys are refused: they are guessable
SIGNATURE_HEX_CHARS = 64  # HMAC-SHA256 as lowercase hex
DEFAULT_MAX_MESSAGE_BYTES = 256 * 2**20  # all frames of one message together
MAX_BUFFERS = 64  # raw array frames per message
MAX_IDENTITIES = 16  # ROUTER hops in front of the delimiter (client, broker, ...)
MAX_IDENTITY_BYTES = 255  # ZeroMQ routing ids are at most 255 bytes
MAX_TAG_BYTES = 64  # "scail-pose/<version>"
MAX_NDIM = 8
DEFAULT_TIME_WINDOW_S = 300.0  # accepted clock difference between sender and receiver
DEFAULT_REPLAY_HISTORY = 200_000  # nonces remembered to refuse replays

# Array dtypes allowed on the wire, always little-endian: name in the body -> numpy dtype.
WIRE_DTYPES = {
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "int32": np.dtype("<i4"),
    "int64": np.dtype("<i8"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
}

HEADER_FIELDS = ("type", "msg_id", "job_id", "reply_to", "ts", "nonce")
BUFFERS_KEY = "buffers"  # body key reserved for the array descriptions

_TYPE_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NONCE_RE = re.compile(r"[0-9a-f]{32}")
_NAME_RE = re.compile(r"[A-Za-z0-9_.]{1,64}")
_HEX_RE = re.compile(rb"[0-9a-f]{64}")


class RefusedMessage(ProtocolError):
    """A received message failed validation.

    Attributes:
        identities: the ROUTER identity frames in front of the delimiter (where to send an error
            reply), empty when unknown.
        msg_id: the sender's message id when the header was authentic (signature valid), else None.
        peer_version: the sender's protocol version when the message was refused for speaking
            another one, else None.
    """

    def __init__(self, reason: str, identities: tuple = (), msg_id: Optional[str] = None,
                 peer_version: Optional[int] = None):
        super().__init__(reason)
        self.identities = tuple(identities)
        self.msg_id = msg_id
        self.peer_version = peer_version


@dataclass(frozen=True)
class Message:
    """One decoded (or to-be-sent) message.

    Attributes:
        type: message type, e.g. ``"hello"``, ``"progress"`` (lowercase, digits, underscores).
        body: JSON object (no NaN or infinities); the array descriptions are not part of it.
        arrays: name -> numpy array (read-only after decoding), dtypes from :data:`WIRE_DTYPES`.
        msg_id: id of this message, chosen by the sender (replies name it in ``reply_to``).
        job_id: the job the message is about, or None.
        reply_to: ``msg_id`` of the request this message answers, or None for events.
        ts: sender's clock when the message was made, seconds since the Unix epoch.
        nonce: 32 random hex characters; a receiver refuses a nonce it has already seen.
        identities: ROUTER identity frames (routing envelope), empty on a DEALER.
    """

    type: str
    body: dict = field(default_factory=dict)
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    msg_id: str = ""
    job_id: Optional[str] = None
    reply_to: Optional[str] = None
    ts: float = 0.0
    nonce: str = ""
    identities: tuple = ()

    def array(self, name: str, *, dtype: Optional[str] = None, shape: Optional[tuple] = None,
              finite: bool = False) -> np.ndarray:
        """The array ``name``, checked against what the caller expects.

        Args:
            name: array name in the message.
            dtype: required wire dtype name (``"float32"``, ...), or None for any allowed one.
            shape: required shape; None entries match any length. None accepts any shape.
            finite: refuse NaN and infinities (for arrays where "missing" has no meaning).

        Raises:
            ProtocolError: the array is absent or does not match.
        """
        if name not in self.arrays:
            raise ProtocolError(f"{self.type}: array '{name}' is missing")
        array = self.arrays[name]
        if dtype is not None and array.dtype != WIRE_DTYPES[dtype]:
            raise ProtocolError(f"{self.type}: array '{name}' must be {dtype}, got {array.dtype}")
        if shape is not None and (array.ndim != len(shape) or any(
                want is not None and want != got for want, got in zip(shape, array.shape))):
            want = ", ".join("*" if s is None else str(s) for s in shape)
            raise ProtocolError(f"{self.type}: array '{name}' must have shape ({want}), "
                                f"got {array.shape}")
        if finite and array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ProtocolError(f"{self.type}: array '{name}' contains NaN or infinite values, "
                                f"which are not allowed there")
        return array


class Session:
    """Signs, frames, checks and decodes messages with one shared key.

    Frame layout (one ZeroMQ multipart message)::

        [ident1, ..., identN,   ROUTER identities (none on a DEALER)
         DELIM,                 b"<SCAIL|MSG>"
         TAG,                   b"scail-pose/1": protocol name and version
         SIGNATURE,             HMAC-SHA256, lowercase hex, over TAG, HEADER, BODY, BUFFER...
                                (each preceded by its length as 8 bytes big-endian, so bytes
                                cannot move between frames)
         HEADER,                JSON {"type", "msg_id", "job_id", "reply_to", "ts", "nonce"}
         BODY,                  JSON object; body["buffers"] = [{"name", "dtype", "shape"}, ...]
                                describes the buffers that follow, in order
         BUFFER1, ...]          raw little-endian array bytes, C order

    :meth:`deserialize` checks, in this order, and refuses with a specific
    :class:`RefusedMessage`: frame count and total bytes; delimiter; tag and version; signature
    (``hmac.compare_digest``); JSON of header and body and the header's fields; replay (the nonce
    in a bounded history) and the timestamp window; then each buffer description (dtype in
    :data:`WIRE_DTYPES`, ``prod(shape) * itemsize == len(buffer)``). Only then are arrays made
    with ``np.frombuffer``.

    A Session is not thread-safe (its replay history is shared state): one per thread.
    """

    def __init__(self, key: bytes, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 time_window_s: float = DEFAULT_TIME_WINDOW_S,
                 replay_history: int = DEFAULT_REPLAY_HISTORY, clock=time.time,
                 not_before: Optional[float] = None, version: int = PROTOCOL_VERSION):
        if not isinstance(key, (bytes, bytearray)) or len(key) < MIN_KEY_BYTES:
            raise ProtocolError(f"the shared key must be at least {MIN_KEY_BYTES} bytes, "
                                f"got {len(key) if isinstance(key, (bytes, bytearray)) else key!r}")
        self._hmac = hmac.new(bytes(key), digestmod=hashlib.sha256)
        self.max_message_bytes = int(max_message_bytes)
        self.time_window_s = float(time_window_s)
        self.clock = clock
        # A server passes its start time: its replay history starts empty, so a message signed
        # before it started (captured, then replayed against the restarted server) is refused.
        self.not_before = None if not_before is None else float(not_before)
        self._seen = _NonceHistory(replay_history)
        self.version = int(version)  # the protocol version spoken (another one only in tests)

    # --- building ------------------------------------------------------------------------------

    def message(self, type: str, body: Optional[dict] = None, *, arrays: Optional[Mapping] = None,
                job_id: Optional[str] = None, reply_to: Optional[str] = None,
                identities: Sequence[bytes] = ()) -> Message:
        """A new message with a fresh id, nonce and timestamp (send each one once)."""
        return Message(type=type, body=dict(body or {}), arrays=dict(arrays or {}),
                       msg_id=uuid.uuid4().hex, job_id=job_id, reply_to=reply_to,
                       ts=self.clock(), nonce=secrets.token_hex(16), identities=tuple(identities))

    def reply(self, request: Message, type: str, body: Optional[dict] = None, *,
              arrays: Optional[Mapping] = None, job_id: Optional[str] = None) -> Message:
        """A message answering ``request``: same routing identities, ``reply_to`` its id."""
        return self.message(type, body, arrays=arrays, job_id=job_id or request.job_id,
                            reply_to=request.msg_id, identities=request.identities)

    # --- pure encode / decode ------------------------------------------------------------------

    def serialize(self, msg: Message, *, version: Optional[int] = None) -> list:
        """The frames of ``msg`` (identities, delimiter, tag, signature, header, body, buffers).

        ``version`` other than this build's is only for telling a peer of that version that the
        versions differ (the frames up to the body are laid out alike in every version).

        Raises:
            ProtocolError: the header fields, body or arrays cannot go on the wire (not JSON,
                NaN in JSON, reserved body key, unsupported dtype, too many buffers).
        """
        header = {"type": msg.type, "msg_id": msg.msg_id, "job_id": msg.job_id,
                  "reply_to": msg.reply_to, "ts": msg.ts, "nonce": msg.nonce}
        _check_header(header)
        if not isinstance(msg.body, dict):
            raise ProtocolError(f"{msg.type}: body must be a dict, got {type(msg.body).__name__}")
        if BUFFERS_KEY in msg.body:
            raise ProtocolError(f"{msg.type}: body key '{BUFFERS_KEY}' is reserved for arrays")
        specs, buffers = _encode_arrays(msg.type, msg.arrays)
        body = dict(msg.body, **{BUFFERS_KEY: specs})
        try:
            header_bytes = json.dumps(header, allow_nan=False, separators=(",", ":")).encode()
            body_bytes = json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as e:
            raise ProtocolError(f"{msg.type}: body is not JSON-serialisable ({e})") from None
        parts = [header_bytes, body_bytes, *buffers]
        tag = _tag(self.version if version is None else version)
        return [*msg.identities, DELIM, tag, self.sign(parts, tag), *parts]

    def sign(self, parts: Sequence, tag: Optional[bytes] = None) -> bytes:
        """HMAC-SHA256 (hex, as bytes) over the tag and ``parts`` (header, body, buffers)."""
        mac = self._hmac.copy()
        for part in (tag or _tag(self.version), *parts):
            view = memoryview(part)
            mac.update(view.nbytes.to_bytes(8, "big"))
            mac.update(view)
        return mac.hexdigest().encode()

    def deserialize(self, frames: Sequence) -> Message:
        """Check and decode one received multipart message (see the class docstring for order).

        Args:
            frames: the frames as received (bytes, bytearray, memoryview or zmq Frames).

        Returns:
            the Message, with read-only arrays viewing the received buffers.

        Raises:
            RefusedMessage: (a ProtocolError) naming the first check that failed.
        """
        if len(frames) > MAX_IDENTITIES + 5 + MAX_BUFFERS:
            raise RefusedMessage(f"malformed message: {len(frames)} frames, at most "
                                 f"{MAX_IDENTITIES + 5 + MAX_BUFFERS} allowed")
        # Views, not copies: a large message is checked (size, then signature) without being
        # duplicated in memory, and accepted arrays view the received frames.
        views = [_as_view(f) for f in frames]
        total = sum(v.nbytes for v in views)
        split = next((i for i, v in enumerate(views[:MAX_IDENTITIES + 1])
                      if v.nbytes == len(DELIM) and v == DELIM), None)
        if split is None or any(v.nbytes > MAX_IDENTITY_BYTES for v in views[:split]):
            raise RefusedMessage("malformed message: no delimiter frame")
        identities = tuple(v.tobytes() for v in views[:split])
        if total > self.max_message_bytes:
            raise RefusedMessage(f"message of {total} bytes exceeds the limit of "
                                 f"{self.max_message_bytes} bytes", identities)
        rest = views[split + 1:]
        if len(rest) < 4:
            raise RefusedMessage(f"truncated message: {len(rest)} frames after the delimiter, "
                                 f"expected at least 4 (tag, signature, header, body)", identities)
        tag, signature = rest[0][:MAX_TAG_BYTES].tobytes(), rest[1][:2 * SIGNATURE_HEX_CHARS]
        _check_tag(tag if rest[0].nbytes <= MAX_TAG_BYTES else tag + b"...", self.version,
                   identities)
        self._check_signature(signature.tobytes(), rest[2:], identities)
        header_bytes, body_bytes, buffers = rest[2].tobytes(), rest[3].tobytes(), rest[4:]
        header = _parse_json(header_bytes, "header", identities)
        try:
            _check_header(header)
        except ProtocolError as e:
            raise RefusedMessage(str(e), identities) from None
        msg_id = header["msg_id"]
        body = _parse_json(body_bytes, "body", identities, msg_id)
        self._check_fresh(header, identities)
        arrays = _decode_arrays(header["type"], body.pop(BUFFERS_KEY, None), buffers,
                                identities, msg_id)
        return Message(type=header["type"], body=body, arrays=arrays, msg_id=msg_id,
                       job_id=header["job_id"], reply_to=header["reply_to"], ts=header["ts"],
                       nonce=header["nonce"], identities=identities)

    def _check_signature(self, signature: bytes, parts: list, identities: tuple) -> None:
        if not signature:
            raise RefusedMessage("unsigned message (empty signature frame)", identities)
        if len(signature) != SIGNATURE_HEX_CHARS or not _HEX_RE.fullmatch(signature):
            raise RefusedMessage(f"malformed signature: expected {SIGNATURE_HEX_CHARS} lowercase "
                                 f"hex characters, got {len(signature)} bytes", identities)
        if not hmac.compare_digest(self.sign(parts), signature):
            raise RefusedMessage("invalid signature: wrong key, or the message was altered",
                                 identities)

    def _check_fresh(self, header: dict, identities: tuple) -> None:
        now = self.clock()
        if self.not_before is not None and header["ts"] < self.not_before:
            raise RefusedMessage(
                f"stale message: signed {self.not_before - header['ts']:.1f} s before this "
                f"server started (a replay, or a clock behind this machine's); send it again",
                identities, header["msg_id"])
        if self._seen.contains(header["nonce"]):
            raise RefusedMessage(f"replayed message: nonce {header['nonce']} was already seen",
                                 identities, header["msg_id"])
        skew = header["ts"] - now
        if abs(skew) > self.time_window_s:
            raise RefusedMessage(
                f"stale message: its timestamp is {skew:+.0f} s from this machine's clock "
                f"(window ±{self.time_window_s:g} s); check both machines' clocks",
                identities, header["msg_id"])
        if header["ts"] <= self._seen.floor_ts:
            raise RefusedMessage("message too old to be checked against the replay history",
                                 identities, header["msg_id"])
        self._seen.add(header["nonce"], header["ts"], now - self.time_window_s)

    # --- sockets -------------------------------------------------------------------------------

    def send(self, socket, msg: Message, flags: int = 0, *,
             version: Optional[int] = None) -> None:
        """Serialize ``msg`` (see :meth:`serialize` for ``version``) and send it on a pyzmq
        socket."""
        socket.send_multipart(self.serialize(msg, version=version), flags=flags, copy=False)

    def recv(self, socket, flags: int = 0) -> Optional[Message]:
        """Receive and decode one message; None when ``flags`` has NOBLOCK and nothing is there.

        Raises:
            RefusedMessage: the message failed validation (it has been consumed).
        """
        import zmq

        try:
            frames = socket.recv_multipart(flags, copy=False)  # checked as views, not copied
        except zmq.Again:
            return None
        return self.deserialize(frames)


class _NonceHistory:
    """Nonces seen within the time window, bounded in number.

    When full, the oldest entries are forgotten and ``floor_ts`` rises to their timestamp:
    messages at or before it can no longer be checked and are refused.
    """

    def __init__(self, capacity: int):
        self.capacity = max(1, int(capacity))
        self._entries = OrderedDict()  # nonce -> ts, in arrival order
        self.floor_ts = -math.inf

    def contains(self, nonce: str) -> bool:
        return nonce in self._entries

    def add(self, nonce: str, ts: float, expired_before: float) -> None:
        self._entries[nonce] = ts
        while self._entries:
            oldest_nonce, oldest_ts = next(iter(self._entries.items()))
            if oldest_ts < expired_before:
                del self._entries[oldest_nonce]  # outside the window: refused as stale anyway
            elif len(self._entries) > self.capacity:
                del self._entries[oldest_nonce]
                self.floor_ts = max(self.floor_ts, oldest_ts)
            else:
                break


# --- PoseSequence <-> message --------------------------------------------------------------------

# Arrays of a PoseSequence on the wire: name -> (dtype, shape with None for P and T).
SEQUENCE_ARRAYS = {
    "K": ("float64", (3, 3)),
    "joints3d": ("float32", (None, None, 24, 3)),
    "kp2d": ("float32", (None, None, 134, 2)),
    "kp2d_score": ("float32", (None, None, 134)),
    "bbox": ("float32", (None, None, 4)),
    "track_id": ("int64", (None,)),
}


def sequence_parts(seq: PoseSequence, prefix: str = "poses") -> tuple:
    """Body fragment and arrays that carry ``seq`` in a message.

    Returns:
        (body, arrays): ``body = {prefix: {"fps", "size", "meta"}}`` to merge into a message body,
        and ``arrays = {f"{prefix}.K": ..., f"{prefix}.joints3d": ..., ...}`` (NaN kept: missing).
    """
    data = seq.to_arrays()
    info = {"fps": float(data["fps"]), "size": [int(v) for v in data["size"]],
            "meta": json.loads(str(data["meta"][()]))}
    arrays = {f"{prefix}.{name}": np.asarray(data[name]) for name in SEQUENCE_ARRAYS}
    return {prefix: info}, arrays


def sequence_from_message(msg: Message, prefix: str = "poses") -> PoseSequence:
    """Rebuild the PoseSequence that :func:`sequence_parts` put into ``msg``.

    NaN means "missing" in the pose arrays and is kept; ``K`` must be finite and every value
    passes :class:`PoseSequence` validation (no infinities, no partly-NaN points).

    Raises:
        ProtocolError: the body or arrays are missing, of the wrong dtype/shape, or invalid.
    """
    info = msg.body.get(prefix)
    if not isinstance(info, dict) or not {"fps", "size", "meta"} <= info.keys():
        raise ProtocolError(f"{msg.type}: body['{prefix}'] must hold fps, size and meta")
    if not isinstance(info["meta"], dict):
        raise ProtocolError(f"{msg.type}: body['{prefix}']['meta'] must be an object")
    data = {name: msg.array(f"{prefix}.{name}", dtype=dtype, shape=shape,
                            finite=(name == "K"))
            for name, (dtype, shape) in SEQUENCE_ARRAYS.items()}
    try:
        data["fps"] = np.float64(info["fps"])
        data["size"] = np.asarray(info["size"], dtype=np.int64)
    except (TypeError, ValueError):
        raise ProtocolError(f"{msg.type}: body['{prefix}'] fps must be a number and size "
                            f"(H, W) integers, got {info['fps']!r} and {info['size']!r}") from None
    data["meta"] = np.asarray(json.dumps(info["meta"]))
    try:
        return PoseSequence.from_arrays(data, source=f"{msg.type} message")
    except SequenceError as e:
        raise ProtocolError(f"invalid PoseSequence in message: {e}") from None


# --- helpers -------------------------------------------------------------------------------------

def _as_view(frame) -> memoryview:
    """A flat byte view of a received frame (bytes, bytearray, memoryview or zmq.Frame)."""
    buffer = getattr(frame, "buffer", frame)  # zmq.Frame exposes .buffer
    try:
        view = memoryview(buffer)
        return view if view.format == "B" and view.ndim == 1 else view.cast("B")
    except (TypeError, ValueError):
        raise RefusedMessage(f"malformed message: a frame is {type(frame).__name__}, "
                             f"not bytes") from None


def _tag(version: int) -> bytes:
    return PROTOCOL_NAME + b"/" + str(int(version)).encode()


def _check_tag(tag: bytes, version: int, identities: tuple) -> None:
    if tag == _tag(version):
        return
    name, _, peer = tag.partition(b"/")
    if name != PROTOCOL_NAME:
        raise RefusedMessage(f"not a scail-pose message: protocol tag {tag[:40]!r}", identities)
    try:
        peer_version = int(peer[:16])
    except ValueError:
        raise RefusedMessage(f"malformed protocol tag {tag[:40]!r}", identities) from None
    advice = version_advice(peer_version, peer="the sender", peer_program="the sender",
                            here_program="this side", here_version=version)
    raise RefusedMessage(f"protocol version '{peer_version}' is not supported: {advice}",
                         identities, peer_version=peer_version)


def version_advice(peer_version: int, *, peer: str, peer_program: str, here_program: str,
                   here_version: int = PROTOCOL_VERSION) -> str:
    """One line for a peer speaking another protocol version, saying which side to update.

    Args:
        peer_version: the version the peer speaks.
        peer: who the peer is, e.g. "the backend at tcp://...".
        peer_program, here_program: what to update on each side, e.g. "the backend
            (scail-pose)", "this client (the Blender add-on or scail-pose)".
        here_version: the version this side speaks.
    """
    older = here_program if peer_version > here_version else peer_program
    return (f"{peer} speaks scail-pose protocol {peer_version} and {here_program} speaks "
            f"{here_version}: update {older} so that both speak the same version "
            f"(docs/wire.md, 'Versions')")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed")


def _parse_json(raw: bytes, what: str, identities: tuple, msg_id: Optional[str] = None) -> dict:
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise RefusedMessage(f"malformed message: {what} is not valid JSON ({str(e)[:200]})",
                             identities, msg_id) from None
    if not isinstance(value, dict):
        raise RefusedMessage(f"malformed message: {what} must be a JSON object, "
                             f"got {type(value).__name__}", identities, msg_id)
    return value


def _check_header(header: dict) -> None:
    missing = [k for k in HEADER_FIELDS if k not in header]
    extra = sorted(set(header) - set(HEADER_FIELDS))
    if missing or extra:
        raise ProtocolError(f"malformed header: missing {missing}, unexpected {extra}")
    kind = header["type"]
    if not isinstance(kind, str) or not _TYPE_RE.fullmatch(kind):
        raise ProtocolError(f"malformed header: type must be lowercase letters, digits and '_' "
                            f"(at most 32), got {kind!r:.60}")
    for name in ("msg_id", "job_id", "reply_to"):
        value = header[name]
        if value is None and name != "msg_id":
            continue
        if not isinstance(value, str) or not _ID_RE.fullmatch(value):
            raise ProtocolError(f"malformed header: {name} must be 1-64 characters of "
                                f"[A-Za-z0-9_-], got {value!r:.80}")
    ts = header["ts"]
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        raise ProtocolError(f"malformed header: ts must be a number of seconds, got {ts!r:.40}")
    if not isinstance(header["nonce"], str) or not _NONCE_RE.fullmatch(header["nonce"]):
        raise ProtocolError(f"malformed header: nonce must be 32 lowercase hex characters, "
                            f"got {header['nonce']!r:.80}")


def _encode_arrays(msg_type: str, arrays: Mapping) -> tuple:
    if len(arrays) > MAX_BUFFERS:
        raise ProtocolError(f"{msg_type}: {len(arrays)} arrays, at most {MAX_BUFFERS} allowed")
    specs, buffers = [], []
    by_dtype = {dt: name for name, dt in WIRE_DTYPES.items()}
    for name, value in arrays.items():
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ProtocolError(f"{msg_type}: array name {name!r} must be 1-64 of [A-Za-z0-9_.]")
        if not isinstance(value, (np.ndarray, np.generic)):
            raise ProtocolError(f"{msg_type}: array '{name}' must be a numpy array, "
                                f"got {type(value).__name__}")
        value = np.asarray(value)
        little = value.dtype.newbyteorder("<") if value.dtype.byteorder == ">" else value.dtype
        dtype_name = by_dtype.get(little)
        if dtype_name is None:
            raise ProtocolError(f"{msg_type}: array '{name}' has dtype {value.dtype}; the wire "
                                f"carries only {', '.join(WIRE_DTYPES)}")
        array = np.asarray(value, dtype=WIRE_DTYPES[dtype_name], order="C")
        specs.append({"name": name, "dtype": dtype_name, "shape": list(array.shape)})
        buffers.append(array.tobytes())
    return specs, buffers


def _decode_arrays(msg_type: str, specs, buffers: list, identities: tuple, msg_id: str) -> dict:
    def refuse(reason: str):
        raise RefusedMessage(f"malformed message ({msg_type}): {reason}", identities, msg_id)

    specs = [] if specs is None and not buffers else specs
    if not isinstance(specs, list):
        refuse(f"body['{BUFFERS_KEY}'] must be a list of array descriptions")
    if len(specs) != len(buffers):
        refuse(f"{len(specs)} array descriptions but {len(buffers)} buffer frames")
    arrays = {}
    for index, (spec, buf) in enumerate(zip(specs, buffers)):
        if not isinstance(spec, dict) or set(spec) != {"name", "dtype", "shape"}:
            refuse(f"array description {index} must be {{name, dtype, shape}}")
        name, dtype_name, shape = spec["name"], spec["dtype"], spec["shape"]
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in arrays:
            refuse(f"array {index} has a bad or duplicate name {name!r:.80}")
        if not isinstance(dtype_name, str) or dtype_name not in WIRE_DTYPES:
            refuse(f"array '{name}' has dtype {dtype_name!r:.40}; allowed: "
                   f"{', '.join(WIRE_DTYPES)}")
        if (not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(
                isinstance(s, int) and not isinstance(s, bool) and 0 <= s for s in shape)):
            refuse(f"array '{name}' shape must be a list of at most {MAX_NDIM} non-negative "
                   f"integers, got {shape!r:.80}")
        dtype = WIRE_DTYPES[dtype_name]
        expected = math.prod(shape) * dtype.itemsize
        if expected != len(buf):
            refuse(f"array '{name}' is {dtype_name} {tuple(shape)} = {expected} bytes, but its "
                   f"buffer has {len(buf)} bytes")
        array = np.frombuffer(buf, dtype=dtype).reshape(shape)
        array.setflags(write=False)
        arrays[name] = array
    return arrays
