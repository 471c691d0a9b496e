"""Estimator accuracy on the synthetic library: exact ground truth, every motion, a few cameras.

Renders (or reuses, from --cache) one clip per motion x camera with ``scail_backend.synth``, runs
``scail_backend.pipeline.extract_video`` on its driving.mp4 and prints, per clip and pooled over
all clips:

* detected: frames where the estimator returned the person (any finite SMPL joint);
* MPJPE: mean joint error (mm) after moving the estimate's pelvis onto the truth's;
* PA-MPJPE: mean joint error (mm) after a similarity (Procrustes) alignment per frame;
* 2D: mean distance (px) between the projections of estimated and true joints, each through
  its own sequence's K (what the renderer draws);
* L/R swap: share of frames whose estimated shoulders are in the opposite image order from the
  truth's (frames seen side-on are not judged);
* PCK per joint group (torso, head, arms, legs): PA-aligned 3D at --pck-mm thresholds and 2D at
  --pck-px thresholds;
* Accel: mean acceleration error (m/s²) of the camera-frame joints, i.e. jitter beyond the
  truth's own motion (``synth.metrics.acceleration_errors``);
* Slide: how fast the estimate's feet slide along the floor (m/s) while the truth's are planted
  (``synth.metrics.foot_sliding``), what an artist sees as skating feet in Blender.

With ``--bodies`` the clips are rendered for other or several body types of ``synth.bodies``
(average, child-like, stocky, lanky, short and heavy, tall and slim, long-legged). Body types
outside ``--tuned`` (default: ``synth.bodies.TUNING_BODIES``, the ones the CPU default's mapping
and the whole-take fit were tuned on) are held out. Unless the clips are all of the default
average body, each clip row names its body type (``short_heavy/wave/front``) and is marked
"(held-out)" where it is, several body types add a pooled row per body type, and the ALL row says
which bodies it pools (``ALL (2 bodies, 1 held-out)``); the ``--json`` keys are the row names.

With ``--fit`` each estimate is also refined by the whole-take fit (``scail_backend.take_fit``,
as ``extract --fit``) and scored beside the raw (the table's right-hand columns).

With ``--smooth [STRENGTH]`` each estimate is also temporally smoothed
(``scail_backend.smoothing``, as ``extract --smooth``) and the table shows raw and smoothed
figures side by side (the smoothing reuses the raw estimate, so it costs little).

With ``--overlap`` each clip's estimate and its truth are also rendered (the capsule
skeleton, without the 2D overlay) and compared frame by frame (``render.overlap``): FG IoU is
the foreground overlap, Limb IoU the mean overlap of the arm and leg segments told apart by
colour; pooled rows average the clips. ``--against VIDEO REFERENCE`` (repeatable) runs the
estimator on a real clip the way ``scail-pose run`` does and scores its rendering (with the 2D
hands/face overlay, as ``run`` writes it) against a rendering of the same clip the user has
from elsewhere, made the same way (the original GPU pipeline's rendered video, say). Those
figures include the overlay, so they are not comparable with ``--overlap``'s.

Units: MPJPE and PA-MPJPE mm, 2D px, L/R sw % of frames, Accel m/s², Slide m/s, IoU 0-1.

All 24 SMPL joints are scored. Frames without a detection count against "detected" only.

Examples:

    # every motion x 3 cameras, average body
    python bench/accuracy.py --cache bench_cache/synth
    # two motions, one camera, 24 frames each
    python bench/accuracy.py --cache /tmp/s --motions wave,squat --cameras front --frames 24
    # also write the summaries as JSON
    python bench/accuracy.py --cache /tmp/s --json results.json
    # raw vs medium smoothing
    python bench/accuracy.py --cache /tmp/s --smooth
    # one held-out body type, raw vs whole-take fit
    python bench/accuracy.py --cache /tmp/s --bodies short_heavy --motions wave --fit
    # every body type, raw vs whole-take fit, with the rendering overlap
    python bench/accuracy.py --cache /tmp/s --bodies all --motions wave,walk \\
        --cameras front,three_quarter --frames 48 --fit --overlap
    # a real clip's rendering against another rendering of it
    python bench/accuracy.py --cache /tmp/s --motions wave --cameras front --fit \\
        --against clip/driving.mp4 clip/reference_rendered.mp4

Rendering runs at ~0.25-0.5 s/frame here (2 cores). Cached clips are per body type: each clip
has its own folder under --cache named after its body type (no prefix for average), motion,
camera, size, fps and frame count (short_heavy_wave_front_..., wave_front_...), and is reused
when all of them match; another body type, size or frame count renders a new clip beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_CAMERAS = ("front", "three_quarter", "side_left")
MM_PER_M = 1000.0
GROUPS = ("torso", "head", "arms", "legs")


def _clip(cache: Path, motion: str, camera: str, frames, size, fps, body="average") -> Path:
    """The cached clip folder, rendering it when missing or stale."""
    from scail_backend.synth import make_clip
    from scail_protocol.sequence import PoseSequence

    prefix = "" if body == "average" else f"{body}_"
    folder = cache / f"{prefix}{motion}_{camera}_{size[0]}x{size[1]}_{fps:g}fps_{frames or 'full'}"
    truth_path = folder / "truth.npz"
    if truth_path.is_file() and (folder / "driving.mp4").is_file():
        truth = PoseSequence.load(truth_path)
        if (truth.meta.get("motion") == motion and truth.meta.get("camera") == camera
                and truth.meta.get("body", "average") == body):
            return folder
    started = time.monotonic()
    clip = make_clip(folder, motion=motion, camera=camera, num_frames=frames, size=size, fps=fps,
                     body=body)
    logging.info("rendered %s/%s/%s: %d frames in %.1f s", body, motion, camera, clip.frames,
                 time.monotonic() - started)
    return folder


def _best_person(pred, truth):
    """Index of the estimated person closest (median 2D joint distance) to the truth."""
    from scail_backend.synth import metrics
    from scail_protocol.camera import project

    truth_px = project(truth.joints3d[0], truth.K)
    best, best_err = 0, np.inf
    for p in range(pred.num_people):
        err = metrics.joint_errors(project(pred.joints3d[p], pred.K), truth_px)
        med = np.nanmedian(err) if np.isfinite(err).any() else np.inf
        if med < best_err:
            best, best_err = p, med
    return best


def score_clip(pred, truth) -> dict:
    """Per-frame error arrays and the clip's summary for one estimated sequence."""
    from scail_backend.synth import metrics
    from scail_protocol.camera import project
    from scail_protocol.joints import SMPL24

    num = truth.num_frames
    if pred.num_people == 0 or pred.num_frames != num:
        nan = np.full((num, 24), np.nan)
        errors = {"mpjpe": nan, "pa": nan, "px": nan, "swap": np.full(num, np.nan), "accel": nan,
                  "slide": np.full((num, 2), np.nan)}
        detected = np.zeros(num, bool)
    else:
        est = pred.joints3d[_best_person(pred, truth)].astype(np.float64)
        gt = truth.joints3d[0].astype(np.float64)
        est_px, gt_px = project(est, pred.K), project(gt, truth.K)
        detected = np.isfinite(est).all(-1).any(-1)
        errors = {"mpjpe": metrics.mpjpe(est, gt), "pa": metrics.pa_mpjpe(est, gt),
                  "px": metrics.joint_errors(est_px, gt_px),
                  "swap": metrics.left_right_swapped(est_px, gt_px, SMPL24["left_shoulder"],
                                                     SMPL24["right_shoulder"]),
                  "accel": metrics.acceleration_errors(est, gt, truth.fps) / MM_PER_M,
                  "slide": metrics.foot_sliding(est, gt, truth.fps)}
    errors["detected"] = detected
    return errors


