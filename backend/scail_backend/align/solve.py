"""The alignment camera solve (docs/pipeline.md §9.2): m, s, p, q by bounded least squares.

Model: u = fx·m·X/Z + cx + p, v = fy·m·s·Y/Z + cy + q (``camera.aligned_intrinsics``), cost
Σ wₖ‖targetₖ − projₖ‖² in pixels², start (1, 1, 0, 0), bounds m ∈ [0.7, 1.4], s ∈ [0.8, 1.15],
p ∈ [−W, W], q ∈ [−H, H]. The reference minimises the same cost with L-BFGS-B and a
finite-difference gradient; we use ``scipy.optimize.least_squares`` (trust-region reflective)
on the weighted residuals with the analytic Jacobian, which reaches the same minimum to far
tighter tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scail_protocol.camera import aligned_intrinsics, project

from .correspondences import Correspondences

START = (1.0, 1.0, 0.0, 0.0)
M_BOUNDS = (0.7, 1.4)        # docs/pipeline.md §9.2
S_BOUNDS = (0.8, 1.15)
PARAMETERS = ("m", "s", "p", "q")
TOLERANCE = 1e-12            # ftol, xtol and gtol of least_squares


@dataclass(frozen=True)
class Solution:
    """Result of one solve.

    Attributes:
        m, s, p, q: the parameters (p, q in pixels).
        K: (3, 3) the aligned intrinsics.
        on_bound: names of the parameters that ended on one of their bounds.
        residual_px: root mean square of the unweighted reprojection errors, pixels.
        max_error_px: largest reprojection error, pixels.
        cost: the weighted cost Σ wₖ‖eₖ‖², pixels².
    """

    m: float
    s: float
    p: float
    q: float
    K: np.ndarray
    on_bound: tuple
    residual_px: float
    max_error_px: float
    cost: float

    @property
    def params(self) -> tuple:
        return self.m, self.s, self.p, self.q


def bounds(size) -> tuple:
    """(lower, upper) bounds of (m, s, p, q) for an (H, W) image."""
    height, width = (float(v) for v in size)
    return ((M_BOUNDS[0], S_BOUNDS[0], -width, -height),
            (M_BOUNDS[1], S_BOUNDS[1], width, height))


def solve(corr: Correspondences, K: np.ndarray, size) -> Solution:
    """Solve m, s, p, q for the correspondences (at least two points).

    Args:
        corr: matched points (:func:`correspondences.select`).
        K: (3, 3) intrinsics the driving joints were estimated with (K₀).
        size: (H, W) image size, pixels.

    Returns:
        The :class:`Solution`.

    Raises:
        ValueError: fewer than two points, or a point at or behind the camera.
    """
    from scipy.optimize import least_squares

    if len(corr.indices) < 2:
        raise ValueError(f"the camera solve needs at least 2 points, got {len(corr.indices)}")
    z = corr.points3d[:, 2]
    if (z <= 0).any():
        raise ValueError("a matched joint is at or behind the camera")
    x, y = corr.points3d[:, 0] / z, corr.points3d[:, 1] / z
    sqrt_w = np.sqrt(corr.weights)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]

    def residuals(v):
        m, s, p, q = v
        du = fx * m * x + cx + p - corr.targets[:, 0]
        dv = fy * m * s * y + cy + q - corr.targets[:, 1]
        return np.concatenate([sqrt_w * du, sqrt_w * dv])

    def jacobian(v):
        m, s, _, _ = v
        n = len(x)
        jac = np.zeros((2 * n, 4))
        jac[:n, 0], jac[:n, 2] = sqrt_w * fx * x, sqrt_w
        jac[n:, 0], jac[n:, 1], jac[n:, 3] = sqrt_w * fy * s * y, sqrt_w * fy * m * y, sqrt_w
        return jac

    lower, upper = bounds(size)
    result = least_squares(residuals, START, jac=jacobian, bounds=(lower, upper), method="trf",
                           x_scale="jac", ftol=TOLERANCE, xtol=TOLERANCE, gtol=TOLERANCE)
    m, s, p, q = (float(v) for v in result.x)
    K1 = aligned_intrinsics(K, m, s, p, q)
    errors = np.linalg.norm(project(corr.points3d, K1) - corr.targets, axis=-1)
    span = np.subtract(upper, lower)
    near = (np.abs(result.x - lower) <= 1e-6 * span) | (np.abs(result.x - upper) <= 1e-6 * span)
    on_bound = tuple(name for name, hit, active in zip(PARAMETERS, near, result.active_mask)
                     if hit or active)
    return Solution(m=m, s=s, p=p, q=q, K=K1, on_bound=on_bound,
                    residual_px=float(np.sqrt(np.mean(errors ** 2))),
                    max_error_px=float(errors.max()),
                    cost=float(np.sum(corr.weights * errors ** 2)))
