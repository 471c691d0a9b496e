"""Smooth curves over time for authoring motions (numpy; times in seconds)."""

from __future__ import annotations

import numpy as np


def ramp(t: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """0 before t0, 1 after t1, a C2-smooth (quintic smoothstep) rise in between."""
    x = np.clip((np.asarray(t, np.float64) - t0) / max(t1 - t0, 1e-9), 0.0, 1.0)
    return x * x * x * (x * (6.0 * x - 15.0) + 10.0)


def window(t: np.ndarray, t0: float, t1: float, t2: float, t3: float) -> np.ndarray:
    """Rises over [t0, t1], holds 1, falls over [t2, t3] (t0 <= t1 <= t2 <= t3)."""
    return ramp(t, t0, t1) - ramp(t, t2, t3)


def keys(t: np.ndarray, points) -> np.ndarray:
    """Ease between (time, value) keys: each segment is a smoothstep, constant outside.

    Args:
        t: (T,) seconds.
        points: sequence of (time_s, value), times strictly increasing.
    """
    times = np.array([p[0] for p in points], np.float64)
    values = np.array([p[1] for p in points], np.float64)
    if np.any(np.diff(times) <= 0):
        raise ValueError(f"key times must increase, got {times.tolist()}")
    t = np.asarray(t, np.float64)
    out = np.full(t.shape, values[0])
    for k in range(1, len(times)):
        out = out + (values[k] - values[k - 1]) * ramp(t, times[k - 1], times[k])
    return out


def integrate(t: np.ndarray, speed, samples_per_s: int = 200) -> np.ndarray:
    """∫₀ᵗ speed(τ) dτ at each t, by the trapezoid rule on a fine grid.

    ``speed`` maps an array of times (s) to rates (e.g. metres per second).
    """
    t = np.asarray(t, np.float64)
    end = float(max(t.max(initial=0.0), 0.0))
    grid = np.linspace(0.0, end, max(int(end * samples_per_s), 1) + 1)
    rate = np.asarray(speed(grid), np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(grid))])
    return np.interp(t, grid, cumulative)