def rendering_overlaps(truth, *preds) -> list:
    """Per estimate, one-entry arrays ``fg_iou`` and ``limb_iou``: its rendering against the
    truth's (capsules only, each with its own K), pooled over the clip's frames. The truth is
    rendered once for all of them."""
    from scail_backend.render.overlap import OverlapCounter
    from scail_backend.render.pipeline import iter_rendered_frames

    scored = [p for p in preds if p.num_people and p.num_frames == truth.num_frames]
    counters = {id(p): OverlapCounter() for p in scored}
    streams = [iter_rendered_frames(p.people([_best_person(p, truth)]), overlay=False)
               for p in scored]
    for reference, *ours in zip(iter_rendered_frames(truth, overlay=False), *streams):
        for pred, frame in zip(scored, ours):
            counters[id(pred)].add(frame, reference)
    results = [counters.get(id(p), OverlapCounter()).result() for p in preds]
    return [{"fg_iou": np.array([r.foreground_iou]), "limb_iou": np.array([r.limb_iou])}
            for r in results]


def summarise(errors: dict, pck_mm, pck_px) -> dict:
    from scail_backend.synth import metrics

    summary = {
        "frames": int(len(errors["detected"])),
        "detected": float(np.mean(errors["detected"])) if len(errors["detected"]) else float("nan"),
        "mpjpe_mm": metrics.mean_present(errors["mpjpe"]),
        "pa_mpjpe_mm": metrics.mean_present(errors["pa"]),
        "err2d_px": metrics.mean_present(errors["px"]),
        "lr_swap": metrics.mean_present(errors["swap"]),
        "accel_m_s2": metrics.mean_present(errors["accel"]),
        "slide_m_s": metrics.mean_present(errors["slide"]),
    }
    for key in ("fg_iou", "limb_iou"):
        if key in errors:
            summary[key] = metrics.mean_present(errors[key])
    for group in GROUPS:
        joints = metrics.GROUP_INDICES[group]
        for thr in pck_mm:
            summary[f"pck3d_{group}@{thr:g}mm"] = metrics.pck(errors["pa"], thr, joints)
        for thr in pck_px:
            summary[f"pck2d_{group}@{thr:g}px"] = metrics.pck(errors["px"], thr, joints)
    return summary


