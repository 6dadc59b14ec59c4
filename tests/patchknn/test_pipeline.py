"""The one pipeline of Part 2: configuration, cached moments and codes,
shared-score variants, points both ways, sweeps, baselines, the CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from patchbook.__main__ import main as cli
from patchbook.invariance import scattering
from patchbook.pages import profiles
from patchbook.patchknn import baselines
from patchbook.patchknn import pipeline as ex
from patchbook.patchknn.encoding import PatchEncoder
from patchbook.patchknn.patches import sample_patches
from patchbook.paths import cache_root

PAGES = ("cifar10-table", "ablations", "imagenet-table")


@pytest.fixture(autouse=True)
def fresh_process_memory():
    """Each test sees an empty in-process memory of splits and fitted encoders."""
    ex.forget()
    ex.COUNTS.clear()
    yield
    ex.forget()


@pytest.fixture
def data_cache(tmp_path, monkeypatch) -> Path:
    """An empty cache, except for the decoded data sets of the usual one
    (linked, so CIFAR-10 is decoded once, not in every test)."""
    decoded = cache_root() / "datasets"
    decoded.mkdir(parents=True, exist_ok=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "datasets").symlink_to(decoded, target_is_directory=True)
    monkeypatch.setenv("PATCHBOOK_CACHE", str(cache))
    return cache


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


def image_folder(root: Path, n_train=7, n_test=3, classes=3, size=16, seed=0) -> str:
    """A lossless (PNG) image-folder data set with train/ and test/ splits: a
    ``dataset`` name for the pipeline that needs no downloaded data."""
    imgs, _ = _images(n=classes * (n_train + n_test), size=size, seed=seed)
    i = 0
    for split, n in (("train", n_train), ("test", n_test)):
        for c in range(classes):
            d = root / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            for j in range(n):
                Image.fromarray(imgs[i]).save(d / f"{j:03d}.png")
                i += 1
    return f"imagefolder:{root}"


def tiny(dataset: str, **kw) -> ex.PointConfig:
    base = dict(dataset=dataset, n_atoms=16, patch=3, k=0.25, lam=1e-3, pool=4, pool_stride=3, ceil_mode=False,
                bottleneck=8, head_kernel=4, epochs=2, lr=0.01, milestones=[1], batch_size=8)
    return ex.PointConfig(**{**base, **kw})


# ---------------------------------------------------------- configuration ----

def test_config_from_params_replace_and_key():
    P = {"n_atoms": 64, "k": 0.25, "soft": None, "rows": [{}], "n_show": 8, "device": "cpu", "memory_mb": 64,
         "milestones": [3, 4]}
    c = ex.PointConfig.from_params(P, whitening="none")
    assert (c.n_atoms, c.k, c.whitening, c.milestones) == (64, 0.25, "none", (3, 4))
    assert c.replace(n_atoms=64) == c and c.replace(n_atoms=32).n_atoms == 32
    assert c.replace(lam=0.1).key() != c.key() and ex.PointConfig.from_params(P, whitening="none").key() == c.key()
    # how a point is computed is no field, so it cannot enter the key
    assert not {"device", "memory_mb", "progress", "output"} & set(ex.PointConfig.fields())
    with pytest.raises(ValueError, match="unknown point parameters"):
        ex.PointConfig.from_params(P, k_fraction=0.4)
    with pytest.raises(ValueError, match="unknown point parameters"):
        c.replace(n_val_per_class=3)
    with pytest.raises(ValueError, match="soft must be None"):
        c.replace(soft=0.0)
    with pytest.raises(ValueError, match="head must be"):
        c.replace(head="mlp")
    with pytest.raises(ValueError, match="not in"):
        c.replace(k=65)


def test_config_round_trip_through_json_and_yaml(tmp_path):
    c = ex.PointConfig(n_atoms=32, k=5, soft=0.5, milestones=(2, 3), augment=True, dataset="mnist")
    again = ex.PointConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c and again.key() == c.key() and isinstance(again.k, int)
    (tmp_path / "c.json").write_text(json.dumps(c.to_dict()))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(c.to_dict()))
    assert ex.load_config(tmp_path / "c.json") == c == ex.load_config(tmp_path / "c.yaml")
    with pytest.raises(ValueError, match="unknown config keys"):
        ex.PointConfig.from_dict({"epochz": 3})


@pytest.mark.parametrize("page", PAGES)
def test_profiles_speak_the_config_names(page):
    """Every profile of the three Part 2 pages builds a point; the old names are gone."""
    fields = set(ex.PointConfig.fields())
    for name in profiles.PROFILE_NAMES:
        P = profiles.resolve(page, name)
        assert not {"k_fraction", "n_val_per_class", "use_train_run", "test_n_per_class"} & set(P)
        assert P.get("soft") is None
        c = ex.PointConfig.from_params(P)
        assert c.augment == (name == "paper")
        for row in P.get("rows", []):
            assert set(row) <= fields
            ex.PointConfig.from_params(P, **row)
        for entry in P.get("paper_runs", []):
            assert set(entry) - {"name"} <= fields, entry
            ex.PointConfig.from_params(P, **{k: v for k, v in entry.items() if k != "name"})
    assert set(profiles.docs(page)) == set(profiles.table(page)["laptop"])


def test_imagenet_paper_runs_are_the_authors_logs():
    P = profiles.resolve("imagenet-table", "paper")
    runs = {e["name"]: ex.PointConfig.from_params(P, **{k: v for k, v in e.items() if k != "name"})
            for e in P.paper_runs}
    r64 = runs["SimplePatch 64 px"]
    assert (r64.n_atoms, r64.patch, r64.pool, r64.pool_stride, r64.bottleneck, r64.head_kernel) == (2048, 6, 5, 3, 192, 12)
    assert (r64.epochs, r64.lr, r64.milestones, r64.batch_size, r64.augment) == (80, 3e-3, (50, 75), 256, True)
    assert runs["SimplePatch 64 px, no whitening"].replace(whitening="zca", head_kernel=12) == r64
    r128 = runs["SimplePatch 128 px"]
    assert (r128.patch, r128.lam, r128.pool, r128.pool_stride, r128.epochs, r128.milestones) == (12, 1e-4, 10, 6, 105, (70, 90))


def test_cifar_paper_rows_follow_the_logs():
    """The 65,536-atom runs used lr 1e-3 (x0.1 at 100, 150); the 16,384 one 3e-3."""
    from patchbook.pages.profiles import cifar10_table

    P = profiles.resolve("cifar10-table", "paper")
    rows = [ex.PointConfig.from_params(P, **r) for r in cifar10_table.PAPER_ROWS]
    assert [(r.n_atoms, r.lr, r.epochs, r.milestones) for r in rows] == [
        (16384, 3e-3, 175, (100, 150)), (65536, 1e-3, 175, (100, 150)), (65536, 1e-3, 175, (100, 150))]
    assert rows[2].soft == 1.0 and rows[1].soft is None


# --------------------------------------------------------- moments, codes ----

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
    m1 = ex.moments_cached(imgs, 3, n_images=6)
    m2 = ex.moments_cached(imgs, 3, n_images=6)
    assert ex.COUNTS["moments"] == 1
    assert torch.equal(m1.cov, m2.cov) and m1.count == 6 * 14 * 14
    full = ex.moments_cached(imgs, 3)
    assert full.count == 12 * 14 * 14 and ex.COUNTS["moments"] == 2


# ----------------------------------------------------------------- points ----

def test_point_from_history_takes_the_first_best_and_the_last():
    hist = [{"epoch": 0, "train_top1": 50.0, "test_top1": 40.0, "test_top5": 80.0},
            {"epoch": 1, "train_top1": 60.0, "test_top1": 45.0, "test_top5": 85.0},
            {"epoch": 2, "train_top1": 70.0, "test_top1": 45.0, "test_top5": 90.0},
            {"epoch": 3, "train_top1": 75.0, "test_top1": 44.0, "test_top5": 91.0}]
    p = ex.point_from_history(hist, n_train=10, n_test=5, n_features=3)
    assert (p.best_test_top1, p.best_epoch, p.test_top1, p.test_top5, p.train_top1) == (45.0, 1, 44.0, 91.0, 75.0)
    assert ex.Point.from_dict(json.loads(json.dumps(p.as_dict()))) == p
    q = ex.point_from_history(hist, n_train=10, n_test=5, n_features=3, final={"top1": 44.5, "top5": 92.0})
    assert (q.test_top1, q.test_top5) == (44.5, 92.0)


def test_measure_caches_codes_and_points(tmp_cache, tmp_path):
    c = tiny(image_folder(tmp_path / "data"))
    p = ex.measure(c, device="cpu")
    assert not p.cached and not p.codes_cached and (p.n_train, p.n_test) == (21, 9)
    assert ex.COUNTS["trainings"] == 1 and ex.COUNTS["encoded images"] == 30 and ex.COUNTS["moments"] == 1
    assert 0 <= p.test_top1 <= p.test_top5 <= 100 and p.best_test_top1 >= p.test_top1 and len(p.history) == 2
    assert all(0 <= r["train_top1"] <= 100 for r in p.history)           # percent, not fractions
    again = ex.measure(c, device="cpu", memory_mb=64)                    # how is not what: the same point
    assert again.cached and (again.test_top1, again.history) == (p.test_top1, p.history)
    assert ex.COUNTS["trainings"] == 1
    ex.forget()
    head = ex.measure(c.replace(bottleneck=4), device="cpu")             # another head: the same codes
    assert head.codes_cached and ex.COUNTS["encoded images"] == 30 and ex.COUNTS["moments"] == 1
    assert ex.COUNTS["trainings"] == 2


def test_shift_point_trains_on_windows_of_the_padded_codes(tmp_cache, tmp_path):
    """shift: the padded training images are encoded once (a larger grid),
    the test images as they are; the head sees windows of the test size."""
    c = tiny(image_folder(tmp_path / "data"), patch=4, pool=4, pool_stride=3, mirror=True)  # 13 -> 4 x 4
    s = c.replace(shift=3, test_flip=True)
    assert s.key() != c.key() and s.replace(shift=0, test_flip=False).key() == c.key()
    p = ex.measure(s, device="cpu")
    assert ex.COUNTS["encoded images"] == 30 and (p.n_train, p.n_test) == (21, 9)
    assert p.n_features == 2 * 16 * 4 * 4 and 0 <= p.test_top1 <= p.test_top5 <= 100
    tr, _ = ex.splits(s)
    enc = ex.fitted_encoder(s, tr)
    padded = ex.shifted_train_split(s, enc, tr)
    assert padded.images.shape[1:3] == (22, 22) and padded.key != tr.key
    assert tuple(ex.encode_cached(enc, padded.images, padded.key).shape[2:]) == (6, 6)   # 19 positions
    assert ex.COUNTS["encoded images"] == 30                              # from the cache
    plain = ex.measure(c, device="cpu")                                   # no shift: the unpadded codes
    assert ex.COUNTS["encoded images"] == 51 and plain.n_features == p.n_features
    with pytest.raises(ValueError, match="multiple of the pooling stride"):
        ex.measure(c.replace(shift=2), device="cpu")
    with pytest.raises(ValueError, match="test_flip needs mirror"):
        c.replace(mirror=False, test_flip=True)
    with pytest.raises(ValueError, match="with augment=True"):
        c.replace(shift=3, augment=True)
    with pytest.raises(ValueError, match="shift must be an int"):
        c.replace(shift=-3)


def test_sweep_shares_scores_and_reuses_points(tmp_cache, tmp_path):
    base = tiny(image_folder(tmp_path / "data"))
    pts = ex.sweep([base.replace(k=k) for k in (1, 4, 8)], device="cpu")
    assert ex.COUNTS["trainings"] == 3
    # one pass over each split for the three values of K (scores shared), three variants encoded
    assert ex.COUNTS["encoded images"] == 3 * 30 and ex.COUNTS["moments"] == 1
    for p in pts:
        assert 0 <= p.best_test_top1 <= 100 and 0 <= p.train_top1 <= 100
        assert p.best_test_top1 >= p.test_top1 and len(p.history) == 2 and p.n_test == 9
    # K = 4 is the base setting (0.25 x 16): the same point, not retrained
    again = ex.measure(base.replace(k=4), device="cpu")
    assert again.cached and ex.COUNTS["trainings"] == 3
    assert again.best_test_top1 == pts[1].best_test_top1
    heads = ex.sweep([base.replace(head="linear"), base.replace(bottleneck=4), base.replace(bottleneck=4)],
                     device="cpu")
    assert len(heads) == 3 and heads[1] == heads[2] and ex.COUNTS["trainings"] == 5
    # classifier variants share the codes: nothing re-encoded for them
    assert ex.COUNTS["encoded images"] == 3 * 30


def test_measure_features_trains_the_same_head(tmp_cache, tmp_path):
    """A fixed-feature row is the head of the point's config on those features, by train_head."""
    c = tiny(image_folder(tmp_path / "data", size=32), head_kernel=4, pool=7, pool_stride=4)
    row = baselines.measure_features(c, "scattering", J=2, L=2, max_order=1, out_size=4)
    tr, te = ex.splits(c)
    ftr = baselines.scattering_features(tr.images, J=2, L=2, max_order=1, out_size=4)
    fte = baselines.scattering_features(te.images, J=2, L=2, max_order=1, out_size=4)
    ref = ex.train_head(ftr, tr.labels, fte, te.labels, c, device="cpu")
    assert (row.test_top1, row.best_test_top1, row.train_top1) == (ref.test_top1, ref.best_test_top1, ref.train_top1)
    assert [r["train_loss"] for r in row.history] == [r["train_loss"] for r in ref.history]
    assert row.n_features == ftr[0].size and row.seconds["features"] > 0


