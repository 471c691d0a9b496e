"""Runs of consecutive True frames in a (T,) bool mask (numpy only).

One rule for the contacts of feet (retargeting, foot locking, the whole-take fit's still feet)
and the stretches of frames where a person is present.
"""

from __future__ import annotations

import numpy as np


def true_runs(mask: np.ndarray) -> list:
    """[(start, stop)] of the runs of True in a (T,) bool array, ``stop`` exclusive, as ints."""
    padded = np.concatenate([[False], np.asarray(mask, bool), [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def drop_short_runs(mask: np.ndarray, min_frames: int) -> np.ndarray:
    """(T,) bool: ``mask`` without its runs of True shorter than ``min_frames``."""
    out = np.array(mask, bool)
    for start, stop in true_runs(out):
        if stop - start < min_frames:
            out[start:stop] = False
    return out


def bridge_gaps(mask: np.ndarray, gap: int) -> np.ndarray:
    """(T,) bool: ``mask`` with breaks of at most ``gap`` frames between two runs filled."""
    out = np.array(mask, bool)
    runs = true_runs(out)
    for (_, stop), (start, _) in zip(runs[:-1], runs[1:]):
        if start - stop <= gap:
            out[stop:start] = True
    return out
