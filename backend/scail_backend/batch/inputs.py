"""What a batch runs: the clips named by a folder tree, a glob or a manifest.

Each clip becomes one ``scail-pose run`` in its own output folder ``OUT_DIR/<name>``, where
``name`` mirrors where the clip came from:

* **folder tree** (``INPUTS`` is a folder): every folder below it (itself included) that holds
  ``driving.mp4`` is a SCAIL folder; its name is its path relative to ``INPUTS`` (``INPUTS``
  itself: its own folder name). Folders below ``INPUTS`` that hold a ``batch_report.jsonl`` and
  only the links a batch makes to its clips' videos are an earlier batch's OUT_DIR and are not
  searched (an info line names them; a batch written in place, beside real videos, is); neither
  are hidden folders.
* **glob** (``INPUTS`` holds ``*``, ``?`` or ``[``; ``**`` reaches into subfolders): each match is
  a SCAIL folder or a video file; the name is the match's path relative to the part of the
  pattern before its first wildcard, a video file's without its extension. Matches inside an
  earlier batch's OUT_DIR below that part are left out, as for a folder tree.
* **manifest** (a ``.csv`` with a header row, or ``.jsonl`` with one JSON object a line): one
  clip a row; ``video`` (a video file or a SCAIL folder) is required; optional ``name``,
  ``reference`` (image) and per-clip options ``estimator``, ``resolution`` ("H W", "HxW" or
  [H, W]), ``smooth``, ``fps``, ``arch``. Relative paths are relative to the manifest's folder.
  Blank lines and lines starting with ``#`` are skipped; a CSV value with no column name in the
  header is refused.

Errors are :class:`~scail_protocol.errors.ScailError` (one line: the row and what is wrong).
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, List, Optional

from scail_protocol.contract import DRIVING_VIDEO, REFERENCE_IMAGE_NAMES
from scail_protocol.errors import ScailError
from scail_protocol.outputs import is_inside

from .report import REPORT_FILE

MANIFEST_SUFFIXES = (".csv", ".jsonl")
CLIP_OPTIONS = ("estimator", "resolution", "smooth", "fps", "arch")
_WILDCARD = re.compile(r"[*?\[]")
# Files a folder tree may hold outside SCAIL folders that look like clips the user meant.
LOOSE_VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".avi", ".mkv", ".gif")
log = logging.getLogger(__name__)


class BatchInputError(ScailError):
    """The batch's inputs cannot be read or name no clip."""


@dataclass(frozen=True)
class Clip:
    """One clip of a batch.

    Attributes:
        name: output sub-path under OUT_DIR, POSIX style, relative (e.g. "dancers/a").
        video: the driving video file.
        reference: the reference image, or None.
        options: per-clip options (keys of CLIP_OPTIONS) overriding the batch's.
        manifest, line: the manifest and its line that give the clip, else None.
        named: the name is the manifest row's own ``name``, not one made from the video's path.
    """

    name: str
    video: Path
    reference: Optional[Path] = None
    options: dict = field(default_factory=dict)
    manifest: Optional[Path] = field(default=None, compare=False)
    line: Optional[int] = field(default=None, compare=False)
    named: bool = field(default=False, compare=False)

    def to_dict(self) -> dict:
        """JSON-ready form (sent to Ray workers, written in the report)."""
        return {"name": self.name, "video": str(self.video),
                "reference": str(self.reference) if self.reference else None,
                "options": dict(self.options)}

    def absolute(self) -> "Clip":
        """This clip with absolute paths (for workers whose working folder is not this one's)."""
        return Clip(self.name, self.video.absolute(),
                    self.reference.absolute() if self.reference else None, dict(self.options),
                    self.manifest, self.line, self.named)

    @classmethod
    def from_dict(cls, data: dict) -> "Clip":
        return cls(data["name"], Path(data["video"]),
                   Path(data["reference"]) if data.get("reference") else None,
                   dict(data.get("options") or {}))


def discover(inputs, *, exclude: Iterable = ()) -> List[Clip]:
    """The clips named by ``inputs`` (folder tree, glob or manifest; see the module notes).

    Args:
        inputs: a folder, a glob pattern, or a .csv/.jsonl manifest.
        exclude: folders never searched (the batch's own OUT_DIR when it lies inside INPUTS).

    Returns:
        Clips sorted by name; names are unique.

    Raises:
        BatchInputError: nothing found, an unreadable manifest row, or two clips with one name.
    """
    text = str(inputs)
    path = Path(text)
    skip = [Path(p).resolve() for p in exclude]
    if path.is_dir():
        clips = _from_tree(path, skip)
    elif path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        clips = _from_manifest(path)
    elif _WILDCARD.search(text):
        clips = _from_glob(text, skip)
    elif path.exists():
        raise BatchInputError(f"{path} is neither a folder nor a .csv/.jsonl manifest; give a "
                              f"folder of SCAIL folders, a glob such as 'clips/*.mp4' or a "
                              f"manifest")
    else:
        raise BatchInputError(f"inputs not found: {path}")
    if not clips and path.is_file():
        example = ("a header row naming 'video', then one clip a row" if path.suffix.lower()
                   == ".csv" else 'one JSON object a line such as {"video": "clips/a.mp4"}')
        raise BatchInputError(f"the manifest {text} names no clip; give {example}")
    if not clips:
        raise BatchInputError(f"no clip found in {text} (a SCAIL folder holds {DRIVING_VIDEO}; "
                              f"a glob may also match video files)")
    return _unique(sorted(clips, key=lambda c: c.name))


