"""Connecting a batch to Ray: a local Ray started for the batch, or an existing cluster joined.

``address`` forms (as ``ray.init`` takes them):

* None: start a local Ray on this machine (``resources.local_cpus(workers)`` CPUs), shut down
  at the end;
* ``"auto"``: join the cluster this machine belongs to (``ray start`` ran here; or the one
  ``RAY_ADDRESS`` names);
* ``"HOST:PORT"``: join the cluster whose head (GCS) listens there (``ray start --head
  --port PORT``; default port 6379); this machine becomes one of its drivers;
* ``"ray://HOST:10001"``: Ray Client, from a machine outside the cluster (needs ``grpcio``,
  which the ``cluster`` extra installs, and the client server the head runs on port 10001).

The cluster's nodes must have this project installed in the same Python environment, and see
INPUTS and OUT_DIR at the same paths. A cluster with token authentication (``ray start`` turns
it on when ``~/.ray/auth_token`` exists or ``RAY_AUTH_MODE=token`` is set) is joined at an
explicit address only with ``RAY_AUTH_MODE=token`` and its token (``RAY_AUTH_TOKEN``, or
``~/.ray/auth_token`` on this machine) in this process's environment.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from contextlib import contextmanager

from scail_protocol.errors import ScailError

from .report import one_line
from .resources import local_cpus

log = logging.getLogger(__name__)

LOCAL_OBJECT_STORE_BYTES = 200 * 1024 * 1024   # poses are small: the store stays small
TAICHI_ENV = {"TI_SKIP_VERSION_CHECK": "ON"}   # taichi's online version check hangs offline
CLIENT_INIT_ATTEMPTS = 3                       # Ray Client: tries when its server fails to start
CLIENT_INIT_TRANSIENT = "Initialization failure from server"
CLIENT_INIT_PAUSE_S = 2.0                      # pause before the next try, times the try number
AUTH_HINT = ("; if the cluster uses token authentication, set RAY_AUTH_MODE=token and its "
             "token in RAY_AUTH_TOKEN or ~/.ray/auth_token")


def import_ray():
    """The ``ray`` module.

    Raises:
        ScailError: Ray is not installed (with the command that installs it).
    """
    try:
        import ray
    except ImportError:
        raise ScailError("scail-pose batch runs on Ray, which is not installed here; install "
                         "it with: pip install -e '.[cluster]'") from None
    return ray


def start_ray(ray, address, workers: int) -> bool:
    """Connect to Ray: join ``address`` (see the module notes), or start a local Ray of
    ``local_cpus(workers)`` CPUs when it is None.

    Returns:
        True when this call started or joined Ray (the caller shuts it down), False when this
        process was already connected.

    Raises:
        ScailError: the cluster cannot be reached, or a local Ray cannot start (one line).
    """
    if ray.is_initialized():
        return False
    quiet = not log.isEnabledFor(logging.DEBUG)
    # Ray's own lines: INFO with -v, WARNING by default, ERROR under -q (as other libraries)
    level = logging.INFO if not quiet else logging.ERROR if not log.isEnabledFor(
        logging.INFO) else logging.WARNING
    kwargs = dict(log_to_driver=not quiet, logging_level=level,
                  runtime_env={"env_vars": dict(TAICHI_ENV)})
    for name, value in TAICHI_ENV.items():
        os.environ.setdefault(name, value)
    if address is None:
        kwargs.update(address="local", num_cpus=local_cpus(workers), include_dashboard=False,
                      object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    else:
        kwargs.update(address=address)
    try:
        with _signal_handlers_kept():
            _init_with_retry(ray, kwargs)
    except Exception as e:  # ConnectionError, RuntimeError, ValueError from a bad address
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        hint = AUTH_HINT if address and "RAY_AUTH_MODE" not in os.environ else ""
        raise ScailError(f"cannot start or reach {where}: {one_line(cause(e), 200)}"
                         f"{hint}") from None
    return True


def _init_with_retry(ray, kwargs: dict) -> None:
    """``ray.init(**kwargs)``, tried again when a Ray Client server fails to start its
    per-client process (a transient start-up failure on a loaded head node)."""
    for attempt in range(CLIENT_INIT_ATTEMPTS):
        try:
            ray.init(**kwargs)
            return
        except ConnectionError as e:
            transient = CLIENT_INIT_TRANSIENT in str(e)
            if not transient or attempt == CLIENT_INIT_ATTEMPTS - 1:
                raise
            log.info("Ray Client could not start its server (%s); trying again", one_line(e, 120))
            time.sleep(CLIENT_INIT_PAUSE_S * (attempt + 1))


@contextmanager
def _signal_handlers_kept():
    """Put back this process's SIGTERM/SIGHUP/SIGINT handlers after the block: ``ray.init``
    installs its own (SIGTERM would then exit 1 at once instead of stopping the batch cleanly,
    as the command line's handlers do)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = ("SIGTERM", "SIGHUP", "SIGINT")
    saved = {getattr(signal, n): signal.getsignal(getattr(signal, n)) for n in names
             if hasattr(signal, n)}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            if handler is not None:
                signal.signal(signum, handler)


def signal_interrupt(error: BaseException) -> BaseException:
    """The signal's own interrupt (``signals.Terminated``) when Ray wrapped it in a plain
    KeyboardInterrupt; else ``error``."""
    from ..signals import Terminated

    seen = error
    while seen is not None and isinstance(error, KeyboardInterrupt):
        if isinstance(seen, Terminated):
            return seen
        seen = seen.__context__ or seen.__cause__
    return error


def cause(error: Exception) -> str:
    """The first non-blank line of an error's text (Ray's errors hold a traceback below it)."""
    text = str(error).strip().splitlines()
    return next((line for line in text if line.strip()), type(error).__name__)
