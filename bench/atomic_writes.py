"""What durability costs: ``scail_protocol.outputs`` writes with fsync before every rename.

Prints the time to write N files of SIZE bytes through :func:`write_atomically` (each fsynced
and renamed) and through :func:`atomic_folder` (a PNG-frames-like folder: written, then every
file fsynced and the folder swapped in), next to plain unsynced writes of the same bytes.

    python bench/atomic_writes.py                       # 500 x 300 kB in a folder under .
    python bench/atomic_writes.py --files 1000 --kb 600 --dir /data
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from scail_protocol.outputs import atomic_folder, write_atomically


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--kb", type=int, default=300, help="size of each file in kB")
    parser.add_argument("--dir", default=".", help="where to write (its file system is measured)")
    args = parser.parse_args()
    data = os.urandom(args.kb * 1000)
    work = Path(tempfile.mkdtemp(prefix=".bench-atomic-", dir=args.dir))
    try:
        began = time.perf_counter()
        for i in range(args.files):
            (work / f"plain_{i:05d}.bin").write_bytes(data)
        plain = time.perf_counter() - began

        began = time.perf_counter()
        for i in range(args.files):
            write_atomically(work / f"atomic_{i:05d}.bin", lambda f: f.write(data))
        atomic = time.perf_counter() - began

        began = time.perf_counter()
        with atomic_folder(work / "frames") as folder:
            for i in range(args.files):
                (folder / f"frame_{i:05d}.png").write_bytes(data)
            written = time.perf_counter()
        total = time.perf_counter() - began
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mb = args.files * len(data) / 1e6
    print(f"{args.files} files x {args.kb} kB ({mb:.0f} MB) in {args.dir}:")
    print(f"  plain writes, no sync      {plain:6.2f} s")
    print(f"  write_atomically (fsync)   {atomic:6.2f} s  ({1000 * atomic / args.files:.1f} ms/file)")
    print(f"  atomic_folder              {total:6.2f} s  (writing {written - began:.2f} s, "
          f"fsync + swap {total - (written - began):.2f} s)")


if __name__ == "__main__":
    main()
