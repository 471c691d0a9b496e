"""Server settings and the shared key file."""

from __future__ import annotations

import errno
import logging
import math
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from scail_protocol.client import HEARTBEAT_S, default_key_file, read_key_file
from scail_protocol.errors import ScailError
from scail_protocol.wire import DEFAULT_TIME_WINDOW_S, MIN_KEY_BYTES

log = logging.getLogger(__name__)

DEFAULT_BIND = "tcp://127.0.0.1:5555"  # loopback: remote use is an explicit choice
MB = 2**20
# One message, all frames; also ZMQ_MAXMSGSIZE per frame, so a larger frame is dropped by the
# socket (and its peer disconnected) before it is read, whatever its signature. What clients
# really send: upload chunks of 1 MiB (messages.UPLOAD_CHUNK_BYTES) and render requests with the
# poses inline, ~1.9 kB per person and frame: 64 MiB holds ~35,000 person-frames (~20 minutes
# of one person at 30 fps). Longer sequences: render a server path (poses_path).
DEFAULT_MAX_MESSAGE_BYTES = 64 * MB
MIN_MESSAGE_BYTES = 2 * MB  # an upload chunk and its envelope must fit
DEFAULT_MAX_UPLOAD_BYTES = 4096 * MB  # one uploaded file
DEFAULT_UPLOAD_CACHE_BYTES = 16384 * MB  # all cached uploads together (LRU eviction)
DEFAULT_MAX_QUEUE = 256  # queued jobs; more are refused with code "busy"
DEFAULT_KEEP_RESULTS_S = 3600.0  # finished jobs (and their files) kept for re-attach
DEFAULT_PEER_TIMEOUT_S = 3 * HEARTBEAT_S  # silence after which a job's owner counts as gone
DEFAULT_INLINE_POSES_BYTES = 64 * MB  # larger results are fetched separately
KEY_BYTES = 32  # random bytes in a new key file (stored as 64 hex characters)


@dataclass
class ServerConfig:
    """Everything ``scail-pose serve`` can be told.

    Attributes:
        key: the shared HMAC key (bytes, at least 16).
        bind: ZeroMQ endpoint of the client-facing ROUTER socket (``tcp://127.0.0.1:*`` picks
            a free port; see :attr:`Server.address`).
        roots: folders the server may read request paths from and write outputs to.
        work_dir: the server's own folder (upload cache, job outputs); default
            ``$XDG_CACHE_HOME/scail-pose/server``.
        max_message_bytes: largest accepted message; also ZMQ_MAXMSGSIZE of every frame.
        max_queue: queued jobs beyond which submissions are refused.
        max_upload_bytes: largest accepted upload.
        upload_cache_bytes: size of the upload cache (least recently used files go first).
        keep_results_s: how long a finished job stays available for status, attach and fetch.
        cancel_orphans: cancel a job when its owner disconnects (default: finish it and keep it).
        heartbeat_s: interval of the server's heartbeats to owners of active jobs.
        peer_timeout_s: silence after which an owner counts as gone.
        time_window_s: accepted clock difference between client and server.
        workers: worker threads; each runs one job at a time.
        inline_poses_bytes: poses up to this size ride in the ``result`` event.
    """

    key: bytes
    bind: str = DEFAULT_BIND
    roots: tuple = ()
    work_dir: Optional[Path] = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_queue: int = DEFAULT_MAX_QUEUE
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    upload_cache_bytes: int = DEFAULT_UPLOAD_CACHE_BYTES
    keep_results_s: float = DEFAULT_KEEP_RESULTS_S
    cancel_orphans: bool = False
    heartbeat_s: float = HEARTBEAT_S
    peer_timeout_s: float = DEFAULT_PEER_TIMEOUT_S
    time_window_s: float = DEFAULT_TIME_WINDOW_S
    workers: int = 1
    inline_poses_bytes: int = DEFAULT_INLINE_POSES_BYTES

    def __post_init__(self):
        """Check every setting once, here (the CLI and scripts that build a config alike).

        Raises:
            ScailError: one line naming the setting, its value and what is allowed.
        """
        for name, low, high in _LIMITS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or not low <= value <= high:
                raise ScailError(f"server setting {_option_name(name)} must be a number in "
                                 f"{_show(name, low)}..{_show(name, high)}, got "
                                 f"{_show(name, value)}")
        for name in ("max_message_bytes", "max_queue", "max_upload_bytes", "upload_cache_bytes",
                     "workers", "inline_poses_bytes"):
            setattr(self, name, int(getattr(self, name)))
        if self.upload_cache_bytes < self.max_upload_bytes:
            raise ScailError(f"--upload-cache-mb ({self.upload_cache_bytes / MB:g}) must be at "
                             f"least --max-upload-mb ({self.max_upload_bytes / MB:g})")
        if not isinstance(self.bind, str) or "://" not in self.bind:
            raise ScailError(f"--bind must be a ZeroMQ endpoint such as {DEFAULT_BIND}, "
                             f"got {self.bind!r}")

    def resolved_work_dir(self) -> Path:
        if self.work_dir is not None:
            return Path(self.work_dir)
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(base) / "scail-pose" / "server"


