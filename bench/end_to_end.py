"""End-to-end speed of the embedded default: driving.mp4 -> poses.npz + rendered.mp4.

Runs ``run_folder`` on a copy of ``../shared/examples/dance_a`` (65 frames, 2048x1080) on the CPU
with the mediapipe estimator and prints frames per second end to end (cold: first run in the
process, models and kernels loaded; warm: later runs), then each stage alone, the detection
rate and the reprojection error of the 3D joints against MediaPipe's 2D landmarks. The goal is
>= 15 frames/s end to end on a 2-core machine. The machine's load average is printed before and
after, and each figure says how much CPU other processes took meanwhile: figures taken under
load are not comparable.

    python bench/end_to_end.py [--clip DIR] [--arch cpu] [--repeat 3] [--skip-stages]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO.parent / "shared" / "examples" / "dance_a"
GOAL_FPS = 15.0
VISIBLE = 0.5


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def _busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, all processes; Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return float("nan")
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_s() -> float:
    times = os.times()
    return times.user + times.system


_others = []  # CPU seconds other processes took during each timed call


def _rate(frames: int, seconds: float) -> str:
    others = f"  (others used {_others[-1]:.1f} CPU s)" if _others else ""
    return f"{seconds:7.2f} s  {frames / seconds:6.1f} frames/s{others}"


def _timed(fn, *args, **kwargs):
    """(result, wall seconds); notes how much CPU other processes took meanwhile."""
    busy, own = _busy_s(), _own_s()
    began = time.perf_counter()
    result = fn(*args, **kwargs)
    seconds = time.perf_counter() - began
    _others.append(max(0.0, (_busy_s() - busy) - (_own_s() - own)))
    return result, seconds


def end_to_end(folder: Path, arch: str, repeat: int):
    """Cold run (imports, model loading, kernel compilation), then ``repeat`` warm runs."""
    from scail_backend.pipeline import run_folder

    warm = []
    for run in range(repeat + 1):
        label = "cold" if run == 0 else f"warm {run}"
        result, seconds = _timed(run_folder, folder, estimator="mediapipe", arch=arch)
        frames = result.sequence.num_frames
        s = result.seconds
        print(f"end to end ({label:6}):   {_rate(frames, seconds)}   "
              f"[decode+estimate {s['extract']:.2f} s, render+encode {s['render']:.2f} s]")
        if run:
            warm.append(seconds)
    if warm:
        best, median = min(warm), float(np.median(warm))
        goal = "meets" if frames / median >= GOAL_FPS else "misses"
        print(f"  warm: best {frames / best:.1f} frames/s, median {frames / median:.1f} frames/s "
              f"({goal} the goal of {GOAL_FPS:g} frames/s at the median)")
    return result


def stages(video: Path, seq, arch: str) -> None:
    from scail_backend.estimators.mediapipe_holistic import MediaPipeHolisticEstimator
    from scail_backend.pipeline import extract_video
    from scail_backend.render.pipeline import iter_rendered_frames, render_sequence
    from scail_backend.video.reader import open_video
    from scail_backend.video.writer import Mp4Writer

    source = open_video(video)
    frames, seconds = _timed(list, source)
    n = len(frames)
    print(f"decode + resize alone:   {_rate(n, seconds)}")
    with MediaPipeHolisticEstimator() as est:
        est.estimate(frames[:2], size=source.size, fps=source.fps)  # graph and models loaded
        _, seconds = _timed(est.estimate, frames, size=source.size, fps=source.fps)
        print(f"estimate alone (warm):   {_rate(n, seconds)}")
        _, seconds = _timed(extract_video, video, estimator=est)
        print(f"decode || estimate:      {_rate(n, seconds)}")
    del frames
    with tempfile.TemporaryDirectory() as tmp:
        rendered, seconds = _timed(list, iter_rendered_frames(seq, arch=arch))
        print(f"render alone:            {_rate(n, seconds)}")

        def encode():
            with Mp4Writer(Path(tmp) / "e.mp4", seq.size) as writer:
                for frame in rendered:
                    writer.write(frame)

        _, seconds = _timed(encode)
        print(f"encode alone (x264):     {_rate(n, seconds)}")
        del rendered
        _, seconds = _timed(render_sequence, seq, Path(tmp) / "s.mp4", arch=arch)
        print(f"render || encode:        {_rate(n, seconds)}")


def accuracy(video: Path, seq) -> None:
    """Detection rate, and how far the 3D joints project from MediaPipe's 2D landmarks."""
    from scail_backend.estimators.mediapipe_holistic import (MediaPipeHolisticEstimator,
                                                              landmarks_from_result)
    from scail_backend.estimators.mediapipe_mapping import MM_PER_M, solve_root_translation
    from scail_backend.video.reader import open_video
    from scail_protocol.camera import project

    present = seq.present()[0]
    print(f"person found in {present.sum()} of {seq.num_frames} frames "
          f"({present.mean():.1%})")
    source = open_video(video)
    fit_errors = []
    with MediaPipeHolisticEstimator() as est:
        graph = est._fresh_graph()
        for frame in source:
            lm = landmarks_from_result(graph.process(frame), source.size)
            if lm is None:
                continue
            world = lm.pose_world_m * MM_PER_M
            t = solve_root_translation(world, lm.pose_px, seq.K, np.clip(lm.visibility, 0.05, 1))
            error = np.linalg.norm(project(world + t, seq.K) - lm.pose_px, axis=-1)
            fit_errors.append(error[lm.visibility >= VISIBLE])
    fit = np.concatenate(fit_errors)
    uv = project(seq.openpose18_3d()[0, present], seq.K)
    body = [2, 3, 4, 5, 6, 7, 9, 10, 12, 13]  # OpenPose shoulders, elbows, wrists, knees, ankles
    anchored = np.linalg.norm(uv[:, body] - seq.kp2d[0, present][:, body], axis=-1)
    visible = seq.kp2d_score[0, present][:, body] >= VISIBLE
    print(f"reprojection, world landmarks + fitted root only: median {np.median(fit):.1f} px, "
          f"90th percentile {np.percentile(fit, 90):.1f} px (visible landmarks)")
    print(f"reprojection, anchored joints (what is stored):   median "
          f"{np.median(anchored[visible]):.2g} px, max {anchored[visible].max():.2g} px")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP,
                        help="folder holding driving.mp4 (default: ../shared/examples/dance_a)")
    parser.add_argument("--arch", default="cpu", help="renderer arch (default: cpu)")
    parser.add_argument("--repeat", type=int, default=3, help="warm end-to-end runs (default 3)")
    parser.add_argument("--skip-stages", action="store_true", help="end to end figures only")
    args = parser.parse_args(argv)
    video = args.clip / "driving.mp4"
    if not video.is_file():
        print(f"no clip at {video}", file=sys.stderr)
        return 1
    os.environ.setdefault("GLOG_minloglevel", "2")
    print(f"before: {_load()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copy(video, folder / "driving.mp4")
        result = end_to_end(folder, args.arch, args.repeat)
    if not args.skip_stages:
        stages(video, result.sequence, args.arch)
        accuracy(video, result.sequence)
    print(f"after:  {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
