"""Blender-side conditioning render speed: today's add-on against the per-frame renderer before it.

Runs inside the ``bpy`` module on a synthetic one-person take (896 × 512 by default) and prints,
for each renderer, frames per second (best of --repeats, interleaved) of

* frames: PoseSequence -> RGBA frames with the 2D overlay (``render.render_frames``);
* video: the same to an H.264 ``.mp4`` (``render.render_conditioning``: frames, files, encode);

plus how far apart the two renderers' pictures are (foreground IoU, mean colour difference).

"before" is the add-on's renderer as of git revision ``--before`` (default: the last one that
rebuilt a mesh in Python and ran one Cycles job per frame), read with ``git show`` into a
temporary package; "after" is the working tree's ``blender_addon``.

    python bench/blender_render.py                     # 24 frames at 896x512, best of 3
    python bench/blender_render.py --frames 48 --size 512 896 --skip-before
    PYTHONPATH=protocol .venv313/bin/python bench/blender_render.py --skip-before  # bpy 5.3

(The "before" renderer cannot encode on Blender 5.x: it is the one issue 14 fixed.)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BEFORE_REV = "01daa15"  # per-frame mesh rebuild + one Cycles job per frame
BEFORE_FILES = ("render.py", "capsule_mesh.py", "camera.py")  # what the old renderer imports


def _load_package(name: str, directory: Path):
    spec = importlib.util.spec_from_file_location(name, directory / "__init__.py",
                                                  submodule_search_locations=[str(directory)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _before_renderer(rev: str, folder: Path):
    """The old ``render`` module, from ``git show REV:blender_addon/...``."""
    package = folder / "scail_render_before"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in BEFORE_FILES:
        text = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:blender_addon/{name}"],
                              capture_output=True, text=True, check=True).stdout
        (package / name).write_text(text)
    _load_package("scail_render_before", package)
    return importlib.import_module("scail_render_before.render")


def _measure(render, seq, out: Path, best: dict) -> None:
    """Time one frames run and one video run; keep the best rates (and the frames) in ``best``."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    started = time.perf_counter()
    frames = list(render.render_frames(seq, overlay=True))
    frames_fps = seq.num_frames / (time.perf_counter() - started)
    started = time.perf_counter()
    render.render_conditioning(seq, out, overlay=True)
    video_fps = seq.num_frames / (time.perf_counter() - started)
    best["frames"] = frames
    best["frames_fps"] = max(best.get("frames_fps", 0.0), frames_fps)
    best["video_fps"] = max(best.get("video_fps", 0.0), video_fps)


def _agreement(a: list, b: list) -> tuple:
    """(foreground IoU, mean |RGB difference| over common foreground) over all frames."""
    a, b = np.stack(a), np.stack(b)
    fa, fb = a[..., 3] > 0, b[..., 3] > 0
    iou = (fa & fb).sum() / max((fa | fb).sum(), 1)
    diff = np.abs(a[..., :3].astype(int) - b[..., :3].astype(int))[fa & fb]
    return float(iou), float(diff.mean()) if diff.size else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 896), metavar=("H", "W"))
    parser.add_argument("--people", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each renderer, interleaved; the best rate is printed")
    parser.add_argument("--before", default=BEFORE_REV, help="git revision of the old renderer")
    parser.add_argument("--skip-before", action="store_true")
    args = parser.parse_args()

    import bpy

    sys.path.insert(0, str(REPO / "tests" / "addon"))
    from motion import make_sequence

    seq = make_sequence(args.frames, num_people=args.people, size=tuple(args.size), seed=3)
    addon = _load_package("scail_pose_studio", REPO / "blender_addon")
    print(f"Blender {bpy.app.version_string}, {args.frames} frames at "
          f"{args.size[1]}x{args.size[0]}, {args.people} person(s), {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        renderers = {} if args.skip_before else {"before": _before_renderer(args.before, tmp)}
        renderers["after"] = addon.render
        results = {name: {} for name in renderers}
        for _ in range(args.repeats):  # interleaved, so a busy machine slows both alike
            for name, render in renderers.items():
                _measure(render, seq, tmp / f"{name}.mp4", results[name])
    for name, r in results.items():
        print(f"{name:>6}: frames {r['frames_fps']:6.2f} frames/s   "
              f"video (frames + encode) {r['video_fps']:6.2f} frames/s")
    if "before" in results:
        before, after = results["before"], results["after"]
        iou, diff = _agreement(before["frames"], after["frames"])
        print(f"speed-up: frames {after['frames_fps'] / before['frames_fps']:.1f}x, "
              f"video {after['video_fps'] / before['video_fps']:.1f}x; same picture: "
              f"foreground IoU {iou:.4f}, mean colour difference {diff:.2f}/255")
    sys.stdout.flush()
    os._exit(0)  # the bpy module can hang in its exit handlers after Cycles renders


if __name__ == "__main__":
    main()
