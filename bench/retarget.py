"""Retargeting speed: a long walking take baked onto a Mixamo-named A-pose rig.

Runs the add-on inside the ``bpy`` module: a synthetic marching/turning take filmed by a tilted
camera is imported and grounded, then ``retarget.retarget`` bakes it onto a rig the benchmark
builds (Mixamo names, 1.2x the size, A-pose rest, random bone rolls). Prints, best of --repeats:

* retarget (foot contacts on): evaluating the source, the rotation transfer, root motion, the
  foot-contact pass and writing the keys (``foreach_set``) into a new action on an NLA track;
* retarget (foot contacts off);
* with --export: Blender's BVH and FBX exporters on the retargeted rig (frame by frame; their
  own speed, for information).

Goal (issue 12): retargeting a 10,000-frame take <= 10 s.

    python bench/retarget.py                      # 10,000 frames, 3 repeats
    python bench/retarget.py --frames 2000 --repeats 1 --export
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 10.0  # issue 12: a 10,000-frame take


def _load(name: str, path: Path, package_dir: Path = None):
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(package_dir)] if package_dir else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--export", action="store_true", help="also time BVH and FBX export")
    args = parser.parse_args(argv)

    import bpy

    sys.path.insert(0, str(REPO / "tests" / "addon"))  # the test rigs and the walking take
    import rigs
    import walk

    addon = _load("scail_pose_studio", REPO / "blender_addon" / "__init__.py",
                  REPO / "blender_addon")
    addon.register()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    started = time.perf_counter()
    seq = walk.filmed_sequence(args.frames)[0]
    made_s = time.perf_counter() - started
    result = addon.armature.import_sequence(seq, scene.collection, scene=scene, name="walk")
    addon.grounding.ground_import(result, seq, collection=scene.collection, name="walk")
    source = result.armatures[0]
    print(f"take: {seq!r} (made in {made_s:.1f} s), bpy {bpy.app.version_string}")

    timings = {}
    for contacts in (True, False):
        best = float("inf")
        for i in range(args.repeats):
            rig = rigs.build_rig(f"hero{i}{contacts}", scene.collection, style="mixamo",
                                 scale=1.2, a_pose_deg=40.0, roll_seed=i)
            started = time.perf_counter()
            done = addon.retarget.retarget(source, rig, "auto", scene=scene,
                                           use_foot_contacts=contacts)
            best = min(best, time.perf_counter() - started)
        timings[contacts] = best
        keys = sum(len(fc.keyframe_points) for fc in addon.anim.curve_source(rig).fcurves.values())
    print(f"retarget {args.frames} frames, foot contacts on:  {timings[True]:6.2f} s  "
          f"(goal <= {GOAL_S:g} s)")
    print(f"retarget {args.frames} frames, foot contacts off: {timings[False]:6.2f} s  "
          f"({keys} keys on {len(done.bone_map)} mapped bones)")
    if args.export:
        with tempfile.TemporaryDirectory() as tmp:
            for suffix in (".bvh", ".fbx"):
                started = time.perf_counter()
                addon.export_formats.export_armatures(Path(tmp) / f"take{suffix}", [rig],
                                                      scene=scene)
                print(f"export {suffix}: {time.perf_counter() - started:6.2f} s")
    addon.unregister()
    return 0


if __name__ == "__main__":
    sys.exit(main())
