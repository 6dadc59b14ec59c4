"""Closed-form feature transforms of feed-forward style transfer.

All functions take feature maps ``C x H x W`` (or ``1 x C x H x W``) of one
image and return a tensor of the content's shape. Statistics are those of
:mod:`.statistics` (population statistics: divide by ``N``, the number of
locations); WCT computes them in float64.

* :func:`adain_transform`: adaptive instance normalisation
  (Huang & Belongie 2017): give each content channel the style's mean and std.
* :func:`wct_transform`: whitening-colouring transform (Li et al. 2017): give
  the content features the style's mean and full channel covariance.
* :func:`kmeans`, :func:`potts_labels`, :func:`mst_transform`: Multimodal
  Style Transfer (Zhang et al. 2019): k-means clusters of the style features,
  a Potts-regularised assignment of content locations to those clusters
  (alpha-expansion graph cuts) and one WCT per (content region, style cluster).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, maximum_flow

from .statistics import mean_covariance, mean_std

__all__ = [
    "adain_transform", "whiten", "colour", "wct_transform", "kmeans", "potts_energy", "potts_labels",
    "mst_transform",
]


def _as_cn(f: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``C x N`` view of a feature map ``[1 x] C x H x W`` (or ``C x N``)."""
    shape = tuple(f.shape)
    if f.ndim == 4:
        if f.shape[0] != 1:
            raise ValueError(f"one image at a time: got a batch of {f.shape[0]}")
        f = f[0]
    if f.ndim == 3:
        f = f.reshape(f.shape[0], -1)
    if f.ndim != 2:
        raise ValueError(f"expected features C x H x W, got shape {shape}")
    return f, shape


# ------------------------------------------------------------------ AdaIN ----

def adain_transform(fc: torch.Tensor, fs: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """AdaIN: ``(fc - mean_c) / std_c * std_s + mean_s`` channel by channel.

    ``fc`` and ``fs`` are ``[B x] C x H x W`` (sizes may differ). The output's
    channel means and stds equal the style's exactly, except for content
    channels whose std is below ``eps`` (constant channels stay constant, at
    the style's mean).
    """
    mc, sc = mean_std(fc)
    ms, ss = mean_std(fs)
    norm = (fc - mc[..., None, None]) / sc.clamp_min(eps)[..., None, None]
    return norm * ss[..., None, None] + ms[..., None, None]


# -------------------------------------------------------------------- WCT ----

def _eig(cov: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues above ``eps`` times the largest one, and their vectors."""
    evals, evecs = torch.linalg.eigh(cov)
    keep = evals > eps * evals.max().clamp_min(1e-300)
    return evals[keep], evecs[:, keep]


def whiten(fc: torch.Tensor, eps: float = 1e-5, reg: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Whitened content features ``C x N`` (float64) and the content mean.

    ``E D^{-1/2} E^T (f - mean)`` with the eigendecomposition ``E D E^T`` of the
    content covariance. Eigenvalues below ``eps`` times the largest are dropped
    (Li et al. drop those below 1e-5), so the result's covariance is the
    identity when the covariance has full rank (more locations than channels)
    and otherwise the projection onto the kept eigenvectors.

    ``reg > 0`` whitens with ``cov + reg * mean(eigenvalues) * I`` instead (a
    ridge, as common WCT implementations add the identity to the content
    covariance): directions of tiny variance are then not blown up, and the
    result's covariance is ``D / (D + reg * mean(D))`` in the eigenbasis.
    """
    x, _ = _as_cn(fc)
    mean, cov = mean_covariance(x.double())
    if reg > 0:
        cov = cov + reg * cov.diagonal().mean() * torch.eye(len(cov), dtype=cov.dtype)
    d, e = _eig(cov, eps)
    return (e * d.rsqrt()) @ (e.T @ (x.double() - mean[:, None])), mean


def colour(fw: torch.Tensor, fs: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Colouring: ``E_s D_s^{1/2} E_s^T fw + mean_s`` for whitened ``fw`` (``C x N``)."""
    ms, cov = mean_covariance(_as_cn(fs)[0].double())
    d, e = _eig(cov, eps)
    return (e * d.sqrt()) @ (e.T @ fw.double()) + ms[:, None]


def wct_transform(fc: torch.Tensor, fs: torch.Tensor, eps: float = 1e-5, alpha: float = 1.0,
                  reg: float = 0.0) -> torch.Tensor:
    """Whitening-colouring transform (Li et al. 2017).

    Returns ``alpha * colour(whiten(fc), fs) + (1 - alpha) * fc`` with the
    content's shape and dtype. At ``alpha=1`` and ``reg=0`` the output has the
    style's channel mean and covariance (when the content covariance has full
    rank, see :func:`whiten`; ``reg`` trades some of the covariance match for
    less amplified noise).
    """
    x, shape = _as_cn(fc)
    out = colour(whiten(x, eps, reg)[0], fs, eps).to(fc.dtype)
    out = alpha * out + (1 - alpha) * x
    return out.reshape(shape)


# -------------------------------------------------------------------- MST ----

def kmeans(x: torch.Tensor, k: int, n_iter: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means with k-means++ seeding on the rows of ``x`` (``N x D``).

    Returns ``labels`` (``N``, int64, every one in ``0..k-1``) and ``centres``
    (``k x D``). Empty clusters are re-seeded at the point farthest from its centre.
    """
    if not 1 <= k <= len(x):
        raise ValueError(f"k={k} clusters for {len(x)} points")
    x = x.double()
    g = torch.Generator().manual_seed(seed)
    centres = x[torch.randint(len(x), (1,), generator=g)]
    for _ in range(1, k):
        d2 = torch.cdist(x, centres).pow(2).min(1).values
        p = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1 / len(d2))
        centres = torch.cat([centres, x[torch.multinomial(p, 1, generator=g)]])
    labels = torch.full((len(x),), -1, dtype=torch.long)
    for _ in range(n_iter):
        dist = torch.cdist(x, centres)
        new = dist.argmin(1)
        for j in range(k):  # re-seed empty clusters
            if not (new == j).any():
                far = dist.gather(1, new[:, None])[:, 0].argmax()
                new[far] = j
        if torch.equal(new, labels):
            break
        labels = new
        centres = torch.stack([x[labels == j].mean(0) for j in range(k)])
    return labels, centres


def _grid_edges(h: int, w: int) -> np.ndarray:
    """Pairs of 4-neighbour indices of an ``h x w`` grid (row-major), ``E x 2``."""
    idx = np.arange(h * w).reshape(h, w)
    right = np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1)
    down = np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], 1)
    return np.concatenate([right, down])


