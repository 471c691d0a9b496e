"""Alignment to the reference image on the example footage: the solve's figures, and
before/after pictures for the README.

For every example in ../shared/examples (dance_a, dance_b, dance_full, duet) the first FRAMES
frames are estimated with MediaPipe, aligned to the example's reference image with and without
--adapt-bones, and the script prints the variant, m, s, p, q, the RMS reprojection error of the
matched points, whether the guardrails fell back, and the time the alignment took (reference
image estimation included). With --images DIR it also writes, per example, one PNG: the
reference image with the frame-0 render drawn over it, unaligned | aligned | aligned with
adapted bones (each panel at 3/8 of the working size).

    python bench/alignment.py
    python bench/alignment.py --images docs/images --examples dance_full duet
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TI_SKIP_VERSION_CHECK", "ON")
REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO.parent / "shared" / "examples"
NAMES = ("dance_a", "dance_b", "dance_full", "duet")


def first_frames(folder: Path, frames: int):
    from scail_backend.estimators import registry
    from scail_backend.video.reader import open_video
    from scail_protocol.camera import intrinsics_from_fov

    source = open_video(folder / "driving.mp4")
    pictures = [frame for _, frame in zip(range(frames), source)]
    with registry.create("mediapipe") as estimator:
        return estimator.estimate(pictures, size=source.size, fps=source.fps,
                                  K=intrinsics_from_fov(*source.size))


PANEL_SCALE = 0.375  # keeps each README picture under 200 KB


def over_reference(reference_rgb: np.ndarray, seq) -> np.ndarray:
    """Frame 0's render (capsules and overlay) drawn over the reference image, scaled down."""
    import cv2

    from scail_backend.render.pipeline import iter_rendered_frames

    frame = next(iter(iter_rendered_frames(seq.frames(0, 1), arch="cpu")))
    drawn = frame[..., 3:4] > 0
    overlay = frame[..., :3].any(-1, keepdims=True)
    picture = (reference_rgb * 0.45).astype(np.uint8)
    picture = np.where(drawn | overlay, frame[..., :3], picture)
    height, width = picture.shape[:2]
    size = (round(width * PANEL_SCALE), round(height * PANEL_SCALE))
    return cv2.resize(picture, size, interpolation=cv2.INTER_AREA)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", nargs="+", default=list(NAMES), choices=NAMES)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--images", type=Path, help="write before/after PNGs into this folder")
    args = parser.parse_args(argv)
    if not EXAMPLES.is_dir():
        print(f"no example footage at {EXAMPLES}", file=sys.stderr)
        return 1
    import cv2

    from scail_backend.align import align_to_reference, find_reference_image
    from scail_backend.align.reference import read_reference_image

    print(f"{'example':<11} {'bones':<7} {'variant':<7} {'m':>6} {'s':>6} {'p':>7} {'q':>7} "
          f"{'RMS px':>7} {'time s':>6}  fallback / note")
    for name in args.examples:
        folder = EXAMPLES / name
        seq = first_frames(folder, args.frames)
        image = find_reference_image(folder)
        panels = [over_reference(read_reference_image(image, seq.size), seq)]
        for adapt in (False, True):
            began = time.perf_counter()
            result = align_to_reference(seq, image, adapt=adapt)
            seconds = time.perf_counter() - began
            rec, solved = result.record, result.record["solved"] or {}
            note = rec["fallback"] or rec["checks"].get("clamped") or ""
            print(f"{name:<11} {'adapt' if adapt else 'as is':<7} {rec['variant']:<7} "
                  f"{solved.get('m', float('nan')):6.3f} {solved.get('s', float('nan')):6.3f} "
                  f"{solved.get('p', float('nan')):7.1f} {solved.get('q', float('nan')):7.1f} "
                  f"{solved.get('residual_px', float('nan')):7.1f} {seconds:6.2f}  {note}")
            panels.append(over_reference(read_reference_image(image, seq.size), result.sequence))
        if args.images:
            args.images.mkdir(parents=True, exist_ok=True)
            path = args.images / f"align_{name}.png"
            row = np.concatenate(panels, axis=1)
            cv2.imwrite(str(path), cv2.cvtColor(row, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_PNG_COMPRESSION, 9])
            print(f"  wrote {path} ({path.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
