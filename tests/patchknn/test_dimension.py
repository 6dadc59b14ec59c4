"""Tests of patchbook.patchknn.dimension: covariance dimension, exact k-NN,
Levina-Bickel estimator and relative contrast, on data of known dimension."""

import contextlib

import numpy as np
import pytest
import torch

from patchbook.patchknn import dimension as dm
from patchbook.patchknn.patches import extract_patches, to_tensor
from patchbook.patchknn.whitening import Whitener

# ------------------------------------------------------ covariance dimension

def test_covariance_dimension_closed_forms():
    iso = dm.covariance_dimension(np.full(20, 3.0))
    assert (iso.trace, iso.n_energy, iso.fraction) == (pytest.approx(20), 20, 1.0)
    assert iso.participation == pytest.approx(20)
    r = dm.covariance_dimension(np.r_[np.full(7, 2.0), np.zeros(13)])
    assert r.ambient == 20 and r.n_energy == 7
    assert r.trace == pytest.approx(7) and r.participation == pytest.approx(7)
    # trace / max and participation ratio of a known spectrum
    s = np.array([4.0, 2.0, 1.0, 1.0])
    assert dm.trace_dimension(s) == pytest.approx(8 / 4)
    assert dm.participation_ratio(s) == pytest.approx(64 / 22)


def test_energy_dimension_matches_cumsum():
    s = 0.7 ** np.arange(60)
    for tol in (1e-1, 1e-2, 1e-3):
        n = dm.energy_dimension(s[::-1], tol)  # order does not matter
        c = np.cumsum(s) / s.sum()
        assert c[n - 1] >= 1 - tol > c[n - 2]


def test_spectrum_and_whitened_spectrum_match_whitener():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(4000, 12, generator=g, dtype=torch.float64) @ torch.randn(12, 12, generator=g, dtype=torch.float64)
    X = X * torch.logspace(0, -3, 12, dtype=torch.float64)
    lam = 1e-3
    w = Whitener(lam, "zca").fit_patches(X)
    Xc = X - X.mean(0)
    cov = Xc.T @ Xc / len(X)
    s = dm.spectrum(cov)
    assert np.all(np.diff(s) <= 0)
    np.testing.assert_allclose(s, np.sort(w.eigvals_.numpy())[::-1], rtol=1e-8, atol=1e-14)
    Y = w.transform(X)
    Yc = Y - Y.mean(0)
    measured = dm.spectrum(Yc.T @ Yc / len(Y))
    np.testing.assert_allclose(measured, dm.whitened_spectrum(s, lam), rtol=1e-6, atol=1e-9)


# -------------------------------------------------------------- exact k-NN ---

@pytest.mark.parametrize("k,db_batch,query_batch", [(1, 1000, 1024), (40, 333, 64), (700, 256, 64), (1999, 1000, 500)])
def test_knn_equals_bruteforce(k, db_batch, query_batch):
    g = torch.Generator().manual_seed(k)
    x = torch.randn(2000, 16, generator=g, dtype=torch.float64)
    q = torch.randn(100, 16, generator=g, dtype=torch.float64)
    res = dm.knn(q, x, k, db_batch=db_batch, query_batch=query_batch)
    d, i = dm.knn_bruteforce(q, x, k)
    assert torch.equal(res.index, i)
    torch.testing.assert_close(res.dist, d, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(res.dmax, torch.cdist(q, x).max(1).values, rtol=1e-12, atol=1e-12)
    # float32: same neighbours up to round-off at near-ties
    r32 = dm.knn(q.float(), x.float(), k, db_batch=db_batch, query_batch=query_batch)
    torch.testing.assert_close(r32.dist.double(), d, rtol=1e-4, atol=1e-4)


def test_knn_exclude_self_and_refine():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2000, 8, generator=g, dtype=torch.float64)
    ids = torch.arange(0, 2000, 20)
    res = dm.knn(x[ids], x, 10, db_batch=300, exclude=ids)
    d, i = dm.knn_bruteforce(x[ids], x, 11)
    assert torch.equal(res.index, i[:, 1:]) and not (res.index == ids[:, None]).any()
    # far from the origin, float32 ||q||^2 + ||x||^2 - 2<q, x> loses the small
    # distances to cancellation; refine recomputes them exactly
    y = (x * 1e-2 + 1).float()
    exact, j = dm.knn_bruteforce(y[ids].double(), y.double(), 11)
    plain = dm.knn(y[ids], y, 10, exclude=ids)
    assert (plain.dist.double() - exact[:, 1:]).abs().max() > 1e-6
    ref = dm.knn(y[ids], dm.TensorDatabase(y), 10, exclude=ids, refine=16)
    assert torch.equal(ref.index, j[:, 1:])
    torch.testing.assert_close(ref.dist.double(), exact[:, 1:], rtol=1e-6, atol=0)
    with pytest.raises(ValueError):
        dm.knn(x[:3], x, 0)


