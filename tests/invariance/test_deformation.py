"""Translations, deformations and Gaussian averaging (patchbook.invariance.deformation,
patchbook.invariance.averaging)."""

import numpy as np
import pytest

from patchbook.invariance import averaging
from patchbook.invariance import deformation as dfm


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.random((3, 20, 24))


@pytest.mark.parametrize("order", [1, 3])
@pytest.mark.parametrize("boundary", ["zeros", "border", "periodic"])
def test_zero_deformation_is_identity(images, order, boundary):
    out = dfm.warp(images, np.zeros((2, 20, 24)), order=order, boundary=boundary)
    np.testing.assert_allclose(out, images, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shift", [(1, 0), (0, -2), (3, 2), (-4, -1)])
def test_whole_pixel_translation_is_a_roll(images, shift):
    # periodic extension: exactly np.roll, for translate and for warp
    rolled = np.roll(images, shift, axis=(1, 2))
    np.testing.assert_array_equal(dfm.translate(images, shift, "periodic"), rolled)
    tau = np.broadcast_to(np.array(shift, float)[:, None, None], (2, 20, 24))
    for order in (1, 3):
        np.testing.assert_allclose(dfm.warp(images, tau, order, "periodic"), rolled, atol=1e-12)
    # zero extension: equal to the roll away from the borders, zero where uncovered
    z = dfm.translate(images, shift, "zeros")
    dy, dx = shift
    inside = (slice(None), slice(max(dy, 0), 20 + min(dy, 0)), slice(max(dx, 0), 24 + min(dx, 0)))
    np.testing.assert_array_equal(z[inside], rolled[inside])
    mask = np.ones(z.shape, bool)
    mask[inside] = False
    assert np.all(z[mask] == 0)
    np.testing.assert_allclose(dfm.warp(images, tau, 3, "zeros"), z, atol=1e-12)


def test_translate_channels_last():
    x = np.arange(2 * 5 * 6 * 3).reshape(2, 5, 6, 3)
    out = dfm.translate(x, (1, 2))
    assert out[0, 1, 2, 1] == x[0, 0, 0, 1] and out[0, 0, 0, 0] == 0


def test_subpixel_translation_of_a_linear_ramp_is_exact():
    # bilinear and cubic interpolation reproduce affine functions exactly
    rows, cols = dfm.grid((16, 16))
    ramp = (2.0 * rows + 0.5 * cols)[None]
    tau = np.broadcast_to(np.array([0.3, -0.7])[:, None, None], (2, 16, 16))
    for order in (1, 3):
        out = dfm.warp(ramp, tau, order, "border")[0]
        want = 2.0 * (rows - 0.3) + 0.5 * (cols + 0.7)
        np.testing.assert_allclose(out[2:-2, 2:-2], want[2:-2, 2:-2], atol=1e-10)


def test_random_field_has_the_requested_gradient_norm():
    rng = np.random.default_rng(1)
    for g in (0.01, 0.1, 0.4):
        tau = dfm.random_field((28, 28), g, smoothness=4.0, rng=rng)
        assert dfm.grad_norm_inf(tau) == pytest.approx(g, rel=1e-12)
        assert abs(tau.mean(axis=(1, 2))).max() < 1e-12
    # the same seed and another amplitude: the same field up to scale
    a = dfm.random_field((28, 28), 0.1, rng=7)
    b = dfm.random_field((28, 28), 0.3, rng=7)
    np.testing.assert_allclose(3 * a, b, rtol=1e-12)


def test_grad_norm_of_affine_fields():
    # tau(u) = A u has Jacobian A everywhere: ||grad tau||_inf = ||A||_2
    rows, cols = dfm.grid((10, 12))
    A = np.array([[0.1, -0.05], [0.2, 0.03]])
    tau = np.stack([A[0, 0] * rows + A[0, 1] * cols, A[1, 0] * rows + A[1, 1] * cols])
    assert dfm.grad_norm_inf(tau) == pytest.approx(np.linalg.norm(A, 2), rel=1e-12)
    assert dfm.grad_norm_inf(dfm.dilation_field((10, 12), 0.07)) == pytest.approx(0.07)


def test_warp_moves_a_dot_where_tau_says():
    x = np.zeros((1, 15, 15))
    x[0, 7, 7] = 1.0
    tau = np.zeros((2, 15, 15))
    tau[0] += 2.0  # every pixel reads 2 rows up: the dot moves 2 rows down
    tau[1] -= 3.0
    out = dfm.warp(x, tau, order=1)
    assert out[0, 9, 4] == pytest.approx(1.0) and out.sum() == pytest.approx(1.0)


# ------------------------------------------------------------- averaging ----

def test_averaging_preserves_the_mean_and_constants():
    rng = np.random.default_rng(2)
    x = rng.random((4, 32, 32))
    for J in (0, 1, 2, 3):
        y = averaging.average(x, J, boundary="periodic")
        np.testing.assert_allclose(y.mean(axis=(1, 2)), x.mean(axis=(1, 2)), rtol=1e-12)
        np.testing.assert_allclose(averaging.average(np.full((1, 9, 9), 0.7), J, "periodic"), 0.7, rtol=1e-12)
    # zero extension: the total mass is kept when the image is zero near its border
    d = np.zeros((1, 40, 40))
    d[0, 15:25, 12:20] = rng.random((10, 8))
    for J in (0, 1, 2):
        assert averaging.average(d, J, "zeros").sum() == pytest.approx(d.sum(), rel=1e-10)


def test_averaging_is_a_low_pass():
    H = 32
    rows, cols = dfm.grid((H, H))
    gains = []
    for f in range(0, 17, 2):  # cosines of f cycles per image, up to Nyquist
        x = np.cos(2 * np.pi * f * cols / H)[None]
        y = averaging.average(x, 1, "periodic")
        gains.append(np.linalg.norm(y) / np.linalg.norm(x))
    assert gains[0] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(gains, gains[1:]))  # strictly decreasing
    assert gains[-1] < 0.05  # exp(-2 pi^2 0.8^2 / 4) at Nyquist
    # the gain is the Gaussian transfer function
    g = averaging.transfer_function((H, H), 1)
    assert gains[2] == pytest.approx(g[0, 4], rel=1e-9)
    # larger J averages more
    x = np.cos(2 * np.pi * 3 * cols / H)[None]
    e = [np.linalg.norm(averaging.average(x, J, "periodic")) for J in (0, 1, 2, 3)]
    assert all(a > b for a, b in zip(e, e[1:]))


