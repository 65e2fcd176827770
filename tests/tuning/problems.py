"""Standard optimisation test functions, shared by the strategy tests and the tuning benchmarks."""

from __future__ import annotations

from typing import Any

import numpy as np


def branin(p: dict[str, Any]) -> float:
    """Branin on x in [-5, 10], y in [0, 15]; global minimum 0.397887 at three points."""
    x, y = p["x"], p["y"]
    b, c, t = 5.1 / (4 * np.pi**2), 5 / np.pi, 1 / (8 * np.pi)
    return float((y - b * x**2 + c * x - 6) ** 2 + 10 * (1 - t) * np.cos(x) + 10)


_HART_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
                    [17, 8, 0.05, 10, 0.1, 14]])
_HART_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                           [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_HART_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(p: dict[str, Any]) -> float:
    """Hartmann-6 on [0, 1]^6; global minimum -3.32237."""
    x = np.array([p[f"x{i}"] for i in range(6)])
    return float(-_HART_ALPHA @ np.exp(-np.sum(_HART_A * (x - _HART_P) ** 2, axis=1)))
