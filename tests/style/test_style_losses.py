"""Style-transfer losses against direct formulas, exact optimal transport and invariants."""

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from patchbook.style import losses, statistics


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _maps(seed=0, b=2, c=5, h=4, w=3):
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ------------------------------------------------------------ statistics ----


def test_statistic_losses_vanish_on_identical_and_detect_changes():
    f, g = _maps(2), _maps(3)
    assert losses.gram_loss(f, statistics.gram(f)).item() == pytest.approx(0, abs=1e-14)
    assert losses.gram_loss(g, statistics.gram(f)).item() > 0
    assert losses.content_loss(f, f).item() == 0
    assert losses.content_loss(f, g).item() == pytest.approx(((f - g) ** 2).mean().item())
    assert losses.moment_loss(f, f).item() == pytest.approx(0, abs=1e-12)
    # channel-wise affine changes of a map change exactly its mean and std
    a = torch.tensor([2.0, 1.0, 0.5, 3.0, 1.0]).view(1, -1, 1, 1)
    b = torch.tensor([0.0, 1.0, -1.0, 0.0, 0.5]).view(1, -1, 1, 1)
    mu, sd = statistics.mean_std(f, eps=0)
    mu2, sd2 = statistics.mean_std(a * f + b, eps=0)
    assert torch.allclose(mu2, a.view(1, -1) * mu + b.view(1, -1))
    assert torch.allclose(sd2, a.view(1, -1) * sd)
    assert losses.covariance_loss(f, f).item() == pytest.approx(0, abs=1e-12)
    assert losses.covariance_loss(f, a * f).item() > 0


def test_total_variation():
    const = torch.full((3, 5, 6), 0.3)
    assert losses.total_variation(const).item() == 0
    ramp = torch.arange(6.0).repeat(1, 5, 1)  # +1 per column, constant down columns
    assert losses.total_variation(ramp).item() == pytest.approx(1.0)
    assert losses.total_variation(2 * ramp, p=2).item() == pytest.approx(4.0)


# ------------------------------------------------------ optimal transport ----


def _exact_ot(C: torch.Tensor) -> float:
    """Exact transport cost between two uniform sets of equal size: an assignment."""
    r, c = linear_sum_assignment(C.numpy())
    return float(C.numpy()[r, c].mean())


@pytest.mark.parametrize("cost", ["cosine", "euclidean"])
@pytest.mark.parametrize("seed", range(5))
def test_relaxed_emd_is_a_lower_bound_of_exact_transport(cost, seed):
    g = torch.Generator().manual_seed(seed)
    n, d = 7, 4
    x, y = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g) + 0.5
    C = losses.cost_matrix(x, y, cost)
    exact = _exact_ot(C)
    r = losses.relaxed_emd(x, y, cost).item()
    assert r <= exact + 1e-12
    # both relaxations (one marginal dropped each) are lower bounds too, and r is their max
    assert C.min(1).values.mean().item() <= exact + 1e-12
    assert C.min(0).values.mean().item() <= exact + 1e-12
    assert r == pytest.approx(max(C.min(1).values.mean().item(), C.min(0).values.mean().item()))


def test_relaxed_emd_is_exact_when_nearest_neighbours_are_a_permutation():
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    y = x[torch.randperm(6, generator=torch.Generator().manual_seed(1))] + 1e-3
    C = losses.cost_matrix(x, y, "euclidean")
    assert losses.relaxed_emd(x, y, "euclidean").item() == pytest.approx(_exact_ot(C), rel=1e-9)
    assert losses.relaxed_emd(x, x[[2, 0, 1, 5, 4, 3]], "cosine").item() == pytest.approx(0, abs=1e-6)


def test_relaxed_emd_can_be_strictly_below_transport():
    # two clusters of different masses: every point has a neighbour at distance 0 in the
    # other set, but transport must move a third of the mass across
    x = torch.tensor([[0.0], [0.0], [10.0]])
    y = torch.tensor([[0.0], [10.0], [10.0]])
    C = losses.cost_matrix(x, y, "euclidean")
    assert _exact_ot(C) == pytest.approx(10 / 3, rel=1e-4)
    assert losses.relaxed_emd(x, y, "euclidean").item() < 1e-4