def test_patch_database_matches_extract_patches():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(5, 9, 11, 3), dtype=np.uint8)
    for Q, stride in ((3, 1), (4, 2)):
        ref = extract_patches(to_tensor(imgs), Q, stride).reshape(-1, 3 * Q * Q)
        db = dm.PatchDatabase(imgs, Q, stride=stride)
        assert len(db) == len(ref) and db.dim == ref.shape[1]
        got = torch.cat([c for _, c in db.chunks(17)])
        assert torch.equal(got, ref)
        sub = dm.PatchDatabase(imgs, Q, n=20, seed=3, stride=stride, transform=lambda t: 2 * t)
        assert torch.equal(sub.gather(torch.arange(20)), 2 * ref[sub.flat])
    # a streamed database gives the same neighbours as the tensor it streams
    q = torch.rand(30, 27, dtype=torch.float32)
    db = dm.PatchDatabase(imgs, 3)
    a = dm.knn(q, db, 25, db_batch=50)
    b = dm.knn(q, ref_all := extract_patches(to_tensor(imgs), 3).reshape(-1, 27), 25)
    assert torch.equal(a.dist, b.dist) and len(ref_all) == len(db)


# ----------------------------------------------- nearest-neighbour dimension --

def test_levina_bickel_closed_form_and_zero_skipping():
    K = 30
    tau = np.exp(np.arange(1, K + 1, dtype=float))[None, :]  # log(tau_k / tau_j) = k - j
    d = dm.levina_bickel(tau)
    k = np.arange(2, K + 1)
    np.testing.assert_allclose(d[0, 1:], 2.0 / k)
    assert np.isnan(d[0, 0])
    np.testing.assert_allclose(dm.levina_bickel(5.0 * tau), d)  # scale invariant
    # two exact duplicates of the query are skipped: same estimates, shifted by two
    dz = dm.levina_bickel(np.c_[np.zeros((1, 2)), tau[:, :-2]])
    np.testing.assert_allclose(dz[0, 1:K - 2], d[0, 1:K - 2])
    assert np.isnan(dz[0, K - 2:]).all()
    nd = dm.nn_dimension(np.repeat(tau, 3, 0), k_min=4, k_max=10)
    assert nd.estimate == pytest.approx(np.mean(2.0 / np.arange(4, 11)))
    assert nd.at_k_max == pytest.approx(0.2) and nd.undefined == 0


def _estimate(data, queries, k_min=10, k_max=20):
    res = dm.knn(queries, data, k_max, track_max=False)
    return dm.nn_dimension(res.dist, k_min, k_max).estimate


@pytest.mark.parametrize("name,truth", [("subspace", 5), ("subspace", 8), ("sphere", 3), ("swiss", 2), ("curved", 3)])
def test_nn_dimension_of_known_manifolds(name, truth):
    N, nq, D = 20000, 400, 64
    make = {
        "subspace": lambda n, s: dm.embed(dm.gaussian(n, truth, s), D, seed=0),
        "sphere": lambda n, s: dm.embed(dm.sphere(n, truth, s), D, seed=0),
        "swiss": lambda n, s: dm.embed(dm.swiss_roll(n, s), D, seed=0),
        "curved": lambda n, s: dm.curved_manifold(n, truth, D, seed=s),
    }[name]
    est = _estimate(make(N, 1), make(nq, 2))
    assert abs(est - truth) <= 0.1 * truth, (name, truth, est)