def _pool(all_errors: list) -> dict:
    return {key: np.concatenate([e[key] for e in all_errors]) for key in all_errors[0]}


def _print_table(rows: list, pck_mm, pck_px, refined: str = "smoothed") -> None:
    """Per clip and pooled; ``rows`` are (name, raw summary, smoothed or fitted summary or None);
    ``refined`` names the second kind in the PCK tables."""
    smoothed = rows[-1][2] is not None
    width = max(26, *(len(name) for name, _, _ in rows))
    head = (f"{'clip':<{width}} {'frames':>6} {'det%':>6} {'MPJPE':>7} {'PA-MPJPE':>9} "
            f"{'2D px':>6} {'L/R sw%':>7} {'Accel':>6} {'Slide':>6}")
    overlap = "fg_iou" in rows[-1][1]
    if overlap:
        head += f" {'FG IoU':>6} {'Limb':>6}"
    if smoothed:
        head += f" | {'MPJPE':>7} {'PA-MPJPE':>9} {'2D px':>6} {'Accel':>6} {'Slide':>6}"
        head += f" {'FG IoU':>6} {'Limb':>6}" if overlap else ""
        head += f"  ({refined})"
    print(head)
    print("-" * len(head))
    for name, s, sm in rows:
        swap = "-" if np.isnan(s["lr_swap"]) else f"{100 * s['lr_swap']:.1f}"  # "-": side-on only
        line = (f"{name:<{width}} {s['frames']:>6d} {100 * s['detected']:>6.1f} "
                f"{s['mpjpe_mm']:>7.1f} {s['pa_mpjpe_mm']:>9.1f} {s['err2d_px']:>6.2f} {swap:>7} "
                f"{s['accel_m_s2']:>6.2f} {s['slide_m_s']:>6.3f}")
        line += f" {s['fg_iou']:>6.3f} {s['limb_iou']:>6.3f}" if overlap else ""
        if sm is not None:
            line += (f" | {sm['mpjpe_mm']:>7.1f} {sm['pa_mpjpe_mm']:>9.1f} {sm['err2d_px']:>6.2f} "
                     f"{sm['accel_m_s2']:>6.2f} {sm['slide_m_s']:>6.3f}")
            line += f" {sm['fg_iou']:>6.3f} {sm['limb_iou']:>6.3f}" if overlap else ""
        print(line)
    print()
    cols = [f"3D@{t:g}mm" for t in pck_mm] + [f"2D@{t:g}px" for t in pck_px]
    for label, index in (("raw", 1), (refined, 2)) if smoothed else (("", 1),):
        suffix = f", {label}" if label else ""
        print(f"PCK (%) of all clips pooled, PA-aligned 3D and projected 2D{suffix}:")
        print(f"{'group':<8} " + " ".join(f"{c:>10}" for c in cols))
        overall = rows[-1][index]
        for group in GROUPS:
            values = [overall[f"pck3d_{group}@{t:g}mm"] for t in pck_mm] + \
                     [overall[f"pck2d_{group}@{t:g}px"] for t in pck_px]
            print(f"{group:<8} " + " ".join(f"{100 * v:>10.1f}" for v in values))


def _body_names(parser, option: str, text: str) -> list:
    """The body types named by ``text`` (comma-separated, or 'all'); a parser error naming
    ``option`` and the valid names for an unknown one."""
    from scail_backend.synth.bodies import BODIES, get_body

    names = list(BODIES) if text == "all" else text.split(",")
    for name in names:
        try:
            get_body(name)
        except Exception as e:
            parser.error(f"{option}: {e}")
    return names


