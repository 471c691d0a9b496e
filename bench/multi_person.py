"""Limits of the mediapipe estimator's people search: how small, how hidden, how many.

Prints, for the embedded estimator (MediaPipe Holistic + the search of
``estimators/person_search.py``), with the full-frame cascade alone ("cascade") and with crops
and tiles ("search", the default):

* size: the one dancer of ``dance_full`` shrunk to a range of heights and pasted into a frame
  of the working size (background: the same frame, blurred), the share of frames where they are
  found and the height found (px, working frame);
* occlusion: the dancer at full size with a grey band over the bottom (legs) or one side of
  the body, share of frames found;
* people: three shrunk copies of the dancer side by side, and the ``duet`` clip: people found
  per frame, seconds per frame;
* the real-world case ``tiny_person_1080p.mp4``;
* the search's CPU cost per frame on a one-person clip (``dance_a``).

Needs ``../shared/examples`` (and ``../shared/cases`` for the last line). Run:

    python bench/multi_person.py [--frames 16]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO.parent / "shared" / "examples"
CASES = REPO.parent / "shared" / "cases"
HEIGHTS_PX = (300, 200, 170, 140, 114, 95, 80, 65, 50, 40)
BAND_FRACTIONS = (0.25, 0.5, 0.75)
GREY = 128


def load_frames(path: Path, count: int) -> list:
    """The first ``count`` working-size RGB frames of a video (the project's reader)."""
    from scail_backend.video.reader import open_video

    frames = []
    for frame in open_video(path):
        frames.append(np.ascontiguousarray(frame))
        if len(frames) == count:
            break
    return frames


def estimate(frames: list, search_small: bool):
    """(sequence after tracking, seconds per frame) from the mediapipe estimator."""
    from scail_backend.estimators.mediapipe_holistic import MediaPipeHolisticEstimator
    from scail_backend.tracking import track_people

    height, width = frames[0].shape[:2]
    began = time.perf_counter()
    with MediaPipeHolisticEstimator(search_small=search_small) as est:
        seq = est.estimate(iter(frames), size=(height, width), fps=16.0)
    seconds = (time.perf_counter() - began) / len(frames)
    return track_people(seq, params=_short_clip_params()), seconds


def _short_clip_params():
    from scail_backend.tracking import TrackerParams

    return TrackerParams(min_track_frames=1, min_track_s=0.0)


def shrunk(frame: np.ndarray, box, target_px: int, place=(0.5, 0.6)) -> np.ndarray:
    """The frame with its person box scaled so the person is ``target_px`` tall, pasted at
    ``place`` (fractions of the frame) over the blurred frame."""
    import cv2

    height, width = frame.shape[:2]
    x1, y1, x2, y2 = box
    scale = target_px / max(y2 - y1, 1.0)
    small = cv2.resize(frame, (max(1, int(width * scale)), max(1, int(height * scale))),
                       interpolation=cv2.INTER_AREA)
    canvas = cv2.GaussianBlur(frame, (0, 0), 25)
    cx, cy = (x1 + x2) / 2 * scale, (y1 + y2) / 2 * scale
    ox, oy = int(place[0] * width - cx), int(place[1] * height - cy)
    sy0, sx0 = max(0, -oy), max(0, -ox)
    dy0, dx0 = max(0, oy), max(0, ox)
    h = min(small.shape[0] - sy0, height - dy0)
    w = min(small.shape[1] - sx0, width - dx0)
    canvas[dy0:dy0 + h, dx0:dx0 + w] = small[sy0:sy0 + h, sx0:sx0 + w]
    return canvas


def banded(frame: np.ndarray, box, fraction: float, side: str) -> np.ndarray:
    """The frame with a grey band over ``fraction`` of the person box (bottom, or left side)."""
    out = frame.copy()
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    if side == "bottom":
        out[max(0, int(y2 - fraction * (y2 - y1))):max(0, y2), max(0, x1):max(0, x2)] = GREY
    else:
        out[max(0, y1):max(0, y2), max(0, x1):max(0, int(x1 + fraction * (x2 - x1)))] = GREY
    return out


def found_share(seq) -> float:
    return float(seq.present().any(0).mean()) if seq.num_people else 0.0


def median_height(seq) -> float:
    if not seq.num_people:
        return float("nan")
    return float(np.nanmedian(seq.bbox[0, :, 3] - seq.bbox[0, :, 1]))


def person_boxes(frames: list) -> list:
    """The dancer's box in each frame (found at full size by the plain estimator)."""
    seq, _ = estimate(frames, search_small=False)
    boxes = []
    for t in range(seq.num_frames):
        box = seq.bbox[0, t]
        boxes.append(box if np.isfinite(box).all() else boxes[-1] if boxes else None)
    if any(b is None for b in boxes):
        raise SystemExit("the dancer is not found at full size; nothing to measure")
    return boxes


def report_size(frames, boxes) -> None:
    print("\nsize: one dancer shrunk into a 512x896 frame  (found share, height found px)")
    print(f"{'height px':>10} {'cascade':>16} {'search':>16}")
    for target in HEIGHTS_PX:
        made = [shrunk(f, b, target) for f, b in zip(frames, boxes)]
        cells = []
        for search in (False, True):
            seq, _ = estimate(made, search)
            cells.append(f"{found_share(seq):5.0%} {median_height(seq):6.0f}px")
        print(f"{target:>10} {cells[0]:>16} {cells[1]:>16}")


def report_occlusion(frames, boxes) -> None:
    print("\nocclusion: a grey band over part of the dancer  (found share, search)")
    for side in ("bottom", "left"):
        cells = []
        for fraction in BAND_FRACTIONS:
            seq, _ = estimate([banded(f, b, fraction, side) for f, b in zip(frames, boxes)],
                              True)
            cells.append(f"{fraction:.0%}: {found_share(seq):4.0%}")
        print(f"  band over the {side:<6} " + "   ".join(cells))


def report_people(frames, boxes, count: int) -> None:
    print("\npeople found per frame  (mean, max; s/frame)")
    trio = []
    for f, b in zip(frames, boxes):
        canvas = shrunk(f, b, 200, place=(0.2, 0.6))
        for place in ((0.5, 0.6), (0.8, 0.6)):
            piece = shrunk(f, b, 200, place=place)
            x0 = int(place[0] * f.shape[1]) - 150
            canvas[:, max(0, x0):x0 + 300] = piece[:, max(0, x0):x0 + 300]
        trio.append(canvas)
    clips = {"three copies, 200 px": trio}
    duet = EXAMPLES / "duet" / "driving.mp4"
    if duet.is_file():
        clips["duet (2 dancers)"] = load_frames(duet, count)
    for name, clip in clips.items():
        for search in (False, True):
            seq, seconds = estimate(clip, search)
            per_frame = seq.present().sum(0)
            print(f"  {name:<22} {'search' if search else 'cascade':<8} "
                  f"mean {per_frame.mean():.2f}  max {per_frame.max(initial=0)}  "
                  f"{seconds:.2f} s/frame")


def report_tiny(count: int) -> None:
    tiny = CASES / "tiny_person_1080p.mp4"
    if not tiny.is_file():
        return
    frames = load_frames(tiny, count)
    print("\ncases/tiny_person_1080p.mp4 (dancer ~114 px in the working frame)")
    for search in (False, True):
        seq, seconds = estimate(frames, search)
        print(f"  {'search' if search else 'cascade':<8} found on {found_share(seq):.0%} of "
              f"{len(frames)} frames, height {median_height(seq):.0f} px, {seconds:.2f} s/frame")


def report_search_cost() -> None:
    """CPU time per frame of the search on a one-person clip (``dance_a``, whole): one graph
    alone, the cascade, and the default search (cascade, crops and tiles)."""
    from scail_backend.estimators.mediapipe_holistic import MediaPipeHolisticEstimator

    frames = load_frames(EXAMPLES / "dance_a" / "driving.mp4", 10_000)
    print(f"\nsearch cost on a one-person clip (dance_a, {len(frames)} frames; CPU ms/frame)")
    for label, options in (("one graph", dict(max_people_per_frame=1, search_small=False)),
                           ("cascade", dict(search_small=False)), ("search", {})):
        with MediaPipeHolisticEstimator(**options) as est:
            est.estimate(iter(frames[:4]), size=frames[0].shape[:2], fps=16.0)  # models warm
            began = time.process_time()
            est.estimate(iter(frames), size=frames[0].shape[:2], fps=16.0)
        print(f"  {label:<10} {1000 * (time.process_time() - began) / len(frames):6.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16, help="frames per measurement")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    source = EXAMPLES / "dance_full" / "driving.mp4"
    if not source.is_file():
        raise SystemExit(f"{source} not found")
    frames = load_frames(source, args.frames)
    boxes = person_boxes(frames)
    full = np.median([b[3] - b[1] for b in boxes])
    print(f"dance_full: {len(frames)} frames, dancer {full:.0f} px tall at the working size")
    report_size(frames, boxes)
    report_occlusion(frames, boxes)
    report_people(frames, boxes, args.frames)
    report_tiny(24)
    report_search_cost()


if __name__ == "__main__":
    main()