def test_nn_dimension_of_isotropic_data_grows_with_dimension():
    ests = [_estimate(dm.gaussian(10000, d, 1), dm.gaussian(200, d, 2)) for d in (2, 4, 8)]
    assert ests[0] < ests[1] < ests[2]


# ------------------------------------------------------- relative contrast --

def test_relative_contrast_shrinks_for_iid_data_not_on_a_manifold():
    dims = (2, 8, 32, 128, 512)
    iid = [np.nanmedian(dm.query_contrast(dm.uniform_cube(100, D, 2), dm.uniform_cube(3000, D, 1))) for D in dims]
    assert all(a > b for a, b in zip(iid, iid[1:])), iid
    assert iid[-1] < 0.3 < 10 < iid[0]
    man = [np.nanmedian(dm.query_contrast(dm.curved_manifold(100, 2, D, 2), dm.curved_manifold(3000, 2, D, 1)))
           for D in dims]
    assert min(man) > 0.3 * max(man) and min(man) > 10, man
    assert dm.relative_contrast([1.0, 0.0], [3.0, 2.0])[0] == 2.0
    assert np.isnan(dm.relative_contrast([0.0], [2.0])[0])
    np.testing.assert_array_equal(dm.nearest_positive(np.array([[0, 0, 1.5], [2, 3, 4]])), [1.5, 2])


def test_patch_neighbours_on_images():
    from patchbook.data import Dataset

    rng = np.random.default_rng(1)
    train = Dataset(rng.integers(0, 256, (12, 10, 10, 3), dtype=np.uint8), np.zeros(12, np.int64), ("a",), "t")
    test = Dataset(rng.integers(0, 256, (4, 10, 10, 3), dtype=np.uint8), np.zeros(4, np.int64), ("a",), "q")
    mom = dm.patch_covariance(train.images, 3)
    w = Whitener(1e-2, "zca").fit(train.images, 3)
    X = extract_patches(to_tensor(train.images), 3).reshape(-1, 27)
    torch.testing.assert_close(dm.patch_transform(mom, 1e-2)(X), w.transform(X))
    for lam in (None, 1e-2):
        out = dm.patch_neighbours(train, test, 3, lam=lam, n_database=None, n_queries=20, k=15,
                                  n_cov_images=None, cache=False)
        tf = dm.patch_transform(mom, lam)
        q = tf(dm.PatchDatabase(test.images, 3, n=20, seed=1).gather(torch.arange(20)))
        ref, _ = dm.knn_bruteforce(q.double(), tf(X).double(), 15)
        np.testing.assert_allclose(out["dist"], ref.numpy(), rtol=1e-4, atol=1e-5)
        assert out["n_database"] == out["n_all"] == len(X)


def test_exact_small_distances_finds_copies_of_the_query():
    # images made of a few flat grey levels: many exact copies of every patch
    rng = np.random.default_rng(2)
    imgs = np.repeat(np.repeat(rng.integers(0, 4, (30, 3, 3, 1)) * 60 + 40, 4, 1), 4, 2)
    imgs = np.repeat(imgs, 3, 3).astype(np.uint8)  # 30 x 12 x 12 x 3
    mom = dm.patch_covariance(imgs, 3)
    for lam in (None, 1e-3):
        tf, lin = dm.patch_transform(mom, lam), dm.patch_linear(mom, lam)
        db = dm.PatchDatabase(imgs, 3, transform=tf)
        qs = dm.PatchDatabase(imgs[:2], 3, n=40, seed=5)
        q_raw = qs.raw(torch.arange(40))
        q = tf(q_raw)
        res = dm.knn(q, db, 50)
        dist, index, n = dm.exact_small_distances(res.dist, res.index, q_raw, db, lin, (q.double() ** 2).sum(1))
        X = db.raw(torch.arange(len(db))).double()
        Lq, LX = (q_raw.double(), X) if lin is None else (q_raw.double() @ lin.T, X @ lin.T)
        ref, _ = dm.knn_bruteforce(Lq, LX, 50)
        assert n > 0
        torch.testing.assert_close(dist.double(), ref, rtol=1e-5, atol=1e-12)  # float32 where not recomputed
        copies = (X[index] == q_raw.double()[:, None, :]).all(-1)
        assert copies.any() and torch.equal(dist == 0, copies)  # copies of the query exactly at 0
        small = ref ** 2 < 1e-3 * (q.double() ** 2).sum(1, keepdim=True)
        torch.testing.assert_close(dist.double()[small], ref[small], rtol=1e-6, atol=1e-12)


