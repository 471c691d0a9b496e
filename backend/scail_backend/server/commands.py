"""The ``scail-pose serve`` and ``scail-pose client ...`` commands (argument set-up and bodies).

``cli.py`` keeps one ``_add_serve``/``cmd_serve`` and ``_add_client``/``cmd_client`` pair that
delegate here, so the server's options live beside the server.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from scail_protocol import messages as M
from scail_protocol.client import (DEFAULT_ADDRESS, DEFAULT_TIMEOUT_S, BackendClient,
                                   JobResult, default_key_file, read_key_file)
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

    key, key_path, created = C.load_or_create_key(args.key_file)
    config = C.ServerConfig(
        key=key, bind=args.bind, roots=tuple(args.root), work_dir=args.work_dir,
        max_message_bytes=int(args.max_message_mb * C.MB),
        max_upload_bytes=int(args.max_upload_mb * C.MB),
        upload_cache_bytes=int(args.upload_cache_mb * C.MB), max_queue=args.max_queue,
        keep_results_s=args.keep_results_s, cancel_orphans=args.cancel_orphans,
        workers=args.workers)
    server = Server(config)
    address = server.start()
    print(f"scail-pose serve: listening on {address}", flush=True)
    print(f"key file: {key_path}{' (created)' if created else ''}", flush=True)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: server.stop())
    try:
        server.serve_forever()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


# --- client --------------------------------------------------------------------------------------

def add_client_arguments(p) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--connect", default=DEFAULT_ADDRESS, metavar="ADDR",
                        help=f"server address (default {DEFAULT_ADDRESS})")
    common.add_argument("--key-file", type=Path, default=None, metavar="F",
                        help=f"the server's key file (default {default_key_file()})")
    common.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                        help="seconds of server silence before giving up (default %(default)g)")
    sub = p.add_subparsers(dest="client_command", required=True, metavar="ACTION")
    sub.add_parser("hello", parents=[common], help="print the server's hello as JSON")
    video_opts = argparse.ArgumentParser(add_help=False)
    video_opts.add_argument("video", type=Path, help="the video: a path the server can read, "
                                                     "or a local file with --upload")
    video_opts.add_argument("--upload", action="store_true",
                            help="send the local file to the server (cached by sha256)")
    video_opts.add_argument("--estimator", default="auto", help="auto, mediapipe or nlf")
    video_opts.add_argument("--resolution", type=int, nargs=2, default=None,
                            metavar=("H", "W"), help="working size for landscape input "
                                                     "(default: the server's, 512 896)")
    video_opts.add_argument("--smooth", nargs="?", const="default", default=None,
                            metavar="STRENGTH",
                            help="temporal smoothing: light, medium, strong or a number in "
                                 "(0, 1]; alone = the server's default (default: off)")
    wait_opts = argparse.ArgumentParser(add_help=False)
    wait_opts.add_argument("--no-wait", action="store_true",
                           help="print the job id and return at once")
    wait_opts.add_argument("-o", "--output", type=Path, default=None, metavar="PATH",
                           help="where to save the result locally")
    e = sub.add_parser("extract", parents=[common, video_opts, wait_opts],
                       help="video -> poses (.npz saved locally with -o)")
    e.add_argument("--server-out", default=None, metavar="PATH",
                   help="also write poses.npz at this path on the server (under a root)")
    r = sub.add_parser("render", parents=[common, wait_opts],
                       help="poses (.npz) -> conditioning video (.mp4 saved locally with -o)")
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
                            ("wait", "attach to a job by id and wait for it (-o to save)")):
        q = sub.add_parser(name, parents=[common] + ([wait_opts] if name == "wait" else []),
                           help=help_text)
        q.add_argument("job_id")
    sub.add_parser("jobs", parents=[common], help="list the server's jobs as JSON")


def client(args, progress) -> int:
    key = read_key_file(args.key_file or default_key_file())
    with BackendClient(args.connect, key, timeout_s=args.timeout) as c:
        action = args.client_command
        if action in SIMPLE_ACTIONS:
            _print_json(SIMPLE_ACTIONS[action](c, args))
            return 0
        job_id = _submit(c, args, progress) if action != "wait" else args.job_id
        if action == "wait":
            c.attach(job_id)
        elif args.no_wait:
            print(job_id)
            return 0
        result = c.wait(job_id, progress=progress)
        _print_json(_save(c, result, action, args.output, progress))
    return 0


SIMPLE_ACTIONS = {
    "hello": lambda c, args: c.hello(),
    "status": lambda c, args: c.status(args.job_id),
    "cancel": lambda c, args: c.cancel(args.job_id),
    "jobs": lambda c, args: c.list_jobs(),
}


def _submit(c: BackendClient, args, progress) -> str:
    action = args.client_command
    if action == "render":
        poses = args.poses if args.server_path else PoseSequence.load(args.poses)
        return c.render(poses, out=args.server_out)
    video = args.video
    if args.upload:
        video_spec = {"upload": c.upload(video, progress=progress), "name": video.name}
    else:
        video_spec = {"path": str(video.resolve())}
    body = {"video": video_spec, "estimator": args.estimator, "resolution": args.resolution,
            "smoothing": _smoothing_value(args.smooth)}
    if action == "extract":
        return c.submit(M.EXTRACT, dict(body, out=args.server_out))
    return c.submit(M.RUN, dict(body, out_dir=args.server_out_dir))


def _smoothing_value(text):
    """The ``smoothing`` field for ``--smooth TEXT``: a number when it reads as one (the wire
    takes names or numbers; the server checks either)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _save(c: BackendClient, result: JobResult, action: str, output, progress) -> dict:
    """Save what the job produced at ``output`` (a file for extract and render, a folder for
    run and wait); returns a JSON summary."""
    summary = {"job_id": result.job_id, "state": result.job["state"],
               "report": result.job.get("report", {}), "server_video": result.video}
    if output is None:
        return summary
    output = Path(output)
    poses_path = video_path = None
    if action == "extract":
        poses_path = output
    elif action == "render":
        video_path = output
    else:
        output.mkdir(parents=True, exist_ok=True)
        poses_path, video_path = output / "poses.npz", output / "rendered.mp4"
    if result.poses is not None and poses_path is not None:
        summary["poses"] = str(result.poses.save(poses_path))
    if result.video is not None and video_path is not None:
        summary["video"] = str(c.download_video(result.job_id, video_path, progress=progress))
    return summary


def _print_json(value) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")
