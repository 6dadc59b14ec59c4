"""Channel statistics of feature maps, the one implementation the losses,
the transforms and the metrics share.

A feature map is ``[...] x C x H x W`` (any leading batch axes); a ``C x N``
matrix (one column per position) is read as one map of ``N`` positions.
Statistics are over the positions, population ones (divide by ``N``), and keep
the leading axes: ``[...] x C`` or ``[...] x C x C``. With ``F`` the ``C x N``
matrix of a map and ``mu`` its channel means:

- :func:`gram`: ``G = F F^T / N`` (Gatys et al. 2016);
- :func:`mean_std`: ``mu`` and ``sqrt(var + eps)`` (AdaIN, Huang & Belongie 2017);
- :func:`mean_covariance`: ``mu`` and ``(F - mu)(F - mu)^T / N`` (WCT, Li et al. 2017).

They compute in the input's dtype (the transforms pass float64).
"""

from __future__ import annotations

import torch

#: ``eps`` of the standard deviations that losses and metrics compare (AdaIN's).
MOMENT_EPS = 1e-5


def positions(f: torch.Tensor) -> torch.Tensor:
    """``[...] x C x H x W`` to ``[...] x C x N`` (a ``C x N`` matrix as it is)."""
    if f.ndim < 2:
        raise ValueError(f"expected features [...] x C x H x W or C x N, got shape {tuple(f.shape)}")
    return f if f.ndim == 2 else f.flatten(-2)


def gram(f: torch.Tensor) -> torch.Tensor:
    """Gram matrices ``[...] x C x C``: ``G_ij = (1/N) sum_p F_ip F_jp``."""
    F = positions(f)
    return F @ F.transpose(-1, -2) / F.shape[-1]


def mean_std(f: torch.Tensor, eps: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel means and standard deviations ``[...] x C``: ``sqrt(var + eps)``
    with the population variance (the moment loss and metrics use :data:`MOMENT_EPS`)."""
    F = positions(f)
    mu = F.mean(-1)
    var = (F - mu[..., None]).pow(2).mean(-1)  # two passes, as AdaIN's decoders were trained with
    return mu, torch.sqrt(var + eps) if eps else torch.sqrt(var)


def mean_covariance(f: torch.Tensor, unbiased: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel means ``[...] x C`` and covariances ``[...] x C x C``
    (divided by ``N``, or ``N - 1`` with ``unbiased``)."""
    F = positions(f)
    mu = F.mean(-1)
    Fc = F - mu[..., None]
    n = F.shape[-1] - (1 if unbiased else 0)
    return mu, Fc @ Fc.transpose(-1, -2) / max(n, 1)