def test_levina_bickel_ties_are_undefined():
    tau = np.r_[np.full(5, 0.3), 0.3 * np.exp(np.arange(1, 16))][None, :]
    tau = tau * (1 + 1e-7 * np.random.default_rng(0).standard_normal(tau.shape))  # float32-size round-off
    d = dm.levina_bickel(tau)
    assert np.isnan(d[0, :5]).all() and np.isfinite(d[0, 5:]).all()


# ------------------------------------------------- the page's studies ----

def test_synthetic_contrast_of_iid_and_flat_data():
    out = dm.synthetic_contrast([2, 64], [2], n=300, n_queries=20, seed=0, k=20, k_min=10)
    assert list(out) == ["i.i.d. uniform", "i.i.d. Gaussian", "flat 2-dim.", "curved 2-dim."]
    assert all(r.shape == (2, 3) for r in out.values())
    iid, flat = out["i.i.d. uniform"], out["flat 2-dim."]
    assert iid[1, 1] < 0.2 * iid[0, 1]  # Beyer: the contrast of i.i.d. data collapses with D
    # a flat set rotated into R^D keeps its distances: same contrast, about 2 dimensions, whatever D
    assert flat[1, 1] == pytest.approx(flat[0, 1], rel=1e-3)
    assert 1.5 < flat[1, 2] < 2.6 and iid[1, 2] > 3 * flat[1, 2]
    # the same draws as by hand
    q, x = dm.uniform_cube(20, 64, 2), dm.uniform_cube(300, 64, 1)
    res = dm.knn(q, x, 20)
    assert iid[1, 1] == pytest.approx(np.nanmedian(dm.relative_contrast(res.dist[:, 0], res.dmax)))


def test_matched_k_and_ball_mass():
    assert dm.matched_k(2000, 300_000, 42_050_000) == 14
    assert dm.matched_k(100, 10, 10) == 100 and dm.matched_k(100, 50, 10) == 100  # never above k
    curves = {1000: np.arange(1.0, 51.0), 4000: np.arange(1.0, 101.0) * 10}
    # mass 0.025: k = 25 of 1,000 (per_k[24] = 25) and k = 100 of 4,000 (per_k[99] = 1000)
    assert dm.at_ball_mass(curves, 0.025, k_min=10) == [(1000, 25.0), (4000, 1000.0)]
    assert dm.at_ball_mass(curves, 0.06, k_min=10) == []  # k = 60 > 50 and k = 240 > 100
    assert dm.at_ball_mass(curves, 0.005, k_min=10) == [(4000, 200.0)]  # k = 5 < k_min for 1,000


def test_gaussian_contrast_is_a_knn_of_gaussian_data():
    got = dm.gaussian_contrast(6, 500, 30, seed=1, db_batch=128)
    g = dm.knn(dm.gaussian(30, 6, 6), dm.GaussianDatabase(500, 6, 7), 1, db_batch=128)
    assert got == pytest.approx(float(np.nanmedian(dm.relative_contrast(g.dist[:, 0], g.dmax))))