@pytest.mark.parametrize("cost", ["cosine", "euclidean"])
def test_sinkhorn_tends_to_exact_transport(cost):
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    C = losses.cost_matrix(x, y, cost)
    exact = _exact_ot(C)
    gaps = []
    for eps in (1.0, 0.3, 0.1, 0.03, 0.01, 0.003):
        val = losses.sinkhorn_emd(x, y, cost, eps=eps, n_iter=600).item()
        assert val >= exact - 1e-4  # a (nearly) feasible plan costs at least the optimum
        gaps.append(val - exact)
    assert all(b <= a + 1e-4 for a, b in zip(gaps, gaps[1:])), gaps
    assert abs(gaps[-1]) < 1e-3 * max(1.0, exact) and gaps[0] > 10 * abs(gaps[-1])


def test_sinkhorn_plan_has_uniform_marginals_and_detached_gradient_is_the_plan():
    g = torch.Generator().manual_seed(4)
    C = torch.rand(5, 7, generator=g)
    P = losses.sinkhorn_plan(C, eps=0.1, n_iter=500)
    assert torch.allclose(P.sum(1), torch.full((5,), 1 / 5), atol=1e-8)
    assert torch.allclose(P.sum(0), torch.full((7,), 1 / 7), atol=1e-8)
    Cg = C.clone().requires_grad_(True)
    losses.sinkhorn_emd(None, None, C=Cg, eps=0.1, n_iter=500, detach_plan=True).backward()
    assert torch.allclose(Cg.grad, P, atol=1e-10)


# ----------------------------------------------------------- STROTSS terms ----


def test_set_moment_loss_matches_formula_and_blocks():
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(20, 6, generator=g), 2 * torch.randn(30, 6, generator=g) + 1
    X, Y = x.numpy(), y.numpy()
    direct = np.abs(X.mean(0) - Y.mean(0)).mean() + np.abs(np.cov(X.T, bias=True) - np.cov(Y.T, bias=True)).mean()
    assert losses.set_moment_loss(x, y).item() == pytest.approx(direct, rel=1e-10)
    # block-diagonal version: mean over the entries of the diagonal blocks only
    blocks = [2, 4]
    d = np.abs(np.cov(X.T, bias=True) - np.cov(Y.T, bias=True))
    block = (d[:2, :2].sum() + d[2:, 2:].sum()) / (4 + 16)
    assert losses.set_moment_loss(x, y, blocks=blocks).item() == pytest.approx(
        np.abs(X.mean(0) - Y.mean(0)).mean() + block, rel=1e-10)
    pre = losses.set_moments(y, blocks)
    assert losses.set_moment_loss(x, y_moments=pre, blocks=blocks).item() == pytest.approx(
        losses.set_moment_loss(x, y, blocks=blocks).item())
    assert losses.set_moment_loss(y, y).item() == pytest.approx(0, abs=1e-12)


def test_self_similarity_loss_ignores_positive_rescaling():
    g = torch.Generator().manual_seed(6)
    c = torch.rand(10, 4, generator=g)
    scale = torch.rand(10, 1, generator=g) + 0.5  # per-position scaling keeps cosine distances
    assert losses.self_similarity_loss(c * scale, c).item() == pytest.approx(0, abs=1e-6)
    assert losses.self_similarity_loss(torch.rand(10, 4, generator=g), c).item() > 0.01


def test_strotss_loss_is_a_weighted_average_of_its_terms():
    g = torch.Generator().manual_seed(7)
    x, c, s = torch.rand(12, 8, generator=g), torch.rand(12, 8, generator=g), torch.rand(20, 8, generator=g)
    w = 4.0
    ell_c = losses.self_similarity_loss(x, c)
    ell_r = losses.relaxed_emd(x, s)
    ell_m = losses.set_moment_loss(x, s)
    ell_p = losses.relaxed_emd(losses.rgb_to_yuv(x[:, :3]), losses.rgb_to_yuv(s[:, :3]), "cosine+euclidean")
    expected = (w * ell_c + ell_r + ell_m + ell_p / w) / (w + 2)
    assert losses.strotss_loss(x, c, s, w).item() == pytest.approx(expected.item())
    # the YUV basis is orthonormal: Euclidean colour distances are kept
    assert torch.allclose(losses._YUV.double() @ losses._YUV.double().T, torch.eye(3), atol=1e-5)
    sk = losses.strotss_loss(x, c, s, w, ot="sinkhorn", sinkhorn_eps=0.01, sinkhorn_iter=200)
    assert sk.item() >= losses.strotss_loss(x, c, s, w).item() - 1e-6  # transport >= its relaxation
