"""The built extension zip installed the way a user does it (Extensions › Install from Disk,
``bpy.ops.extensions.package_install_files``) into a throwaway Blender user folder, on the
Python this test runs on; and the zip of the other Python refused with Blender's own message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from addon_helpers import load_build_module
from motion import make_sequence

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.slow
CHECK = Path(__file__).resolve().parent / "installed_check.py"


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    """{build: zip path} for every Blender Python (pyzmq from the registry when not cached)."""
    build = load_build_module()
    try:
        paths = build.build_zips(tmp_path_factory.mktemp("dist"))
    except build.BuildError as e:
        if "pip download failed" in str(e):
            pytest.skip(f"pyzmq wheels cannot be downloaded here: {e}")
        raise
    return dict(zip(build.BUILDS, paths))


def _install(zip_path: Path, tmp_path: Path) -> tuple:
    """(result dict, full output) of installed_check.py in a fresh Blender user folder."""
    poses = make_sequence(6, num_people=2, size=(224, 128)).save(tmp_path / "poses.npz")
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    env.pop("PYTHONPATH", None)  # the extension's own scail_protocol, not the repository's
    proc = subprocess.run([sys.executable, str(CHECK), str(zip_path), str(poses)],
                          capture_output=True, text=True, env=env, timeout=300)
    output = proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"installed_check.py printed no result (exit {proc.returncode}):\n{output[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):]), output


def _this_python(builds):
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    return next(b for b in builds if b.python == here)


def test_the_zip_for_this_blender_installs_enables_and_imports_a_take(zips, tmp_path):
    build = _this_python(zips)
    result, output = _install(zips[build], tmp_path)
    assert result["install"] == ["FINISHED"] and result["enabled"], output[-3000:]
    assert {"zmq", "scail_protocol"} <= set(result["wheels_installed"])
    zmq_version, numpy_version, frames = result["wheels_check"].split()
    assert frames == "6", result["wheels_check"]
    assert result["import"] == ["FINISHED"] and result["armatures"] == 2


def test_the_zip_for_another_blender_is_refused_with_blenders_message(zips, tmp_path):
    here = _this_python(zips)
    other = next(b for b in zips if b is not here)
    result, output = _install(zips[other], tmp_path)
    version = ".".join(map(str, bpy.app.version))
    if bpy.app.version >= tuple(int(p) for p in other.blender_max.split(".")):
        message = (f"This Blender version ({version}) must be less than the maximum version "
                   f"({other.blender_max})")
    else:
        message = (f"This Blender version ({version}) doesn't meet the minimum supported "
                   f"version ({other.blender_min})")
    assert message in output, output[-3000:]
    assert not result["enabled"] and "zmq" not in result["wheels_installed"]
