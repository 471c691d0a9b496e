"""Private tmpfs mounts for tests of the OS at the boundary (a full disk, a read-only folder)."""

from __future__ import annotations

import shutil
import subprocess
import sys


def can_mount_tmpfs(options: str) -> bool:
    """True when ``unshare`` can mount a tmpfs with ``options`` (e.g. "size=64k", "ro") in a
    private user and mount namespace here (Linux with user namespaces)."""
    if not shutil.which("unshare") or sys.platform != "linux":
        return False
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", f"mount -t tmpfs -o {options} t /mnt"],
                           capture_output=True)
    return probe.returncode == 0
