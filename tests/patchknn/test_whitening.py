"""Whitening: identity covariance, Mahalanobis distances, the forms agree."""

import numpy as np
import pytest
import torch

from patchbook.patchknn import patches
from patchbook.patchknn.whitening import Whitener

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


@pytest.fixture(scope="module")
def correlated():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(12, 12, generator=g, dtype=torch.float64)
    X = torch.randn(4000, 12, generator=g, dtype=torch.float64) @ A.T * 0.3 + 2.0
    return X


@pytest.mark.parametrize("kind", ["zca", "pca"])
def test_whitened_covariance_is_identity(correlated, kind):
    w = Whitener(lam=0.0, kind=kind).fit_patches(correlated)
    Z = w.transform(correlated)
    torch.testing.assert_close(Z.mean(0), torch.zeros(12, dtype=torch.float64), rtol=0, atol=1e-10)
    torch.testing.assert_close(Z.T @ Z / len(Z), torch.eye(12, dtype=torch.float64), rtol=0, atol=1e-8)
    assert torch.allclose(w.whitened_eigvals(), torch.ones(12, dtype=torch.float64))


def test_regularised_covariance_and_operator(correlated):
    lam = 0.5
    w = Whitener(lam=lam).fit_patches(correlated)
    Xc = correlated - correlated.mean(0)
    S = Xc.T @ Xc / len(Xc)
    # W = (lam I + S)^(-1/2): W (lam I + S) W = I and W symmetric (ZCA)
    torch.testing.assert_close(w.W_ @ (lam * torch.eye(12, dtype=torch.float64) + S) @ w.W_,
                               torch.eye(12, dtype=torch.float64), rtol=0, atol=1e-9)
    torch.testing.assert_close(w.W_, w.W_.T)
    torch.testing.assert_close(w.metric_, torch.linalg.inv(lam * torch.eye(12, dtype=torch.float64) + S))
    # whitened covariance has eigenvalues s / (s + lam), all below 1
    Z = w.transform(correlated)
    ev = torch.linalg.eigvalsh(Z.T @ Z / len(Z))
    torch.testing.assert_close(ev, w.whitened_eigvals(), rtol=0, atol=1e-9)
    assert float(ev.max()) < 1


def test_mahalanobis_property(correlated):
    lam = 0.1
    x, y = correlated[:5], correlated[5:9]
    Xc = correlated - correlated.mean(0)
    M = torch.linalg.inv(lam * torch.eye(12, dtype=torch.float64) + Xc.T @ Xc / len(Xc))
    want = torch.stack([torch.stack([torch.sqrt((a - b) @ M @ (a - b)) for b in y]) for a in x])
    for kind in ("zca", "pca"):
        w = Whitener(lam=lam, kind=kind).fit_patches(correlated)
        torch.testing.assert_close(w.mahalanobis(x, y), want, rtol=1e-9, atol=1e-9)


def test_no_whitening_is_euclidean(correlated):
    w = Whitener(lam=1e-3, kind="none").fit_patches(correlated)
    x, y = correlated[:3], correlated[3:6]
    torch.testing.assert_close(w.mahalanobis(x, y), torch.cdist(x, y))
    torch.testing.assert_close(w.transform(x), x - correlated.mean(0))


def test_fit_on_images_uses_every_patch():
    imgs = np.random.default_rng(1).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    w = Whitener(lam=1e-3).fit(imgs, 3)
    p = patches.extract_patches(patches.to_tensor(imgs).double(), 3).reshape(-1, 27)
    w2 = Whitener(lam=1e-3).fit_patches(p)
    torch.testing.assert_close(w.W_, w2.W_, rtol=1e-4, atol=1e-4)
    assert w.n_patches_ == 6 * 36


def test_errors(correlated):
    with pytest.raises(ValueError):
        Whitener(kind="bogus").fit_patches(correlated)
    with pytest.raises(ValueError):
        Whitener(lam=-1).fit_patches(correlated)
    with pytest.raises(ValueError):  # rank-deficient covariance needs lam > 0
        Whitener(lam=0).fit_patches(torch.cat([correlated, correlated[:, :1]], 1))
    with pytest.raises(RuntimeError):
        Whitener().transform(correlated)
