"""Loopback figures of ``scail-pose serve``: request latency, a one-frame render, job throughput.

Starts a real server subprocess on 127.0.0.1 (free port, temporary key, work dir and root) and
prints:

* hello round trip (request -> reply), median and p99 over N;
* a one-frame render job at the reference working size (submit -> result event, and with the
  mp4 download), first run (includes taichi start-up) and warm median;
* many small concurrent jobs (diagnostic ``sleep`` of 0 s) from several clients: jobs/s;
* upload and download of a file through the chunked protocol: MB/s.

Usage: python bench/server_roundtrip.py [--hello N] [--renders N] [--clients C] [--jobs J]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from scail_protocol import PoseSequence
from scail_protocol import conversation
from scail_protocol import messages as M
from scail_protocol.client import BackendClient

RENDER_SIZE = (512, 896)  # docs/pipeline.md §1.2 working size (H, W)


def start_server(tmp: Path):
    cmd = [sys.executable, "-m", "scail_backend.cli", "-q", "serve", "--bind",
           "tcp://127.0.0.1:*", "--key-file", str(tmp / "key"), "--work-dir", str(tmp / "work"),
           "--root", str(tmp)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, TI_SKIP_VERSION_CHECK="ON"))
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1].strip(), (tmp / "key").read_bytes().strip()


def percentiles_ms(samples_s: list) -> str:
    ms = np.asarray(samples_s) * 1000
    return (f"median {np.median(ms):.3f} ms, p99 {np.percentile(ms, 99):.3f} ms, "
            f"min {ms.min():.3f} ms (n={len(ms)})")


def bench_hello(client: BackendClient, n: int) -> None:
    for _ in range(20):
        client.hello()
    samples = []
    for _ in range(n):
        began = time.perf_counter()
        client.hello()
        samples.append(time.perf_counter() - began)
    print(f"hello round trip: {percentiles_ms(samples)}")


def one_frame_sequence() -> PoseSequence:
    """One frame, one person: a stick figure 3 m in front of the camera (mm, camera frame)."""
    seq = PoseSequence.empty(1, 1, RENDER_SIZE, fps=16.0)
    rng = np.random.default_rng(0)
    joints = rng.normal(0.0, 250.0, (1, 1, 24, 3)).astype(np.float32)
    joints[..., 2] += 3000.0
    return seq.replace(joints3d=joints)


def bench_render(client: BackendClient, n: int, tmp: Path) -> None:
    seq = one_frame_sequence()
    job_times, with_download = [], []
    for i in range(n + 1):
        began = time.perf_counter()
        job_id = client.converse(conversation.render(seq)).job_id
        done = time.perf_counter()
        client.download_video(job_id, tmp / "one_frame.mp4")
        job_times.append(done - began)
        with_download.append(time.perf_counter() - began)
    print(f"one-frame render {RENDER_SIZE[1]}x{RENDER_SIZE[0]}: first {job_times[0] * 1000:.1f} ms "
          f"(taichi start-up); warm submit->result {percentiles_ms(job_times[1:])}; "
          f"with mp4 download median {statistics.median(with_download[1:]) * 1000:.1f} ms")


def bench_throughput(address: str, key: bytes, clients: int, jobs: int) -> None:
    errors = []

    def one_client():
        try:
            with BackendClient(address, key, timeout_s=60) as c:
                ids = [c.submit(M.SLEEP, {"duration_s": 0.0, "steps": 1}) for _ in range(jobs)]
                for job_id in ids:
                    c.wait(job_id)
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=one_client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    total = clients * jobs
    print(f"small jobs: {clients} clients x {jobs} jobs = {total} in {elapsed:.2f} s -> "
          f"{total / elapsed:.0f} jobs/s{' ERRORS: ' + str(errors[:3]) if errors else ''}")


def bench_files(client: BackendClient, tmp: Path, megabytes: int) -> None:
    path = tmp / "payload.mp4"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, megabytes << 20,
                                                       dtype=np.uint8).tobytes())
    began = time.perf_counter()
    sha256 = client.upload(path)
    upload_s = time.perf_counter() - began
    job_id = client.submit(M.COPY, {"video": {"upload": sha256}})
    client.wait(job_id)
    began = time.perf_counter()
    client.download_video(job_id, tmp / "payload_back.mp4")
    download_s = time.perf_counter() - began
    print(f"files: upload {megabytes / upload_s:.0f} MB/s, download {megabytes / download_s:.0f} "
          f"MB/s ({megabytes} MiB, 1 MiB chunks, sha256 checked)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hello", type=int, default=2000)
    parser.add_argument("--renders", type=int, default=10)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=10,
                        help="jobs per client (clients x jobs must fit the server queue, 256)")
    parser.add_argument("--file-mb", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        proc, address, key = start_server(tmp)
        try:
            print(f"server {address} (subprocess), client in this process, "
                  f"{os.cpu_count()} CPUs")
            with BackendClient(address, key, timeout_s=120) as client:
                bench_hello(client, args.hello)
                bench_render(client, args.renders, tmp)
                bench_throughput(address, key, args.clients, args.jobs)
                bench_files(client, tmp, args.file_mb)
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