def _image_sets():
    from patchbook.data import Dataset

    rng = np.random.default_rng(4)
    train = Dataset(rng.integers(0, 256, (12, 10, 10, 3), dtype=np.uint8), np.zeros(12, np.int64), ("a",), "t4")
    test = Dataset(rng.integers(0, 256, (4, 10, 10, 3), dtype=np.uint8), np.zeros(4, np.int64), ("a",), "q4")
    return train, test


def test_patch_dimensions_are_the_estimates_of_the_searches(tmp_cache):
    train, test = _image_sets()
    timed = []
    rows, s = dm.patch_dimensions("toy", train, test, 3, lam=1e-2, n_database=300, n_queries=20, k=30, k_min=5,
                                  n_cov_images=None, energy_tol=1e-3, contrast_queries=10, seed=0, db_batch=64,
                                  timer=lambda name: timed.append(name) or contextlib.nullcontext())
    assert [r.kind for r in rows] == ["raw", "whitened"] and {"covariance toy", "k-NN toy"} <= set(timed)
    np.testing.assert_allclose(s, dm.spectrum(dm.patch_covariance(train.images, 3)["cov"]))
    for r, lam in zip(rows, (None, 1e-2)):
        out = dm.patch_neighbours(train, test, 3, lam=lam, n_database=300, n_queries=20, k=30, n_cov_images=None,
                                  seed=0, db_batch=64)
        nd = dm.nn_dimension(out["dist"], 5, 30)
        assert (r.Q, r.d, r.n_db, r.n_all) == (3, 27, 300, 12 * 64)
        assert r.nn == nd.estimate and r.nn_K == nd.at_k_max
        assert r.nn_inv == dm.nn_dimension(out["dist"], 5, 30, average="inverse").estimate
        assert r.k_star == dm.matched_k(30, 300, 768) == 12 and r.nn_star == nd.per_k[11]
        want = dm.covariance_dimension(s if lam is None else dm.whitened_spectrum(s, lam), 1e-3)
        assert r.cov == want
        assert r.contrast_gauss == dm.gaussian_contrast(27, 300, 10, 0, 64, "cpu")
    assert rows[1].cov.fraction >= rows[0].cov.fraction  # whitening spreads the energy


def test_database_size_study(tmp_cache):
    train, test = _image_sets()
    out = dm.database_size_study(train, test, 3, [40, 200], lam=1e-2, n_queries=10, k=50, k_min=5,
                                 n_cov_images=None, seed=0, db_batch=64)
    assert set(out) == {("raw", 40), ("whitened", 40), ("raw", 200), ("whitened", 200)}
    assert out["raw", 40].k_max == 20 and out["raw", 200].k_max == 50  # K = min(k, n // 2)
    nb = dm.patch_neighbours(train, test, 3, lam=None, n_database=40, n_queries=10, k=20, n_cov_images=None, seed=0,
                             db_batch=64)
    assert out["raw", 40].estimate == dm.nn_dimension(nb["dist"], 5, 20).estimate


# ------------------------------------------- copies of the query, every database --

def _flat7(n, seed):
    """``n`` points uniform in a 7-cube, in a 7-dimensional linear subspace of R^100."""
    return dm.embed(dm.uniform_cube(n, 7, seed), 100, seed=0)


def _lb(dist):
    return dm.nn_dimension(dist, 10, 20).estimate


def test_queries_in_the_data_read_the_dimension_of_a_subspace():
    # 20,000 points of a 7-dimensional subspace of R^100; 500 queries in the data, held out, or duplicated
    x, held = _flat7(20000, 1), _flat7(500, 2)
    ids = torch.arange(0, 20000, 40)
    inside = dm.knn(x[ids], x, 21)  # the query itself is one of the 21
    assert (inside.dist[:, 0] == 0).all() and torch.equal(inside.index[:, 0], ids)  # a copy, at exactly 0
    excluded = dm.knn(x[ids], x, 20, exclude=ids)
    assert torch.equal(excluded.dist, inside.dist[:, 1:]) and not (excluded.index == ids[:, None]).any()
    dup = dm.knn(held, torch.cat([x, held[:250]]), 21)  # half of the queries copied into the database
    assert (dup.dist[:250, 0] == 0).all() and (dup.dist[250:, 0] > 0).all()
    estimates = {"in the data": _lb(inside.dist), "excluded": _lb(excluded.dist),
                 "held out": _lb(dm.knn(held, x, 20).dist), "duplicated": _lb(dup.dist)}
    for name, est in estimates.items():
        assert abs(est - 7) <= 0.05 * 7, (name, estimates)
    # without the exact recomputation the float32 self-distance (about 1e-3) counts as a neighbour
    plain = dm.knn(x[ids], x, 21, exact=False)
    assert (plain.dist[:, 0] > 0).any() and _lb(plain.dist) < 0.85 * estimates["held out"]


