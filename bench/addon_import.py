"""Blender add-on speed: import a long one-person take as an armature, export it back.

Runs the add-on inside the ``bpy`` module on a synthetic take (smooth random joint rotations,
estimator-like bone-length jitter, a short gap) and prints, best of --repeats fresh scenes:

* import: PoseSequence -> armature, camera and keyed action on the NLA (``armature.import_sequence``);
* import from file: the same through ``bpy.ops.scail.import_motion`` (adds the .npz load);
* export: armature -> PoseSequence by forward kinematics (``export.export_sequence``);
* export via depsgraph (--depsgraph): the frame-by-frame path used for rigs with constraints;

plus the round-trip error. Goals (issue 5): import <= 5 s and export <= 5 s for 10,000 frames.

    python bench/addon_import.py                  # 10,000 frames, 3 repeats
    python bench/addon_import.py --frames 2000 --repeats 1 --depsgraph
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 5.0  # issue 5: import and export of a 10,000-frame one-person take


def _best(function, repeats: int) -> tuple:
    """(best seconds, last result) of ``function()`` run on a fresh scene each time."""
    import bpy

    best, result = float("inf"), None
    for _ in range(repeats):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--depsgraph", action="store_true",
                        help="also time the frame-by-frame (depsgraph) export")
    args = parser.parse_args(argv)

    from scail_backend.blender_export import registered_addon

    sys.path.insert(0, str(REPO / "tests" / "addon"))  # the test takes
    import motion

    with registered_addon() as addon:
        return _run(addon, args, motion)


def _run(addon, args, motion) -> int:
    import bpy

    seq = motion.make_sequence(args.frames, size=(512, 896), gaps=[(0, 100, 110)])
    print(f"take: {seq!r}, bpy {bpy.app.version_string}")

    def do_import():
        scene = bpy.context.scene
        return addon.armature.import_sequence(seq, scene.collection, scene=scene)

    import_s, result = _best(do_import, args.repeats)
    (obj,) = result.armatures
    scene = bpy.context.scene
    export_s = float("inf")
    for _ in range(args.repeats):
        started = time.perf_counter()
        out = addon.export.export_sequence([obj], scene=scene)
        export_s = min(export_s, time.perf_counter() - started)
    error_mm = float(np.nanmax(np.abs(out.joints3d - seq.joints3d)))

    with tempfile.TemporaryDirectory() as tmp:
        path = seq.save(Path(tmp) / "poses.npz")
        file_s, _ = _best(lambda: bpy.ops.scail.import_motion(filepath=str(path)), args.repeats)

    print(f"import   {args.frames} frames: {import_s:6.2f} s  (goal <= {GOAL_S:g} s)")
    print(f"import from .npz via operator: {file_s:6.2f} s")
    print(f"export   {args.frames} frames: {export_s:6.2f} s  (goal <= {GOAL_S:g} s)")
    print(f"round trip: max |joints3d error| = {error_mm:.4f} mm")
    if args.depsgraph:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        (obj,) = do_import().armatures
        started = time.perf_counter()
        addon.export.export_sequence([obj], scene=bpy.context.scene, use_depsgraph=True)
        print(f"export via depsgraph (frame_set per frame): {time.perf_counter() - started:6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
