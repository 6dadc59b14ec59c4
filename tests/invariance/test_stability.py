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


# ------------------------------------------------- the pages' experiments ----


def _digits(n, seed=0, size=12):
    """Random sparse 'digits' (uint8, N x size x size x 1) with a black border."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, size, size, 1), np.uint8)
    x[:, 3:-3, 3:-3, 0] = rng.integers(0, 256, (n, size - 6, size - 6)) * (rng.random((n, size - 6, size - 6)) > 0.5)
    return x


@pytest.mark.parametrize("kind,J", [("pixels", None), ("average", 1), ("scattering", 2)])
def test_dimension_is_the_length_of_the_representation(kind, J):
    x = _digits(2, size=28)
    assert invariance.dimension(kind, J, 8) == invariance.representation(kind, J, 8)(x).shape[1]
    with pytest.raises(ValueError, match="unknown representation"):
        invariance.dimension("wavelets", 1)


def test_translation_distances_match_brute_force():
    x, y = _digits(9, 1), np.arange(9) % 3
    ref, yr = _digits(12, 2), np.arange(12) % 3
    td = invariance.translation_distances(x, y, ref, yr, [0, 1, 2], np.random.default_rng(0))
    X, R = invariance.pixels(x), invariance.pixels(ref)
    norms = np.linalg.norm(X, axis=1)
    full = np.sqrt(((X[:, None] - R[None]) ** 2).sum(-1))
    same = np.where(y[:, None] == yr[None], full, np.inf).min(1) / norms
    other = np.where(y[:, None] != yr[None], full, np.inf).min(1) / norms
    np.testing.assert_allclose(td.same, same, rtol=1e-5)
    np.testing.assert_allclose(td.other, other, rtol=1e-5)
    np.testing.assert_array_equal(td.to_translate[:, 0], 0)
    # the same draws as shifting by hand with the same generator
    rng = np.random.default_rng(0)
    for k, r in enumerate([0, 1, 2]):
        moved = invariance.shift_each(x, invariance.random_shifts(9, r, rng))
        np.testing.assert_allclose(td.to_translate[:, k],
                                   np.linalg.norm(invariance.pixels(moved) - X, axis=1) / norms, rtol=1e-6)
    np.testing.assert_array_equal(td.share_beyond_other(), (td.to_translate > other[:, None]).mean(0))
    np.testing.assert_array_equal(td.median_to_translate(), np.median(td.to_translate, 0))


def test_shifted_sets_and_other_class_pairs():
    x = _digits(7, 3)
    sets = invariance.shifted_sets(x, [0, 2], seed=5)
    np.testing.assert_array_equal(sets[0], x)
    draws = invariance.random_shifts(7, 2, np.random.default_rng(7))
    np.testing.assert_array_equal(sets[2], invariance.shift_each(x, draws))
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    a, b = invariance.other_class_pairs(labels, 5, np.random.default_rng(0))
    assert len(set(a)) == 5 and np.all(labels[a] != labels[b])


def test_translation_vs_class_change():
    x, other = _digits(5, 4), _digits(5, 5)
    dt, db = invariance.translation_vs_class_change(invariance.pixels, x, other, shift=(0, 0))
    X, O = invariance.pixels(x), invariance.pixels(other)
    assert dt == 0
    assert db == pytest.approx(np.median(np.linalg.norm(O - X, axis=1) / np.linalg.norm(X, axis=1)))
    dt, _ = invariance.translation_vs_class_change(invariance.pixels, x, other, shift=(1, 0))
    assert dt > 0


def test_shift_accuracies_are_nearest_neighbour_accuracies(tmp_cache):
    ref, yr = _digits(20, 6), np.arange(20) % 4
    x, y = ref[:8], yr[:8]
    sets = invariance.shifted_sets(x, [0, 1], seed=0)
    acc = invariance.shift_accuracies("pixels", None, 8, ref, yr, sets, y)
    assert acc[0] == 1.0  # unshifted test digits are their own nearest references
    want = invariance.nn_accuracy(invariance.pixels(ref), yr, invariance.pixels(sets[1]), y)
    assert acc[1] == want
    assert invariance.shift_accuracies("pixels", None, 8, ref, yr, sets, y) == acc  # from the cache
    assert any(tmp_cache.rglob("*.npz"))


def test_stability_fit_of_exact_and_curved_responses():
    amps = [0.0, 0.1, 0.2, 0.4]
    grad = np.array(amps)[:, None, None] * np.ones((4, 2, 3))
    f = invariance.stability_fit(grad, 0.7 * grad, amps)
    assert f.slope == pytest.approx(0.7) and f.r2 == pytest.approx(1.0)
    assert f.sup_ratio == pytest.approx(0.7) and f.variation == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(f.mean_ratio, 0.7)
    g = invariance.stability_fit(grad, grad + grad**2, amps)  # grows faster than linearly
    assert g.variation == pytest.approx((1.4 / 1.1) - 1) and np.all(np.diff(g.mean_ratio) > 0)
    assert g.sup_ratio == pytest.approx(1.4)
    with pytest.raises(ValueError):
        invariance.stability_fit(grad[:1], grad[:1], [0.0])


def test_relative_changes_of_a_sweep():
    sw = invariance.deform_sweep(np.random.default_rng(3).random((2, 16, 16)), [0.0, 0.2], 1, 3.0)
    ch = invariance.relative_changes({"pixels": invariance.pixels}, sw)["pixels"]
    assert ch.shape == (2, 1, 2)
    np.testing.assert_allclose(ch[0], 0, atol=1e-6)
    want = np.linalg.norm((sw["images"][1, 0] - sw["original"]).reshape(2, -1), axis=1) / \
        np.linalg.norm(sw["original"].reshape(2, -1), axis=1)
    np.testing.assert_allclose(ch[1, 0], want, rtol=1e-5)


def test_frequency_sweep_pixels_grow_scattering_stays_flat():
    """The theorem's point: under one small dilation the pixel change grows
    with the frequency of the image, the scattering change does not."""
    fs = invariance.frequency_sweep([1, 4, 10], 0.05, J=3, L=8)
    assert fs["patterns"].shape == fs["moved"].shape == (3, 32, 32)
    assert fs["pixels"][-1] > 3 * fs["pixels"][0] and np.all(np.diff(fs["pixels"]) > 0)
    assert fs["scattering"].max() < 1.5 * fs["scattering"].min()
    assert fs["average"][-1] < 0.1 * fs["pixels"][-1]  # the average has erased the fine pattern


def test_cached_training_returns_the_first_result(tmp_cache, monkeypatch):
    rng = np.random.default_rng(5)
    x = torch.as_tensor(rng.random((40, 1, 28, 28)), dtype=torch.float32)
    y = torch.as_tensor(rng.integers(0, 10, 40))
    kw = dict(epochs=1, lr=0.05, batch_size=16, seed=0, threads=1)
    first = convnets.train_cached(lambda: convnets.SmallCNN(1, 10, 4), x, y, x, y, **kw)
    assert convnets.n_parameters(first.model) == sum(p.numel() for p in convnets.SmallCNN(1, 10, 4).parameters())
    f = rng.random((60, 5)).astype(np.float32)
    yl = rng.integers(0, 3, 60)
    lin = convnets.train_linear_cached(f, yl, f, yl, epochs=2, lr=1e-2, weight_decay=0.0, batch_size=16)

    def no_training(*a, **k):
        raise AssertionError("trained again instead of reading the cache")

    monkeypatch.setattr(convnets, "train", no_training)
    monkeypatch.setattr(convnets, "train_linear", no_training)
    again = convnets.train_cached(lambda: convnets.SmallCNN(1, 10, 4), x, y, x, y, **kw)
    assert again.test_accuracy == first.test_accuracy
    for a, b in zip(again.model.state_dict().values(), first.model.state_dict().values()):
        torch.testing.assert_close(a, b)
    lin2 = convnets.train_linear_cached(f, yl, f, yl, epochs=2, lr=1e-2, weight_decay=0.0, batch_size=16)
    assert lin2.test_accuracy == lin.test_accuracy and np.array_equal(lin2.weight, lin.weight)
    with pytest.raises(AssertionError, match="trained again"):  # another setting is not in the cache
        convnets.train_linear_cached(f, yl, f, yl, epochs=3, lr=1e-2, weight_decay=0.0, batch_size=16)
