"""The ``scail-pose batch`` subcommand: arguments, progress bars and the summary line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scail_protocol.errors import ScailError

DESCRIPTION = ("Run `scail-pose run` over many clips on Ray: a folder tree of SCAIL folders, a "
               "glob or a CSV/JSONL manifest; outputs mirrored under OUT_DIR; resumable.")

EPILOG = """\
INPUTS is one of:
  a folder     every folder below it holding driving.mp4 (plus an optional reference image)
  a glob       quoted, e.g. 'clips/**/*.mp4' (video files or SCAIL folders)
  a manifest   .csv with a header, or .jsonl: one clip a line; column/key `video` (a file or
               a SCAIL folder), optional `name` (sub-folder of OUT_DIR), `reference`, and
               per-clip `estimator`, `resolution` ("512x896"), `smooth`, `fps`, `arch`

Each clip gets OUT_DIR/<name>/ with links to its video and reference image, and what `run`
writes: poses.npz + rendered.mp4 (poses_aligned.npz + rendered_aligned.mp4 with --use-align).
Clips whose outputs are already there, valid, and made from the same video (and reference
image, with --use-align) with the same settings are skipped, so running the same command
again after Ctrl-C, a crash or failures resumes the batch. A clip whose outputs are stale (its
video replaced, other settings such as --fps or --smooth; --arch, --device and --workers do
not count) is redone, one line saying why; its old outputs stay until the new ones are
complete. Every outcome is appended to OUT_DIR/batch_report.jsonl (failed clips with their
one-line error). Exit status: 0 when no clip failed, 1 when some did.

Ray: without --address a local Ray starts on this machine with 2 CPUs per worker. --address
joins a running cluster: `auto` (the cluster this machine belongs to, after `ray start`, or the
one RAY_ADDRESS names), HOST:PORT (the head's GCS address, as `ray start --head --port PORT`
printed; default port 6379), or ray://HOST:10001 (Ray Client, from outside the cluster; needs
grpcio, which the cluster extra installs). A cluster with token authentication is joined at an
explicit address only with RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN or
~/.ray/auth_token) set. The project must be installed in the same Python environment on every
node, and INPUTS and OUT_DIR seen at the same paths.

Work split: each worker is a Ray actor that loads the models once and estimates clips (one CPU,
plus a GPU when the estimator uses one (nlf) and the cluster has GPUs; GPUs are shared when
there are fewer than workers); rendering and encoding run as separate one-CPU Ray tasks on the
estimated poses, so a worker estimates its next clip while the last one renders.

examples:
  scail-pose batch dataset/ -o out/
  scail-pose batch 'footage/*.mp4' -o out/ --workers 2 --fps 16
  scail-pose batch clips.csv -o out/ --estimator mediapipe
  scail-pose batch dataset/ -o out/ --address auto --workers 8
  scail-pose batch dataset/ -o out/ --address 10.0.0.5:6379 --estimator nlf --workers 4
"""


def add_arguments(p: argparse.ArgumentParser, *shared) -> None:
    """The batch options; each of ``shared`` adds options that ``run`` has too."""
    from ..render.taichi_runtime import ARCHES

    p.add_argument("inputs", metavar="INPUTS", help="folder tree, quoted glob, or .csv/.jsonl "
                                                   "manifest")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                   help="where the clips' outputs go (created; mirrors INPUTS)")
    for add in shared:
        add(p)
    p.add_argument("--arch", default="auto", choices=ARCHES,
                   help="renderer backend of the render tasks (default: auto = the CPU, as "
                        "the tasks hold no GPU; cuda uses the GPU the task's node shows)")
    p.add_argument("--use-align", action="store_true",
                   help="align each clip to its reference image, as `run --use-align`")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="clips estimated in parallel, one Ray actor each, models loaded once "
                        "(default: 1)")
    p.add_argument("--address", metavar="ADDRESS",
                   help="Ray cluster to join: auto, HOST:PORT (the head's GCS address) or "
                        "ray://HOST:10001 (Ray Client) (default: start a local Ray)")
    p.add_argument("--gpus-per-worker", type=float, default=None, metavar="G",
                   help="GPUs each estimation worker asks Ray for (default: 1 when the "
                        "estimator uses a GPU and the cluster has one, shared when there "
                        "are fewer GPUs than workers; else 0)")
    p.add_argument("--force", action="store_true",
                   help="run clips again even when their outputs are there and current")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def run(args, defaults: dict, progress_enabled: bool) -> int:
    """Run the batch of ``args`` with ``defaults`` (``run_folder`` keywords, as ``run`` would
    pass them); prints the summary line; returns the exit status."""
    from .runner import BatchOptions, run_batch

    options = BatchOptions(workers=args.workers, address=args.address,
                           gpus_per_worker=args.gpus_per_worker, force=args.force,
                           defaults=defaults)
    if options.gpus_per_worker is not None and options.gpus_per_worker < 0:
        raise ScailError(f"--gpus-per-worker must be 0 or more, got {options.gpus_per_worker:g}")
    bars = Bars(progress_enabled)
    try:
        summary = run_batch(args.inputs, args.output, options, events=bars)
    finally:
        bars.close()
    line = summary.line()
    if summary.failed:
        line += f"; see {Path(args.output) / 'batch_report.jsonl'}"
    print(line, file=sys.stderr)
    print(args.output)
    return 1 if summary.failed else 0


class Bars:
    """Progress on stderr (``progress.TqdmProgress``: bars on a terminal, lines elsewhere):
    clips ended (done, skipped or failed) and frames estimated, live (skipped clips' frames
    are not counted)."""

    def __init__(self, enabled: bool):
        from ..progress import TqdmProgress

        self.live_frames = enabled  # no frame counts from the workers under -q
        self.progress = TqdmProgress(enabled, units={"clips": "clip"})
        self.total = self.ended = self.frames = 0

    def start(self, total: int) -> None:
        self.total = total
        self.progress("clips", 0, total)
        self.progress("frames", 0, 0)

    def frames_estimated(self, count: int) -> None:
        self.frames += count
        self.progress("frames", self.frames, 0)

    def clip_ended(self, clip, record: dict) -> None:
        self.ended += 1
        self.progress("clips", self.ended, self.total)

    def close(self) -> None:
        self.progress.close()