def _all_label(bodies: list, tuned: list, show_body: bool) -> str:
    """The pooled row's name: plain "ALL" for the default body, else which bodies it pools."""
    if not show_body:
        return "ALL"
    held_out = sum(body not in tuned for body in bodies)
    if len(bodies) == 1:
        return f"ALL ({bodies[0]}, {'held-out' if held_out else 'not held-out'})"
    return f"ALL ({len(bodies)} bodies, {held_out} held-out)"


def main(argv=None) -> int:
    from scail_backend.synth.bodies import TUNING_BODIES

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True, help="folder of rendered clips")
    parser.add_argument("--estimator", default="mediapipe",
                        help="estimator name (default mediapipe)")
    parser.add_argument("--motions", help="comma-separated motions (default: all)")
    parser.add_argument("--cameras", default=",".join(DEFAULT_CAMERAS),
                        help=f"comma-separated cameras (default: {','.join(DEFAULT_CAMERAS)})")
    parser.add_argument("--frames", type=int, help="frames per clip (default: each motion's own)")
    parser.add_argument("--resolution", type=int, nargs=2, default=(512, 896), metavar=("H", "W"),
                        help="working size, height then width (default: 512 896)")
    parser.add_argument("--fps", type=float, default=16.0)
    parser.add_argument("--pck-mm", type=float, nargs="+", default=(50.0, 100.0))
    parser.add_argument("--pck-px", type=float, nargs="+", default=(10.0, 20.0))
    parser.add_argument("--json", type=Path, help="also write the summaries here")
    parser.add_argument("--bodies", default="average",
                        help="comma-separated body types, or 'all' (default: average)")
    parser.add_argument("--tuned", default=None,
                        help="comma-separated body types used for tuning, or 'all'; the others "
                             "are reported as held-out (default: synth.bodies.TUNING_BODIES, "
                             f"{','.join(TUNING_BODIES)})")
    parser.add_argument("--fit", action="store_true",
                        help="also score the estimates refined by the whole-take fit")
    parser.add_argument("--smooth", nargs="?", const="default", default=None, metavar="STRENGTH",
                        help="also score the estimates smoothed at STRENGTH (light, medium, "
                             "strong or a number in (0, 1]; alone: the default) beside the raw")
    parser.add_argument("--overlap", action="store_true",
                        help="also render each estimate and its truth and score their overlap")
    parser.add_argument("--against", nargs=2, action="append", default=[], type=Path,
                        metavar=("VIDEO", "REFERENCE"),
                        help="score the rendering of VIDEO (as `scail-pose run` makes it) "
                             "against REFERENCE, another rendering of the same clip; repeatable")
    args = parser.parse_args(argv)
    bodies = _body_names(parser, "--bodies", args.bodies)
    tuned = _body_names(parser, "--tuned", args.tuned) if args.tuned else list(TUNING_BODIES)
    show_body = bodies != ["average"] or "average" not in tuned  # the body is not obvious
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    for noisy in ("scail_backend", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    try:
        from scail_backend.pipeline import extract_video
    except ImportError as e:
        print(f"accuracy: the estimator pipeline is not available ({e})", file=sys.stderr)
        return 2
    from scail_backend.smoothing import parse_strength, smooth_sequence
    from scail_backend.synth import MOTIONS
    from scail_backend.take_fit import fit_sequence
    from scail_protocol.sequence import PoseSequence

    try:
        strength = parse_strength(args.smooth)
    except ValueError as e:
        parser.error(str(e))
    if args.fit and strength is not None:
        parser.error("--fit and --smooth are each compared with the raw estimate: choose one")

    motions = args.motions.split(",") if args.motions else list(MOTIONS)
    cameras = args.cameras.split(",")
    args.cache.mkdir(parents=True, exist_ok=True)
    rows, all_errors, all_smoothed, by_motion, by_body = [], [], [], {}, {}
    fit_seconds = 0.0
    for body, motion, camera in ((b, m, c) for b in bodies for m in motions for c in cameras):
        clip = f"{body}/{motion}/{camera}" if show_body else f"{motion}/{camera}"
        folder = _clip(args.cache, motion, camera, args.frames, tuple(args.resolution),
                       args.fps, body)
        truth = PoseSequence.load(folder / "truth.npz")
        started = time.monotonic()
        pred = extract_video(folder / "driving.mp4", estimator=args.estimator,
                             resolution=tuple(args.resolution))
        logging.info("%s: estimated %d frames in %.1f s", clip, pred.num_frames,
                     time.monotonic() - started)
        errors = score_clip(pred, truth)
        refined = None
        if strength is not None:
            refined = smooth_sequence(pred, strength=strength)
        elif args.fit:
            started = time.perf_counter()
            refined = fit_sequence(pred)
            fit_seconds += time.perf_counter() - started
        smoothed = None if refined is None else score_clip(refined, truth)
        if args.overlap:
            overlaps = rendering_overlaps(truth, pred, *([refined] if refined is not None else []))
            errors.update(overlaps[0])
            if refined is not None:
                smoothed.update(overlaps[1])
        all_errors.append(errors)
        all_smoothed.append(smoothed)
        by_motion.setdefault(motion, []).append((errors, smoothed))
        by_body.setdefault(body, []).append((errors, smoothed))
        label = clip if body in tuned else f"{clip} (held-out)"
        rows.append((label, summarise(errors, args.pck_mm, args.pck_px),
                     None if smoothed is None else
                     summarise(smoothed, args.pck_mm, args.pck_px)))
    if len(cameras) > 1:  # each motion over its cameras
        for motion, pairs in by_motion.items():
            rows.append((f"{motion}/*", *_summarise_pool(pairs, args)))
    if len(bodies) > 1:   # each body type over its clips
        for body, pairs in by_body.items():
            mark = "" if body in tuned else " (held-out)"
            rows.append((f"{body}{mark}", *_summarise_pool(pairs, args)))
    rows.append((_all_label(bodies, tuned, show_body),
                 *_summarise_pool(list(zip(all_errors, all_smoothed)), args)))
    held_out = [body for body in bodies if body not in tuned]
    print(f"estimator: {args.estimator}; {len(all_errors)} clips; {args.resolution[1]}x"
          f"{args.resolution[0]} (width x height) at {args.fps:g} fps"
          + (f"; held-out: {', '.join(held_out)} (tuned on {', '.join(tuned)})"
             if held_out else "")
          + ("" if strength is None else f"; smoothing strength {strength:g}")
          + (f"; whole-take fit {fit_seconds:.2f} s in all" if args.fit else ""))
    _print_table(rows, args.pck_mm, args.pck_px, "fitted" if args.fit else "smoothed")
    against = [_score_against(video, reference, args, strength) for video, reference in args.against]
    if against:
        _print_against(against)
    if args.json:
        second = "fitted" if args.fit else "smoothed"
        results = {name: (s if sm is None else {"raw": s, second: sm}) for name, s, sm in rows}
        results.update({f"against {row['video']}": row for row in against})
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _score_against(video: Path, reference: Path, args, strength) -> dict:
    """Overlap of our rendering of ``video`` (raw, and fitted or smoothed when asked) with the
    user's ``reference`` rendering of the same clip."""
    import tempfile

    from scail_backend.pipeline import extract_video
    from scail_backend.render.overlap import compare_many_renderings
    from scail_backend.render.pipeline import render_sequence
    from scail_backend.smoothing import smooth_sequence
    from scail_backend.take_fit import fit_sequence

    pred = extract_video(video, estimator=args.estimator, resolution=tuple(args.resolution))
    versions = {"raw": pred}
    if strength is not None:
        versions["smoothed"] = smooth_sequence(pred, strength=strength)
    elif args.fit:
        versions["fitted"] = fit_sequence(pred)
    row = {"video": str(video), "reference": str(reference)}
    with tempfile.TemporaryDirectory() as tmp:
        ours = [Path(tmp) / f"{name}.mp4" for name in versions]
        for seq, path in zip(versions.values(), ours):
            render_sequence(seq, path)
        for name, result in zip(versions, compare_many_renderings(ours, reference)):
            row[name] = {"frames": result.frames, "fg_iou": result.foreground_iou,
                         "limb_iou": result.limb_iou, "per_limb": result.per_limb}
    return row


def _print_against(rows: list) -> None:
    print()
    print("Rendering overlap against the given references (foreground IoU / limb IoU):")
    for row in rows:
        scores = "; ".join(f"{name} {r['fg_iou']:.3f} / {r['limb_iou']:.3f} ({r['frames']} frames)"
                           for name, r in row.items() if name not in ("video", "reference"))
        print(f"  {row['video']} vs {row['reference']}: {scores}")


def _summarise_pool(pairs: list, args) -> tuple:
    """(raw summary, smoothed summary or None) of the pooled (raw, smoothed) error pairs."""
    raw = summarise(_pool([e for e, _ in pairs]), args.pck_mm, args.pck_px)
    if pairs[0][1] is None:
        return raw, None
    return raw, summarise(_pool([sm for _, sm in pairs]), args.pck_mm, args.pck_px)


if __name__ == "__main__":
    sys.exit(main())
