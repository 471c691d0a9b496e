"""The ``scail-pose`` command line: thin subcommands over the library.

Each ``cmd_*`` reads its arguments, calls one library function and prints the command's result
(output paths, or JSON with ``--json``). Errors of this project (:class:`ScailError`) become one
line on stderr and exit code 2; progress goes to stderr as tqdm bars.
"""

from __future__ import annotations

import argparse
import logging
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
                       description="Render poses to the SCAIL conditioning video.")
    p.set_defaults(func=cmd_render)


def cmd_render(args) -> int:
    raise ScailError("render: not available yet")


# --- extract / run (issue 3) --------------------------------------------------------------------

def _add_extract(sub) -> None:
    p = sub.add_parser("extract", help="estimate poses from a video into a PoseSequence (.npz)")
    p.set_defaults(func=cmd_extract)


def cmd_extract(args) -> int:
    raise ScailError("extract: not available yet")


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="the main job: DIR/driving.mp4 -> DIR/poses.npz + DIR/rendered.mp4")
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    raise ScailError("run: not available yet")


def _add_weights(sub) -> None:
    p = sub.add_parser("weights", help="list, check or download the studio-grade model weights")
    p.set_defaults(func=cmd_weights)


def cmd_weights(args) -> int:
    raise ScailError("weights: not available yet")


# --- synth (issue 6) ----------------------------------------------------------------------------

def _add_synth(sub) -> None:
    p = sub.add_parser("synth", help="render a synthetic human clip with exact ground truth")
    p.set_defaults(func=cmd_synth)


def cmd_synth(args) -> int:
    raise ScailError("synth: not available yet")


# --- serve / client (issue 4) --------------------------------------------------------------------

def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="serve the pipeline over ZeroMQ (for Blender and scripts)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    raise ScailError("serve: not available yet")


def _add_client(sub) -> None:
    p = sub.add_parser("client", help="talk to a running `scail-pose serve` (for scripts)")
    p.set_defaults(func=cmd_client)


def cmd_client(args) -> int:
    raise ScailError("client: not available yet")


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
