"""The extension package: manifest rules, the scail_protocol wheel, the zip, the import rule."""

from __future__ import annotations

import base64
import copy
import csv
import hashlib
import importlib.util
import io
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ADDON_DIR = Path(__file__).resolve().parents[2] / "blender_addon"
_spec = importlib.util.spec_from_file_location("scail_addon_build", ADDON_DIR / "build.py")
build = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = build  # dataclasses look their module up there
_spec.loader.exec_module(build)

def _wheel_covers(platform: str, wheel: str) -> bool:
    """Whether a pyzmq wheel file name serves a Blender platform (as Blender maps wheel tags)."""
    tag = wheel[:-len(".whl")].split("-")[-1]
    system, machine = platform.split("-")
    if system == "linux":
        return "manylinux" in tag and ("x86_64" if machine == "x64" else "aarch64") in tag
    if system == "windows":
        return tag == ("win_amd64" if machine == "x64" else "win_arm64")
    return tag.startswith("macosx") and (
        tag.endswith("universal2") or tag.endswith("arm64" if machine == "arm64" else "x86_64"))


@pytest.fixture
def manifest():
    return build.read_manifest()


def test_manifest_passes_blenders_validation_rules(manifest):
    assert build.validate_manifest(manifest) == []
    assert manifest["schema_version"] == "1.0.0"
    assert manifest["id"] == "scail_pose_studio"
    assert (manifest["blender_version_min"], manifest["blender_version_max"]) == ("4.2.0", "5.4.0")
    assert set(manifest["permissions"]) == {"network", "files"}


@pytest.mark.parametrize("build_index", range(len(build.BUILDS)))
def test_each_build_gets_pyzmq_for_every_platform_of_its_python_only(manifest, build_index):
    one = build.BUILDS[build_index]
    wheels = [Path(w).name for w in build.wheels_for(manifest, one)]
    pyzmq = [w for w in wheels if w.startswith("pyzmq-")]
    assert pyzmq and all(build.wheel_tag(w) in one.wheel_tags for w in pyzmq)
    for platform in manifest["platforms"]:
        assert any(_wheel_covers(platform, w) for w in pyzmq), f"no pyzmq wheel for {platform}"
    assert f"scail_protocol-{build.protocol_version()}-py3-none-any.whl" in wheels


def test_builds_cover_blender_4_2_to_5_3_without_gaps(manifest):
    ranges = [(b.blender_min, b.blender_max) for b in build.BUILDS]
    assert ranges[0][0] == manifest["blender_version_min"] == "4.2.0"
    assert ranges[-1][1] == manifest["blender_version_max"] == "5.4.0"  # exclusive: 5.3.x
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert [b.python for b in build.BUILDS] == ["3.11", "3.13"]
    assert [b.label for b in build.BUILDS] == ["4.2-5.0", "5.1-5.3"]


@pytest.mark.parametrize("field,value,problem", [
    ("id", "scail__pose", "identifier"),
    ("tagline", "Ends with a full stop.", "punctuation"),
    ("tagline", "x" * 65, "at most 64"),
    ("blender_version_min", "4.1.0", "4.2.0+"),
    ("blender_version_min", "4.2", "three numbers"),
    ("blender_version_max", "4.1.0", "must be above"),
    ("blender_version_max", "5", "three numbers"),
    ("license", ["GPL"], "SPDX"),
    ("permissions", {"network": "Talks to the backend", "disk": "Writes files"}, "unknown permission"),
    ("permissions", {"files": "Reads videos."}, "punctuation"),
    ("wheels", ["./wheels/not_a_wheel.zip"], "wheel spec"),
    ("platforms", ["amiga-68k"], "unknown platforms"),
])
def test_validate_manifest_rejects_what_blender_rejects(manifest, field, value, problem):
    bad = copy.deepcopy(manifest)
    bad[field] = value
    assert any(problem in p for p in build.validate_manifest(bad))


