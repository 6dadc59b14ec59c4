"""Regularised whitening of patches.

``W = (lambda I + Sigma)^(-1/2)`` with ``Sigma`` the patch covariance. In the
eigenbasis ``Sigma = U diag(s) U^T``, ``W = U diag((s + lambda)^(-1/2)) U^T``
(ZCA: the whitened patches stay in pixel space) and the PCA form
``diag((s + lambda)^(-1/2)) U^T`` (coordinates in the eigenbasis). Both give
the same distances: ``||W(x - x')||`` is the Mahalanobis distance of
``lambda I + Sigma``.
"""

from __future__ import annotations

from typing import Literal

import torch

from .patches import PatchMoments, patch_moments

Kind = Literal["zca", "pca", "none"]


class Whitener:
    """Patch whitening as a scikit-learn-style estimator.

    Parameters
    ----------
    lam
        Regulariser ``lambda`` added to the covariance eigenvalues (in the
        units of the patch covariance).
    kind
        ``"zca"`` (``U diag U^T``), ``"pca"`` (``diag U^T``) or ``"none"``
        (identity; centring only).
    center
        Subtract the patch mean before the linear map.

    Attributes (after ``fit``)
    --------------------------
    mean_ : ``d``; eigvals_ : ``d`` (ascending); eigvecs_ : ``d x d``;
    W_ : ``k x d`` operator applied as ``(x - mean_) @ W_.T``.
    """

    def __init__(self, lam: float = 1e-3, kind: Kind = "zca", center: bool = True):
        self.lam = lam
        self.kind = kind
        self.center = center

    def fit_moments(self, moments: PatchMoments) -> "Whitener":
        if self.kind not in ("zca", "pca", "none"):
            raise ValueError(f"kind must be 'zca', 'pca' or 'none', got {self.kind!r}")
        if self.lam < 0:
            raise ValueError(f"lam must be >= 0, got {self.lam}")
        cov = moments.cov.double()
        s, U = torch.linalg.eigh(cov)
        s = s.clamp_min(0)
        self.mean_ = moments.mean.double()
        self.eigvals_, self.eigvecs_ = s, U
        d = len(s)
        if self.kind == "none":
            W = torch.eye(d, dtype=torch.float64)
        else:
            if self.lam == 0 and s.min() <= 0:
                raise ValueError("covariance is singular; use lam > 0")
            scale = (s + self.lam).rsqrt()
            W = scale[:, None] * U.T  # pca form
            if self.kind == "zca":
                W = U @ W
        self.W_ = W
        if not self.center:
            self.mean_ = torch.zeros_like(self.mean_)
        return self

    def fit(self, images, patch: int, stride: int = 1, **kw) -> "Whitener":
        """Fit on every patch of ``images`` (see :func:`patch_moments`)."""
        return self.fit_moments(patch_moments(images, patch, stride, **kw))

    def fit_patches(self, X: torch.Tensor) -> "Whitener":
        """Fit on a matrix of patches ``n x d``."""
        X = X.double()
        m = X.mean(0)
        Xc = X - m
        return self.fit_moments(PatchMoments(m, Xc.T @ Xc / len(X), len(X)))

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """Whiten patches ``... x d`` -> ``... x k`` (same dtype as ``X``)."""
        W = self.W_.to(X.dtype)
        return (X - self.mean_.to(X.dtype)) @ W.T

    def mahalanobis(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """Pairwise ``||W(x - y)||``, ``n x m``, for ``X`` ``n x d``, ``Y`` ``m x d``."""
        return torch.cdist(self.transform(X.double()), self.transform(Y.double()))
