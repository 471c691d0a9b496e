"""What a clip's outputs were made from, so that a batch run again skips a finished clip only
when this run would make the same outputs.

A clip's *fingerprint* is recorded with its ``done`` and ``skipped`` lines in
``OUT_DIR/batch_report.jsonl`` (``report.fingerprints`` reads the last one back):

* ``video``: the driving video's byte size and modification time (``st_size``,
  ``st_mtime_ns``), read on the driver before the clip is sent to a worker;
* ``reference``: the same of its reference image, with ``--use-align`` only (without alignment
  nothing reads the image);
* ``settings``: the options that change its outputs (:func:`output_settings`), keyed by the
  command-line option that sets them, so that a difference is said in the user's terms.

Why size and mtime, not a hash: they are what a stat returns, free even for thousands of clips on
NFS, where hashing would read every input again on every resume. A file replaced by another
(``cp``, ``ffmpeg -y``, an editor, a download) gets a new mtime, and a different file of the same
size at the same nanosecond does not happen by accident (it is rsync's own quick check). The
stat is taken before the clip runs, so a video replaced while its clip ran no longer matches the
next time: a change can cost a clip done twice, never a stale one kept. The one costly mistake
left, a new mtime on the same bytes (``touch``, a copy or download that does not keep times),
is caught for the video: the batch then hashes it once and compares with the sha256 that
``poses.npz`` records of its source, keeping the outputs when they match (the new stat is
recorded with the ``skipped`` line, so it hashes once). The reference image has no hash in the
outputs; a touched one costs a redo.

Outputs with no fingerprint (made by a batch older than this, by ``scail-pose run`` in the
folder, by a batch stopped between writing them and recording them, or with the report deleted)
are redone, with a note: nothing says which video and settings made them, and the batch used
to keep outputs across changed settings (the bug this fixes), so keeping them (and recording
this run's fingerprint as theirs) could keep stale ones for good; doing them once more costs one
run.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import List, Optional

from scail_protocol.contract import DEFAULT_RESOLUTION, POSES_FILE

from ..file_hash import sha256_of

# settings that only matter with --use-align
ALIGN_ONLY = ("--align-fallback", "--adapt-bones")
ALIGNMENT = ("--use-align", *ALIGN_ONLY)
NO_RECORD = ("nothing records which video and settings made its outputs (a batch older than "
             "this one, another command, or a batch stopped before recording them)")


def file_stamp(path: Optional[Path]) -> Optional[dict]:
    """``{"size", "mtime_ns"}`` of the file ``path`` (links followed); None when there is none."""
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def output_settings(options: dict, estimators: Optional[dict] = None) -> dict:
    """The settings among ``options`` (a clip's ``run_folder`` keywords, ``worker.run_options``)
    that change its outputs, in their JSON form, keyed by the option that sets them;
    ``estimators`` keeps what each estimator name resolved to, across the clips of one batch.

    Values are normalised so that one setting said two ways is one value: the estimator as
    ``auto`` resolves it here, the default resolution, a smoothing strength as its number.
    Left out, as they do not change what is written: ``--arch`` (the renderers draw the same
    pixels), ``--device``, ``--weights-dir`` (where the weights are, not which), ``--workers``
    and the other Ray options; ``--align-fallback`` and ``--adapt-bones`` without
    ``--use-align``.
    """
    from ..cleanup import CleanupOptions
    from ..smoothing import parse_strength

    cleanup = asdict(CleanupOptions.from_value(options.get("cleanup")))
    resolution = options.get("resolution") or DEFAULT_RESOLUTION
    settings = {
        "--estimator": _estimator(options.get("estimator") or "auto",
                                  options.get("weights_dir"), {} if estimators is None else
                                  estimators),
        "--resolution": [int(side) for side in resolution],
        "--fps": None if options.get("fps") is None else float(options["fps"]),
        "--smooth": parse_strength(options.get("smoothing")),
        "--use-align": bool(options.get("use_align")),
        "--max-people": cleanup["max_people"],
        "--person-order": cleanup["order"],
        "--fill-gaps": cleanup["fill_gaps"],
        "--fit": cleanup["take_fit"],
        "--foot-lock": cleanup["foot_lock"],
    }
    if settings["--use-align"]:
        align = options.get("align_options") or {}
        settings["--align-fallback"] = align.get("fallback")
        settings["--adapt-bones"] = bool(align.get("adapt"))
    return json.loads(json.dumps(settings))   # as the report gives it back: lists, floats


def _estimator(name: str, weights_dir, resolved: dict) -> str:
    """The estimator ``name`` stands for ("auto" resolved: nlf when its weights are there),
    kept in ``resolved``."""
    from .resources import estimator_name

    key = (name, str(weights_dir) if weights_dir else None)
    if key not in resolved:
        resolved[key] = estimator_name({"estimator": name, "weights_dir": weights_dir})
    return resolved[key]


def fingerprint(video: Path, reference: Optional[Path], options: dict,
                estimators: Optional[dict] = None) -> dict:
    """The fingerprint of a clip run now with ``options`` (its ``run_folder`` keywords);
    ``estimators`` as :func:`output_settings`."""
    align = bool(options.get("use_align"))
    return {"video": file_stamp(video),
            "reference": file_stamp(reference) if align else None,
            "settings": output_settings(options, estimators)}


def why_redo(recorded: Optional[dict], current: dict, video: Path, folder: Path) -> Optional[str]:
    """Why the finished outputs in ``folder``, made as ``recorded`` says, are not what a run
    with the ``current`` fingerprint would make (one line), or None when they are.

    Args:
        recorded: the fingerprint recorded with the outputs, or None when none was.
        current: this run's (:func:`fingerprint`).
        video: the clip's video (hashed only when its stamp changed).
        folder: the clip's output folder.
    """
    if recorded is None:
        return NO_RECORD
    if current["video"] is None:
        return "its video is missing"
    if recorded.get("video") != current["video"] and not _same_source(video, folder):
        return "its video changed since the last batch"
    changed = changed_settings(recorded.get("settings") or {}, current["settings"])
    if changed:   # before the reference: --use-align itself decides whether it counts
        return f"made with other settings ({', '.join(changed)})"
    if recorded.get("reference") != current["reference"]:
        return "its reference image changed since the last batch"
    return None


def keeps_other_outputs(recorded: Optional[dict], current: dict) -> bool:
    """Whether outputs of the other layout left in a clip's folder (``rendered.mp4`` beside an
    aligned run, the aligned pair beside a plain one), made as ``recorded`` says, still go with
    this run's poses: the same video stamp and every setting the same but the alignment ones.
    False when nothing was recorded."""
    if recorded is None or recorded.get("video") != current["video"]:
        return False
    changed = changed_settings(recorded.get("settings") or {}, current["settings"])
    return all(key in ALIGNMENT for key in changed)


def changed_settings(recorded: dict, current: dict) -> List[str]:
    """The options whose values differ, in ``current``'s order (a setting one side lacks
    differs); the alignment-only ones are left unsaid when ``--use-align`` itself changed."""
    keys = list(current) + [key for key in recorded if key not in current]
    changed = [key for key in keys if recorded.get(key, "absent") != current.get(key, "absent")]
    if "--use-align" in changed:
        changed = [key for key in changed if key not in ALIGN_ONLY]
    return changed


def _same_source(video: Path, folder: Path) -> bool:
    """True when ``video`` holds the very bytes the outputs in ``folder`` were made from (the
    sha256 its ``poses.npz`` records of its source)."""
    try:
        from scail_protocol.sequence import PoseSequence

        recorded = PoseSequence.load(folder / POSES_FILE).meta.get("source", {}).get("sha256")
    except Exception:  # unreadable: not known to be the same
        return False
    try:
        return bool(recorded) and recorded == sha256_of(video)
    except OSError:
        return False