def scail_folder_clip(folder: Path, name: str) -> Clip:
    """The clip of a SCAIL folder (``driving.mp4`` and perhaps a reference image)."""
    reference = next((folder / n for n in REFERENCE_IMAGE_NAMES if (folder / n).is_file()), None)
    return Clip(name, folder / DRIVING_VIDEO, reference)


def _from_tree(root: Path, skip: list) -> List[Clip]:
    clips, loose, batches = [], [], []
    for here, folders, files in os.walk(root):
        folders[:] = sorted(f for f in folders if not f.startswith(".")
                            and (Path(here) / f).resolve() not in skip)
        batches += [Path(here) / f for f in folders if _is_batch_output(Path(here) / f)]
        folders[:] = [f for f in folders if Path(here) / f not in batches]
        if DRIVING_VIDEO in files:
            relative = Path(here).relative_to(root)
            name = relative.as_posix() if relative.parts else root.resolve().name
            clips.append(scail_folder_clip(Path(here), name))
        else:
            loose += sorted(Path(here) / f for f in files if not f.startswith(".")
                            and Path(f).suffix.lower() in LOOSE_VIDEO_SUFFIXES)
    if loose:
        log.warning("%d video file(s) under %s lie outside SCAIL folders (a folder holding %s) "
                    "and are not part of the batch, e.g. %s; give them with a glob ('%s') or "
                    "a manifest", len(loose), root, DRIVING_VIDEO, loose[0],
                    root / "**" / f"*{loose[0].suffix}")
    _say_skipped(batches)
    return clips


def _is_batch_output(folder: Path) -> bool:
    """Whether ``folder`` is an earlier batch's OUT_DIR: it holds a batch report, and its clips'
    driving videos are the links a batch makes to the user's files. A batch written in place
    (``batch DIR -o DIR``) leaves its report beside the user's own videos: those are searched."""
    if not (folder / REPORT_FILE).is_file():
        return False
    return not any(video.is_file() and not video.is_symlink()
                   for video in folder.rglob(DRIVING_VIDEO))


def _batch_output_above(path: Path, root: Path, known: dict) -> Optional[Path]:
    """The folder at or above ``path``, below ``root``, that is a batch's OUT_DIR, if any
    (``known``: the answers for folders asked before, so each is looked into once)."""
    for folder in (path, *path.parents):
        if folder == root or len(folder.parts) <= len(root.parts):
            return None
        if folder not in known:
            known[folder] = _is_batch_output(folder)
        if known[folder]:
            return folder
    return None


def _say_skipped(batches: list) -> None:
    if batches:
        shown = ", ".join(str(b) for b in batches[:3]) + (", ..." if len(batches) > 3 else "")
        log.info("not searched: %d earlier batch output folder(s) (holding %s): %s",
                 len(batches), REPORT_FILE, shown)


def _from_glob(pattern: str, skip: list) -> List[Clip]:
    fixed = []
    for part in pattern.replace(os.sep, "/").split("/"):
        if _WILDCARD.search(part):
            break
        fixed.append(part)
    root = Path("/".join(fixed) or ".")
    clips, batches, known = [], [], {}
    for match in sorted(glob.glob(pattern, recursive=True)):
        path = Path(match)
        if any(is_inside(path, s) for s in skip):
            continue
        batch = _batch_output_above(path, root, known)
        if batch is not None:
            batches += [batch] if batch not in batches else []
            continue
        if path.is_dir() and (path / DRIVING_VIDEO).is_file():
            clips.append(scail_folder_clip(path, _relative_name(path, root)))
        elif path.is_file() and not path.name.startswith("."):
            name = _relative_name(path.with_suffix(""), root)
            if path.name == DRIVING_VIDEO:
                clips.append(scail_folder_clip(path.parent, _relative_name(path.parent, root)))
            else:
                clips.append(Clip(name, path))
    _say_skipped(batches)
    return clips


def _from_manifest(manifest: Path) -> List[Clip]:
    base = manifest.parent
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise BatchInputError(f"cannot read manifest {manifest}: {e}") from None
    rows = _csv_rows(text, manifest) if manifest.suffix.lower() == ".csv" else \
        _jsonl_rows(text, manifest)
    return [_manifest_clip(row, line, base, manifest) for line, row in rows]


