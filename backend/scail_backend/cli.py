"""The ``scail-pose`` command line: thin subcommands over the library.

Each ``cmd_*`` reads its arguments, calls one library function and prints the command's result
(output paths, or JSON with ``--json``). Errors of this project (:class:`ScailError`) become one
line on stderr and exit code 2; progress goes to stderr as tqdm bars (``-q`` hides them, never
warnings or errors).

Before any work every command checks its option values (:mod:`.options`, shared with the
server) and that no output would replace an input (:mod:`scail_protocol.outputs`).

Exit codes: 0 done; 2 a user error (one line on stderr); 3 the command ran but found nobody in
any frame (the outputs are written, with only missing poses); 130 Ctrl-C (SIGINT), 143 SIGTERM,
129 SIGHUP (:mod:`.signals`: each stops the command and removes its temporary files).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from pathlib import Path

from scail_protocol.contract import (DEFAULT_RESOLUTION, DRIVING_VIDEO, OUTPUT_FPS, POSES_SUFFIX,
                                     VIDEO_SUFFIX)
from scail_protocol.errors import ScailError
from scail_protocol.outputs import (check_output_file, check_output_folder, describe_os_error,
                                    is_inside, same_file)

from . import __version__, options, signals
from .progress import TqdmProgress, logs_above_bars

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_NOBODY = 3  # the command ran, but no person was found in any frame
EXIT_INTERRUPTED = signals.EXIT_SIGINT

DESCRIPTION = """\
3D human pose from video, and the SCAIL pose-conditioning video.

The main job: `scail-pose run DIR` reads DIR/driving.mp4, estimates the person's 3D pose on
every frame and writes DIR/poses.npz and DIR/rendered.mp4 (the pose video SCAIL consumes).
Without DIR it first makes a synthetic demo clip, so it works with nothing downloaded.
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


# --- render (issue 2) --------------------------------------------------------------------------

RENDER_EPILOG = """\
examples:
  scail-pose render clip/poses.npz -o clip/rendered.mp4
  scail-pose render clip/poses.npz -o capsules.mp4 --no-overlay      # 3D capsules only
  scail-pose render scail_demo/truth.npz -o truth.mp4               # a synthetic clip's truth
  scail-pose render clip/poses.npz -o clip/rendered.mp4 --frames clip/frames   # + PNG frames
"""


def _add_render(sub) -> None:
    p = sub.add_parser("render", help="render a PoseSequence (.npz) to the conditioning video",
                       description="Render poses to the SCAIL conditioning video: 3D capsules "
                                   "plus the 2D hands/face overlay, H.264 .mp4 at 16 fps.",
                       epilog=RENDER_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("poses", type=Path, metavar="POSES.npz", help="PoseSequence file")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.mp4",
                   help="video to write (its folder must exist)")
    p.add_argument("--frames", type=Path, metavar="DIR",
                   help="also write every frame as a lossless RGBA PNG frame_00000.png, ... "
                        "into DIR: a new folder, or one holding only frame_*.png files (it is "
                        "replaced as a whole; a folder of other files is refused)")
    p.add_argument("--arch", choices=("auto", "cpu", "cuda"), default="auto",
                   help="taichi backend: CUDA when present (auto), or force one")
    p.add_argument("--no-overlay", dest="overlay", action="store_false",
                   help="capsules only, without the 2D hands/face/head overlay")
    p.set_defaults(func=cmd_render)


def cmd_render(args) -> int:
    from scail_protocol.errors import RenderError
    from scail_protocol.sequence import PoseSequence

    from .render.pipeline import check_render_size, render_sequence
    from .video.writer import FRAME_GLOB

    out = check_output_file(args.output, [args.poses], what="-o", suffix=VIDEO_SUFFIX)
    if args.frames is not None:
        check_output_folder(args.frames, [args.poses], what="--frames", only=FRAME_GLOB)
        if is_inside(out, args.frames):
            raise RenderError(f"-o {out} is inside --frames {args.frames}, which is replaced "
                              f"as a whole; write the video elsewhere")
        if same_file(out, args.frames):
            raise RenderError(f"-o and --frames both name {out}; give the frames their own "
                              f"folder")
    seq = PoseSequence.load(args.poses)
    check_render_size(seq.size)
    options.check_arch(args.arch)
    if seq.num_frames and not seq.present().any():
        log.warning("nobody is present in any of the %d frames of %s: the video will be all "
                    "black", seq.num_frames, args.poses)
    progress = make_progress(args)
    try:
        report = render_sequence(seq, out, frames_dir=args.frames, arch=args.arch,
                                 overlay=args.overlay, progress=progress)
    finally:
        progress.close()
    log.info("rendered %d frames (%dx%d, width x height) on %s in %.1f s", report.frames,
             report.size[1], report.size[0], report.arch, report.seconds)
    print(report.path)
    if report.frames_dir is not None:
        print(report.frames_dir)
    return EXIT_OK


