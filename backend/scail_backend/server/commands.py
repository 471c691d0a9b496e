"""The ``scail-pose serve`` and ``scail-pose client ...`` commands (argument set-up and bodies).

``cli.py`` keeps one ``_add_serve``/``cmd_serve`` and ``_add_client``/``cmd_client`` pair that
delegate here, so the server's options live beside the server.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import threading
from pathlib import Path

from scail_protocol import contract
from scail_protocol import conversation as conv
from scail_protocol import messages as M
from scail_protocol import outputs
from scail_protocol.client import (DEFAULT_ADDRESS, DEFAULT_TIMEOUT_S, BackendClient,
                                   default_key_file, read_key_file)
from scail_protocol.contract import DEFAULT_RESOLUTION
from scail_protocol.sequence import PoseSequence

from . import config as C

log = logging.getLogger(__name__)


# --- serve ---------------------------------------------------------------------------------------

def add_serve_arguments(p) -> None:
    p.add_argument("--bind", default=C.DEFAULT_BIND, metavar="ADDR",
                   help=f"ZeroMQ endpoint to listen on (default {C.DEFAULT_BIND}: this machine "
                        f"only; tcp://0.0.0.0:5555 for remote clients)")
    p.add_argument("--key-file", type=Path, default=None, metavar="F",
                   help=f"shared key; created (mode 0600) if absent (default {default_key_file()})")
    p.add_argument("--root", action="append", type=Path, default=[], metavar="DIR",
                   help="folder clients may name paths in (repeatable); without any, clients "
                        "must upload their videos")
    p.add_argument("--work-dir", type=Path, default=None, metavar="DIR",
                   help="the server's upload cache and job outputs "
                        "(default $XDG_CACHE_HOME/scail-pose/server)")
    p.add_argument("--max-upload-mb", type=float, default=C.DEFAULT_MAX_UPLOAD_BYTES / C.MB,
                   metavar="N", help="largest uploaded file (default %(default)g)")
    p.add_argument("--upload-cache-mb", type=float, default=C.DEFAULT_UPLOAD_CACHE_BYTES / C.MB,
                   metavar="N", help="upload cache size, least recently used evicted "
                                     "(default %(default)g)")
    p.add_argument("--max-message-mb", type=float, default=C.DEFAULT_MAX_MESSAGE_BYTES / C.MB,
                   metavar="N", help="largest accepted message (default %(default)g)")
    p.add_argument("--max-queue", type=int, default=C.DEFAULT_MAX_QUEUE, metavar="N",
                   help="queued jobs beyond which submissions are refused (default %(default)s)")
    p.add_argument("--keep-results-s", type=float, default=C.DEFAULT_KEEP_RESULTS_S, metavar="N",
                   help="seconds a finished job stays available for re-attach "
                        "(default %(default)g)")
    p.add_argument("--cancel-orphans", action="store_true",
                   help="cancel a job when its client disconnects (default: finish it and keep "
                        "the result for re-attach)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="jobs run at the same time (default 1: one GPU job at a time)")


def serve(args) -> int:
    from .broker import Server

    from ..signals import stop_signals

    key, key_path, created = C.load_or_create_key(args.key_file)
    config = C.ServerConfig(  # checks every value (C.ServerConfig.__post_init__)
        key=key, bind=args.bind, roots=tuple(args.root), work_dir=args.work_dir,
        max_message_bytes=C.megabytes(args.max_message_mb, "--max-message-mb"),
        max_upload_bytes=C.megabytes(args.max_upload_mb, "--max-upload-mb"),
        upload_cache_bytes=C.megabytes(args.upload_cache_mb, "--upload-cache-mb"),
        max_queue=args.max_queue, keep_results_s=args.keep_results_s,
        cancel_orphans=args.cancel_orphans, workers=args.workers)
    server = Server(config)
    address = server.start()
    print(f"scail-pose serve: listening on {address}", flush=True)
    print(f"key file: {key_path}{' (created)' if created else ''}", flush=True)
    previous, received = {}, []

    def stop(signum, frame):  # a requested stop is a clean shutdown: exit 0
        received.append(signum)
        server.stop()

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, *stop_signals()):
            previous[signum] = signal.signal(signum, stop)
    try:
        server.serve_forever()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        print(f"scail-pose serve: stopped by {signal.Signals(received[0]).name}",
              file=sys.stderr, flush=True)
    return 0


# --- client --------------------------------------------------------------------------------------

CLIENT_EPILOG = """\
Each action talks to a running `scail-pose serve` (see `scail-pose serve --help`); the key file is
the server's (copy it from the server machine). Outputs given with -o are checked before anything
is sent, and written only when complete.