def _csv_rows(text: str, manifest: Path):
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return []
    reader = csv.DictReader([line for _, line in lines], skipinitialspace=True)
    if "video" not in (reader.fieldnames or []):
        raise BatchInputError(f"{manifest}: the CSV header must name a 'video' column, got "
                              f"{', '.join(reader.fieldnames or [])}")
    rows = []
    for (n, _), row in zip(lines[1:], reader):
        stray = [v for v in row.pop(None, None) or [] if v and v.strip()]
        stray += [v for k, v in row.items() if not k.strip() and v and v.strip()]
        if stray:
            shown = ", ".join(repr(v.strip()) for v in stray[:3])
            raise BatchInputError(f"{manifest} line {n}: {len(stray)} value(s) with no column "
                                  f"name in the header ({shown}); name their columns in the "
                                  f"header or remove them")
        rows.append((n, {k.strip(): (v or "").strip() for k, v in row.items() if k.strip()}))
    return rows


def _jsonl_rows(text: str, manifest: Path):
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise BatchInputError(f"{manifest} line {n}: not JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise BatchInputError(f"{manifest} line {n}: expected a JSON object")
        rows.append((n, row))
    return rows


def _manifest_clip(row: dict, line: int, base: Path, manifest: Path) -> Clip:
    where = f"{manifest} line {line}"
    unknown = set(row) - {"video", "name", "reference", *CLIP_OPTIONS}
    if unknown:
        raise BatchInputError(f"{where}: unknown column(s) {', '.join(sorted(unknown))}; use "
                              f"video, name, reference, {', '.join(CLIP_OPTIONS)}")
    video = row.get("video")
    if not video or not isinstance(video, str):
        raise BatchInputError(f"{where}: 'video' (a video file or a SCAIL folder) is missing")
    path = base / video
    options = {key: _option(key, row[key], where) for key in CLIP_OPTIONS
               if row.get(key) not in (None, "")}
    if path.is_dir():
        clip = scail_folder_clip(path, row.get("name") or _relative_name(path, base))
    else:
        clip = Clip(row.get("name") or _relative_name(path.with_suffix(""), base), path)
    reference = row.get("reference")
    return Clip(_check_name(str(clip.name), where), clip.video,
                base / reference if reference else clip.reference, options,
                manifest=manifest, line=line, named=bool(row.get("name")))


def _option(key: str, value, where: str):
    """A per-clip option in the form run_folder takes, checked as the command line checks it
    (so a bad row is refused before any clip runs)."""
    from .. import options as checks
    from ..smoothing import parse_strength
    from ..video.timing import check_fps

    try:
        if key == "resolution":
            parts = value if isinstance(value, list) else re.split(r"[x,\s]+", str(value).strip())
            return list(checks.check_resolution([int(v) for v in parts]))
        if key == "fps":
            return check_fps(value)
        if key == "smooth":
            value = value if isinstance(value, (int, float)) else str(value)
            parse_strength(value)
            return value
        if key == "estimator":
            return checks.check_estimator(str(value))
        return str(value)
    except (TypeError, ValueError, ScailError) as e:
        detail = f": {e}" if isinstance(e, ScailError) or str(e) else ""
        raise BatchInputError(f"{where}: bad {key} {value!r}{detail}") from None


def _relative_name(path: Path, root: Path) -> str:
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        relative = Path(path.name)
    return relative.as_posix() if relative.parts else path.resolve().name


def _check_name(name: str, where: str) -> str:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise BatchInputError(f"{where}: clip name {name!r} must be a relative path inside "
                              f"OUT_DIR")
    return pure.as_posix()


def _unique(clips: List[Clip]) -> List[Clip]:
    """``clips``, checked to have one name each (they are sorted by name).

    Raises:
        BatchInputError: two clips share a name (:func:`_same_name_error`).
    """
    for first, second in zip(clips, clips[1:]):
        if first.name == second.name:
            raise BatchInputError(_same_name_error(first, second))
    return clips


def _same_name_error(first: Clip, second: Clip) -> str:
    """What to say of two clips with one name: a manifest that names two rows alike, or two
    names made alike from the clips' paths (rows and files named)."""
    if first.named and second.named:
        return (f"{first.manifest} gives the name {first.name!r} twice (line {first.line}: "
                f"{first.video}; line {second.line}: {second.video}); give each row its own "
                f"name")
    said = [f"{clip.video} ({clip.manifest} line {clip.line})" if clip.manifest else
            str(clip.video) for clip in (first, second)]
    fix = "give them different names in the manifest's 'name' column" if first.named or \
        second.named else "give them names (a manifest's 'name' column)"
    return f"two clips would write into OUT_DIR/{first.name}: {said[0]} and {said[1]}; {fix}"
