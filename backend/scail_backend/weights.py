"""Model weights of the studio-grade estimator: where they live, whether they are there, download.

The list of files (names, sources, sha256, sizes) is ``pretrained_weights/manifest.json`` in the
project; the files themselves are git-ignored. The weights folder resolves from an explicit
argument, then ``$SCAIL_WEIGHTS_DIR``, then the project's ``pretrained_weights/``. Its layout is
the reference's (``DWPose/yolox_l.onnx``, ``DWPose/dw-ll_ucoco_384.onnx``,
``nlf_l_multi_0.3.2.torchscript``), so an existing SCAIL-Pose ``pretrained_weights`` folder works
as it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from scail_protocol.errors import WeightsMissing

from .file_hash import ByteProgress, sha256_of

log = logging.getLogger(__name__)

WEIGHTS_ENV = "SCAIL_WEIGHTS_DIR"
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # backend/scail_backend/weights.py -> repo
DEFAULT_WEIGHTS_DIR = PROJECT_ROOT / "pretrained_weights"
MANIFEST_PATH = DEFAULT_WEIGHTS_DIR / "manifest.json"
MANIFEST_SCHEMA = 1
HASH_CHUNK_BYTES = 1 << 20
DOWNLOAD_TIMEOUT_S = 30.0

NOT_PUBLISHED = ("; not the published file (the nlf estimator uses it with a warning: a "
                 "fine-tuned or smaller variant, or a damaged download)")


@dataclass(frozen=True)
class WeightFile:
    """One entry of the manifest.

    Attributes:
        name: file name.
        path: path relative to the weights folder (posix separators).
        url: public source to download from.
        sha256: hex digest, or None when no checksum is recorded.
        size_bytes: expected size, or None when unknown.
        used_by: estimator names that need the file.
        role: what the file is, in a few words.
    """

    name: str
    path: str
    url: str
    sha256: Optional[str]
    size_bytes: Optional[int]
    used_by: tuple
    role: str


def load_manifest(path=None) -> List[WeightFile]:
    """The manifest's files.

    Raises:
        WeightsMissing: the manifest is missing or malformed (e.g. an installed package without
            the project folder).
    """
    path = Path(path) if path is not None else MANIFEST_PATH
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise WeightsMissing(f"weights manifest not readable at {path} ({e.strerror}); it ships "
                             f"with the project in pretrained_weights/manifest.json") from None
    except ValueError as e:
        raise WeightsMissing(f"weights manifest {path} is not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
        raise WeightsMissing(f"weights manifest {path}: expected schema {MANIFEST_SCHEMA}")
    try:
        return [WeightFile(name=f["name"], path=f["path"], url=f["url"], sha256=f.get("sha256"),
                           size_bytes=f.get("size_bytes"), used_by=tuple(f.get("used_by", ())),
                           role=f.get("role", "")) for f in data["files"]]
    except (KeyError, TypeError) as e:
        raise WeightsMissing(f"weights manifest {path}: malformed entry ({e})") from None


def weights_dir(explicit=None) -> Path:
    """The weights folder: ``explicit``, else $SCAIL_WEIGHTS_DIR, else the project's folder."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env).expanduser()
    return DEFAULT_WEIGHTS_DIR


@dataclass(frozen=True)
class WeightsStatus:
    """Which of the needed files are present in a folder.

    Attributes:
        directory: the folder looked in.
        present: files found (by manifest name).
        missing: files not found (by manifest name).
    """

    directory: Path
    present: tuple
    missing: tuple

    @property
    def complete(self) -> bool:
        return not self.missing


def status(directory=None, used_by: Optional[str] = None, manifest=None) -> WeightsStatus:
    """Presence of the manifest's files (those ``used_by`` an estimator, or all) in a folder."""
    folder = weights_dir(directory)
    files = [f for f in (manifest or load_manifest()) if used_by is None or used_by in f.used_by]
    present = tuple(f.name for f in files if (folder / f.path).is_file())
    missing = tuple(f.name for f in files if f.name not in present)
    return WeightsStatus(directory=folder, present=present, missing=missing)


