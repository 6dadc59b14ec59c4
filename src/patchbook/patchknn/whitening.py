"""Regularised whitening of patches.

``W = (lambda I + Sigma)^(-1/2)`` with ``Sigma`` the patch covariance. In the
eigenbasis ``Sigma = U diag(s) U^T``, ``W = U diag((s + lambda)^(-1/2)) U^T``
(ZCA: the whitened patches stay in pixel space) and the PCA form
``diag((s + lambda)^(-1/2)) U^T`` (coordinates in the eigenbasis). Both give
the same distances: ``||W(x - x')||`` is the Mahalanobis distance of
``lambda I + Sigma``, ``sqrt((x - x')^T (lambda I + Sigma)^(-1) (x - x'))``.

``lambda`` is in the units of the patch covariance: with pixels in [0, 1]
the eigenvalues of the CIFAR-10 6 x 6 x 3 patch covariance run from about
1e-5 to about 4, so ``lambda = 1e-3`` (the authors' value) leaves the first
few dozen directions whitened and damps the rest.
"""

from __future__ import annotations

from typing import Literal

import torch

from patchbook.patchknn.patches import PatchMoments, patch_moments

Kind = Literal["zca", "pca", "none"]
KINDS = ("zca", "pca", "none")


class Whitener:
    """Patch whitening as a scikit-learn-style estimator.

    Parameters
    ----------
    lam
        Regulariser ``lambda`` added to the covariance eigenvalues (in the
        units of the patch covariance).
    kind
        ``"zca"`` (``U diag U^T``), ``"pca"`` (``diag U^T``) or ``"none"``
        (identity: no whitening, centring only).
    center
        Subtract the patch mean before the linear map.

    Attributes (after ``fit``)
    --------------------------
    mean_ : ``d``; eigvals_ : ``d`` (ascending); eigvecs_ : ``d x d``;
    W_ : ``d x d`` operator applied as ``(x - mean_) @ W_.T``;
    metric_ : ``W_^T W_``, the matrix of the squared distance
    (``(lambda I + Sigma)^(-1)``, or the identity for ``"none"``).
    All float64 on the CPU.
    """

    def __init__(self, lam: float = 1e-3, kind: Kind = "zca", center: bool = True):
        self.lam = lam
        self.kind = kind
        self.center = center

    def __repr__(self) -> str:
        return f"Whitener(lam={self.lam!r}, kind={self.kind!r}, center={self.center!r})"

    def fit_moments(self, moments: PatchMoments) -> "Whitener":
        """Fit from a patch mean and covariance."""
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.lam < 0:
            raise ValueError(f"lam must be >= 0, got {self.lam}")
        cov = moments.cov.double().cpu()
        if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] != moments.mean.numel():
            raise ValueError(f"covariance of shape {tuple(cov.shape)} does not match a mean of {moments.mean.numel()}")
        s, U = torch.linalg.eigh(cov)
        s = s.clamp_min(0)
        self.mean_ = moments.mean.double().cpu().reshape(-1)
        self.eigvals_, self.eigvecs_ = s, U
        self.n_patches_ = moments.count
        d = len(s)
        if self.kind == "none":
            W = torch.eye(d, dtype=torch.float64)
        else:
            if self.lam == 0 and s.min() <= 1e-12 * s.max():
                raise ValueError("covariance is (numerically) singular; use lam > 0")
            scale = (s + self.lam).rsqrt()
            W = scale[:, None] * U.T  # pca form
            if self.kind == "zca":
                W = U @ W
        self.W_ = W
        self.metric_ = W.T @ W
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

    def _check(self) -> None:
        if not hasattr(self, "W_"):
            raise RuntimeError("Whitener is not fitted; call fit, fit_moments or fit_patches first")

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """Whiten patches ``... x d`` -> ``... x d`` (same dtype and device as ``X``)."""
        self._check()
        W = self.W_.to(X.device, X.dtype)
        return (X - self.mean_.to(X.device, X.dtype)) @ W.T

    def whitened_eigvals(self) -> torch.Tensor:
        """Eigenvalues of the covariance of whitened patches, ``s / (s + lambda)``
        (``s`` itself for ``"none"``): 1 for the directions whitening equalises,
        close to 0 for those ``lambda`` damps."""
        self._check()
        if self.kind == "none":
            return self.eigvals_.clone()
        return self.eigvals_ / (self.eigvals_ + self.lam)

    def mahalanobis(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """Pairwise ``||W(x - y)||``, ``n x m``, for ``X`` ``n x d``, ``Y`` ``m x d``."""
        return torch.cdist(self.transform(X.double()), self.transform(Y.double()))
