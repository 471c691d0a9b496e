"""Batch throughput on Ray: clips per minute with 1 and 2 local workers, and Ray's overhead.

Makes N small SCAIL folders (the first F frames of ``../shared/examples/dance_a`` where present,
else a synthetic pattern clip with nobody in it), then times the same clips four ways, each into
a fresh output folder, with the mediapipe estimator on the CPU:

* ``loop of run``: ``scail-pose run`` once per clip, one process each (what a shell loop does;
  every clip pays Python start-up and model loading);
* ``in-process loop``: each clip estimated then rendered in one process, models loaded once
  (``runner.plain_loop``: the batch's own code without Ray);
* ``batch, 1 worker`` and ``batch, 2 workers``: ``scail-pose batch`` (local Ray started by the
  command, included in the time; per worker an estimation actor and a render task beside it,
  so a worker estimates its next clip while the last one renders).

Ray's overhead is ``batch, 1 worker`` against each loop (goal <= 10 % against the loop of
``run``). The machine's load is printed: figures taken while other processes use the CPUs are
not comparable.

    python bench/batch.py [--clips 6] [--frames 16] [--resolution 256 448] [--skip-loop]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO.parent / "shared" / "examples" / "dance_a"


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def _make_clips(root: Path, clips: int, frames: int) -> str:
    """N SCAIL folders under root/in, the same clip in each; returns what they show."""
    sys.path.insert(0, str(REPO / "tests" / "backend"))
    from video_helpers import cut_clip, write_clip

    first = root / "in" / "clip00"
    first.mkdir(parents=True)
    if EXAMPLE.is_dir():
        cut_clip(EXAMPLE / "driving.mp4", first / "driving.mp4", frames)
        what = f"first {frames} frames of {EXAMPLE.name}"
    else:
        write_clip(first / "driving.mp4", frames=frames, size=(256, 448))
        what = f"{frames} synthetic frames (nobody in them)"
    for index in range(1, clips):
        shutil.copytree(first, root / "in" / f"clip{index:02d}")
    return what


def _timed(label: str, clips: int, run) -> float:
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    print(f"{label:<22} {seconds:7.1f} s  {60 * clips / seconds:6.1f} clips/min", flush=True)
    return seconds


def _cli(*args) -> None:
    subprocess.run([sys.executable, "-m", "scail_backend.cli", "-q", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, TI_SKIP_VERSION_CHECK="ON"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--resolution", type=int, nargs=2, default=(256, 448))
    parser.add_argument("--skip-loop", action="store_true",
                        help="skip the loop of `scail-pose run` processes (the slowest)")
    args = parser.parse_args(argv)
    resolution = [str(v) for v in args.resolution]
    common = ["--estimator", "mediapipe", "--resolution", *resolution, "--arch", "cpu"]
    with tempfile.TemporaryDirectory(prefix="scail-bench-batch-") as tmp:
        root = Path(tmp)
        what = _make_clips(root, args.clips, args.frames)
        print(f"{args.clips} clips: {what}; working size {resolution[0]}x{resolution[1]}")
        print(f"before: {_load()}")
        times = {}
        if not args.skip_loop:
            def loop():
                for folder in sorted((root / "in").iterdir()):
                    target = root / "loop" / folder.name
                    shutil.copytree(folder, target)
                    subprocess.run([sys.executable, "-m", "scail_backend.cli", "-q", "run",
                                    str(target), *common], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL,
                                   env=dict(os.environ, TI_SKIP_VERSION_CHECK="ON"))
            times["loop"] = _timed("loop of run", args.clips, loop)

        def in_process():
            _cli_free_loop(root / "in", root / "inproc", resolution)
        times["inproc"] = _timed("in-process loop", args.clips, in_process)
        for workers in (1, 2):
            times[workers] = _timed(
                f"batch, {workers} worker{'s' if workers > 1 else ''}", args.clips,
                lambda w=workers: _cli("batch", str(root / "in"), "-o",
                                       str(root / f"batch{w}"), *common, "--workers", str(w)))
        print(f"after: {_load()}")
        for name, label in (("loop", "the loop of run"), ("inproc", "the in-process loop")):
            if name in times:
                overhead = 100 * (times[1] / times[name] - 1)
                print(f"Ray overhead (1 worker) against {label}: {overhead:+.1f} %")
        print(f"2 workers against 1: {times[1] / times[2]:.2f}x the clips per minute")
    return 0


def _cli_free_loop(inputs: Path, out: Path, resolution) -> None:
    """``plain_loop`` in a child process: clip after clip, models loaded once (no Ray)."""
    code = ("import sys; from pathlib import Path; "
            "from scail_backend.batch.inputs import discover; "
            "from scail_backend.batch.runner import plain_loop; "
            "s = plain_loop(discover(sys.argv[1]), Path(sys.argv[2]), "
            "{'estimator': 'mediapipe', 'arch': 'cpu', "
            "'resolution': (int(sys.argv[3]), int(sys.argv[4]))}); "
            "sys.exit(1 if s.failed else 0)")
    subprocess.run([sys.executable, "-c", code, str(inputs), str(out), *resolution], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, TI_SKIP_VERSION_CHECK="ON"))


if __name__ == "__main__":
    sys.exit(main())