examples:
  scail-pose client hello
  scail-pose client extract clip.mp4 --upload -o clip.npz
  scail-pose client run /shared/dance.mp4 -o out/          # out/poses.npz, out/rendered.mp4
  scail-pose client render clip.npz -o clip.mp4
  scail-pose client extract clip.mp4 --upload --no-wait    # prints the job id
  scail-pose client wait JOB_ID -o out/
"""


def add_client_arguments(p) -> None:
    p.epilog, p.formatter_class = CLIENT_EPILOG, argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--connect", default=DEFAULT_ADDRESS, metavar="ADDR",
                        help=f"server address (default {DEFAULT_ADDRESS})")
    common.add_argument("--key-file", type=Path, default=None, metavar="F",
                        help=f"the server's key file (default {default_key_file()})")
    common.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_S, metavar="S",
                        help="seconds of server silence before giving up (default %(default)g)")
    sub = p.add_subparsers(dest="client_command", required=True, metavar="ACTION")
    sub.add_parser("hello", parents=[common], help="print the server's hello as JSON")
    video_opts = argparse.ArgumentParser(add_help=False)
    video_opts.add_argument("video", type=Path, help="the video: a path the server can read, "
                                                     "or a local file with --upload")
    video_opts.add_argument("--upload", action="store_true",
                            help="send the local file to the server (cached by sha256)")
    video_opts.add_argument("--estimator", default="auto",
                            help="auto or a name the server's hello lists")
    video_opts.add_argument("--resolution", type=int, nargs=2, default=None,
                            metavar=("H", "W"), help="working size for landscape input "
                            "(default: the server's, %d %d)" % DEFAULT_RESOLUTION)
    from ..cli import _add_people_options, _frame_rate, _smoothing_strength
    from ..smoothing import strength_choices

    video_opts.add_argument("--smooth", nargs="?", const="default", default=None,
                            type=_smoothing_strength, metavar="STRENGTH",
                            help=f"temporal smoothing: {strength_choices()} (0 = off); alone "
                                 "= the server's default (default: off)")
    video_opts.add_argument("--fps", type=_frame_rate, default=None, metavar="FPS",
                            help="resample the clip in time to FPS by nearest timestamp "
                                 "(default: keep every frame)")
    _add_people_options(video_opts)  # --max-people, --fill-gaps, --fit, --foot-lock, ...
    wait_opts = argparse.ArgumentParser(add_help=False)
    wait_opts.add_argument("--no-wait", action="store_true",
                           help="print the job id and return at once")
    wait_opts.add_argument("-o", "--output", type=Path, default=None, metavar="PATH",
                           help="where to save the result locally")
    e = sub.add_parser("extract", parents=[common, video_opts, wait_opts],
                       help="video -> poses (.npz saved locally with -o FILE)")
    e.add_argument("--server-out", default=None, metavar="PATH",
                   help="also write poses.npz at this path on the server (under a root)")
    r = sub.add_parser("render", parents=[common, wait_opts],
                       help="poses (.npz) -> conditioning video (.mp4 saved locally with -o FILE)")
    r.add_argument("poses", help="a local .npz (sent inline) or, with --server-path, the "
                                 "server's")
    r.add_argument("--server-path", action="store_true", help="POSES is a path on the server")
    r.add_argument("--server-out", default=None, metavar="PATH",
                   help="also write the .mp4 at this path on the server (under a root)")
    u = sub.add_parser("run", parents=[common, video_opts, wait_opts],
                       help="video -> poses + video (-o DIR: poses.npz, rendered.mp4)")
    u.add_argument("--server-out-dir", default=None, metavar="DIR",
                   help="also write poses.npz and rendered.mp4 into this server folder")
    for name, help_text in (("status", "print a job's status as JSON"),
                            ("cancel", "cancel a job"),
                            ("wait", "attach to a job by id and wait for it (-o DIR to save)")):
        q = sub.add_parser(name, parents=[common] + ([wait_opts] if name == "wait" else []),
                           help=help_text)
        q.add_argument("job_id")
    sub.add_parser("jobs", parents=[common], help="list the server's jobs as JSON")


def _seconds(text: str) -> float:
    """A positive, finite number of seconds (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def client(args, progress) -> int:
    """``scail-pose client ACTION``: outputs checked first, then one conversation.

    A finished job's warnings (a clip not at 16 fps, a damaged video, ...) are logged as
    warnings, which ``-q`` does not hide, as the local ``extract`` and ``run`` show them.
    Returns the exit code: 0, or 3 (``EXIT_NOBODY``, with one line on stderr) when an extract
    or run job found nobody in any frame.

    Raises:
        OutputError: ``-o`` cannot take the output (before anything is sent).
        ScailError: the key file, the server or the job failed (the server's message).
    """
    action = args.client_command
    poses_path, video_path = _local_outputs(args)
    key = read_key_file(args.key_file or default_key_file())
    with BackendClient(args.connect, key, timeout_s=args.timeout) as c:
        if action in SIMPLE_ACTIONS:
            _print_json(SIMPLE_ACTIONS[action](c, args))
            return 0
        if action == "wait":
            talk = conv.attach(args.job_id, poses_path=poses_path, video_path=video_path)
        else:
            talk = _conversation(args, c.address, poses_path, video_path)
        outcome = c.converse(talk, _sized(progress))
    if isinstance(outcome, str):  # --no-wait: the job id
        print(outcome)
        return 0
    for line in outcome.warnings:
        log.warning("%s", line)
    _print_json({"job_id": outcome.job_id, "state": outcome.job["state"],
                 "report": outcome.job.get("report", {}), "server_video": outcome.video,
                 **{what: str(path) for what, path in outcome.downloads.items()}})
    return _exit_code(action, outcome)


def _exit_code(action: str, outcome) -> int:
    """EXIT_NOBODY with the local command's line when an extract or run job found nobody in
    any frame (``cli._exit_if_nobody``, on the poses that came back), else 0."""
    from ..cli import EXIT_OK, _exit_if_nobody

    kind = outcome.job.get("kind")
    if outcome.poses is None or kind not in (M.EXTRACT, M.RUN):
        return EXIT_OK
    if kind == M.EXTRACT:
        where = outcome.downloads.get("poses") or outcome.job.get("report", {}).get("out")
        consequence = f"{where or 'the result'} holds only missing (NaN) poses"
    else:
        video = (outcome.downloads.get("video") or (outcome.video or {}).get("path")
                 or conv.RUN_VIDEO)
        consequence = f"{Path(video).name} is all black"
    return _exit_if_nobody(outcome.poses, f"client {action}", consequence)


def _sized(progress):
    """``progress`` for stages with a size; the others (connecting, submit, queued) are steps
    of a conversation, not progress bars."""
    def report(stage: str, done: int, total: int) -> None:
        if total:
            progress(stage, done, total)
    return report


SIMPLE_ACTIONS = {
    "hello": lambda c, args: c.hello(),
    "status": lambda c, args: c.status(args.job_id),
    "cancel": lambda c, args: c.cancel(args.job_id),
    "jobs": lambda c, args: c.list_jobs(),
}


def _local_outputs(args) -> tuple:
    """(poses path, video path) that ``-o`` asks for, checked before anything is sent: a file
    for extract and render, a folder for run and wait (``poses.npz``, ``rendered.mp4``).

    Raises:
        OutputError: the path cannot take the output (one line, before any work).
    """
    output = getattr(args, "output", None)
    if output is None or getattr(args, "no_wait", False):
        return None, None
    inputs = [getattr(args, "video", None), getattr(args, "poses", None)]
    action = args.client_command
    if action == "extract":
        return outputs.check_output_file(output, inputs, what="-o",
                                         suffix=contract.POSES_SUFFIX), None
    if action == "render":
        return None, outputs.check_output_file(output, inputs, what="-o",
                                               suffix=contract.VIDEO_SUFFIX)
    outputs.check_output_folder(output, (), what="-o")  # not a file; its parent exists
    files = output / conv.RUN_POSES, output / conv.RUN_VIDEO
    if output.is_dir():  # else it is made at the end
        files = tuple(outputs.check_output_file(f, inputs, what="-o") for f in files)
    return files


def _conversation(args, address: str, poses_path, video_path):
    """The conversation for extract, render or run (submission only with --no-wait)."""
    wait = not args.no_wait
    if args.client_command == "render":
        poses = args.poses if args.server_path else PoseSequence.load(args.poses)
        return conv.render(poses, out=args.server_out, video_path=video_path, wait=wait)
    cleanup = conv.cleanup_field(max_people=args.max_people or 0, fill_gaps=args.fill_gaps,
                                 take_fit=args.take_fit, foot_lock=args.foot_lock,
                                 order=args.person_order)
    options = conv.extract_options(estimator=args.estimator, resolution=args.resolution,
                                   smoothing=_smoothing_value(args.smooth), cleanup=cleanup,
                                   fps=args.fps)
    if args.client_command == "extract":
        options["out"] = args.server_out
        return conv.extract(args.video, options, upload_video=args.upload,
                            poses_path=poses_path, address=address, wait=wait)
    options["out_dir"] = args.server_out_dir
    return conv.run(args.video, options, upload_video=args.upload, poses_path=poses_path,
                    video_path=video_path, address=address, wait=wait)


def _smoothing_value(text):
    """The ``smoothing`` field for ``--smooth TEXT``: a number when it reads as one (the wire
    takes names or numbers; the server checks either)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _print_json(value) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")
