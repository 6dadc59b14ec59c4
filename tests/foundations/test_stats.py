"""Standard errors and confidence intervals (patchbook.stats)."""

import numpy as np
import pytest

from patchbook.stats import mean_interval, standard_error


def test_standard_error_closed_form():
    assert standard_error(50.0, 100) == pytest.approx(5.0)
    assert standard_error(100.0, 10) == 0.0
    assert standard_error(90.0, 10_000) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        standard_error(50.0, 0)


def test_mean_interval_covers_the_mean_at_the_stated_rate():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        m, lo, hi = mean_interval(rng.normal(3.0, 2.0, 8), level=0.9)
        assert lo <= m <= hi
        hits += lo <= 3.0 <= hi
    assert abs(hits / 2000 - 0.9) < 0.02
    assert mean_interval([4.0]) == (4.0, 4.0, 4.0)
    with pytest.raises(ValueError):
        mean_interval([])
