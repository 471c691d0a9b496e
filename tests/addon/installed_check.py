"""Run by test_install_zip in a fresh process whose BLENDER_USER_RESOURCES is a throwaway folder:
install an extension zip the way a user does, then use it. Prints one JSON line (``RESULT {...}``).

    python installed_check.py EXTENSION.zip POSES.npz
"""

import json
import subprocess
import sys
from pathlib import Path

import bpy

ID = "scail_pose_studio"


def main(zip_path: str, poses: str) -> dict:
    out = {"version": list(bpy.app.version)}
    out["install"] = sorted(bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="user_default", enable_on_install=True))
    out["enabled"] = f"bl_ext.user_default.{ID}" in bpy.context.preferences.addons
    site = Path(bpy.utils.user_resource("EXTENSIONS", path=".local")) / "lib" / \
        f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    out["wheels_installed"] = sorted(p.name for p in site.glob("*") if p.is_dir()) \
        if site.is_dir() else []
    if not out["enabled"]:
        return out
    # The bundled wheels themselves, on this Python and its numpy, ahead of the environment's.
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import zmq, scail_protocol, numpy; "
            "from scail_protocol.sequence import PoseSequence; "
            "assert zmq.__file__.startswith(sys.argv[1]) and "
            "scail_protocol.__file__.startswith(sys.argv[1]); "
            "s = PoseSequence.load(sys.argv[2]); print(zmq.zmq_version(), numpy.__version__, "
            "s.num_frames)")
    check = subprocess.run([sys.executable, "-c", code, str(site), poses], capture_output=True,
                           text=True)
    out["wheels_check"] = check.stdout.strip() or check.stderr.strip()[-500:]
    out["import"] = sorted(bpy.ops.scail.import_motion(filepath=poses))
    out["armatures"] = len([o for o in bpy.data.objects if o.type == "ARMATURE"])
    return out


if __name__ == "__main__":
    result = main(sys.argv[1], sys.argv[2])
    print("RESULT " + json.dumps(result), flush=True)