def test_protocol_wheel_is_a_valid_importable_pure_python_wheel(tmp_path):
    wheel = build.build_protocol_wheel(tmp_path)
    assert wheel.name == f"scail_protocol-{build.protocol_version()}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        dist_info = f"scail_protocol-{build.protocol_version()}.dist-info"
        assert f"{dist_info}/WHEEL" in names and f"{dist_info}/METADATA" in names
        record = list(csv.reader(io.StringIO(zf.read(f"{dist_info}/RECORD").decode())))
        for name, digest, size in record:
            if name.endswith("RECORD"):
                continue
            data = zf.read(name)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={want}" and int(size) == len(data)
        assert {n for n in names if n.endswith(".py")} >= {"scail_protocol/sequence.py",
                                                            "scail_protocol/camera.py"}
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import scail_protocol, numpy as np; "
            "assert scail_protocol.__file__.startswith(sys.argv[1]), scail_protocol.__file__; "
            "from scail_protocol.sequence import PoseSequence; "
            "print(PoseSequence.empty(1, 2, (8, 8), fps=16).num_frames)")
    out = subprocess.run([sys.executable, "-c", code, str(wheel)], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "2"


@pytest.fixture(scope="module")
def built_zips(tmp_path_factory):
    """The installable zips; pyzmq wheels come from the package registry when not cached."""
    try:
        return build.build_zips(tmp_path_factory.mktemp("dist"))
    except build.BuildError as e:
        if "pip download failed" in str(e):
            pytest.skip(f"pyzmq wheels cannot be downloaded here: {e}")
        raise


def test_one_zip_per_blender_python_with_its_range_and_wheels(built_zips, manifest):
    assert [z.name for z in built_zips] == ["scail_pose_studio-0.1.0-blender-4.2-5.0.zip",
                                            "scail_pose_studio-0.1.0-blender-5.1-5.3.zip"]
    for one, path in zip(build.BUILDS, built_zips):
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            inside = build.tomllib.loads(zf.read("blender_manifest.toml").decode())
        assert (inside["blender_version_min"], inside["blender_version_max"]) == \
            (one.blender_min, one.blender_max)
        assert inside["wheels"] == build.wheels_for(manifest, one)
        assert {w[2:] for w in inside["wheels"]} == {n for n in names if n.endswith(".whl")}
        assert not [n for n in names if n.endswith(".whl")
                    and build.wheel_tag(n) not in one.wheel_tags + ("py3-none",)]
        assert {"__init__.py", "operators.py", "armature.py", "render.py", "frame_io.py"} <= names
        assert "build.py" not in names and not any("__pycache__" in n for n in names)


def blender_extension_cli() -> Path:
    """Blender's own extension tool (what `blender --command extension` runs), from bpy."""
    bpy = pytest.importorskip("bpy")
    path = (Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli"
            / "blender_ext.py")
    if not path.is_file():
        pytest.skip(f"Blender's extension CLI not found at {path}")
    return path


def test_built_zips_pass_blenders_own_extension_validator(built_zips):
    for path in built_zips:
        result = subprocess.run([sys.executable, str(blender_extension_cli()), "validate",
                                 str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Success" in result.stdout


def test_blenders_validator_rejects_a_broken_manifest(tmp_path):
    (tmp_path / "__init__.py").write_text("")
    text = build.MANIFEST.read_text().replace('schema_version = "1.0.0"', 'schema_version = "x"')
    (tmp_path / "blender_manifest.toml").write_text(text)
    result = subprocess.run([sys.executable, str(blender_extension_cli()), "validate",
                             str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0


def test_the_addon_never_imports_the_backend():
    pattern = re.compile(r"^\s*(from|import)\s+scail_backend", re.MULTILINE)
    offenders = [p.name for p in ADDON_DIR.glob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
    code = ("import importlib.util, sys; "
            f"spec = importlib.util.spec_from_file_location('scail_pose_studio', {str(ADDON_DIR / '__init__.py')!r}, "
            f"submodule_search_locations=[{str(ADDON_DIR)!r}]); "
            "m = importlib.util.module_from_spec(spec); sys.modules['scail_pose_studio'] = m; "
            "spec.loader.exec_module(m); "
            "import scail_pose_studio.headless, scail_pose_studio.render, scail_pose_studio.export; "
            "m.register(); m.unregister(); "
            "assert not [n for n in sys.modules if n.startswith('scail_backend')]; "
            "assert 'zmq' not in sys.modules, 'pyzmq imported at registration'; print('ok')")
    pytest.importorskip("bpy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
