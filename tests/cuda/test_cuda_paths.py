"""The CUDA paths of the library against the CPU paths on the same inputs.

Skipped (and listed as skipped by ``-ra``) without a GPU.
``PATCHBOOK_CUDA_TEST_DEVICE=cpu`` runs them with the CPU standing in for the
GPU: the comparisons are then trivial, but every call is exercised, so the
tests themselves are checked on a machine without a GPU.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch

from patchbook import data
from patchbook.patchknn import dimension, knn
from patchbook.patchknn.encoding import PatchEncoder, resolve_k, transform_variants
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
    mask = knn.knn_mask(s.cpu(), k).to(s.device)             # exact: the K smallest, ties by index
    gap = s.masked_fill(mask, float("inf")).amin(1) - s.masked_fill(~mask, -float("inf")).amax(1)
    spread = (s.amax(1) - s.amin(1)).clamp_min(1e-12)
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
    pytest.importorskip("kymatio", reason="kymatio is not installed (pip install -e . installs it)")
    # imported here: it needs kymatio, absent from some GPU images
    from patchbook.invariance import scattering
    imgs = _images(6, 32)
    cpu = scattering.transform(imgs, J=2, L=4, device="cpu")
    gpu = scattering.transform(imgs, J=2, L=4, device=device)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5)


def test_gatys_lowers_its_loss_on_cuda(device, vgg16_weights):
    g = torch.Generator().manual_seed(0)
    content = torch.rand(3, 64, 64, generator=g).to(device)
    style = torch.rand(3, 64, 64, generator=g).to(device)
    hist: list = []
    out = optimize.gatys(content, style, n_iter=20, optimizer="adam", lr=0.02, history=hist, seed=0)
    assert out.shape == (3, 64, 64) and out.device.type == torch.device(device).type
    losses = [h["loss"] for h in hist]
    assert len(losses) >= 10 and losses[-1] < losses[0]


def test_strotss_lowers_its_loss_on_cuda(device, vgg16_weights):
    g = torch.Generator().manual_seed(1)
    content = torch.rand(3, 32, 32, generator=g).to(device)
    style = torch.rand(3, 32, 32, generator=g).to(device)
    hist: list = []
    out = optimize.strotss(content, style, n_iter=12, lr=2e-2, min_size=32, n_samples=256, n_style=256,
                           covariance="layer", seed=0, history=hist)
    assert out.shape == (3, 32, 32) and out.device.type == torch.device(device).type
    losses = [h["loss"] for h in hist]
    assert len(losses) == 12 and np.mean(losses[-3:]) < np.mean(losses[:3])


def test_soft_codes_match_cpu(device):
    """The soft code ("without VQ"): scores of the whole batch at once on a GPU."""
    imgs = _images(8)
    enc = PatchEncoder(n_atoms=128, patch=6, k=0.4, soft=0.5, pool=7, pool_stride=4, ceil_mode=False,
                       seed=3).fit(imgs)
    enc_gpu = PatchEncoder(**{**enc.get_params(), "device": device}).fit(imgs)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(255)
    for a, b in zip(enc.codes(x), enc_gpu.codes(x.to(device))):
        torch.testing.assert_close(b.cpu(), a, rtol=0, atol=2e-3)
    torch.testing.assert_close(enc_gpu.transform(imgs), enc.transform(imgs), rtol=0, atol=2e-3)


def test_shared_score_variants_match_cpu(device):
    """Variants differing in k and soft share one product per batch
    (encode_shared): on the device as on the CPU, and each equal to its own
    encode_batch there."""
    imgs = _images(10)
    base = PatchEncoder(n_atoms=96, patch=6, k=0.4, pool=7, pool_stride=4, ceil_mode=False, seed=2)
    fitted = {d: PatchEncoder(**{**base.get_params(), "device": d}).fit(imgs) for d in ("cpu", device)}

    def variants(e):
        out = []
        for k, soft in ((0.4, None), (0.25, None), (0.4, 0.5)):
            v = copy.copy(e).set_params(k=k, soft=soft)
            v.k_ = resolve_k(k, v.n_atoms)
            out.append(v)
        return out

    dtypes = [torch.uint8, torch.uint8, torch.float32]
    cpu = transform_variants(variants(fitted["cpu"]), imgs, dtypes)
    dev = transform_variants(variants(fitted[device]), imgs, dtypes)
    for v, a, b in zip(variants(fitted[device]), cpu, dev):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert (a.float() - b.float()).abs().mean() < 0.05        # counts: a few near-tied atoms swap
        x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(255).to(device)
        alone = v.encode_batch(x, counts=a.dtype == torch.uint8).cpu()
        torch.testing.assert_close(b.to(alone.dtype), alone, rtol=0, atol=1e-5)


def test_knn_codes_of_patches_match_cpu_across_tiles(device):
    """Raw patch rows through knn_codes past one default tile (32,768 rows on
    CUDA at |D| = 2048): the same codes as on the CPU away from exact ties."""
    g = torch.Generator().manual_seed(4)
    m, k, n = 2048, 819, 33_000
    atoms = torch.randn(m, 27, generator=g)
    x = torch.randn(n, 27, generator=g)
    cpu = knn.knn_codes(x, atoms, k)
    dev = knn.knn_codes(x.to(device), atoms.to(device), k).cpu()
    assert dev.shape == (n, 2 * m) and (dev.sum(1) == 2 * k).all()
    s = knn.scores(x, atoms)                                     # of x; those of -x: 2 ||d||^2 - s
    keep = _untied_rows(s, k, 1e-5) & _untied_rows(2 * (atoms * atoms).sum(1)[None] - s, k, 1e-5)
    assert keep.float().mean() > 0.8                             # float32 rounding: ~1e-7 of the spread
    assert torch.equal(cpu[keep], dev[keep])


def test_patch_neighbours_match_cpu(device):
    """The dimensionality page's search: whitening on the device
    (patch_transform's non-CPU branch), patch databases there, exact recomputation."""
    imgs = _images(30, 16)
    train = data.Dataset(imgs[:20], np.zeros(20, np.int64), ("a",), "train-fp")
    test = data.Dataset(imgs[20:], np.zeros(10, np.int64), ("a",), "test-fp")
    kw = dict(patch=4, lam=1e-3, n_database=1500, n_queries=64, k=8, n_cov_images=None, db_batch=512,
              cache=False)
    cpu = dimension.patch_neighbours(train, test, device="cpu", **kw)
    dev = dimension.patch_neighbours(train, test, device=device, **kw)
    np.testing.assert_allclose(dev["dist"], cpu["dist"], rtol=1e-4, atol=1e-5)
    assert dev["n_database"] == cpu["n_database"]
