"""Renderer speed: reference ray marcher (oracle) vs the production capsule renderer.

Renders the same frames of one walking person (procedural sample poses, 55° camera) with both
renderers in the same process and prints frames/s and their ratio, then the production
pipeline's throughput with the 2D overlay, and render + H.264 encode to an .mp4.

    python bench/render_speed.py                    # 8 frames, 512 high x 896 wide, CPU
    python bench/render_speed.py --arch auto --frames 16
    python bench/render_speed.py --long 10000       # constant-memory run: prints RSS as it goes

Timings on shared machines are noisy: the production figure is the best of several repeats; the
oracle runs once (it is slow). Compile time is excluded (one warm-up render each).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _rss_mb() -> float:
    """Current resident set size in MiB (Linux), else the peak."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _best_rate(fn, frames: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return frames / best


def compare(args) -> None:
    from scail_protocol.capsules import frame_capsules
    from scail_backend.render.capsule_renderer import CapsuleRenderer
    from scail_backend.render.oracle import OracleRenderer
    from scail_backend.render.pipeline import iter_rendered_frames, render_sequence, \
        sequence_depth_range
    from scail_backend.render.samples import walking_sequence

    size = (args.height, args.width)
    seq = walking_sequence(args.frames, size, num_people=args.people)
    depth = sequence_depth_range(seq)
    joints = seq.openpose18_3d()
    scenes = [frame_capsules(joints[:, t]) for t in range(seq.num_frames)]
    oracle = OracleRenderer(size, arch=args.arch)
    production = CapsuleRenderer(size, arch=args.arch, batch_frames=args.batch)
    oracle.render(scenes[0], depth, seq.K)          # compile
    production.render(scenes[:1], depth, seq.K)     # compile
    print(f"{args.people} person(s), {args.frames} frames, {size[0]} high x {size[1]} wide, "
          f"taichi on {production.arch}")

    began = time.perf_counter()
    reference = np.stack([oracle.render(s, depth, seq.K) for s in scenes])
    oracle_fps = len(scenes) / (time.perf_counter() - began)
    prod_fps = _best_rate(lambda: production.render(scenes, depth, seq.K), len(scenes),
                          args.repeats)
    ours = production.render(scenes, depth, seq.K)
    fg_ref, fg_ours = reference[..., 3] > 0, ours[..., 3] > 0
    iou = (fg_ref & fg_ours).sum() / max((fg_ref | fg_ours).sum(), 1)
    both = fg_ref & fg_ours
    diff = np.abs(reference[..., :3].astype(int) - ours[..., :3].astype(int))[both]
    print(f"oracle (reference ray marcher):  {oracle_fps:8.2f} frames/s")
    print(f"production capsule renderer:     {prod_fps:8.1f} frames/s")
    print(f"ratio production / oracle:       {prod_fps / oracle_fps:8.1f} x")
    print(f"same picture: foreground IoU {iou:.5f}, mean |RGB diff| {diff.mean():.3f} levels "
          f"(max {diff.max() if diff.size else 0})")

    long_seq = walking_sequence(args.pipeline_frames, size, num_people=args.people)
    list(iter_rendered_frames(long_seq.frames(0, 2), arch=args.arch))  # warm caches
    for overlay in (False, True):
        rate = _best_rate(lambda: sum(1 for _ in iter_rendered_frames(
            long_seq, arch=args.arch, batch_size=args.batch, overlay=overlay)),
            long_seq.num_frames, max(1, args.repeats // 2))
        label = "with overlay" if overlay else "capsules only"
        print(f"pipeline frames ({label}):{' ' * (14 - len(label))} {rate:8.1f} frames/s")
    with tempfile.TemporaryDirectory() as tmp:
        report = render_sequence(long_seq, Path(tmp) / "bench.mp4", arch=args.arch)
    print(f"render + encode to mp4 (x264 medium): {report.frames / report.seconds:5.1f} frames/s "
          f"({report.frames} frames)")


def long_run(args) -> None:
    from scail_backend.render.pipeline import render_sequence
    from scail_backend.render.samples import walking_sequence

    size = (args.height, args.width)
    seq = walking_sequence(args.long, size, num_people=args.people)
    marks = {max(1, args.long * k // 10) for k in range(1, 11)}
    start_rss = _rss_mb()
    print(f"{args.long} frames, {size[0]}x{size[1]}: RSS before rendering {start_rss:.0f} MiB")

    def progress(stage, done, total):
        if done in marks:
            print(f"  {done:6d}/{total} frames  RSS {_rss_mb():7.1f} MiB", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        report = render_sequence(seq, Path(tmp) / "long.mp4", arch=args.arch, progress=progress)
        size_mb = (Path(tmp) / "long.mp4").stat().st_size / 2**20
    print(f"render + encode: {report.frames / report.seconds:.1f} frames/s, mp4 {size_mb:.1f} MiB, "
          f"peak RSS {_peak_rss_mb():.0f} MiB")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=8, help="frames for oracle vs production")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=896)
    parser.add_argument("--people", type=int, default=1)
    parser.add_argument("--arch", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch", type=int, default=8, help="frames per kernel launch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pipeline-frames", type=int, default=64)
    parser.add_argument("--long", type=int, default=0, metavar="N",
                        help="only the constant-memory run over N frames (e.g. 10000)")
    args = parser.parse_args(argv)
    if args.long:
        long_run(args)
    else:
        compare(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
