"""Build the installable extension zips of the SCAIL Blender add-on, one per Blender Python.

    python blender_addon/build.py [--out DIR] [--offline]

Blender 4.2 LTS – 5.0 embed CPython 3.11 and Blender 5.1 – 5.3 embed CPython 3.13, and an
extension's compiled wheels must match the Python it runs on (a zip holding both cp311 and abi3
pyzmq wheels does not work on 3.13: Blender picks the cp311 one). So one invocation makes one zip
per entry of :data:`BUILDS`, each with its own ``blender_version_min`` / ``blender_version_max``
(Blender refuses a zip outside that range with its own message) and only its Python's wheels:

1. checks ``blender_manifest.toml`` against the rules ``blender --command extension validate``
   applies (see :func:`validate_manifest`); its ``wheels`` list every wheel of every build;
2. downloads the pyzmq wheels the manifest lists into ``blender_addon/wheels/`` with
   ``pip download pyzmq==V --only-binary=:all: --python-version PY --platform TAG --no-deps``
   (skipped when the file is already there; ``--offline`` never downloads);
3. builds the pure-Python ``scail_protocol`` wheel from ``protocol/scail_protocol`` with zipfile
   (the repository has one pyproject.toml for both packages, so no second build project is
   needed: a pure-Python wheel is a zip with a dist-info folder);
4. zips the extension per build as ``DIR/scail_pose_studio-<version>-blender-<range>.zip``
   (default DIR: ``<repo>/dist``) with a manifest naming that build's range and wheels.

Where a Blender binary exists, check a result with
``blender --command extension validate dist/scail_pose_studio-<version>-blender-4.2-5.0.zip`` and
install it with ``blender --command extension install-file -r user_default -e <zip>``.
Needs Python 3.11+ (tomllib) and nothing else; it never imports bpy or the add-on.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import re
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parent
REPO = ADDON_DIR.parent
PROTOCOL_DIR = REPO / "protocol" / "scail_protocol"
MANIFEST = ADDON_DIR / "blender_manifest.toml"


@dataclass(frozen=True)
class PythonBuild:
    """One zip: the Blender releases sharing one embedded Python, and the wheel tags it loads.

    ``blender_max`` is exclusive, as in Blender's manifest (``"5.1.0"``: up to 5.0.x).
    """

    python: str          # CPython version of these Blender releases (pip --python-version)
    wheel_tags: tuple    # "<python tag>-<abi tag>" of the binary wheels this Python loads
    blender_min: str
    blender_max: str

    @property
    def label(self) -> str:
        """Blender range for file names and messages, e.g. ``4.2-5.0``."""
        major, minor, _ = (int(p) for p in self.blender_max.split("."))
        last = f"{major}.{minor - 1}" if minor else f"{major - 1}.x"
        return f"{self.blender_min.rsplit('.', 1)[0]}-{last}"


BUILDS = (
    PythonBuild("3.11", ("cp311-cp311",), "4.2.0", "5.1.0"),    # Blender 4.2 LTS - 5.0
    PythonBuild("3.13", ("cp313-cp313", "cp312-abi3"), "5.1.0", "5.4.0"),  # Blender 5.1 - 5.3
)

# Rules of Blender's own manifest validation (scripts/addons_core/bl_pkg/cli/blender_ext.py).
TERSE_MAX_CHARS = 64  # tagline and permission reasons
PERMISSION_KEYS = frozenset({"files", "network", "clipboard", "camera", "microphone"})
PLATFORMS = frozenset({"linux-x64", "linux-arm64", "windows-x64", "windows-arm64", "macos-x64",
                       "macos-arm64"})
REQUIRED = ("schema_version", "id", "version", "name", "tagline", "maintainer", "type",
            "license", "blender_version_min")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BuildError(Exception):
    """The manifest is invalid or a wheel cannot be fetched or built."""


def validate_manifest(manifest: dict) -> list:
    """Problems Blender's strict manifest validation would report (empty list: valid)."""
    problems = [f"missing {key!r}" for key in REQUIRED if key not in manifest]
    ident = manifest.get("id", "")
    if not (ident.isidentifier() and "__" not in ident and not ident.startswith("_")
            and not ident.endswith("_")):
        problems.append(f"id {ident!r} must be a Python identifier without '__' or edge '_'")
    for key in ("schema_version", "version"):
        if key in manifest and not _SEMVER.match(str(manifest[key])):
            problems.append(f"{key} {manifest[key]!r} is not a semantic version")
    version_min = str(manifest.get("blender_version_min", ""))
    parts = version_min.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        problems.append(f"blender_version_min {version_min!r} must be three numbers X.Y.Z")
    elif tuple(int(p) for p in parts) < (4, 2, 0):
        problems.append(f"blender_version_min {version_min!r}: extensions need Blender 4.2.0+")
    elif "blender_version_max" in manifest:
        version_max = str(manifest["blender_version_max"]).split(".")
        if len(version_max) != 3 or not all(p.isdigit() for p in version_max):
            problems.append(f"blender_version_max {manifest['blender_version_max']!r} must be "
                            f"three numbers X.Y.Z")
        elif tuple(map(int, version_max)) <= tuple(map(int, parts)):
            problems.append(f"blender_version_max {manifest['blender_version_max']!r} must be "
                            f"above blender_version_min {version_min!r}")
    if manifest.get("type") != "add-on":
        problems.append(f"type must be 'add-on', got {manifest.get('type')!r}")
    licenses = manifest.get("license")
    if not licenses or not all(isinstance(x, str) and x.startswith("SPDX:") for x in licenses):
        problems.append(f"license must be a non-empty list of 'SPDX:...' ids, got {licenses!r}")
    problems += _terse_problems("tagline", manifest.get("tagline", ""))
    permissions = manifest.get("permissions", {})
    if not isinstance(permissions, dict):
        problems.append("permissions must be a table of reasons")
    else:
        for key, reason in permissions.items():
            if key not in PERMISSION_KEYS:
                problems.append(f"unknown permission {key!r} (allowed: {sorted(PERMISSION_KEYS)})")
            problems += _terse_problems(f"permissions.{key}", reason)
    unknown = set(manifest.get("platforms", ())) - PLATFORMS
    if unknown:
        problems.append(f"unknown platforms {sorted(unknown)}")
    for wheel in manifest.get("wheels", ()):
        name = Path(wheel).name
        if "\\" in wheel or '"' in wheel or not name.endswith(".whl") \
                or not 5 <= len(name.split("-")) <= 6:
            problems.append(f"wheel path {wheel!r} must use '/' and name a .whl per the wheel spec")
    return problems


