"""Uncertainty of measured numbers: binomial standard errors of accuracies,
confidence intervals of means."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as _stats


def standard_error(accuracy_percent: float, n: int) -> float:
    """Binomial standard error, in percentage points, of an accuracy (in
    percent) measured on ``n`` independent samples."""
    if n < 1:
        raise ValueError(f"an accuracy needs at least one sample, got n = {n}")
    p = accuracy_percent / 100.0
    return 100.0 * math.sqrt(max(p * (1 - p), 0.0) / n)


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` and its Student-t
    confidence interval at ``level`` (``low == high == mean`` for one value)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError("mean_interval needs at least one finite value")
    m = float(v.mean())
    if v.size == 1:
        return m, m, m
    half = float(_stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return m, m - half, m + half