# --- extract / run / weights (issue 3) ------------------------------------------------------------

EXTRACT_EPILOG = """\
The video is resized and centre-cropped to the working size as the reference does: landscape
input -> 512 x 896 (H x W), portrait or square -> 896 x 512; --resolution H W sets the landscape
size (swapped for portrait). Every frame is kept and the source frame rate is recorded in the
file; the rendered video is always 16 fps, as in the reference (a 30 fps clip plays slower,
and says so); --fps 16 resamples the clip in time (nearest frame) so it plays at filmed speed.

examples:
  scail-pose extract dance.mp4 -o dance.npz
  scail-pose extract frames_folder/ -o poses.npz --estimator mediapipe
  scail-pose extract clip.mov -o clip.npz --resolution 480 832
  scail-pose extract dance.mp4 -o dance.npz --estimator nlf --device cuda   # studio-grade, GPU
  scail-pose extract phone60fps.mp4 -o clip.npz --fps 16       # 16 fps, in time
  scail-pose extract dance.mp4 -o dance.npz --smooth          # or --smooth strong, --smooth 0.3
"""

RUN_EPILOG = """\
DIR holds driving.mp4 and, optionally, a reference image (ref_image.jpg, ref_image.png, ref.jpg or
ref.png; only alignment uses it). The run writes DIR/poses.npz and DIR/rendered.mp4, both at the
end, so a failed run leaves DIR as it was. Without DIR, a synthetic demo clip is made in
./scail_demo (or reused if it is there) and run, so this works on a fresh machine with nothing
downloaded.

The working size follows the video's orientation (landscape 512 x 896, portrait or square
896 x 512; --resolution H W overrides); every frame is kept; rendered.mp4 is always 16 fps, as
in the reference, whatever the source's rate (a run says so when the rate differs; --fps 16
resamples the clip in time, nearest frame, so the motion plays at the filmed speed).

estimators: auto (nlf when its weights are present and available, else mediapipe; it says which
and why), mediapipe (embedded, CPU, no download), nlf (needs `scail-pose weights download`).

examples:
  scail-pose run                       # synthetic demo -> ./scail_demo/rendered.mp4
  scail-pose run my_clip/              # my_clip/driving.mp4 (+ ref_image.jpg)
  scail-pose run my_clip/ --estimator mediapipe --arch cpu
  scail-pose run my_clip/ --smooth light
  scail-pose run my_clip/ --fps 16   # a 30/60 fps clip resampled to play at filmed speed
  scail-pose run my_clip/ --use-align   # -> poses_aligned.npz + rendered_aligned.mp4
"""

WEIGHTS_EPILOG = """\
The folder is --weights-dir, else $SCAIL_WEIGHTS_DIR, else the project's pretrained_weights/.
The mediapipe estimator needs none of these files.

examples:
  scail-pose weights list
  scail-pose weights download
  scail-pose weights verify --weights-dir /data/scail_weights
"""

SYNTH_EPILOG = """\
DIR is created, or it may hold a synthetic clip made before (replaced); a folder holding someone's
footage (driving.mp4 or a reference image without truth.npz) or a run's results (poses.npz,
rendered.mp4) is refused. DIR is then what `scail-pose run DIR` reads, and truth.npz scores an
estimate (bench/accuracy.py) or renders as the truth's conditioning video.

examples:
  scail-pose synth --list                                   # motions, cameras, body types
  scail-pose synth -o wave_clip --motion wave               # the average figure, front view
  scail-pose synth -o squat_child --motion squat --body child --camera three_quarter
  scail-pose synth -o short --motion walk --frames 24 --resolution 256 448
  scail-pose run wave_clip && scail-pose render wave_clip/truth.npz -o truth.mp4
"""

DEMO_DIR = "scail_demo"


