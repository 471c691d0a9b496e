"""Guardrails the reference lacks: when to refuse a camera solve, and what to use instead.

A solve is refused when

* fewer than :data:`MIN_POINTS` points could be matched (4 unknowns need more than 2 points to
  be determined at all);
* it could not run at all (``unsolved``: every frame with a person has a matched joint at or
  behind the camera, which an estimator glitch can produce);
* it ended on a bound of m, s, p or q (the best camera lies outside the range the reference
  allows, so the result is a compromise at the edge, not a fit);
* its RMS reprojection error exceeds :data:`MAX_RESIDUAL_FRACTION` of the image diagonal (the
  reference character does not look like the driving pose, or a detection is wrong);
* with it, less than :data:`MIN_INSIDE_FRACTION` of the joints that are inside the frame with
  the default camera (all frames, all people) stay inside the frame: the aligned skeleton would
  be mostly outside the picture.

What a refused solve becomes: for a solve that merely ended on a bound, the policy decides:
"clamped" (the default) keeps it, clamped to the bounds (what the reference renders), and says
so; "default" uses the estimation camera K₀ unchanged (m = s = 1, p = q = 0: the aligned video
equals the unaligned one). The other reasons always use K₀, which a clamped solve cannot fix.
Every fallback says why, with its numbers. On the example footage with MediaPipe, s ends on its
upper bound 1.15 for three of the four reference images, so refusing those outright would
leave alignment unused almost always.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from scail_protocol.camera import project

from .solve import PARAMETERS, Solution, bounds

MIN_POINTS = 3
MAX_RESIDUAL_FRACTION = 0.08   # of the image diagonal, RMS over the matched points
MIN_INSIDE_FRACTION = 0.5      # of the skeleton's projected joints, over the whole clip
DEFAULT, CLAMPED = "default", "clamped"
FALLBACKS = (CLAMPED, DEFAULT)
IDENTITY = (1.0, 1.0, 0.0, 0.0)


@dataclass(frozen=True)
class Decision:
    """The camera to use and why.

    Attributes:
        params: (m, s, p, q) used (the identity when falling back to the default camera).
        K: (3, 3) the intrinsics used.
        fallback: None when the solve is used as is, else one sentence with the numbers.
        checks: the measured figures (points, residual_px, residual_limit_px, inside_fraction,
            inside_fraction_default, on_bound).
    """

    params: tuple
    K: np.ndarray
    fallback: Optional[str]
    checks: dict = field(default_factory=dict)


def inside(op18_mm: np.ndarray, K: np.ndarray, size) -> np.ndarray:
    """(..., 14) bool: the drawn body joints (OpenPose 0-13) that project inside the frame."""
    height, width = size
    uv = project(np.asarray(op18_mm)[..., :14, :], K)
    with np.errstate(invalid="ignore"):
        return ((uv[..., 0] >= 0) & (uv[..., 0] <= width - 1) & (uv[..., 1] >= 0)
                & (uv[..., 1] <= height - 1))


def kept_in_frame(op18_mm: np.ndarray, K0: np.ndarray, K: np.ndarray, size) -> float:
    """Fraction of the joints inside the frame with K0 that are still inside with K (every
    frame and person); 1.0 when none is inside with K0."""
    before = inside(op18_mm, K0, size)
    if not before.any():
        return 1.0
    return float(inside(op18_mm, K, size)[before].mean())


def decide(solution: Optional[Solution], num_points: int, K0: np.ndarray, size,
           op18_mm: np.ndarray, fallback: str = CLAMPED,
           unsolved: Optional[str] = None) -> Decision:
    """Accept the solve or fall back.

    Args:
        solution: the solve, or None when there were too few points to run it.
        num_points: matched points.
        K0: (3, 3) the default (estimation) camera.
        size: (H, W).
        op18_mm: (P, T, 18, 3) the joints that will be rendered, mm.
        fallback: "clamped" or "default" (see the module docstring).
        unsolved: why the solve could not run (``solution`` is then None); the decision falls
            back to the default camera with this reason.

    Returns:
        The :class:`Decision`.

    Raises:
        ValueError: ``fallback`` is not one of :data:`FALLBACKS`.
    """
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {', '.join(FALLBACKS)}, got {fallback!r}")
    checks = {"points": int(num_points)}
    default = Decision(IDENTITY, np.array(K0, dtype=np.float64), None, checks)
    if solution is None and unsolved:
        return _fall_back(default, unsolved)
    if solution is None or num_points < MIN_POINTS:
        return _fall_back(default, f"only {num_points} point(s) of the reference image match the "
                                   f"driving pose (at least {MIN_POINTS} are needed)")
    checks["on_bound"] = list(solution.on_bound)
    checks["residual_px"] = solution.residual_px
    if solution.on_bound:
        lower, upper = bounds(size)
        names = ", ".join(f"{name} = {getattr(solution, name):.4g} (bounds "
                          f"[{lower[PARAMETERS.index(name)]:g}, {upper[PARAMETERS.index(name)]:g}])"
                          for name in solution.on_bound)
        if fallback == DEFAULT:
            return _fall_back(default, f"the solve ended on its bounds: {names}")
        checks["clamped"] = f"the solve ended on its bounds and is kept clamped: {names}"
    limit = MAX_RESIDUAL_FRACTION * math.hypot(*size)
    checks["residual_limit_px"] = limit
    if solution.residual_px > limit:
        return _fall_back(default, f"the solve leaves an RMS reprojection error of "
                                   f"{solution.residual_px:.1f} px over {num_points} points, more "
                                   f"than {MAX_RESIDUAL_FRACTION:.0%} of the image diagonal "
                                   f"({limit:.1f} px)")
    kept = kept_in_frame(op18_mm, K0, solution.K, size)
    checks["kept_in_frame"] = kept
    if kept < MIN_INSIDE_FRACTION:
        return _fall_back(default, f"with the solved camera only {kept:.0%} of the joints that "
                                   f"the default camera shows stay inside the frame (at least "
                                   f"{MIN_INSIDE_FRACTION:.0%} are needed)")
    return Decision(solution.params, solution.K, None, checks)


def _fall_back(default: Decision, why: str) -> Decision:
    return Decision(default.params, default.K, f"{why}; using the default camera", default.checks)