def potts_energy(labels: np.ndarray, cost: np.ndarray, lam: float, shape: tuple[int, int]) -> float:
    """``sum_p cost[p, l_p] + lam * #{4-neighbours p, q with l_p != l_q}``."""
    labels = np.asarray(labels).ravel()
    e = _grid_edges(*shape)
    return float(cost[np.arange(len(labels)), labels].sum() + lam * (labels[e[:, 0]] != labels[e[:, 1]]).sum())


def _expansion_move(labels: np.ndarray, cost: np.ndarray, lam: float, edges: np.ndarray,
                    alpha: int, precision: float) -> np.ndarray:
    """Best labelling within one alpha-expansion of ``labels`` (a binary min cut)."""

    n = len(labels)
    s, t = n, n + 1
    # x_p = 1: p takes alpha; x_p = 0: p keeps its label. Source side = 0.
    e0 = cost[np.arange(n), labels].astype(np.float64)  # cost of x_p = 0
    e1 = cost[:, alpha].astype(np.float64)  # cost of x_p = 1
    p, q = edges[:, 0], edges[:, 1]
    lp, lq = labels[p], labels[q]
    A = lam * (lp != lq)  # (0, 0)
    B = lam * (lp != alpha)  # (0, 1): p keeps, q -> alpha
    C = lam * (alpha != lq)  # (1, 0)
    # E = A + (C - A) x_p + (D - C) x_q + (B + C - A - D)(1 - x_p) x_q with D = 0
    np.add.at(e1, p, C - A)
    np.add.at(e1, q, -C)
    pair = B + C - A  # >= 0 by the triangle inequality of Potts
    # unary terms: make both non-negative by moving the common part to a constant
    m = np.minimum(e0, e1)
    e0, e1 = e0 - m, e1 - m
    rows = np.concatenate([np.full(n, s), np.arange(n), p])
    cols = np.concatenate([np.arange(n), np.full(n, t), q])
    # edge s->p is cut when p is on the sink side (x_p = 1); p->t when x_p = 0;
    # p->q when p is on the source side and q on the sink side.
    caps = np.concatenate([e1, e0, pair])
    # integer capacities for scipy: relative precision ``precision``, and a
    # total below 2**31 so that no flow overflows int32
    scale = min(1.0 / (precision * max(caps.max(), 1e-300)), 1e9 / max(caps.sum(), 1e-300))
    caps = np.rint(caps * scale).astype(np.int64)
    keep = caps > 0
    graph = coo_matrix((caps[keep].astype(np.int32), (rows[keep], cols[keep])), shape=(n + 2, n + 2)).tocsr()
    flow = maximum_flow(graph, s, t).flow
    residual = (graph - flow).tocsr()
    residual.data = np.where(residual.data > 0, 1, 0).astype(np.int32)
    residual.eliminate_zeros()
    source_side = np.zeros(n + 2, bool)
    source_side[breadth_first_order(residual, s, directed=True, return_predecessors=False)] = True
    out = labels.copy()
    out[~source_side[:n]] = alpha
    return out


