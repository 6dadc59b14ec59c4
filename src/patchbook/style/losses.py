"""Losses of neural style transfer, on feature maps or sets of feature vectors.

Feature *maps* are tensors ``B x C x H x W`` (or ``C x H x W``); feature
*sets* are matrices ``N x D`` (one feature vector per row), as STROTSS uses
after sampling spatial positions.

Losses on maps compare their channel statistics (:mod:`.statistics`: Gram
matrices, means and standard deviations, covariances).

Distances between feature sets (STROTSS, Kolkin et al. 2019): the relaxed
earth mover's distance, which drops one marginal constraint of optimal
transport at a time and keeps the larger of the two lower bounds; the entropic
(Sinkhorn, Cuturi 2013) transport cost, the variant of the artists' paper
(Kerdreux, Thiry & Kerdreux 2020); the moment loss; the self-similarity
content loss.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .statistics import MOMENT_EPS, gram, mean_covariance, mean_std

# ---------------------------------------------------------------- maps ----


def content_loss(f: torch.Tensor, f_c: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of two feature maps (Gatys' content term)."""
    return (f - f_c).pow(2).mean()


def gram_loss(f: torch.Tensor, gram_target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the Gram matrix of ``f`` and a target
    Gram matrix (Gatys' style term per layer, up to a constant factor)."""
    return (gram(f) - gram_target).pow(2).mean()


def moment_loss(f: torch.Tensor, f_s: torch.Tensor) -> torch.Tensor:
    """AdaIN's style loss on one layer: ``||mu(f) - mu(f_s)|| + ||sigma(f) - sigma(f_s)||``
    (Euclidean norms over channels), averaged over the batch."""
    mu, sd = mean_std(f, MOMENT_EPS)
    mu_s, sd_s = mean_std(f_s, MOMENT_EPS)
    return ((mu - mu_s).norm(dim=-1) + (sd - sd_s).norm(dim=-1)).mean()


def covariance_loss(f: torch.Tensor, f_s: torch.Tensor) -> torch.Tensor:
    """Frobenius distance between channel means and covariances of two maps."""
    (mu, cov), (mu_s, cov_s) = mean_covariance(f), mean_covariance(f_s)
    return ((mu - mu_s).norm(dim=-1) + (cov - cov_s).flatten(-2).norm(dim=-1)).mean()


def total_variation(img: torch.Tensor, p: int = 1) -> torch.Tensor:
    """Mean absolute (``p=1``) or squared (``p=2``) difference between
    neighbouring pixels of an image ``[B x] C x H x W``."""
    if img.ndim == 3:
        img = img[None]
    dx = img[..., :, 1:] - img[..., :, :-1]
    dy = img[..., 1:, :] - img[..., :-1, :]
    if p == 1:
        return dx.abs().mean() + dy.abs().mean()
    return dx.pow(2).mean() + dy.pow(2).mean()


# ---------------------------------------------------------------- sets ----


def cosine_cost(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``C_ij = 1 - <x_i, y_j> / (|x_i| |y_j|)`` for ``x: N x D``, ``y: M x D``."""
    xn = x / (x.norm(dim=1, keepdim=True) + eps)
    yn = y / (y.norm(dim=1, keepdim=True) + eps)
    return 1 - xn @ yn.T


def euclidean_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``C_ij = |x_i - y_j|`` (with a small floor so the gradient stays finite)."""
    d2 = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1)[None] - 2 * x @ y.T
    return torch.sqrt(d2.clamp_min(1e-10))


def cost_matrix(x: torch.Tensor, y: torch.Tensor, cost: str = "cosine") -> torch.Tensor:
    """Pairwise cost ``N x M``: ``"cosine"``, ``"euclidean"`` or ``"cosine+euclidean"``
    (STROTSS' cost on colours)."""
    if cost == "cosine":
        return cosine_cost(x, y)
    if cost == "euclidean":
        return euclidean_cost(x, y)
    if cost == "cosine+euclidean":
        return cosine_cost(x, y) + euclidean_cost(x, y)
    raise ValueError(f"cost must be 'cosine', 'euclidean' or 'cosine+euclidean', got {cost!r}")


def relaxed_emd(x: torch.Tensor, y: torch.Tensor, cost: str = "cosine", C: torch.Tensor | None = None) -> torch.Tensor:
    """Relaxed earth mover's distance of STROTSS between uniform point sets:
    ``max(mean_i min_j C_ij, mean_j min_i C_ij)``.

    Each term is the optimal transport cost with one of the two marginal
    constraints dropped, so both (and their max) are lower bounds of the
    exact transport cost. ``C`` may be given precomputed.
    """
    if C is None:
        C = cost_matrix(x, y, cost)
    return torch.maximum(C.min(1).values.mean(), C.min(0).values.mean())


def sinkhorn_plan(C: torch.Tensor, eps: float = 0.1, n_iter: int = 30,
                  a: torch.Tensor | None = None, b: torch.Tensor | None = None) -> torch.Tensor:
    """Entropic optimal transport plan for the cost ``C`` (``N x M``) between
    weights ``a`` and ``b`` (uniform by default), by ``n_iter`` Sinkhorn
    iterations in the log domain (stable for small ``eps``)."""
    n, m = C.shape
    log_a = torch.log(a) if a is not None else torch.full((n,), -float(torch.log(torch.tensor(float(n)))), dtype=C.dtype)
    log_b = torch.log(b) if b is not None else torch.full((m,), -float(torch.log(torch.tensor(float(m)))), dtype=C.dtype)
    log_a, log_b = log_a.to(C.device), log_b.to(C.device)
    shift = C.min().detach()
    if float(C.max().detach() - shift) / eps < 50:
        # the kernel exp(-C/eps) is far from underflow: plain matrix-vector scaling, much faster
        K = torch.exp(-(C - shift) / eps)
        a, b = log_a.exp(), log_b.exp()
        v = torch.ones(m, dtype=C.dtype, device=C.device)
        for _ in range(n_iter):
            u = a / (K @ v)
            v = b / (K.T @ u)
        return u[:, None] * K * v[None, :]
    Ke = -C / eps
    f = torch.zeros(n, dtype=C.dtype, device=C.device)
    g = torch.zeros(m, dtype=C.dtype, device=C.device)
    for _ in range(n_iter):
        f = log_a - torch.logsumexp(Ke + g[None, :], dim=1)
        g = log_b - torch.logsumexp(Ke + f[:, None], dim=0)
    return torch.exp(Ke + f[:, None] + g[None, :])


def sinkhorn_emd(x: torch.Tensor, y: torch.Tensor, cost: str = "cosine", eps: float = 0.1,
                 n_iter: int = 30, C: torch.Tensor | None = None, detach_plan: bool = False) -> torch.Tensor:
    """Transport cost ``<P, C>`` of the entropic plan ``P`` (Sinkhorn) between
    uniform point sets: the variant of the relaxed EMD in the artists' paper
    (there ``eps = 0.1``, 30 iterations). It tends to the exact transport cost
    as ``eps -> 0`` (with enough iterations).

    ``detach_plan=True`` computes the plan without gradients, so the gradient
    is ``P`` itself (the envelope-theorem gradient of the transport cost), which
    is much cheaper than differentiating through the iterations.
    """
    if C is None:
        C = cost_matrix(x, y, cost)
    if detach_plan:
        with torch.no_grad():
            P = sinkhorn_plan(C.detach(), eps, n_iter)
    else:
        P = sinkhorn_plan(C, eps, n_iter)
    return (P * C).sum()


def set_moments(y: torch.Tensor, blocks: Sequence[int] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Mean ``1 x D`` and covariance(s) of a feature set ``N x D``: one
    ``D x D`` matrix, or one per block of consecutive columns of widths ``blocks``."""
    mu = y.mean(0, keepdim=True)
    yc = y - mu
    widths = [y.shape[1]] if blocks is None else list(blocks)
    if sum(widths) != y.shape[1]:
        raise ValueError(f"blocks {widths} do not add up to the {y.shape[1]} columns")
    covs, start = [], 0
    for w in widths:
        b = yc[:, start:start + w]
        covs.append(b.T @ b / y.shape[0])
        start += w
    return mu, covs


def set_moment_loss(x: torch.Tensor, y: torch.Tensor | None = None, blocks: Sequence[int] | None = None,
                    y_moments: tuple[torch.Tensor, list[torch.Tensor]] | None = None) -> torch.Tensor:
    """STROTSS' moment loss between feature sets ``N x D`` and ``M x D``:
    ``mean |mu_x - mu_y| + mean |Sigma_x - Sigma_y|`` (i.e. ``1/d`` and ``1/d^2``
    times the L1 norms).

    With ``blocks`` (widths of groups of columns, e.g. the layers of a
    hypercolumn) only the block-diagonal of the covariances is compared (the
    mean is over those entries): far cheaper for long hypercolumns.
    ``y_moments`` (from :func:`set_moments`) saves recomputing the target's.
    """
    mu_y, cov_y = y_moments if y_moments is not None else set_moments(y, blocks)
    mu_x, cov_x = set_moments(x, blocks)
    diff = sum((a - b).abs().sum() for a, b in zip(cov_x, cov_y))
    n = sum(a.numel() for a in cov_x)
    return (mu_x - mu_y).abs().mean() + diff / n


def self_similarity_loss(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """STROTSS' content loss: with ``D^X`` and ``D^C`` the pairwise cosine
    distances within the feature sets ``x`` and ``c`` (same ``N`` positions),
    each column normalised to sum to one,
    ``(1/N) sum_ij |D^X_ij - D^C_ij|`` (the ``1/N^2`` mean times ``N``, as in the
    reference code)."""
    dx = cosine_cost(x, x)
    dc = cosine_cost(c, c)
    dx = dx / dx.sum(0, keepdim=True).clamp_min(1e-8)
    dc = dc / dc.sum(0, keepdim=True).clamp_min(1e-8)
    return (dx - dc).abs().mean() * x.shape[0]


# STROTSS compares colours in a decorrelated (YUV-like) space.
_YUV = torch.tensor([[0.577350, 0.577350, 0.577350],
                     [-0.577350, 0.788675, -0.211325],
                     [-0.577350, -0.211325, 0.788675]])


def rgb_to_yuv(x: torch.Tensor) -> torch.Tensor:
    """Colours ``N x 3`` to STROTSS' YUV-like orthogonal basis."""
    return x @ _YUV.to(x).T


def strotss_loss(x: torch.Tensor, c: torch.Tensor, s: torch.Tensor, content_weight: float,
                 ot: str = "relaxed", sinkhorn_eps: float = 0.1, sinkhorn_iter: int = 30,
                 moment_weight: float = 1.0, blocks: Sequence[int] | None = None,
                 s_moments: tuple | None = None, detach_plan: bool = True) -> torch.Tensor:
    """STROTSS' objective on sampled hypercolumns.

    ``x`` (output) and ``c`` (content) are ``N x D`` at the same positions,
    ``s`` (style) ``M x D``; the first three columns are RGB (centred), the
    rest VGG activations. Returns
    ``(w ell_C + ell_OT + m (ell_m + ell_p / max(w, 1))) / (w + 1 + m)``
    with ``ell_C`` the self-similarity loss, ``ell_OT`` the relaxed EMD
    (``ot="relaxed"``) or Sinkhorn cost (``ot="sinkhorn"``) with cosine cost
    on the hypercolumns, ``ell_m`` the moment loss (block-diagonal with
    ``blocks``; ``s_moments`` precomputed by :func:`set_moments`) and ``ell_p``
    the palette loss (same OT on YUV colours, cosine + Euclidean cost).
    """
    if ot == "relaxed":
        dist = lambda a, b, cost: relaxed_emd(a, b, cost)  # noqa: E731
    elif ot == "sinkhorn":
        dist = lambda a, b, cost: sinkhorn_emd(a, b, cost, eps=sinkhorn_eps, n_iter=sinkhorn_iter,  # noqa: E731
                                               detach_plan=detach_plan)
    else:
        raise ValueError(f"ot must be 'relaxed' or 'sinkhorn', got {ot!r}")
    ell_c = self_similarity_loss(x, c)
    ell_r = dist(x, s, "cosine")
    ell_m = set_moment_loss(x, s, blocks=blocks, y_moments=s_moments)
    ell_p = dist(rgb_to_yuv(x[:, :3]), rgb_to_yuv(s[:, :3]), "cosine+euclidean")
    style = ell_r + moment_weight * (ell_m + ell_p / max(content_weight, 1.0))
    return (content_weight * ell_c + style) / (content_weight + 1.0 + moment_weight)
