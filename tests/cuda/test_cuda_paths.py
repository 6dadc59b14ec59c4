"""The CUDA paths of the library against the CPU paths on the same inputs.

Skipped (and listed as skipped by ``-ra``) without a GPU.
``PATCHBOOK_CUDA_TEST_DEVICE=cpu`` runs them with the CPU standing in for the
GPU: the comparisons are then trivial, but every call is exercised, so the
tests themselves are checked on a machine without a GPU.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from patchbook.invariance import scattering
from patchbook.patchknn import dimension, knn
from patchbook.patchknn.encoding import PatchEncoder
from patchbook.patchknn.patches import patch_moments
from patchbook.patchknn.whitening import Whitener
from patchbook.style import optimize

DEVICE = os.environ.get("PATCHBOOK_CUDA_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(),
    reason="no CUDA device: the cuda tests run on a GPU machine (benchmarks/gpu_check.sh)")]


@pytest.fixture
def device() -> str:
    """The device the CUDA paths run on (``cuda``; ``cpu`` to check the tests)."""
    return DEVICE


def _images(n: int = 12, size: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, size // 4, size // 4, 3)).astype(np.float32)
    img = np.kron(base, np.ones((1, 4, 4, 1), np.float32)) + rng.normal(0, 12, (n, size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _untied_rows(s: torch.Tensor, k: int, rel: float = 1e-4) -> torch.Tensor:
    """Rows whose K-th and (K+1)-th smallest scores differ by more than ``rel``
    of the row's spread: there the K nearest are defined whatever the rounding."""
    v = s.double().sort(1).values
    gap = v[:, k] - v[:, k - 1]
    spread = (v[:, -1] - v[:, 0]).clamp_min(1e-12)
    return gap > rel * spread


def test_knn_mask_matches_cpu(device):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(4096, 512, generator=g)
    for k in (1, 7, 204, 511):
        cpu = knn.knn_mask(s, k)
        gpu = knn.knn_mask(s.to(device), k).cpu()
        assert torch.equal(cpu, gpu), k
        assert (gpu.sum(1) == k).all()


def test_patch_moments_and_whitening_match_cpu(device):
    imgs = _images(40)
    m_cpu = patch_moments(imgs, 6, device="cpu")
    m_gpu = patch_moments(imgs, 6, device=device)
    torch.testing.assert_close(m_gpu.mean.cpu().double(), m_cpu.mean.double(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m_gpu.cov.cpu().double(), m_cpu.cov.double(), rtol=1e-4, atol=1e-6)
    w_cpu = Whitener(1e-3).fit_moments(m_cpu)
    w_gpu = Whitener(1e-3).fit_moments(m_gpu)
    x = torch.rand(100, m_cpu.mean.numel(), dtype=torch.float64)
    torch.testing.assert_close(w_gpu.transform(x.to(device)).cpu(), w_cpu.transform(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("both_signs", [True, False])
def test_encoder_codes_match_cpu_away_from_ties(both_signs, device):
    imgs = _images(16)
    enc = PatchEncoder(n_atoms=256, patch=6, k=0.4, both_signs=both_signs, pool=7, pool_stride=4, ceil_mode=False,
                       seed=1).fit(imgs)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(255)
    cpu = torch.cat(enc.codes(x), 1)
    enc_gpu = PatchEncoder(**{**enc.get_params(), "device": device}).fit(imgs)
    gpu = torch.cat(enc_gpu.codes(x.to(device)), 1).cpu()
    s = enc.scores(x)
    keep = _untied_rows(s, enc.k_)
    if both_signs:
        keep &= _untied_rows(2 * enc.sqnorms_[None] - s, enc.k_)
    assert keep.float().mean() > 0.5  # most rows have a clear K-th neighbour
    assert torch.equal(cpu[keep], gpu[keep])
    pooled_cpu = enc.transform(imgs, dtype=torch.uint8)
    pooled_gpu = enc_gpu.transform(imgs, dtype=torch.uint8)
    assert (pooled_cpu.int() - pooled_gpu.int()).abs().float().mean() < 0.05


def test_exact_neighbour_search_matches_cpu(device):
    g = torch.Generator().manual_seed(2)
    data = torch.randn(5000, 20, generator=g)
    q = torch.randn(300, 20, generator=g)
    cpu = dimension.knn(q, data, 10)
    gpu = dimension.knn(q, data, 10, device=device)
    assert torch.equal(cpu.index, gpu.index)
    torch.testing.assert_close(gpu.dist, cpu.dist, rtol=1e-4, atol=1e-5)


def test_scattering_matches_cpu(device):
    imgs = _images(6, 32)
    cpu = scattering.transform(imgs, J=2, L=4, device="cpu")
    gpu = scattering.transform(imgs, J=2, L=4, device=device)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5)


def test_gatys_lowers_its_loss_on_cuda(device):
    g = torch.Generator().manual_seed(0)
    content = torch.rand(3, 64, 64, generator=g).to(device)
    style = torch.rand(3, 64, 64, generator=g).to(device)
    hist: list = []
    out = optimize.gatys(content, style, n_iter=20, optimizer="adam", lr=0.02, history=hist, seed=0)
    assert out.shape == (3, 64, 64) and out.device.type == torch.device(device).type
    losses = [h["loss"] for h in hist]
    assert len(losses) >= 10 and losses[-1] < losses[0]
