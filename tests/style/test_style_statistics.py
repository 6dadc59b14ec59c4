"""Channel statistics of feature maps (patchbook.style.statistics) against direct computations."""

import ast
import subprocess
import sys

import numpy as np
import pytest
import torch

from patchbook.style import statistics
from patchbook.style.statistics import gram, mean_covariance, mean_std


def _maps(seed=0, b=2, c=5, h=4, w=3):
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_gram_matches_sum_over_positions():
    f = _maps()
    G = gram(f)
    b, c, h, w = f.shape
    for k in range(b):
        for i in range(c):
            for j in range(c):
                direct = sum(float(f[k, i, y, x] * f[k, j, y, x]) for y in range(h) for x in range(w)) / (h * w)
                assert G[k, i, j].item() == pytest.approx(direct, rel=1e-12, abs=1e-12)
    # a single C x H x W map gives one C x C matrix
    assert gram(f[0]).shape == (5, 5)
    assert torch.allclose(gram(f[0]), G[0])


def test_mean_std_and_covariance_match_numpy():
    f = _maps(1)
    mu, sd = mean_std(f, eps=0.0)
    mu_c, cov = mean_covariance(f)
    _, cov_unbiased = mean_covariance(f, unbiased=True)
    for k in range(f.shape[0]):
        F = f[k].reshape(f.shape[1], -1).numpy()
        np.testing.assert_allclose(mu[k].numpy(), F.mean(1), rtol=1e-12)
        np.testing.assert_allclose(mu_c[k].numpy(), F.mean(1), rtol=1e-12)
        np.testing.assert_allclose(sd[k].numpy(), F.std(1), rtol=1e-12)
        np.testing.assert_allclose(cov[k].numpy(), np.cov(F, bias=True), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(cov_unbiased[k].numpy(), np.cov(F), rtol=1e-10, atol=1e-12)
    # Gram = covariance + mean outer product
    assert torch.allclose(gram(f), cov + mu[:, :, None] * mu[:, None, :])


def test_std_with_eps_is_the_root_of_the_variance_plus_eps():
    f = _maps(2)
    F = f.reshape(2, 5, -1).numpy()
    _, sd = mean_std(f, eps=statistics.MOMENT_EPS)
    np.testing.assert_allclose(sd.numpy(), np.sqrt(F.var(2) + 1e-5), rtol=1e-12)
    # a constant channel: std 0 without eps, sqrt(eps) with it
    const = torch.full((1, 2, 3, 3), 4.0, dtype=torch.float64)
    assert mean_std(const)[1].tolist() == [[0.0, 0.0]]
    assert mean_std(const, eps=1e-4)[1][0, 0].item() == pytest.approx(1e-2)


def test_leading_axes_are_kept_and_a_matrix_is_one_map():
    f = _maps(3, b=6).reshape(2, 3, 5, 4, 3)  # two leading axes
    mu, sd = mean_std(f)
    _, cov = mean_covariance(f)
    assert mu.shape == sd.shape == (2, 3, 5) and cov.shape == (2, 3, 5, 5)
    one = f[1, 2]
    torch.testing.assert_close(mean_std(one)[1], sd[1, 2])
    torch.testing.assert_close(mean_covariance(one)[1], cov[1, 2])
    # a C x N matrix is the map of its N columns
    x = one.reshape(5, -1)
    torch.testing.assert_close(mean_covariance(x)[1], cov[1, 2])
    torch.testing.assert_close(mean_std(x)[0], mu[1, 2])
    torch.testing.assert_close(gram(x), gram(one))
    with pytest.raises(ValueError, match="C x H x W"):
        mean_std(torch.zeros(4))


def test_importing_the_losses_loads_only_what_they_need():
    code = ("import sys, patchbook.style.losses; "
            "print(sorted(m for m in sys.modules if m.startswith('patchbook.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert ast.literal_eval(out) == ["patchbook.style", "patchbook.style.losses", "patchbook.style.statistics"]
