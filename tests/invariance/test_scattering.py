"""The scattering helpers (patchbook.invariance.scattering) against kymatio, and the
stability of scattering to deformations against the instability of pixels."""

import numpy as np
import pytest
import torch

from patchbook.invariance import averaging
from patchbook.invariance import deformation as dfm
from patchbook.invariance import scattering as sc


@pytest.mark.parametrize("J,L,shape", [(2, 4, (16, 16)), (1, 8, (12, 20)), (3, 3, (16, 16))])
def test_equals_kymatio(J, L, shape):
    from kymatio.torch import Scattering2D

    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(J))
    want = Scattering2D(J=J, shape=shape, L=L)(x)
    got = sc.Scattering(J, shape, L)(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_first_order_only_equals_kymatio():
    from kymatio.torch import Scattering2D

    x = torch.rand(2, 16, 16)
    want = Scattering2D(J=2, shape=(16, 16), L=8, max_order=1)(x)
    torch.testing.assert_close(sc.Scattering(2, (16, 16), 8, max_order=1)(x), want, rtol=1e-5, atol=1e-6)


def test_output_shapes_and_bookkeeping():
    assert sc.n_channels(2, 8) == 81 and sc.n_channels(3, 8) == 217 and sc.n_channels(2, 8, 1) == 17
    assert sc.output_shape((28, 28), 2) == (7, 7) and sc.output_shape((32, 32), 2) == (8, 8)
    assert sc.output_shape((32, 32), 3) == (4, 4)
    for J, L in [(2, 8), (3, 8), (3, 4)]:
        p = sc.paths(J, L)
        assert len(p) == sc.n_channels(J, L)
        sl = sc.order_slices(J, L)
        for k, s in sl.items():
            assert {q.order for q in p[s]} == {k}
        assert all(q.j[0] < q.j[1] for q in p[sl[2]])
    # grey uint8 N x H x W x 1 and colour N x H x W x 3 batches
    g = np.random.default_rng(0).integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    assert sc.transform(g, 2, 8, batch_size=2).shape == (5, 81, 7, 7)
    c = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    S = sc.transform(c, 2, 8, batch_size=3)
    assert S.shape == (4, 3 * 81, 8, 8) and S.dtype == np.float32
    # colour-major: the first 81 channels are the red channel's
    red = sc.transform(c[..., :1], 2, 8)
    np.testing.assert_allclose(S[:, :81], red, rtol=1e-5, atol=1e-7)


def test_filters():
    f = sc.filters_fourier(32, 3, 8)
    assert f["psi"].shape == (3, 8, 32, 32)
    assert f["phi"][0, 0] == pytest.approx(1.0, abs=1e-3)  # the low-pass keeps the mean
    assert np.abs(f["psi"][:, :, 0, 0]).max() < 1e-3  # Morlet wavelets have zero mean
    s = sc.filters_space(32, 3, 8)
    assert s["psi"].shape == (3, 8, 32, 32) and np.iscomplexobj(s["psi"])
    # larger j: wider in space, narrower in frequency
    spread = [np.abs(s["psi"][j, 0]).max() for j in range(3)]
    assert spread[0] > spread[1] > spread[2]


def test_energy_by_order_sums_to_total():
    S = sc.transform(np.random.default_rng(2).random((3, 28, 28)), 2, 8)
    e = sc.energy_by_order(S, 2, 8)
    np.testing.assert_allclose(sum(e.values()), 16 * (S.astype(np.float64) ** 2).reshape(3, -1).sum(1), rtol=1e-6)
    # with the 4^J factor the orders never hold more than the image's energy
    x = np.random.default_rng(3).random((4, 28, 28))
    e = sc.energy_by_order(sc.transform(x, 2, 8), 2, 8)
    assert np.all(sum(e.values()) <= 1.01 * (x**2).reshape(4, -1).sum(1))


def _patterns(freqs, size=32, width=6.0):
    rows, cols = dfm.grid((size, size))
    c = (size - 1) / 2
    win = np.exp(-((rows - c) ** 2 + (cols - c) ** 2) / (2 * width**2))
    return np.stack([win * np.cos(2 * np.pi * f * (rows + 0.5 * cols) / size) for f in freqs])


def test_scattering_is_stable_where_pixels_are_not():
    """A fixed small dilation (||grad tau||_inf = 0.05) of windowed cosines of
    growing frequency: the pixel ratio ||x_tau - x|| / (||x|| ||grad tau||)
    grows with the frequency, without bound until it saturates; the
    scattering ratio stays below a constant (Mallat 2012)."""
    freqs = [1, 2, 4, 6, 8, 10]
    x = _patterns(freqs)
    tau = dfm.dilation_field((32, 32), 0.05)
    g = dfm.grad_norm_inf(tau)
    y = dfm.warp(x, tau, order=3)
    pix = dfm.relative_change(x, y) / g
    S = sc.Scattering(3, (32, 32), 8)
    with torch.no_grad():
        Sx = S(torch.from_numpy(x).float()).numpy()
        Sy = S(torch.from_numpy(y).float()).numpy()
    scat = dfm.relative_change(Sx, Sy, ref=x) / g
    assert np.all(np.diff(pix) > 0) and pix[-1] > 4 * pix[0]
    assert scat.max() < 0.3 and scat.max() < 1.5 * scat.min()
    assert np.all(scat < pix / 5)
    # the Gaussian average is stable too, but only because it erases the pattern
    avg = averaging.average(x, 3)
    assert np.linalg.norm(avg[-1]) < 1e-2 * np.linalg.norm(x[-1])


def test_littlewood_paley_sum_and_frame_bounds():
    f = sc.filters_fourier(32, 3, 8)
    lp = sc.littlewood_paley(f)
    n = 32
    neg = (-np.arange(n)) % n  # index of -omega
    psi2 = (f["psi"].astype(np.float64) ** 2).sum((0, 1))
    want = f["phi"].astype(np.float64) ** 2 + 0.5 * (psi2 + psi2[neg][:, neg])
    np.testing.assert_allclose(lp, want, rtol=1e-5)
    np.testing.assert_allclose(lp, lp[neg][:, neg], rtol=1e-5)  # symmetric in omega
    b = sc.littlewood_paley_bounds(lp)
    assert 0.3 < b["min_inner"] and b["min"] <= b["min_inner"] and b["max"] < 1.05  # a frame, nearly tight
    assert b["max"] == pytest.approx(lp.max()) and b["min"] == pytest.approx(lp.min())
    assert sc.littlewood_paley_bounds(lp, inner=0.0)["min_inner"] == pytest.approx(lp[0, 0])


def test_energy_shares_are_energies_over_the_norm():
    x = (np.random.default_rng(0).random((3, 16, 16, 1)) * 255).astype(np.uint8)
    shares = sc.energy_shares(x, 2, 4)
    e = sc.energy_by_order(sc.transform(x, 2, 4), 2, 4)
    norm2 = ((x.astype(np.float64) / 255) ** 2).reshape(3, -1).sum(1)
    assert set(shares) == {0, 1, 2}
    for k in shares:
        assert shares[k] == pytest.approx(np.mean(e[k] / norm2))
    assert 0 < sum(shares.values()) <= 1.05