def test_zero_boundary_matches_a_direct_convolution():
    rng = np.random.default_rng(3)
    x = rng.random((2, 12, 10))
    k = averaging.kernel(1)
    r = len(k) // 2
    K2 = np.outer(k, k)
    pad = np.pad(x, ((0, 0), (r, r), (r, r)))
    want = np.zeros_like(x)
    for i in range(12):
        for j in range(10):
            want[:, i, j] = (pad[:, i:i + 2 * r + 1, j:j + 2 * r + 1] * K2).sum((1, 2))
    np.testing.assert_allclose(averaging.average(x, 1, "zeros"), want, atol=1e-12)


def test_averaging_is_stable_to_translations_where_pixels_are_not():
    # a thin bar translated by one pixel: pixels change completely,
    # the average at scale 2^J changes by about 1 / sigma_J
    x = np.zeros((1, 32, 32))
    x[0, 8:24, 15] = 1.0
    y = dfm.translate(x, (0, 1))
    raw = np.linalg.norm(y - x) / np.linalg.norm(x)
    assert raw == pytest.approx(np.sqrt(2))
    prev = raw
    for J in (1, 2, 3):
        a, b = averaging.average(x, J), averaging.average(y, J)
        rel = np.linalg.norm(a - b) / np.linalg.norm(a)
        assert rel < prev
        prev = rel
    assert prev < 0.3