def _add_estimator_options(p) -> None:
    from .estimators.registry import names

    p.add_argument("--estimator", default="auto", choices=names(),
                   help="pose estimator (default: auto)")
    p.add_argument("--resolution", nargs=2, type=_positive_int, metavar=("H", "W"),
                   help="working size for landscape input, swapped for portrait "
                        "(default: 512 896)")
    p.add_argument("--weights-dir", metavar="DIR",
                   help="folder of the nlf weights (default: $SCAIL_WEIGHTS_DIR, else "
                        "pretrained_weights/)")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"),
                   help="where the nlf models run: auto = CUDA when onnxruntime/torch have it, "
                        "else CPU; cuda fails up front without CUDA (default: auto)")
    from .smoothing import DEFAULT_STRENGTH, strength_choices

    p.add_argument("--smooth", nargs="?", const=DEFAULT_STRENGTH, default=None,
                   type=_smoothing_strength, metavar="STRENGTH",
                   help=f"temporal smoothing of the poses (One Euro filter): "
                        f"{strength_choices()} (0 = off); --smooth alone = "
                        f"{DEFAULT_STRENGTH} (default: off, as the reference)")
    p.add_argument("--fps", type=_frame_rate, default=None, metavar="FPS",
                   help="resample the clip in time to FPS by nearest timestamp (--fps 16: the "
                        "16 fps conditioning video plays at the filmed speed; default: keep "
                        "every frame, as the reference)")
    _add_people_options(p)


# --- several people and cleanup (issue 11) -------------------------------------------------------

def _add_people_options(p) -> None:
    """--max-people, --person-order, --fill-gaps, --fit, --foot-lock (all off by default)."""
    from .cleanup import DEFAULT_FILL_GAP_FRAMES

    p.add_argument("--max-people", type=_positive_int, default=None, metavar="N",
                   help="keep at most N people, the most prominent (largest for longest); "
                        "a log line names what was dropped (default: every person found)")
    p.add_argument("--person-order", choices=("size", "left_to_right"), default="size",
                   help="order of the people (and their colours): size = largest first, as "
                        "the reference; left_to_right (default: size)")
    p.add_argument("--fill-gaps", nargs="?", type=_frames, const=DEFAULT_FILL_GAP_FRAMES,
                   default=0, metavar="FRAMES",
                   help=f"interpolate a person's joints and points missing for at most FRAMES "
                        f"frames; longer gaps stay missing (--fill-gaps alone = "
                        f"{DEFAULT_FILL_GAP_FRAMES}; default: off)")
    p.add_argument("--fit", dest="take_fit", action="store_true",
                   help="whole-take fit: one skeleton for the take, posed to the 2D evidence, "
                        "less jitter (default: off)")
    p.add_argument("--foot-lock", action="store_true",
                   help="keep feet that touch the ground in place (contact from height and "
                        "speed, pinned, blended in and out; default: off)")


