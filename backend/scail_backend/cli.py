"""The ``scail-pose`` command line: thin subcommands over the library.

Each ``cmd_*`` reads its arguments, calls one library function and prints the command's result
(output paths, or JSON with ``--json``). Errors of this project (:class:`ScailError`) become one
line on stderr and exit code 2; progress goes to stderr as tqdm bars.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from scail_protocol.errors import ScailError

from . import __version__
from .progress import TqdmProgress

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

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

def _add_render(sub) -> None:
    p = sub.add_parser("render", help="render a PoseSequence (.npz) to the conditioning video",
                       description="Render poses to the SCAIL conditioning video: 3D capsules "
                                   "plus the 2D hands/face overlay, H.264 .mp4 at 16 fps.")
    p.add_argument("poses", type=Path, metavar="POSES.npz", help="PoseSequence file")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.mp4",
                   help="video to write (its folder must exist)")
    p.add_argument("--frames", type=Path, metavar="DIR",
                   help="also write every frame as a lossless RGBA PNG frame_00000.png, ...")
    p.add_argument("--arch", choices=("auto", "cpu", "cuda"), default="auto",
                   help="taichi backend: CUDA when present (auto), or force one")
    p.add_argument("--no-overlay", dest="overlay", action="store_false",
                   help="capsules only, without the 2D hands/face/head overlay")
    p.set_defaults(func=cmd_render)


def cmd_render(args) -> int:
    from scail_protocol.errors import RenderError
    from scail_protocol.sequence import PoseSequence

    from .render.pipeline import check_render_size, render_sequence

    out = args.output
    if out.is_dir():
        raise RenderError(f"-o {out} is a folder; give a file name such as {out / 'rendered.mp4'}")
    folder = out.parent if str(out.parent) else Path(".")
    if folder.exists() and not folder.is_dir():
        raise RenderError(f"cannot write {out}: {folder} is a file, not a folder")
    if not folder.is_dir():
        raise RenderError(f"output folder {folder} does not exist; create it first")
    seq = PoseSequence.load(args.poses)
    check_render_size(seq.size)
    progress = make_progress(args)
    try:
        report = render_sequence(seq, out, frames_dir=args.frames, arch=args.arch,
                                 overlay=args.overlay, progress=progress)
    finally:
        progress.close()
    log.info("rendered %d frames (%dx%d) on %s in %.1f s", report.frames, *report.size,
             report.arch, report.seconds)
    print(report.path)
    if report.frames_dir is not None:
        print(report.frames_dir)
    return EXIT_OK


# --- extract / run / weights (issue 3) ------------------------------------------------------------

EXTRACT_EPILOG = """\
The video is resized and centre-cropped to the working size as the reference does: landscape
input -> 512 x 896 (H x W), portrait or square -> 896 x 512; --resolution H W sets the landscape
size (swapped for portrait). Every frame is kept and the source frame rate is recorded in the
file; the rendered video is always 16 fps, as in the reference (a 30 fps clip plays slower).

examples:
  scail-pose extract dance.mp4 -o dance.npz
  scail-pose extract frames_folder/ -o poses.npz --estimator mediapipe
  scail-pose extract clip.mov -o clip.npz --resolution 480 832
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
in the reference, whatever the source's rate.

estimators: auto (nlf when its weights are present and available, else mediapipe; it says which
and why), mediapipe (embedded, CPU, no download), nlf (needs `scail-pose weights download`).

examples:
  scail-pose run                       # synthetic demo -> ./scail_demo/rendered.mp4
  scail-pose run examples/001
  scail-pose run examples/001 --estimator mediapipe --arch cpu
  scail-pose run examples/001 --smooth light
"""

WEIGHTS_EPILOG = """\
The folder is --weights-dir, else $SCAIL_WEIGHTS_DIR, else the project's pretrained_weights/.
The mediapipe estimator needs none of these files.

examples:
  scail-pose weights list
  scail-pose weights download
  scail-pose weights verify --weights-dir /data/scail_weights
