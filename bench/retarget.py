"""Retargeting speed: a long walking take baked onto a Mixamo-named rig, plain or constrained.

Runs the add-on inside the ``bpy`` module: a synthetic marching/turning take filmed by a tilted
camera is imported and grounded, then ``retarget.retarget`` bakes it onto a rig the benchmark
builds (Mixamo names, 1.2x the size, A-pose rest, random bone rolls). Prints, best of --repeats:

* retarget (foot contacts on): evaluating the source, the rotation transfer, root motion, the
  foot-contact pass and writing the keys (``foreach_set``) into a new action on an NLA track;
* retarget (foot contacts off);
* with --export: Blender's BVH and FBX exporters on the retargeted rig (frame by frame; their
  own speed, for information).

Goal (issue 12): retargeting a 10,000-frame take <= 10 s (plain rigs).

``--rig helpers`` hangs the rig's arms and neck under constrained helper bones and ``--rig
rigify`` generates a Rigify rig (Rigify's human meta-rig shaped like the take): the bones under
constrained helpers are re-solved against Blender's evaluation of the rig, one pass over the take
per dependency level (1 and 4 passes), so their speed is Blender's evaluation of the whole rig
on every frame, times the passes; printed as frames per second.

    python bench/retarget.py                      # 10,000 frames, 3 repeats
    python bench/retarget.py --frames 2000 --repeats 1 --export
    python bench/retarget.py --rig rigify --frames 500 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 10.0  # issue 12: a 10,000-frame take


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--export", action="store_true", help="also time BVH and FBX export")
    parser.add_argument("--rig", choices=("mixamo", "helpers", "rigify"), default="mixamo",
                        help="plain Mixamo-named rig, the same with constrained helpers, or a "
                             "generated Rigify rig")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "tests" / "addon"))  # the test rigs and the walking take
    import rigs
    import walk

    from scail_backend.blender_export import registered_addon

    with registered_addon() as addon:
        return _run(addon, args, rigs, walk)


def _run(addon, args, rigs, walk) -> int:
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    started = time.perf_counter()
    seq = walk.filmed_sequence(args.frames)[0]
    made_s = time.perf_counter() - started
    result = addon.armature.import_sequence(seq, scene.collection, scene=scene, name="walk")
    addon.grounding.ground_import(result, seq, collection=scene.collection, name="walk")
    source = result.armatures[0]
    print(f"take: {seq!r} (made in {made_s:.1f} s), bpy {bpy.app.version_string}")

    make_rig = _rig_maker(args.rig, scene, rigs)
    timings = {}
    for contacts in (True, False):
        best = float("inf")
        for i in range(args.repeats):
            rig = make_rig(f"hero{i}{contacts}", i)
            started = time.perf_counter()
            done = addon.retarget.retarget(source, rig, "auto", scene=scene,
                                           use_foot_contacts=contacts)
            best = min(best, time.perf_counter() - started)
        timings[contacts] = best
        keys = sum(len(fc.keyframe_points) for fc in addon.anim.curve_source(rig).fcurves.values())
    print(f"rig: {args.rig}, {done.passes} evaluation pass(es) for bones under constrained "
          f"helpers")
    print(f"retarget {args.frames} frames, foot contacts on:  {timings[True]:6.2f} s  "
          f"({args.frames / timings[True]:.0f} frames/s; goal <= {GOAL_S:g} s for 10,000 "
          f"frames on plain rigs)")
    print(f"retarget {args.frames} frames, foot contacts off: {timings[False]:6.2f} s  "
          f"({args.frames / timings[False]:.0f} frames/s; {keys} keys on "
          f"{sum(k in addon.bonemaps.BONE_KEYS for k in done.bone_map)} mapped bones)")
    if args.export:
        with tempfile.TemporaryDirectory() as tmp:
            for suffix in (".bvh", ".fbx"):
                started = time.perf_counter()
                addon.export_formats.export_armatures(Path(tmp) / f"take{suffix}", [rig],
                                                      scene=scene)
                print(f"export {suffix}: {time.perf_counter() - started:6.2f} s")
    if args.rig == "rigify":
        sys.stdout.flush()
        os._exit(0)  # a registered Rigify keeps the interpreter from exiting
    return 0


def _rig_maker(kind: str, scene, rigs):
    """``make(name, seed) -> armature object`` for the chosen kind of rig."""
    import bpy

    def plain(name, seed):
        rig = rigs.build_rig(name, scene.collection, style="mixamo", scale=1.2, a_pose_deg=40.0,
                             roll_seed=seed)
        if kind == "helpers":
            rigs.add_constrained_helpers(rig)
        return rig

    if kind != "rigify":
        return plain
    import addon_utils

    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    rigs.shape_rigify_metarig(bpy.context.active_object, rigs.rest_heads(scale=1.1))
    started = time.perf_counter()
    bpy.ops.pose.rigify_generate()
    generated = bpy.context.active_object
    print(f"generated a Rigify rig of {len(generated.data.bones)} bones in "
          f"{time.perf_counter() - started:.1f} s")

    def rigify(name, seed):
        generated.animation_data_clear()  # the same rig each time, without the last bake
        return generated

    return rigify


if __name__ == "__main__":
    sys.exit(main())
