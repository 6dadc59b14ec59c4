"""Experiment helpers: cached codes, shared-score variants, sweeps, baselines."""

import numpy as np
import pytest
import torch

from patchbook.patchknn import pipeline as ex
from patchbook.patchknn.encoding import PatchEncoder


def _images(n=24, size=16, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    # smooth-ish images so patches have a non-degenerate covariance
    base = rng.integers(0, 256, (n, size // 2, size // 2, 3)).astype(np.uint8)
    imgs = base.repeat(2, 1).repeat(2, 2)
    noise = rng.integers(0, 20, imgs.shape)
    imgs = np.clip(imgs.astype(int) + noise, 0, 255).astype(np.uint8)
    return imgs, np.arange(n) % classes


def _encoder(**kw):
    args = dict(n_atoms=16, patch=3, k=0.25, lam=1e-3, pool=4, pool_stride=3, ceil_mode=False, seed=0)
    args.update(kw)
    return PatchEncoder(**args)


def test_encode_cached_computes_once_and_equals_transform(tmp_cache):
    imgs, _ = _images()
    enc = ex.fit_encoder(_encoder(), imgs, key={"test": "a"})
    ex.COUNTS.clear()
    a = ex.encode_cached(enc, imgs, key={"test": "a"})
    assert ex.COUNTS["encoded images"] == len(imgs)
    b = ex.encode_cached(enc, imgs, key={"test": "a"})
    assert ex.COUNTS["encoded images"] == len(imgs)          # second call: from the cache
    np.testing.assert_array_equal(a, b)
    ref = enc.transform(imgs, dtype=torch.uint8).numpy()
    assert a.dtype == np.uint8 and a.shape == ref.shape
    np.testing.assert_array_equal(a, ref)
    assert ex.cached_seconds(enc, imgs, key={"test": "a"}) > 0
    assert ex.cached_seconds(enc, imgs, key={"test": "other"}) is None
    # another fitted state (another dictionary seed) is another entry
    enc2 = ex.fit_encoder(_encoder(seed=1), imgs, key={"test": "a"})
    ex.encode_cached(enc2, imgs, key={"test": "a"})
    assert ex.COUNTS["encoded images"] == 2 * len(imgs)
    # moments were computed once for both encoders (same patch size, same images)
    assert ex.COUNTS["moments"] == 0


def test_variants_share_scores_and_match_transform(tmp_cache):
    imgs, _ = _images(n=10)
    enc = ex.fit_encoder(_encoder(), imgs)
    changes = [{"k": 1}, {"k": 8}, {"k": 0.25, "soft": 0.5}, {"soft": 50.0}]
    ex.COUNTS.clear()
    out = ex.encode_variants(enc, imgs, changes, batch_size=4)
    assert ex.COUNTS["encoded images"] == len(changes) * len(imgs)
    for ch, codes in zip(changes, out):
        v = ex.variant(enc, **ch)
        dtype = torch.uint8 if v.soft is None else torch.float32
        ref = v.transform(imgs, dtype=dtype, batch_size=4).numpy()
        assert codes.dtype == ref.dtype
        np.testing.assert_array_equal(codes, ref)
    # each pooled window of the hard code with K = 1 counts one atom per position and sign
    hard = out[0].astype(int).sum(1)
    assert np.all(hard == 2 * 16)  # 4 x 4 windows, both signs
    with pytest.raises(ValueError, match="refit"):
        ex.variant(enc, lam=1.0)


def test_moments_cached_subset_and_reuse(tmp_cache):
    imgs, _ = _images(n=12)
    ex.COUNTS.clear()
    m1 = ex.moments_cached(imgs, 3, n_images=6)
    m2 = ex.moments_cached(imgs, 3, n_images=6)
    assert ex.COUNTS["moments"] == 1
    assert torch.equal(m1.cov, m2.cov) and m1.count == 6 * 14 * 14
    full = ex.moments_cached(imgs, 3)
    assert full.count == 12 * 14 * 14 and ex.COUNTS["moments"] == 2


def test_sweep_returns_one_point_per_value_and_reuses(tmp_cache):
    imgs, labels = _images(n=30)
    tr = ex.Split(imgs[:21], labels[:21], {"t": "train"})
    te = ex.Split(imgs[21:], labels[21:], {"t": "test"})
    base = dict(n_atoms=16, patch=3, k=0.25, lam=1e-3, whitening="zca", both_signs=True, soft=None, pool=4,
                pool_stride=3, ceil_mode=False, head="factorized", bottleneck=8, head_kernel=4, epochs=2, lr=0.01,
                milestones=[1], batch_size=8)
    exp = ex.CodeExperiment(tr, te, base)
    ex.COUNTS.clear()
    pts = ex.sweep(exp, [1, 4, 8], "k")
    assert [p["value"] for p in pts] == [1, 4, 8]
    assert ex.COUNTS["trainings"] == 3
    for p in pts:
        assert 0 <= p["best_test_top1"] <= 100 and 0 <= p["train_top1"] <= 100
        assert p["best_test_top1"] >= p["test_top1"] and len(p["history"]) == 2
        assert p["n_test"] == 9
    # K = 4 is the base setting (0.25 x 16): the same point, not retrained
    again = exp.point(k=4)
    assert ex.COUNTS["trainings"] == 3 and again["cached"]
    assert again["best_test_top1"] == pts[1]["best_test_top1"]
    heads = ex.sweep(exp, [{"head": "linear"}, {"bottleneck": 4}], lambda c: c)
    assert len(heads) == 2 and ex.COUNTS["trainings"] == 5
    # classifier variants share the codes: nothing re-encoded for them
    n_enc = ex.COUNTS["encoded images"]
    exp.point(bottleneck=6)
    assert ex.COUNTS["encoded images"] == n_enc


def test_authors_score_ratio_is_a_positive_scale(tmp_cache):
    imgs, _ = _images(n=10)
    enc = ex.fit_encoder(_encoder(n_atoms=32), imgs)
    from patchbook.patchknn.patches import sample_patches

    p = sample_patches(imgs, 3, 50, seed=1)
    a = ex.authors_scores(enc, p)
    # ranking by the authors' score = ranking by the Mahalanobis distance to the
    # normalised patch: check against the definition
    m = torch.tensor(ex.AUTHORS_CIFAR_MEAN, dtype=torch.float64).repeat_interleave(9)
    s = torch.tensor(ex.AUTHORS_CIFAR_STD, dtype=torch.float64).repeat_interleave(9)
    xn = (p.double() - m) / s
    M = enc.whitener_.metric_
    diff = xn[:, None, :] - enc.atoms_.double()[None]
    d2 = torch.einsum("nmd,de,nme->nm", diff, M, diff)
    const = 0.5 * torch.einsum("nd,de,ne->n", xn, M, xn)
    torch.testing.assert_close(a, 0.5 * d2 - const[:, None])
    r = ex.authors_score_ratio(enc, p)
    assert r["ratio"] > 0 and r["q10"] <= r["ratio"] <= r["q90"]


def test_baseline_shapes():
    from patchbook.invariance import scattering
    from patchbook.patchknn import baselines

    imgs, _ = _images(n=3, size=64)
    f = baselines.conv_features(imgs, "conv2", "random", out_size=6)
    assert f.shape == (3, 192, 6, 6) and f.dtype == np.float32 and np.all(f >= 0)
    f1 = baselines.conv_features(imgs, "conv1", "random", out_size=None)
    assert f1.shape == (3, 64, 15, 15)
    # same seed, same random network
    np.testing.assert_array_equal(f, baselines.conv_features(imgs, "conv2", "random", out_size=6))
    small, _ = _images(n=2, size=32)
    s = baselines.scattering_features(small, J=2, L=4, out_size=4)
    assert s.shape == (2, 3 * scattering.n_channels(2, 4), 4, 4)


def test_paper_train_config_roundtrip():
    from dataclasses import asdict

    from patchbook.patchknn.resumable import TrainConfig

    cfg = dict(n_atoms=2048, patch=6, k=0.4, lam=1e-3, whitening="zca", both_signs=True, soft=None, pool=5,
               pool_stride=3, ceil_mode=True, seed=0, head="factorized", bottleneck=192, head_kernel=12, epochs=80,
               lr=3e-3, milestones=[50, 75], batch_size=256)
    tc = ex.paper_train_config(cfg, dataset="imagefolder:/x", output="runs/x", padding=8)
    assert tc.encoder["n_atoms"] == 2048 and tc.head == {"kind": "factorized", "bottleneck": 192, "kernel": 12}
    assert tc.schedule["milestones"] == [50, 75] and tc.batch_size == 256 and tc.augment
    assert TrainConfig.from_dict(asdict(tc)) == tc