"""

DEMO_DIR = "scail_demo"


def _add_estimator_options(p) -> None:
    from .estimators.base import names

    p.add_argument("--estimator", default="auto", choices=names(),
                   help="pose estimator (default: auto)")
    p.add_argument("--resolution", nargs=2, type=_positive_int, metavar=("H", "W"),
                   help="working size for landscape input, swapped for portrait "
                        "(default: 512 896)")
    p.add_argument("--weights-dir", metavar="DIR",
                   help="folder of the nlf weights (default: $SCAIL_WEIGHTS_DIR, else "
                        "pretrained_weights/)")
    from .smoothing import DEFAULT_STRENGTH, STRENGTHS

    p.add_argument("--smooth", nargs="?", const=DEFAULT_STRENGTH, default=None,
                   type=_smoothing_strength, metavar="STRENGTH",
                   help=f"temporal smoothing of the poses (One Euro filter): "
                        f"{', '.join(STRENGTHS)} or a number in (0, 1]; --smooth alone = "
                        f"{DEFAULT_STRENGTH} (default: off, as the reference)")


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
    from .pipeline import extract_video, output_file_mode

    progress = make_progress(args)
    try:
        seq = extract_video(args.video, estimator=args.estimator, resolution=args.resolution,
                            progress=progress, weights_dir=args.weights_dir,
                            smoothing=args.smooth)
    finally:
        progress.close()
    _warn_if_nobody(seq)
    path = seq.save(args.output)
    os.chmod(path, output_file_mode())  # save() writes through a private (0600) temporary file
    print(path)
    return EXIT_OK


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
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    from .pipeline import run_folder

    progress = make_progress(args)
    try:
        folder = args.folder or _demo_folder(progress)
        result = run_folder(folder, estimator=args.estimator, resolution=args.resolution,
                            arch=args.arch, progress=progress, weights_dir=args.weights_dir,
                            smoothing=args.smooth)
    finally:
        progress.close()
    print(result.poses)
    print(result.video)
    if not args.folder:
        log.info("demo outputs are in %s: driving.mp4 (input), poses.npz, rendered.mp4",
                 Path(folder).resolve())
    return EXIT_OK


def _demo_folder(progress) -> Path:
    """./scail_demo with a synthetic driving.mp4 (made once, then reused)."""
    folder = Path(DEMO_DIR)
    if (folder / "driving.mp4").is_file():
        log.info("using the demo clip %s (delete the folder to make a new one)",
                 folder / "driving.mp4")
        return folder
    from .synth import make_demo

    log.info("making a synthetic demo clip in %s", folder.resolve())
    clip = make_demo(folder, progress=progress)
    return Path(clip.driving).parent


def _warn_if_nobody(seq) -> None:
    if seq.num_frames and not seq.present().any():
        log.warning("no person found in any of the %d frames; the file holds only missing "
                    "(NaN) poses", seq.num_frames)


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
        return EXIT_ERROR if bad else EXIT_OK
    state = weights.status(folder)
    print(f"weights folder: {folder}")
    for f in weights.load_manifest():
        target = folder / f.path
        mark = "present" if f.name in state.present else "missing"
        size = f"{target.stat().st_size / 1e6:.1f} MB" if target.is_file() else "-"
        print(f"{mark:8} {f.path:34} {size:>10}  {f.url}")
    return EXIT_OK


# --- synth (issue 6) ----------------------------------------------------------------------------

def _add_synth(sub) -> None:
    p = sub.add_parser("synth", help="render a synthetic human clip with exact ground truth",
                       description="Render the project's synthetic figure (Blender, headless) "
                                   "doing a motion: DIR/driving.mp4 and DIR/truth.npz (its exact "
                                   "SMPL-24 joints, camera frame, mm, with their projections).")
    p.add_argument("--motion", default="demo", metavar="NAME",
                   help="motion to perform (see --list; default: demo, the README clip)")
    p.add_argument("-o", "--output", type=Path, metavar="DIR", help="output folder (created)")
    p.add_argument("--camera", default="front", metavar="NAME",
                   help="camera set-up (see --list; default: front)")
    p.add_argument("--frames", type=_positive_int, metavar="N",
                   help="number of frames (default: the motion's own length)")
    p.add_argument("--resolution", type=_positive_int, nargs=2, metavar=("H", "W"),
                   help="frame size, both even (default: 512 896)")
    p.add_argument("--fps", type=float, default=16.0, help="frame rate (default: 16)")
    p.add_argument("--list", action="store_true", help="list the motions and cameras, then exit")
    p.set_defaults(func=cmd_synth)


def cmd_synth(args) -> int:
    from .synth import cameras, clip, motions

    if args.list:
        print("motions:")
        for spec in (*motions.LIBRARY.values(), motions.DEMO):
            print(f"  {spec.name:<12} {spec.duration_s:4.1f} s  {spec.description}")
        print("cameras:")
        for setup in cameras.LIBRARY.values():
            print(f"  {setup.name:<14} {setup.description}")
        return EXIT_OK
    if args.output is None:
        raise ScailError("give an output folder with -o DIR (or --list to see the motions)")
    progress = make_progress(args)
    try:
        result = clip.make_clip(args.output, motion=args.motion, camera=args.camera,
                                num_frames=args.frames, fps=args.fps,
                                size=tuple(args.resolution or clip.DEFAULT_SIZE),
                                progress=progress)
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


# --- main ----------------------------------------------------------------------------------------

SUBCOMMANDS = (_add_run, _add_extract, _add_render, _add_synth, _add_serve, _add_client,
               _add_weights)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scail-pose", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"scail-pose {__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    verbosity.add_argument("-q", "--quiet", action="store_true",
                           help="only errors; no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr,
                        force=True)
    # Third-party chatter (taichi, absl) stays quiet unless asked for.
    for noisy in ("absl", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


def make_progress(args) -> TqdmProgress:
    return TqdmProgress(enabled=not getattr(args, "quiet", False))


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or EXIT_OK)
    except ScailError as e:
        print(f"scail-pose {args.command}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"scail-pose {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
