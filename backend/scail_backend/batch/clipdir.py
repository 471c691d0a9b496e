"""A clip's output folder ``OUT_DIR/<name>``: made a SCAIL folder, checked for finished outputs,
and cleaned of what an interrupted run left.

The folder gets ``driving.mp4`` (and the reference image, under its own name) as symbolic links
to the clip's files (a copy where links cannot be made), so that ``run_folder`` runs on it
unchanged, exactly as ``scail-pose run`` does, and the folder stays a complete SCAIL folder for
later steps. When ``OUT_DIR/<name>`` *is* the clip's own SCAIL folder (a batch written in place)
nothing is linked.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Optional

from scail_protocol.errors import ScailError
from scail_protocol.outputs import is_temporary, same_file

from scail_protocol.contract import (ALIGNED_POSES_FILE, ALIGNED_RENDERED_FILE, DRIVING_VIDEO,
                                     POSES_FILE, REFERENCE_IMAGE_NAMES, RENDERED_FILE)

from .inputs import Clip

log = logging.getLogger(__name__)


def prepare(clip: Clip, folder: Path) -> Path:
    """Make ``folder`` a SCAIL folder for ``clip`` (links to its video and reference image).

    Returns:
        ``folder``.

    Raises:
        ScailError: the clip's video is missing, or the folder cannot be made.
    """
    if not clip.video.is_file():
        raise ScailError(f"video not found: {clip.video}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_partial(folder)
        _link(clip.video, folder / DRIVING_VIDEO)
        if clip.reference is not None:
            if not clip.reference.is_file():
                raise ScailError(f"reference image not found: {clip.reference}")
            name = clip.reference.name if clip.reference.name in REFERENCE_IMAGE_NAMES else \
                "ref.png" if clip.reference.suffix.lower() == ".png" else "ref.jpg"
            _link(clip.reference, folder / name)
    except OSError as e:
        raise ScailError(f"cannot prepare {folder}: {e.strerror or e}") from None
    return folder


def in_input_terms(text: str, clip: Clip, folder: Path) -> str:
    """``text`` (an error or warning said of the clip's folder under OUT_DIR) with the paths of
    the links :func:`prepare` made there replaced by the user's own files, which the links
    point to."""
    pairs = [(folder / DRIVING_VIDEO, clip.video)]
    if clip.reference is not None:
        pairs += [(folder / name, clip.reference) for name in REFERENCE_IMAGE_NAMES]
    for link, source in pairs:
        for form in dict.fromkeys((str(link.absolute()), str(link))):
            text = text.replace(form, str(source))
    return text


def _link(source: Path, link: Path) -> None:
    """``link`` -> ``source`` (absolute), replacing a stale link; nothing when ``link`` already
    is ``source`` (a batch written in place)."""
    if link.exists() and same_file(link, source):
        return
    temp = link.with_name(f".{link.name}.link{os.getpid()}")
    temp.unlink(missing_ok=True)
    try:
        os.symlink(source.resolve(), temp)
    except OSError:  # no symbolic links here (some Windows set-ups): copy
        shutil.copyfile(source, temp)
    os.replace(temp, link)


def remove_partial(folder: Path) -> int:
    """Delete the temporary files an interrupted write left in ``folder`` (a killed worker
    cannot clean up after itself); returns how many."""
    removed = 0
    try:
        entries = list(folder.iterdir())
    except OSError:
        return 0
    for entry in entries:
        if is_temporary(entry):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
    return removed


def remove_outputs(folder: Path, names) -> None:
    """Delete the outputs ``names`` from a clip's ``folder`` (stale ones: another run's layout,
    made from another video or with other settings), saying so."""
    for name in names:
        path = folder / name
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as e:
            log.warning("%s: cannot remove the stale %s: %s", folder.name, name, e.strerror)
            continue
        log.info("%s: removed %s, made from another video or with other settings",
                 folder.name, name)


def finished(folder: Path, use_align: bool = False) -> Optional[int]:
    """The frame count when ``folder`` holds valid outputs of a finished run, else None.

    Valid: ``poses.npz`` loads as a PoseSequence and ``rendered.mp4`` is a video with as many
    frames (with ``use_align``: ``poses_aligned.npz`` and ``rendered_aligned.mp4``, and
    ``poses.npz`` present). Outputs are renamed into place only when complete, so a run that
    died leaves none, or older complete ones; a half-written file never has a final name.
    """
    poses, video = folder / POSES_FILE, folder / RENDERED_FILE
    if use_align:
        if not poses.is_file():
            return None
        poses, video = folder / ALIGNED_POSES_FILE, folder / ALIGNED_RENDERED_FILE
    if not (poses.is_file() and video.is_file()):
        return None
    try:
        import av

        from scail_protocol.sequence import PoseSequence

        frames = PoseSequence.load(poses).num_frames
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            count = stream.frames or sum(1 for _ in container.demux(stream) if _.size)
    except Exception:  # any unreadable output means "not done"
        return None
    return frames if frames and count == frames else None
