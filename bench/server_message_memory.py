"""How much memory an unauthenticated message costs a running ``scail-pose serve``.

Starts ``scail-pose serve`` as a subprocess (default settings unless ``--max-message-mb``),
sends unsigned junk messages from a bare DEALER socket and prints the growth of the server's
peak resident memory (``VmHWM`` in ``/proc/PID/status``) after each:

* one frame larger than the limit: ZeroMQ (``ZMQ_MAXMSGSIZE``) drops the connection when the
  frame's length arrives, so the server should not grow by its size;
* one message just under the limit: it is received, then refused at the size/signature checks;
  frames are checked as views (no copy), so growth should stay near 1x its size (2x before).

    python bench/server_message_memory.py
    python bench/server_message_memory.py --max-message-mb 256 --under-mb 200   # the old default

Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 2**20


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def start_server(folder: Path, max_message_mb):
    cmd = [sys.executable, "-m", "scail_backend.cli", "-q", "serve", "--bind",
           "tcp://127.0.0.1:*", "--key-file", str(folder / "key"), "--work-dir",
           str(folder / "work")]
    if max_message_mb is not None:
        cmd += ["--max-message-mb", str(max_message_mb)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1].strip()


def send_junk(address: str, frame_bytes: int, expect_reply: bool) -> str:
    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    payload = bytearray(frame_bytes)
    sock.send_multipart([b"<SCAIL|MSG>", b"scail-pose/1", b"", b"{}", b"{}", payload],
                        copy=False)
    answered = sock.poll(30_000 if expect_reply else 2_000)
    reply = "refused with an error reply" if answered else "dropped by the socket, no reply"
    sock.close(linger=0)
    return reply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-message-mb", type=float, default=None,
                        help="server limit (default: the server's default)")
    parser.add_argument("--over-mb", type=float, default=None,
                        help="size of the frame over the limit (default: 3 x the limit)")
    parser.add_argument("--under-mb", type=float, default=None,
                        help="size of the message under the limit (default: limit - 1 MB)")
    args = parser.parse_args()
    from scail_backend.server.config import DEFAULT_MAX_MESSAGE_BYTES

    limit_mb = args.max_message_mb or DEFAULT_MAX_MESSAGE_BYTES / MB
    under_mb = args.under_mb or limit_mb - 1
    over_mb = args.over_mb or 3 * limit_mb
    with tempfile.TemporaryDirectory() as tmp:
        proc, address = start_server(Path(tmp), args.max_message_mb)
        try:
            time.sleep(0.5)  # let start-up allocations settle before the baseline
            base = peak_rss_mb(proc.pid)
            print(f"server limit {limit_mb:g} MB; peak RSS at rest {base:.0f} MB")
            for label, size_mb, expect in (("over the limit", over_mb, False),
                                           ("under the limit", under_mb, True)):
                before = peak_rss_mb(proc.pid)
                outcome = send_junk(address, int(size_mb * MB), expect)
                grown = peak_rss_mb(proc.pid) - before
                print(f"unsigned {size_mb:g} MB message {label}: {outcome}; peak RSS +{grown:.0f} "
                      f"MB ({grown / size_mb:.2f}x its size)")
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