def potts_labels(cost: np.ndarray, shape: tuple[int, int], lam: float, n_sweeps: int = 3,
                 init: np.ndarray | None = None) -> np.ndarray:
    """Labels minimising ``sum_p cost[p, l_p] + lam * sum_{p~q} [l_p != l_q]``
    on an ``h x w`` grid by alpha-expansion (Boykov, Veksler & Zabih 2001),
    the graph-cut energy minimisation of MST.

    ``cost`` is ``(h*w) x K``. Starts from the per-location argmin (or
    ``init``); each move is an exact min cut (scipy's max flow on costs
    rounded to integers at about 1e-6 relative precision) and is kept only if it
    lowers the energy, so the energy never increases. With ``K = 2`` one sweep
    reaches the global minimum; in general the result is within a factor 2 of it.
    """
    cost = np.asarray(cost, dtype=np.float64)
    n, k = cost.shape
    if n != shape[0] * shape[1]:
        raise ValueError(f"cost has {n} rows for a {shape} grid")
    labels = cost.argmin(1) if init is None else np.asarray(init).ravel().copy()
    if lam <= 0 or k == 1:
        return labels
    edges = _grid_edges(*shape)
    best = potts_energy(labels, cost, lam, shape)
    for _ in range(n_sweeps):
        improved = False
        for alpha in range(k):
            cand = _expansion_move(labels, cost, lam, edges, alpha, 1e-6)
            e = potts_energy(cand, cost, lam, shape)
            if e < best - 1e-9 * max(1.0, abs(best)):
                labels, best, improved = cand, e, True
        if not improved:
            break
    return labels


def mst_transform(fc: torch.Tensor, fs: torch.Tensor, n_clusters: int = 3, lam: float = 0.1,
                  eps: float = 1e-5, alpha: float = 1.0, transform: str = "wct", seed: int = 0,
                  reg: float = 0.0) -> tuple[torch.Tensor, dict]:
    """Multimodal Style Transfer (Zhang, Zhu & Zhu 2019) in feature space.

    1. k-means (``n_clusters``) on the style features' locations;
    2. each content location gets a cluster by minimising the data term
       ``1 - cos(f_c(p), centre_k)`` plus a Potts term ``lam`` per pair of
       4-neighbours with different clusters (alpha-expansion graph cuts);
    3. the content features of region ``k`` are transformed (WCT, or AdaIN
       with ``transform="adain"``) towards the style features of cluster ``k``.

    Returns the transformed features (content's shape) and a dict with
    ``content_labels`` (``H x W``), ``style_labels`` (``H_s x W_s``), the
    cluster ``centres`` and the MRF ``energy``. A style cluster no content
    location chose is unused; a region smaller than 2 locations is left as is.
    """
    if transform not in ("wct", "adain"):
        raise ValueError(f"transform must be 'wct' or 'adain', got {transform!r}")
    xc, shape = _as_cn(fc)
    xs, _ = _as_cn(fs)
    hc, wc = (shape[-2], shape[-1]) if len(shape) >= 3 else (1, xc.shape[1])
    hs, ws = (fs.shape[-2], fs.shape[-1]) if fs.ndim >= 3 else (1, xs.shape[1])
    k = min(n_clusters, xs.shape[1])
    s_labels, centres = kmeans(xs.T, k, seed=seed)
    xcd = xc.double()
    cos = torch.nn.functional.normalize(xcd.T, dim=1) @ torch.nn.functional.normalize(centres, dim=1).T
    cost = (1 - cos).numpy()
    c_labels = potts_labels(cost, (hc, wc), lam)
    out = xc.clone()
    for j in range(k):
        cm = torch.from_numpy(c_labels == j)
        sm = s_labels == j
        if cm.sum() < 2 or sm.sum() < 1:
            continue
        part_c, part_s = xc[:, cm], xs[:, sm]
        if transform == "wct":
            new = colour(whiten(part_c, eps, reg)[0], part_s, eps).to(xc.dtype)
        else:
            new = adain_transform(part_c[:, None], part_s[:, None])[:, 0]
        out[:, cm] = alpha * new + (1 - alpha) * part_c
    info = {
        "content_labels": torch.from_numpy(c_labels).reshape(hc, wc),
        "style_labels": s_labels.reshape(hs, ws),
        "centres": centres.to(fc.dtype),
        "energy": potts_energy(c_labels, cost, lam, (hc, wc)),
    }
    return out.reshape(shape), info