def _frames(text: str) -> int:
    from .cleanup import parse_fill_gaps

    try:
        return parse_fill_gaps(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _cleanup_options(args):
    from .cleanup import CleanupOptions

    return CleanupOptions(max_people=args.max_people, order=args.person_order,
                          fill_gaps=args.fill_gaps, take_fit=args.take_fit,
                          foot_lock=args.foot_lock)


CLEAN_EPILOG = """Steps run in this order, each off unless asked for: keep the most prominent people
(--max-people), fill short gaps (--fill-gaps), whole-take fit (--fit), smooth (--smooth), lock
feet (--foot-lock).
The same options work on `extract` and `run`.

examples:
  scail-pose clean poses.npz -o clean.npz --fill-gaps 8 --foot-lock
  scail-pose clean duet.npz -o two.npz --max-people 2 --smooth light
"""


def _add_clean(sub) -> None:
    p = sub.add_parser("clean", help="clean up a PoseSequence: people kept, gaps, smoothing, feet",
                       description="Clean up estimated poses (.npz -> .npz): keep the most "
                                   "prominent people, fill short gaps, smooth, lock feet.",
                       epilog=CLEAN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("poses", type=Path, metavar="POSES.npz", help="PoseSequence file")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.npz",
                   help="where to write the cleaned PoseSequence")
    from .smoothing import DEFAULT_STRENGTH

    p.add_argument("--smooth", nargs="?", const=DEFAULT_STRENGTH, default=None,
                   type=_smoothing_strength, metavar="STRENGTH",
                   help=f"temporal smoothing (One Euro), as `extract --smooth` "
                        f"(--smooth alone = {DEFAULT_STRENGTH}; default: off)")
    _add_people_options(p)
    p.set_defaults(func=cmd_clean)


def cmd_clean(args) -> int:
    from scail_protocol.sequence import PoseSequence

    from .cleanup import clean_sequence
    from .tracking import track_people

    out = check_output_file(args.output, [args.poses], what="-o", suffix=POSES_SUFFIX)
    options = _cleanup_options(args)
    seq = PoseSequence.load(args.poses)
    if options.max_people is not None or options.order != "size":
        seq = track_people(seq, max_people=options.max_people, order=options.order)
    seq = clean_sequence(seq, fill_gaps=options.fill_gaps, take_fit=options.take_fit,
                         smoothing=args.smooth, foot_lock=options.foot_lock)
    print(seq.save(out))
    return EXIT_OK


def _frame_rate(text: str) -> float:
    from .video.timing import check_fps

    try:
        return check_fps(text)
    except ScailError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _smoothing_strength(text: str) -> str:
    from .smoothing import parse_strength

    try:
        parse_strength(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _add_extract(sub) -> None:
    p = sub.add_parser("extract", help="estimate poses from a video into a PoseSequence (.npz)",
                       description="Estimate the 3D pose of the person in every frame of a video "
                                   "(or image folder, or image) into a PoseSequence .npz.",
                       epilog=EXTRACT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", metavar="VIDEO", help="video file, image file or folder of images")
    p.add_argument("-o", "--output", required=True, metavar="POSES.npz",
                   help="where to write the PoseSequence")
    _add_estimator_options(p)
    p.set_defaults(func=cmd_extract)


def cmd_extract(args) -> int:
    from .pipeline import extract_video

    check_output_file(args.output, [args.video], what="-o", suffix=POSES_SUFFIX)
    progress = make_progress(args)
    try:
        seq = extract_video(args.video, estimator=args.estimator, resolution=args.resolution,
                            progress=progress, weights_dir=args.weights_dir,
                            smoothing=args.smooth, fps=args.fps, device=args.device,
                            cleanup=_cleanup_options(args))
    finally:
        progress.close()
    path = seq.save(args.output)
    print(path)
    return _exit_if_nobody(seq, "extract", f"{path} holds only missing (NaN) poses")


def _add_run(sub) -> None:
    from .render.taichi_runtime import ARCHES

    p = sub.add_parser("run",
                       help="the main job: DIR/driving.mp4 -> DIR/poses.npz + DIR/rendered.mp4",
                       description="Estimate poses from DIR/driving.mp4 and render the SCAIL "
                                   "pose-conditioning video.",
                       epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", metavar="DIR", nargs="?",
                   help=f"folder holding driving.mp4 (default: a synthetic demo in ./{DEMO_DIR})")
    _add_estimator_options(p)
    p.add_argument("--arch", default="auto", choices=ARCHES,
                   help="renderer backend (default: auto = CUDA when present, else CPU)")
    p.add_argument("--use-align", action="store_true",
                   help="align the skeleton to the character of DIR's reference image "
                        "(writes DIR/poses_aligned.npz and DIR/rendered_aligned.mp4)")
    _add_align_options(p)
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    from .pipeline import run_folder

    progress = make_progress(args)
    try:
        folder = args.folder or _demo_folder(progress)
        result = run_folder(folder, estimator=args.estimator, resolution=args.resolution,
                            arch=args.arch, progress=progress, weights_dir=args.weights_dir,
                            smoothing=args.smooth, fps=args.fps, use_align=args.use_align,
                            align_options=_align_options(args), device=args.device,
                            cleanup=_cleanup_options(args))
    finally:
        progress.close()
    print(result.poses)
    print(result.video)
    if not args.folder:
        log.info("demo outputs are in %s: driving.mp4 (input), poses.npz, rendered.mp4",
                 Path(folder).resolve())
    return _exit_if_nobody(result.sequence, "run", f"{result.video.name} is all black")


def _demo_folder(progress) -> Path:
    """./scail_demo with a synthetic driving.mp4 (made once, then reused)."""
    folder = Path(DEMO_DIR)
    if (folder / DRIVING_VIDEO).is_file():
        log.info("using the demo clip %s (delete the folder to make a new one)",
                 folder / DRIVING_VIDEO)
        return folder
    from .synth import make_demo

    log.info("making a synthetic demo clip in %s", folder.resolve())
    clip = make_demo(folder, progress=progress)
    return Path(clip.driving).parent


def _exit_if_nobody(seq, command: str, consequence: str) -> int:
    """EXIT_NOBODY, with one line on stderr that -q does not hide, when nobody was found."""
    if seq.num_frames == 0 or seq.present().any():
        return EXIT_OK
    tracking = seq.meta.get("tracking", {})
    blips, shortest = tracking.get("spurious_dropped", 0), tracking.get("shortest_track_frames")
    if blips and shortest:
        lead = "nobody was kept"
        why = (f"people were seen, but only in {blips} track(s) shorter than {shortest} frames, "
               f"dropped as blips; a person who jumps from frame to frame (cuts, a folder of "
               f"unrelated images) breaks tracks")
    else:
        lead = "no person found"
        why = "a person very small, dark or cut off is not found; try a closer or brighter clip"
    print(f"scail-pose {command}: error: {lead} in any of the {seq.num_frames} frames; "
          f"{consequence} ({why})", file=sys.stderr)
    return EXIT_NOBODY


def _add_weights(sub) -> None:
    p = sub.add_parser("weights", help="list, check or download the studio-grade model weights",
                       description="Manage the weights of the nlf estimator.",
                       epilog=WEIGHTS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("list", "download", "verify"),
                   help="list: presence; download: fetch missing files (sha256 checked); "
                        "verify: check size and sha256 of present files")
    p.add_argument("--weights-dir", metavar="DIR", help="weights folder")
    p.set_defaults(func=cmd_weights)


def cmd_weights(args) -> int:
    from . import weights

    folder = weights.weights_dir(args.weights_dir)
    if args.action == "download":
        with TqdmProgress(enabled=not args.quiet, unit="B") as bars:
            fetched = weights.download(folder, progress=bars)
        for path in fetched:
            print(path)
        return EXIT_OK
    if args.action == "verify":
        with TqdmProgress(enabled=not args.quiet, unit="B") as bars:
            checks = weights.verify(folder, progress=bars)
        for check in checks:
            print(f"{check.state:14} {check.file.path}: {check.detail}")
        bad = [c for c in checks if c.state not in ("ok", "unchecked")]
        wrong_model = _check_nlf_models(folder)
        return EXIT_ERROR if bad or wrong_model else EXIT_OK
    state = weights.status(folder)
    print(f"weights folder: {folder}")
    for f in weights.load_manifest():
        target = folder / f.path
        mark = "present" if f.name in state.present else "missing"
        size = f"{target.stat().st_size / 1e6:.1f} MB" if target.is_file() else "-"
        print(f"{mark:8} {f.path:34} {size:>10}  {f.url}")
    return EXIT_OK


def _check_nlf_models(folder) -> bool:
    """Print whether the present nlf files are the models they should be (inputs, outputs,
    ``detect_smpl_batched``); True when one is not. Absent files are reported by verify."""
    from .estimators.nlf.models import WeightsInvalid, inspect_weights

    try:
        inspect_weights(folder)
    except WeightsInvalid as e:
        print(f"{'wrong-model':14} {e}")
        return True
    except ScailError:  # a file is missing: already listed
        return False
    print(f"{'models-ok':14} the nlf files have the inputs, outputs and method the estimator needs")
    return False


# --- synth (issue 6) ----------------------------------------------------------------------------

def _add_synth(sub) -> None:
    p = sub.add_parser("synth", help="render a synthetic human clip with exact ground truth",
                       description="Render the project's synthetic figure (Blender, headless) "
                                   "doing a motion: DIR/driving.mp4 and DIR/truth.npz (its exact "
                                   "SMPL-24 joints, camera frame, mm, with their projections).",
                       epilog=SYNTH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--motion", default="demo", metavar="NAME",
                   help="motion to perform (see --list; default: demo, the README clip)")
    p.add_argument("-o", "--output", type=Path, metavar="DIR", help="output folder (created)")
    p.add_argument("--camera", default="front", metavar="NAME",
                   help="camera set-up (see --list; default: front)")
    p.add_argument("--frames", type=_positive_int, metavar="N",
                   help="number of frames (default: the motion's own length)")
    p.add_argument("--resolution", type=_positive_int, nargs=2, metavar=("H", "W"),
                   help="frame size, both even (default: %d %d)" % DEFAULT_RESOLUTION)
    p.add_argument("--fps", type=float, default=float(OUTPUT_FPS),
                   help="frame rate (default: %(default)g)")
    p.add_argument("--body", default="average", metavar="NAME",
                   help="body type of the figure (see --list; default: average)")
    p.add_argument("--list", action="store_true",
                   help="list the motions, cameras and body types, then exit")
    p.set_defaults(func=cmd_synth)


def cmd_synth(args) -> int:
    from .synth import bodies, cameras, clip, motions

    if args.list:
        print("motions:")
        for spec in (*motions.LIBRARY.values(), motions.DEMO):
            print(f"  {spec.name:<12} {spec.duration_s:4.1f} s  {spec.description}")
        print("cameras:")
        for setup in cameras.LIBRARY.values():
            print(f"  {setup.name:<14} {setup.description}")
        print("body types (held out: not used to tune the CPU default's mapping and fit):")
        for body in bodies.LIBRARY.values():
            held_out = "" if body.name in bodies.TUNING_BODIES else " (held out)"
            print(f"  {body.name:<14} {body.description}{held_out}")
        return EXIT_OK
    if args.output is None:
        raise ScailError("give an output folder with -o DIR (or --list to see the motions)")
    progress = make_progress(args)
    try:
        result = clip.make_clip(args.output, motion=args.motion, camera=args.camera,
                                num_frames=args.frames, fps=args.fps,
                                size=tuple(args.resolution or clip.DEFAULT_SIZE),
                                progress=progress, body=args.body)
    finally:
        progress.close()
    print(result.driving)
    print(result.truth)
    print(result.reference)
    return EXIT_OK


# --- serve / client (issue 4) --------------------------------------------------------------------

def _add_serve(sub) -> None:
    from .server.commands import add_serve_arguments

    p = sub.add_parser("serve", help="serve the pipeline over ZeroMQ (for Blender and scripts)",
                       description="Serve extract/render/run over ZeroMQ. Prints the address "
                                   "and the key file; stop with Ctrl-C or SIGTERM.")
    add_serve_arguments(p)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    from .server.commands import serve

    return serve(args)


def _add_client(sub) -> None:
    from .server.commands import add_client_arguments

    p = sub.add_parser("client", help="talk to a running `scail-pose serve` (for scripts)",
                       description="Send requests to a `scail-pose serve`; results print as JSON.")
    add_client_arguments(p)
    p.set_defaults(func=cmd_client)


def cmd_client(args) -> int:
    from .server.commands import client

    return client(args, make_progress(args))


# --- align (issue 10) ----------------------------------------------------------------------------

ALIGN_EPILOG = """\
The reference image's character is found with the same estimator that made POSES.npz (or
--estimator); the camera intrinsics are solved so that the driving skeleton of the first frame
with a person lands on that character (docs/pipeline.md §9), and the 2D face and hands follow.
A solve that leaves a large error, matches fewer than 3 points or pushes the skeleton out of
the frame falls back to the default camera and says why; one that ends on its bounds is kept
clamped (--align-fallback default: the default camera). The solve is stored in the file's meta
("alignment"), so `scail-pose render ALIGNED.npz` gives the aligned video and Blender imports
the aligned camera.

examples:
  scail-pose align poses.npz --ref ref.png -o poses_aligned.npz
  scail-pose render poses_aligned.npz -o rendered_aligned.mp4
  scail-pose align poses.npz --ref ref.png -o aligned.npz --adapt-bones --align-fallback default
"""


def _add_align_options(p) -> None:
    from .align import CLAMPED, FALLBACKS

    p.add_argument("--align-fallback", default=CLAMPED, choices=FALLBACKS,
                   help="what a camera solve that ended on its bounds becomes: clamped = kept, "
                        "clamped to the bounds, as the reference does; default = the unaligned "
                        "camera (other refusals always use the unaligned camera; default: "
                        f"{CLAMPED})")
    p.add_argument("--adapt-bones", action="store_true",
                   help="beyond the reference: give the skeleton the reference character's "
                        "proportions, feet kept on the ground (default: off)")


def _align_options(args) -> dict:
    return {"fallback": args.align_fallback, "adapt": args.adapt_bones}


def _add_align(sub) -> None:
    from .align import SAME
    from .estimators.registry import names

    p = sub.add_parser("align", help="align poses to the character of a reference image",
                       description="Re-project a PoseSequence onto the character of a reference "
                                   "image (the reference's --use_align), with guardrails.",
                       epilog=ALIGN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("poses", metavar="POSES.npz", help="the (unaligned) PoseSequence")
    p.add_argument("--ref", required=True, metavar="IMAGE", help="the reference image")
    p.add_argument("-o", "--output", required=True, metavar="ALIGNED.npz",
                   help="where to write the aligned PoseSequence")
    p.add_argument("--estimator", dest="ref_estimator", default=SAME, choices=(SAME,) + names(),
                   help="estimator for the reference image (default: same = the one that made "
                        "POSES.npz)")
    p.add_argument("--weights-dir", metavar="DIR", help="folder of the nlf weights")
    _add_align_options(p)
    p.set_defaults(func=cmd_align)


def cmd_align(args) -> int:
    from scail_protocol.sequence import PoseSequence

    from .align import align_to_reference

    check_output_file(args.output, [args.poses, args.ref], what="-o", suffix=POSES_SUFFIX)
    seq = PoseSequence.load(args.poses)
    result = align_to_reference(seq, args.ref, estimator=args.ref_estimator,
                                weights_dir=args.weights_dir, **_align_options(args))
    print(result.sequence.save(args.output))
    return EXIT_OK


# --- main ----------------------------------------------------------------------------------------

# --- batch (issue 17) -----------------------------------------------------------------------------

def _add_batch(sub) -> None:
    from .batch import command

    p = sub.add_parser("batch", help="run many clips on Ray (folder tree, glob or manifest)",
                       description=command.DESCRIPTION, epilog=command.EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_arguments(p, _add_estimator_options, _add_align_options)
    p.set_defaults(func=cmd_batch)


def cmd_batch(args) -> int:
    from .batch import command

    defaults = dict(estimator=args.estimator, resolution=args.resolution, arch=args.arch,
                    weights_dir=args.weights_dir, smoothing=args.smooth, fps=args.fps,
                    use_align=args.use_align, align_options=_align_options(args),
                    device=args.device, cleanup=_cleanup_options(args))
    return command.run(args, defaults, progress_enabled=not args.quiet)


# --- export (issue 12) ---------------------------------------------------------------------------

EXPORT_EPILOG = """\
Runs Blender as a Python module (bpy, from the `synth` or `dev` extra): the take is imported as
the add-on imports it, stood on a floor at Z = 0 facing -Y (unless --no-ground), and written by
Blender's own BVH or FBX exporter. BVH holds one person (--person); FBX holds everyone unless
--person is given.

examples:
  scail-pose export poses.npz -o take.bvh
  scail-pose export poses.npz -o take.fbx --first 30 --last 120
  scail-pose export poses.npz -o dancer2.bvh --person 1 --no-ground
"""


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="write a PoseSequence's motion as BVH or FBX (needs bpy)",
                       description="Write the motion of a PoseSequence (.npz) as a .bvh or .fbx "
                                   "skeleton animation through Blender's own exporters.",
                       epilog=EXPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("poses", type=Path, metavar="POSES.npz", help="PoseSequence file")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="TAKE.bvh|TAKE.fbx",
                   help="file to write; the suffix picks the format")
    p.add_argument("--person", type=int, default=None, metavar="N",
                   help="person index (default: 0 for BVH, everyone for FBX)")
    p.add_argument("--first", type=int, default=None, metavar="FRAME",
                   help="first frame to write (0-based; default: 0)")
    p.add_argument("--last", type=int, default=None, metavar="FRAME",
                   help="last frame to write, inclusive (default: the last)")
    p.add_argument("--no-ground", dest="ground", action="store_false",
                   help="keep the camera frame instead of standing the take on the floor")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from .blender_export import SUFFIXES, export_file

    check_output_file(args.output, [args.poses], what="-o", suffix=SUFFIXES)
    person = args.person if args.person is not None or args.output.suffix.lower() != ".bvh" else 0
    print(export_file(args.poses, args.output, person=person, first=args.first, last=args.last,
                      ground=args.ground))
    return EXIT_OK


SUBCOMMANDS = (_add_run, _add_extract, _add_render, _add_align, _add_synth, _add_serve, _add_client,
               _add_weights, _add_clean, _add_batch, _add_export)


EXIT_CODES_HELP = """\
-q / -v work before or after the command name. -q hides progress bars and information lines,
never warnings or errors.

exit codes: 0 done; 2 an error, said in one line (nothing is half-written, no input is ever
overwritten); 3 nobody was found in any frame (outputs written, poses all missing);
130 Ctrl-C, 143 SIGTERM, 129 SIGHUP (the command stops and removes its temporary files;
`serve` shuts down cleanly on any of them and exits 0); 141 the reader of its output went
away (`| head`), said nowhere.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: what was wrong and where to look (no usage block)."""

    def error(self, message):
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="scail-pose", description=DESCRIPTION, epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"scail-pose {__version__}")
    _add_verbosity(parser, False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    _add_verbosity_to_subcommands(parser)
    _remember_each_parser(parser)
    return parser


def _add_verbosity(parser, default) -> None:
    """-v / -q on ``parser``; subcommands get them with ``default=SUPPRESS`` so that a flag given
    before the command name is not reset by the subcommand's default."""
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", default=default,
                           help="log debug detail (and third-party libraries' logs)")
    verbosity.add_argument("-q", "--quiet", action="store_true", default=default,
                           help="no progress bars and no information lines; warnings and errors "
                                "still show")


def _subcommand_parsers(parser):
    """Every (sub)command parser below ``parser``, at every level, each once."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):   # aliases share a parser
                yield child
                yield from _subcommand_parsers(child)


def _add_verbosity_to_subcommands(parser) -> None:
    """-v / -q after the command name too (``scail-pose run DIR -q``), at every level."""
    for child in _subcommand_parsers(parser):
        if not {"-q", "-v"} & set(child._option_string_actions):
            _add_verbosity(child, argparse.SUPPRESS)


def _remember_each_parser(parser) -> None:
    """``args.parser``: the innermost (sub)command parser that read the command line."""
    for each in (parser, *_subcommand_parsers(parser)):
        each.set_defaults(parser=each)


# Environment variables that quieten the C++ logging of mediapipe / TensorFlow Lite / absl
# (read when those libraries load, so set before any estimator is imported); 2 = errors only.
THIRD_PARTY_LOG_ENV = ("GLOG_minloglevel", "TF_CPP_MIN_LOG_LEVEL")


def configure_logging(verbose: bool, quiet: bool) -> None:
    """Log to stderr: INFO by default, WARNING under -q (warnings always show), DEBUG under -v.

    Third-party libraries say nothing below WARNING (nothing below ERROR under -q) unless -v.
    """
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr,
                        force=True)
    third_party = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    for noisy in ("absl", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(third_party)
    if not verbose:
        for name in THIRD_PARTY_LOG_ENV:
            os.environ.setdefault(name, "2")


def make_progress(args) -> TqdmProgress:
    return TqdmProgress(enabled=not getattr(args, "quiet", False))


def check_options(args) -> None:
    """Check the option values a command shares with others (:mod:`.options`), before any work.

    ``client`` is left to the server, which checks the same way (``server.submit``).

    Raises:
        ScailError: a value some stage would refuse later (one line).
    """
    if args.command == "client":
        return
    if getattr(args, "resolution", None) is not None:
        args.resolution = options.check_resolution(args.resolution)
    if getattr(args, "estimator", None) is not None:
        options.check_estimator(args.estimator)
    if getattr(args, "arch", None) is not None:
        options.check_arch(args.arch)


def _os_error(command: str, e: OSError) -> int:
    log.debug("OS error", exc_info=True)
    where = f"{e.filename}: " if e.filename else ""
    print(f"scail-pose {command}: error: {where}{describe_os_error(e)}", file=sys.stderr)
    return EXIT_ERROR


def _stdout_gone() -> bool:
    """True when standard output is a pipe whose reader has gone away (poll reports an error on
    it); it is then pointed at /dev/null so that the interpreter's final flush is quiet too."""
    import select

    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        if not any(events & select.POLLERR for _, events in poller.poll(0)):
            return False
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
        return True
    except (OSError, ValueError, AttributeError):  # no real stdout (embedded interpreters)
        return False


def main(argv=None) -> int:
    """Run ``scail-pose`` with ``argv`` (default: the process's); returns the exit code."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the (sub)command's own parser, so the hint names its --help
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.verbose and args.quiet:
        parser.error("-v and -q cannot be used together")
    configure_logging(args.verbose, args.quiet)
    with signals.stop_on_signals(), logs_above_bars():
        try:
            check_options(args)
            return int(args.func(args) or EXIT_OK)
        except ScailError as e:
            print(f"scail-pose {args.command}: error: {e}", file=sys.stderr)
            return EXIT_ERROR
        except BrokenPipeError as e:
            if _stdout_gone():  # `scail-pose ... | head`: the reader has what it wanted
                return signals.EXIT_SIGPIPE
            return _os_error(args.command, e)
        except OSError as e:  # the boundary: what the OS refused, in one line
            return _os_error(args.command, e)
        except KeyboardInterrupt as e:
            print(f"scail-pose {args.command}: {signals.describe(e)}", file=sys.stderr)
            code = signals.exit_code(e)
    # A stop that landed while a context manager was being entered leaves it suspended, with its
    # temporary output; collecting it now runs its cleanup before the process exits.
    gc.collect()
    return code


if __name__ == "__main__":
    sys.exit(main())