@dataclass(frozen=True)
class Check:
    """Result of verifying one file: state is "ok", "missing", "size-mismatch", "hash-mismatch"
    or "unchecked" (present, but no checksum recorded)."""

    file: WeightFile
    state: str
    detail: str


def verify(directory=None, manifest=None, progress: Optional[ByteProgress] = None) -> List[Check]:
    """Check each manifest file's presence, size and sha256 in the weights folder."""
    folder = weights_dir(directory)
    checks = []
    for f in manifest or load_manifest():
        target = folder / f.path
        if not target.is_file():
            checks.append(Check(f, "missing", f"not found at {target}"))
            continue
        size = target.stat().st_size
        if f.size_bytes is not None and size != f.size_bytes:
            checks.append(Check(f, "size-mismatch", f"{size} bytes, expected {f.size_bytes}"
                                f"{NOT_PUBLISHED}"))
            continue
        if not f.sha256:
            checks.append(Check(f, "unchecked", f"{size} bytes; no checksum recorded"))
            continue
        digest = sha256_of(target, progress)
        if digest != f.sha256.lower():
            checks.append(Check(f, "hash-mismatch", f"sha256 {digest}, expected {f.sha256}"
                                f"{NOT_PUBLISHED}"))
        else:
            checks.append(Check(f, "ok", f"sha256 {digest}"))
    return checks


def download(directory=None, names=None, manifest=None, progress: Optional[ByteProgress] = None,
             timeout_s: float = DOWNLOAD_TIMEOUT_S) -> List[Path]:
    """Download missing manifest files into the weights folder, checking size and sha256.

    Each file streams into a temporary file beside its target and is renamed into place only
    when complete and matching; files already present are left alone.

    Args:
        names: manifest names to fetch; None = all.

    Returns:
        Paths downloaded (files already present are not included).

    Raises:
        WeightsMissing: a source cannot be reached or the download does not match the manifest
            (the message names the URL and where to put a file fetched by hand).
    """
    folder = weights_dir(directory)
    files = [f for f in manifest or load_manifest() if names is None or f.name in names]
    fetched = []
    for f in files:
        target = folder / f.path
        if target.is_file():
            log.info("%s already present at %s", f.name, target)
            continue
        _fetch(f, target, progress, timeout_s)
        fetched.append(target)
    return fetched


def _fetch(f: WeightFile, target: Path, progress, timeout_s: float) -> None:
    import urllib.error
    import urllib.request

    hint = f"download it by hand from {f.url} and put it at {target}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WeightsMissing(f"cannot create {target.parent}: {e.strerror}") from None
    part = target.with_name(f".{target.name}.part")
    digest = hashlib.sha256()
    done = 0
    try:
        with urllib.request.urlopen(f.url, timeout=timeout_s) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or f.size_bytes or 0)
            for chunk in iter(lambda: response.read(HASH_CHUNK_BYTES), b""):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(f.name, done, total)
    except (urllib.error.URLError, OSError, ValueError) as e:
        part.unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        raise WeightsMissing(f"cannot download {f.name} from {f.url} ({reason}); "
                             f"check the network, or {hint}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    problem = None
    if f.size_bytes is not None and done != f.size_bytes:
        problem = f"{done} bytes, expected {f.size_bytes}"
    elif f.sha256 and digest.hexdigest() != f.sha256.lower():
        problem = f"sha256 {digest.hexdigest()}, expected {f.sha256}"
    if problem:
        part.unlink(missing_ok=True)
        raise WeightsMissing(f"download of {f.name} does not match the manifest ({problem}); "
                             f"{hint}")
    os.replace(part, target)
    log.info("downloaded %s (%d bytes, sha256 %s)", target, done, digest.hexdigest())
