"""`scail-pose batch` with the nlf estimator on a machine with a GPU (CI has none).

Four small clips of the tiny stand-in models' scene go through a real local Ray with 1 and 2
workers; prints what the estimation actors asked Ray for (from the batch's log), each clip's
report line and where each model ran (``estimator_devices`` in the poses' meta: NLF should say
``cuda:0``). Run from a checkout: ``python bench/gpu_batch_check.py [WORK_DIR]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "backend"))

import nlf_models as M  # noqa: E402  (the tiny stand-ins the tests use)
from video_helpers import write_clip  # noqa: E402

CLIPS = 4
FRAMES = 24


def make_inputs(root: Path) -> Path:
    """``root/in/clipK/driving.mp4`` for K < CLIPS, each FRAMES frames of the stand-ins' scene."""
    for k in range(CLIPS):
        folder = root / "in" / f"clip{k}"
        folder.mkdir(parents=True, exist_ok=True)
        write_clip(folder / "driving.mp4", frames=FRAMES, size=M.SIZE,
                   make=lambda i, size: M.scene())
    return root / "in"


def run_batch(inputs: Path, out: Path, weights: Path, workers: int) -> None:
    from scail_protocol.sequence import PoseSequence

    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "scail_backend.cli", "batch", str(inputs),
                           "-o", str(out), "--estimator", "nlf", "--weights-dir", str(weights),
                           "--workers", str(workers), "--arch", "cpu"],
                          capture_output=True, text=True, timeout=600)
    print(f"workers {workers}: exit {done.returncode} in {time.perf_counter() - start:.1f} s")
    for line in done.stderr.splitlines():
        if "ask for" in line or line.startswith("batch:") or "Error" in line:
            print("  " + line)
    for poses in sorted(out.rglob("poses.npz")):
        meta = PoseSequence.load(poses).meta
        print(f"  {poses.parent.name}: models on {json.dumps(meta.get('estimator_devices'))}")


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    weights = M.write_weights(root / "weights")
    inputs = make_inputs(root)
    for workers in (1, 2):
        run_batch(inputs, root / f"out{workers}", weights, workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