def test_gaussian_database_gathers_its_own_rows():
    g = dm.GaussianDatabase(1000, 5, seed=3, block=300)
    rows = torch.cat([c for _, c in g.chunks(1000)])
    for batch in (1, 7, 300, 301, 4096):  # the points do not depend on the batch size
        got = list(g.chunks(batch))
        assert [s for s, _ in got] == list(range(0, 1000, batch)) and torch.equal(torch.cat([c for _, c in got]), rows)
    idx = torch.tensor([999, 0, 299, 300, 5, 5])
    assert torch.equal(g.gather(idx), rows[idx])
    with pytest.raises(ValueError, match="indices"):
        g.gather(torch.tensor([1000]))
    # the default block is the default db_batch: the same points as a single stream of that size
    gen = torch.Generator().manual_seed(4)
    ref = torch.cat([torch.randn(16384, 3, generator=gen), torch.randn(616, 3, generator=gen)])
    assert torch.equal(torch.cat([c for _, c in dm.GaussianDatabase(17000, 3, seed=4).chunks(16384)]), ref)


def test_gaussian_database_queries_in_the_data():
    g = dm.GaussianDatabase(20000, 7, seed=3, block=5000)
    ids = torch.arange(0, 20000, 40)
    inside = dm.knn(g.gather(ids), g, 21, db_batch=3000)
    assert (inside.dist[:, 0] == 0).all() and torch.equal(inside.index[:, 0], ids)
    held = dm.knn(dm.gaussian(500, 7, 9), g, 20, db_batch=3000)
    a, b = _lb(inside.dist), _lb(held.dist)
    assert abs(a - b) <= 0.02 * b, (a, b)
    # the mean of d_k reads about 7.7 on a Gaussian at these k (held out too); its inverse average reads 7
    inv = dm.nn_dimension(inside.dist, 10, 20, average="inverse").estimate
    assert abs(inv - 7) <= 0.05 * 7, inv


def test_patch_database_queries_in_the_data():
    # images of a few flat grey levels: every patch has copies
    rng = np.random.default_rng(3)
    imgs = np.repeat(np.repeat(rng.integers(0, 4, (20, 3, 3, 1)) * 60 + 40, 4, 1), 4, 2)
    imgs = np.repeat(imgs, 3, 3).astype(np.uint8)  # 20 x 12 x 12 x 3
    imgs[:, ::2, ::3] += rng.integers(0, 2, (20, 6, 4, 3), dtype=np.uint8)  # and a few that differ
    mom = dm.patch_covariance(imgs, 3)
    ids = torch.arange(0, 2000, 37)
    for lam in (None, 1e-3):
        tf, lin = dm.patch_transform(mom, lam), dm.patch_linear(mom, lam)
        db = dm.PatchDatabase(imgs, 3, transform=tf)
        X = db.raw(torch.arange(len(db))).double()
        LX = X if lin is None else X @ lin.T
        ref = torch.cdist(LX[ids], LX, compute_mode="donot_use_mm_for_euclid_dist").sort(dim=1, stable=True)
        copies = (X[None, :, :] == X[ids][:, None, :]).all(-1)  # raw copies of each query, itself included
        q, q_raw = db.gather(ids), db.raw(ids)
        # the query's own index excluded, its other copies recomputed from the raw patches
        res = dm.knn(q, db, 40, exclude=ids)
        dist, index, _ = dm.exact_small_distances(res.dist, res.index, q_raw, db, lin, (q.double() ** 2).sum(1))
        assert not (index == ids[:, None]).any()
        # float32 where not recomputed
        torch.testing.assert_close(dist.double(), ref.values[:, 1:41], rtol=1e-4, atol=1e-12)
        assert torch.equal(dist == 0, torch.gather(copies, 1, index))
        if lam is None:  # centring acts coordinate by coordinate: knn alone returns every copy at 0
            alone = dm.knn(q, db, 41)
            assert torch.equal(alone.dist == 0, torch.gather(copies, 1, alone.index))
            torch.testing.assert_close(alone.dist.double(), ref.values[:, :41], rtol=1e-4, atol=1e-12)


