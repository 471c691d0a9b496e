"""Checking request bodies and the errors the server answers with."""

from __future__ import annotations

import math
import re

from scail_protocol.errors import ProtocolError, ScailError

REQUIRED = object()
MAX_INT = 2**63  # larger integers (JSON has no limit) are refused before anything converts them
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class RequestError(ScailError):
    """A request the server refuses; ``code`` goes on the wire (see ``messages.ServerError``)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def get_field(body: dict, name: str, kind, msg_type: str, default=REQUIRED):
    """``body[name]`` checked to be of ``kind`` (a type or tuple of types; None allowed when
    ``default`` is None). Numbers must be finite, and integers (in a list or dict too) at
    most :data:`MAX_INT` in size (``float(10**400)`` would raise OverflowError).

    Raises:
        ProtocolError: missing, of the wrong type or out of range, naming the request and the
            field.
    """
    if name not in body or (body[name] is None and default is None):
        if default is REQUIRED:
            raise ProtocolError(f"{msg_type}: field '{name}' is required")
        return default
    value = body[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ProtocolError(f"{msg_type}: field '{name}' must be {names}, "
                            f"got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ProtocolError(f"{msg_type}: field '{name}' must be finite")
    check_numbers(value, name, msg_type)
    return value


def check_numbers(value, name: str, msg_type: str, depth: int = 0) -> None:
    """Refuse an integer larger than :data:`MAX_INT` in ``value`` or in the lists and dicts it
    holds (JSON puts no limit on them; any ``float()`` of one raises OverflowError).

    Raises:
        ProtocolError: naming the field (``cleanup.max_people``, ``resolution[0]``).
    """
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise ProtocolError(f"{msg_type}: field '{name}' is out of range (about 2**"
                            f"{value.bit_length()}); send a number below 2**63")
    if depth < 8 and isinstance(value, dict):
        for key, item in value.items():
            check_numbers(item, f"{name}.{key}"[:80], msg_type, depth + 1)
    elif depth < 8 and isinstance(value, list):
        for index, item in enumerate(value):
            check_numbers(item, f"{name}[{index}]", msg_type, depth + 1)


def get_int(body: dict, name: str, msg_type: str, lo: int, hi: int, default=REQUIRED) -> int:
    """An integer field within [lo, hi]."""
    value = get_field(body, name, int, msg_type, default)
    if value is not None and not lo <= value <= hi:
        raise ProtocolError(f"{msg_type}: field '{name}' must be in [{lo}, {hi}], got {value}")
    return value


def get_sha256(body: dict, name: str, msg_type: str) -> str:
    value = get_field(body, name, str, msg_type)
    if not _SHA256_RE.fullmatch(value):
        raise ProtocolError(f"{msg_type}: field '{name}' must be 64 lowercase hex characters")
    return value


def get_resolution(body: dict, msg_type: str):
    """``resolution``: None, or the working size [H, W] in pixels for landscape input (the
    pipeline swaps it for portrait), within the limits the CLI applies
    (:func:`scail_backend.options.check_resolution`)."""
    from ..options import check_resolution

    value = body.get("resolution")
    if value is None:
        return None
    check_numbers(value, "resolution", msg_type)
    if not isinstance(value, list) or len(value) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ProtocolError(f"{msg_type}: 'resolution' must be [H, W] integers, "
                            f"got {value!r:.60}")
    try:
        return list(check_resolution(value))
    except ScailError as e:
        raise ProtocolError(f"{msg_type}: 'resolution' must be [H, W]: {e}") from None
