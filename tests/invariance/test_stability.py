"""Helpers of the invariance pages (patchbook.invariance.stability) and the small
classifiers (patchbook.invariance.convnets)."""

import numpy as np
import pytest
import torch

from patchbook.invariance import convnets
from patchbook.invariance import deformation as dfm
from patchbook.invariance import stability as invariance


def test_nearest_neighbour_matches_brute_force():
    rng = np.random.default_rng(0)
    train, test = rng.random((50, 7)), rng.random((13, 7))
    j, d = invariance.nearest_neighbour(train, test, batch=4)
    full = np.sqrt(((test[:, None] - train[None]) ** 2).sum(-1))
    np.testing.assert_array_equal(j, full.argmin(1))
    np.testing.assert_allclose(d, full.min(1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(invariance.pairwise_sq_distances(test, train), full**2, rtol=1e-5, atol=1e-5)
    y = np.arange(50) % 3
    assert invariance.nn_accuracy(train, y, train, y) == 1.0


def test_random_shifts_lie_on_the_ring_and_shift_each_translates():
    rng = np.random.default_rng(1)
    for r in (0, 1, 3):
        s = invariance.random_shifts(200, r, rng)
        assert np.all(np.abs(s).max(1) == r)
    assert len(dfm.shifts_of_norm(2)) == 16
    x = rng.integers(0, 255, (6, 10, 10, 1)).astype(np.uint8)
    s = invariance.random_shifts(6, 2, rng)
    out = invariance.shift_each(x, s)
    for i in range(6):
        np.testing.assert_array_equal(out[i], dfm.translate(x[i:i + 1], tuple(s[i]))[0])


def test_fit_through_origin():
    x = np.array([1.0, 2.0, 3.0])
    k, r2 = invariance.fit_through_origin(x, 2.5 * x)
    assert k == pytest.approx(2.5) and r2 == pytest.approx(1.0)
    k, r2 = invariance.fit_through_origin(x, np.array([3.0, 1.0, 2.0]))
    assert k == pytest.approx(11 / 14) and r2 < 0.5


def test_representations_shapes_and_scattering_norm():
    x = np.random.default_rng(2).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    assert invariance.representation("pixels")(x).shape == (3, 784)
    assert invariance.representation("average", 2)(x).shape == (3, 784)
    s = invariance.representation("scattering", 2)(x)
    assert s.shape == (3, 81 * 49)
    # 2^J-scaled coefficients: norms comparable with, and below, the image's
    ratio = np.linalg.norm(s, axis=1) / np.linalg.norm(invariance.pixels(x), axis=1)
    assert np.all((ratio > 0.5) & (ratio <= 1.0))


def test_deform_sweep_scales_one_field():
    x = np.random.default_rng(3).random((2, 16, 16))
    sw = invariance.deform_sweep(x, [0.0, 0.1, 0.2], n_fields=2, smoothness=3.0, seed=0)
    assert sw["images"].shape == (3, 2, 2, 16, 16)
    np.testing.assert_allclose(sw["grad"][1], 0.1, rtol=1e-9)
    np.testing.assert_allclose(sw["sup"][2], 2 * sw["sup"][1], rtol=1e-9)
    np.testing.assert_allclose(sw["images"][0, 0], x, atol=1e-6)


def test_models_and_augmentation():
    assert convnets.SmallCNN(1, 10, 8)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    net = convnets.SmallResNet(10, 8, blocks=1, stem_kernel=5)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert net.conv1.weight.shape == (8, 3, 5, 5)
    x = torch.rand(4, 3, 8, 8)
    torch.testing.assert_close(convnets.random_crop_flip(x, pad=0, flip=False), x)
    y = convnets.random_crop_flip(x, pad=2, flip=True, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    f = convnets.first_layer_filters(torch.randn(5, 3, 4, 4))
    assert f.shape == (5, 4, 4, 3) and f.min() == 0 and np.allclose(f.reshape(5, -1).max(1), 1)


def test_linear_classifier_separates_separable_data():
    rng = np.random.default_rng(4)
    centres = rng.normal(0, 5, (3, 10))
    y = rng.integers(0, 3, 300)
    x = centres[y] + rng.normal(0, 0.5, (300, 10))
    r = convnets.train_linear(x[:200], y[:200], x[200:], y[200:], epochs=20, lr=1e-2, progress=False)
    assert r.test_accuracy == 1.0 and r.weight.shape == (3, 10)