# ------------------------------------------------- the authors' reading ----

def test_authors_dimension_by_hand():
    K, k_min = 30, 10
    j = np.arange(1, K + 1, dtype=float)
    a = np.exp(j)                                  # log(tau_k / tau_i) = k - i: d_k = 2 / k
    b = np.r_[0.0, np.exp(j[1:])]                  # a zero in the first column only: dropped with it
    f = np.exp(2 * j)                              # d_k = 1 / k
    zero = np.r_[0.0, 0.0, np.exp(j[2:])]          # two copies: a zero is left, the query is dropped
    flat = np.full(K, 2.0)                         # every log-ratio 0: dropped
    early = np.r_[1.0, np.full(5, 3.0), np.exp(j[6:])]  # ties before k_min + 1 only: kept
    t = early[1:]
    d_early = 1 / (np.log(t[-1]) - np.log(t[:-1]).mean())
    au = dm.authors_dimension(np.stack([a, b, f, zero, flat, early]), k_min)
    # after the first column is dropped, k = K - 1 neighbours remain
    assert au.k_max == K - 1 and au.n_queries == 6 and (au.dropped_zero, au.dropped_ratio) == (1, 1)
    assert au.kept == pytest.approx(4 / 6)
    assert au.estimate == pytest.approx((2 / 29 + 2 / 29 + 1 / 29 + d_early) / 4)
    k = np.arange(k_min + 1, K)
    assert len(au.per_k) == len(k) and au.per_k[0] == pytest.approx(np.mean([2 / 11, 2 / 11, 1 / 11, 1 / (
        np.log(t[10]) - np.log(t[:10]).mean())]))
    # ours on the same rows: the zeros skipped, the tied pairs blanked, nothing dropped
    ours = dm.levina_bickel(np.stack([a, b, f, zero, flat, early]))
    assert np.isnan(ours[4]).all() and np.isfinite(ours[3, 1:K - 2]).all()
    with pytest.raises(ValueError):
        dm.authors_dimension(a[None, :3], 10)


def test_authors_dimension_of_a_known_dimension():
    # 7-dimensional Gaussian in R^100, K = 100: their reading is d_99 of neighbours 2..100
    x, held = dm.embed(dm.gaussian(20000, 7, 1), 100, seed=0), dm.embed(dm.gaussian(500, 7, 2), 100, seed=0)
    res = dm.knn(held, x, 100)
    au = dm.authors_dimension(res.dist, 10)
    assert au.kept == 1 and abs(au.estimate - 7) <= 0.05 * 7, au.estimate
    assert au.estimate == pytest.approx(float(np.mean(dm.levina_bickel(res.dist[:, 1:])[:, -1])))
    # queries in the data: the dropped first column is the query itself, the same reading as held out
    ids = torch.arange(0, 20000, 40)
    inside = dm.authors_dimension(dm.knn(x[ids], x, 100).dist, 10)
    assert inside.kept == 1 and abs(inside.estimate - 7) <= 0.05 * 7, inside.estimate
    # a query with a copy of itself in the database is dropped
    dup = dm.authors_dimension(dm.knn(held, torch.cat([x, held[:2], held[:2]]), 100).dist, 10)
    assert dup.dropped_zero == 2 and dup.kept == pytest.approx(498 / 500)