def test_cli_trains_the_config_of_a_file(tmp_cache, tmp_path, capsys):
    c = tiny(image_folder(tmp_path / "data"))
    path = tmp_path / "point.json"
    path.write_text(json.dumps(c.to_dict()))
    assert cli(["train", str(path), "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out)
    p = ex.measure(ex.load_config(path), device="cpu")
    assert p.cached and printed["key"] == c.key() and printed["test_top1"] == p.test_top1


# ------------------------------------------------------- real CIFAR-10 ----

def test_cifar_page_first_row_and_ablation_base_share_codes(data_root, data_cache):
    """Both pages' smoke points with the same data and encoder: the second
    computes no moments and no codes (and with the same head, nothing)."""
    same = dict(n_per_class=6, n_test_per_class=3, n_moment_images=60, n_atoms=16, bottleneck=16)
    cifar = profiles.resolve("cifar10-table", "smoke", same)
    abl = profiles.resolve("ablations", "smoke", same)
    row = ex.PointConfig.from_params(cifar, **cifar.rows[0])
    base = ex.PointConfig.from_params(abl)
    assert row == base
    first = ex.measure(row, device="cpu")
    assert ex.COUNTS["moments"] == 1 and ex.COUNTS["encoded images"] == 90 and ex.COUNTS["trainings"] == 1
    ex.forget()
    second = ex.measure(base, device="cpu")
    assert second.cached and second.test_top1 == first.test_top1
    other_head = ex.measure(base.replace(head="linear"), device="cpu")
    assert other_head.codes_cached and not other_head.cached
    assert ex.COUNTS["moments"] == 1 and ex.COUNTS["encoded images"] == 90 and ex.COUNTS["trainings"] == 2


def test_cifar_point_both_ways(data_root, data_cache, tmp_path):
    """The cached-codes point and the augmented run of one setting share the
    data, the fitted encoder (its moments computed once) and the schedule."""
    c = ex.PointConfig.from_params(profiles.resolve("cifar10-table", "paper"), n_per_class=2, n_test_per_class=2,
                                   n_atoms=32, epochs=2, milestones=[1], batch_size=10, augment=False)
    cached = ex.measure(c, device="cpu")
    moments = ex.COUNTS["moments"]
    aug = ex.measure(c.replace(augment=True), device="cpu", memory_mb=64, output=tmp_path / "run")
    assert ex.COUNTS["moments"] == moments == 1
    assert (aug.n_train, aug.n_test, aug.n_features) == (cached.n_train, cached.n_test, cached.n_features) \
        == (20, 20, 64 * 9 * 9)                                          # x and -x, pooled 5 / 3 in ceil mode
    assert [(r["epoch"], r["lr"]) for r in aug.history] == [(r["epoch"], r["lr"]) for r in cached.history]
    assert [r["lr"] for r in aug.history] == pytest.approx([3e-3, 3e-4])
    for p in (cached, aug):
        assert 0 <= p.test_top1 <= p.test_top5 <= 100 and 0 <= p.train_top1 <= 100
    again = ex.measure(c.replace(augment=True), device="cpu", output=tmp_path / "run")   # resumed: all done
    assert again.cached and again.history == aug.history and again.test_top1 == aug.test_top1


# ------------------------------------------------------------ units ----

def test_authors_score_ratio_is_a_positive_scale(tmp_cache):
    imgs, _ = _images(n=10)
    enc = ex.fit_encoder(_encoder(n_atoms=32), imgs)
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