def _terse_problems(key: str, value) -> list:
    if not isinstance(value, str) or not value.strip():
        return [f"{key} must be a non-empty string"]
    problems = []
    if len(value) > TERSE_MAX_CHARS:
        problems.append(f"{key} is {len(value)} characters, at most {TERSE_MAX_CHARS} allowed")
    if value != value.strip() or _CONTROL.search(value):
        problems.append(f"{key} must not have edge spaces or control characters")
    if not (value[-1].isalnum() or value[-1] in ")]}"):
        problems.append(f"{key} must not end with punctuation: {value!r}")
    return problems


def read_manifest(path: Path = MANIFEST) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


# --- wheels -------------------------------------------------------------------------------------

def protocol_version() -> str:
    """``scail_protocol.__version__``, read from the source (nothing is imported)."""
    text = (PROTOCOL_DIR / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if not match:
        raise BuildError(f"no __version__ in {PROTOCOL_DIR / '__init__.py'}")
    return match.group(1)


def build_protocol_wheel(dest_dir: Path, version: str | None = None) -> Path:
    """Write ``scail_protocol-<version>-py3-none-any.whl`` (pure Python) into ``dest_dir``."""
    version = version or protocol_version()
    dist_info = f"scail_protocol-{version}.dist-info"
    files = {}
    for path in sorted(PROTOCOL_DIR.rglob("*.py")):
        if "__pycache__" not in path.parts:
            files[f"scail_protocol/{path.relative_to(PROTOCOL_DIR).as_posix()}"] = path.read_bytes()
    files[f"{dist_info}/METADATA"] = (
        "Metadata-Version: 2.1\nName: scail-protocol\n"
        f"Version: {version}\n"
        "Summary: SCAIL Pose Studio data model, tables, camera maths and wire format\n"
        "License: GPL-3.0-or-later\nRequires-Python: >=3.10\nRequires-Dist: numpy\n"
        "Requires-Dist: pyzmq\n").encode()
    files[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: scail_pose_studio build.py\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n").encode()
    files[f"{dist_info}/top_level.txt"] = b"scail_protocol\n"
    record = [f"{name},sha256={_urlsafe_digest(data)},{len(data)}" for name, data in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / f"scail_protocol-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data,
                        compress_type=zipfile.ZIP_DEFLATED)
    return out


def _urlsafe_digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel_tag(wheel_name: str) -> str:
    """The ``<python tag>-<abi tag>`` of a wheel file name, e.g. ``cp311-cp311``, ``py3-none``."""
    return "-".join(Path(wheel_name).name[:-len(".whl")].split("-")[-3:-1])


def wheels_for(manifest: dict, build: PythonBuild) -> list:
    """The manifest's wheel entries one build ships: pure-Python ones and its Python's binaries.

    Raises:
        BuildError: a binary wheel in the manifest belongs to no build.
    """
    entries = []
    for entry in manifest.get("wheels", ()):
        tag = wheel_tag(entry)
        if tag.endswith("-none"):
            entries.append(entry)
        elif tag in build.wheel_tags:
            entries.append(entry)
        elif not any(tag in b.wheel_tags for b in BUILDS):
            raise BuildError(f"the manifest lists {Path(entry).name}, which no build in build.py "
                             f"loads (tags {[t for b in BUILDS for t in b.wheel_tags]})")
    return entries


def fetch_wheels(entries, wheels_dir: Path, python: str, *, offline: bool = False) -> list:
    """Make every listed wheel exist in ``wheels_dir``; returns their paths.

    Args:
        entries: manifest wheel entries (``./wheels/<file>.whl``).
        wheels_dir: where wheels are cached.
        python: the CPython version to download binary wheels for (``"3.11"``).
        offline: never download; a missing wheel is an error.
    """
    paths = []
    for entry in entries:
        name = Path(entry).name
        path = wheels_dir / name
        paths.append(path)
        if name.startswith("scail_protocol-"):
            version = name.split("-")[1]
            if version != protocol_version():
                raise BuildError(f"the manifest lists {name} but scail_protocol is "
                                 f"{protocol_version()}: update blender_manifest.toml")
            build_protocol_wheel(wheels_dir, version)
            continue
        if path.is_file():
            continue
        if offline:
            raise BuildError(f"{path} is missing and --offline forbids downloading it")
        _pip_download(name, wheels_dir, python)
        if not path.is_file():
            raise BuildError(f"pip did not produce {name}; is the version in the manifest on PyPI?")
    return paths


def _pip_download(wheel_name: str, wheels_dir: Path, python: str) -> None:
    """``pip download`` one binary wheel named in the manifest (project, version, platform)."""
    project, version = wheel_name.split("-")[:2]
    platform = wheel_name[:-len(".whl")].split("-")[-1].split(".")[0]
    command = [sys.executable, "-m", "pip", "download", f"{project}=={version}",
               "--only-binary=:all:", "--python-version", python, "--platform", platform,
               "--no-deps", "-d", str(wheels_dir)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"pip download failed for {wheel_name}:\n{result.stderr.strip()}")


def manifest_text_for(text: str, build: PythonBuild, entries) -> str:
    """The source manifest's text with one build's version range and wheel list."""
    wheels = "wheels = [\n" + "".join(f'  "{e}",\n' for e in entries) + "]"
    text, n_wheels = re.subn(r"(?ms)^wheels\s*=\s*\[.*?^\]", lambda _: wheels, text)
    text, n_min = re.subn(r'(?m)^blender_version_min\s*=.*$',
                          f'blender_version_min = "{build.blender_min}"', text)
    text, n_max = re.subn(r'(?m)^blender_version_max\s*=.*$',
                          f'blender_version_max = "{build.blender_max}"', text)
    if not (n_wheels == n_min == n_max == 1):
        raise BuildError("blender_manifest.toml needs one 'wheels = [...]' list and one "
                         "blender_version_min and blender_version_max line each")
    return text


# --- the zip ------------------------------------------------------------------------------------

def _excluded(relative: str, patterns) -> bool:
    """Blender's ``paths_exclude_pattern`` subset we use: '/x' anchors at the root, 'x/' dirs."""
    parts = relative.split("/")
    for pattern in patterns:
        anchored = pattern.startswith("/")
        body = pattern.strip("/")
        if pattern.endswith("/"):
            if any(fnmatch.fnmatch(p, body) for p in parts[:-1]):
                return True
        elif anchored:
            if fnmatch.fnmatch(relative, body):
                return True
        elif any(fnmatch.fnmatch(p, body) for p in parts):
            return True
    return False


def build_zips(out_dir: Path, *, offline: bool = False) -> list:
    """Validate, fetch wheels, and write one zip per entry of :data:`BUILDS`; returns the paths."""
    return [build_zip(out_dir, build, offline=offline) for build in BUILDS]


def build_zip(out_dir: Path, build: PythonBuild, *, offline: bool = False) -> Path:
    """Write ``out_dir/<id>-<version>-blender-<range>.zip`` for one build; returns its path.

    Raises:
        BuildError: the manifest is invalid or a wheel cannot be fetched.
    """
    text = MANIFEST.read_text(encoding="utf-8")
    manifest = tomllib.loads(text)
    problems = validate_manifest(manifest)
    if problems:
        raise BuildError("blender_manifest.toml is invalid:\n  " + "\n  ".join(problems))
    entries = wheels_for(manifest, build)
    wheels = fetch_wheels(entries, ADDON_DIR / "wheels", build.python, offline=offline)
    built_manifest = manifest_text_for(text, build, entries)
    problems = validate_manifest(tomllib.loads(built_manifest))
    if problems:
        raise BuildError(f"the manifest of the {build.label} build is invalid: {problems}")
    patterns = manifest.get("build", {}).get("paths_exclude_pattern", ())
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{manifest['id']}-{manifest['version']}-blender-{build.label}.zip"
    tmp = out.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(ADDON_DIR.rglob("*")):
            relative = path.relative_to(ADDON_DIR).as_posix()
            if path.is_dir() or relative.startswith("wheels/") or _excluded(relative, patterns) \
                    or relative == MANIFEST.name:
                continue
            zf.write(path, relative)
        zf.writestr(MANIFEST.name, built_manifest)
        for wheel in wheels:
            zf.write(wheel, f"wheels/{wheel.name}")
    tmp.replace(out)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the SCAIL Pose Studio extension zips (one per Blender Python).",
        epilog="example: python blender_addon/build.py --out dist  "
               "# -> dist/scail_pose_studio-<version>-blender-4.2-5.0.zip and -5.1-5.3.zip")
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output folder")
    parser.add_argument("--offline", action="store_true",
                        help="use the wheels already in blender_addon/wheels/ only")
    args = parser.parse_args(argv)
    try:
        outs = build_zips(args.out, offline=args.offline)
    except BuildError as e:
        print(f"build.py: {e}", file=sys.stderr)
        return 2
    for out in outs:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