# (field, lowest, highest) of every numeric setting
_LIMITS = (
    ("max_message_bytes", MIN_MESSAGE_BYTES, 4096 * MB),
    ("max_queue", 1, 1_000_000),
    ("max_upload_bytes", 1, 2**50),
    ("upload_cache_bytes", 1, 2**52),
    ("keep_results_s", 0.0, 366 * 86400.0),
    ("heartbeat_s", 0.05, 3600.0),
    ("peer_timeout_s", 0.1, 86400.0),
    ("time_window_s", 1.0, 86400.0),
    ("workers", 1, 64),
    ("inline_poses_bytes", 0, 4096 * MB),
)
_OPTIONS = {"max_message_bytes": "--max-message-mb", "max_upload_bytes": "--max-upload-mb",
            "upload_cache_bytes": "--upload-cache-mb", "max_queue": "--max-queue",
            "keep_results_s": "--keep-results-s", "workers": "--workers"}


def _option_name(name: str) -> str:
    return _OPTIONS.get(name, name)


def _show(name: str, value) -> str:
    """A value as the option takes it (MB for byte sizes given in MB)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return repr(value)
    if name.endswith("_bytes") and name in _OPTIONS:
        value = value / MB
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def bind_error(endpoint: str, error: OSError) -> ScailError:
    """The one-line error for a ``--bind`` endpoint the socket could not bind (a zmq.ZMQError).

    The advice follows the cause: a port in use (another server?), an address this machine does
    not have, or an endpoint ZeroMQ cannot read.
    """
    number = getattr(error, "errno", None)
    if number == errno.EADDRINUSE:
        advice = "is another server running there? (choose another port with --bind)"
    elif number == errno.EADDRNOTAVAIL:
        advice = ("that address is not one of this machine's; bind one of its own addresses, "
                  f"e.g. {DEFAULT_BIND}, or tcp://0.0.0.0:PORT for all of them")
    elif number == errno.EACCES:
        advice = "this user may not use that port; choose a port above 1023 with --bind"
    else:
        advice = f"give an endpoint such as {DEFAULT_BIND} with --bind"
    return ScailError(f"cannot bind {endpoint}: {error}; {advice}")


def megabytes(value, option: str) -> int:
    """``--...-mb VALUE`` as bytes.

    Raises:
        ScailError: not a finite positive number.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise ScailError(f"{option} must be a positive number of megabytes, got {value!r}")
    return int(number * MB)


def load_or_create_key(path=None) -> tuple:
    """The key in ``path`` (default :func:`default_key_file`), created if absent.

    A new key file holds 32 random bytes as hex and is created with owner-only permissions
    (0600; its folder 0700). An existing file readable by others is used with a warning.

    Returns:
        (key bytes, path, created: bool)
    """
    path = Path(path) if path is not None else default_key_file()
    created = False
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it just now: use theirs
        except OSError as e:
            raise ScailError(f"cannot create key file {path}: {e.strerror}") from None
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(KEY_BYTES) + "\n")
            created = True
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("key file %s is readable by other users (mode %o); chmod 600 it",
                    path, stat.S_IMODE(mode))
    key = read_key_file(path)
    if len(key) < MIN_KEY_BYTES:
        raise ScailError(f"key file {path} holds {len(key)} bytes; at least {MIN_KEY_BYTES} "
                         f"are needed (delete it to have a new one made)")
    return key, path, created
