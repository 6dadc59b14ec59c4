"""What the style pages measure: comparison rows and means, iterated projections,
images, the decoders' encoder and the method registry (patchbook.style.{comparison,
projections,images,decoder,methods})."""

import math

import numpy as np
import pytest
import torch

from patchbook.features import LayerFeatures, trunk
from patchbook.style import comparison, decoder, methods, projections
from patchbook.style.images import crop, resize_long, to_numpy, to_tensor
from patchbook.style.methods import Stylized


def _flat(value, h=6, w=8):
    return torch.full((3, h, w), float(value))


@pytest.fixture
def mean_metrics(monkeypatch):
    """Distances replaced by differences of mean pixel values (so the bookkeeping is under test)."""
    def style(a, b, stat="gram", size=None):
        return abs(float(a.mean()) - float(b.mean())) * (1.0 if stat == "gram" else 0.5)

    def content(a, b, size=None):
        return abs(float(a.mean()) - float(b.mean())) * 10

    monkeypatch.setattr(comparison.metrics, "style_distance", style)
    monkeypatch.setattr(comparison.metrics, "content_distance", content)


# ---------------------------------------------------------------- comparison ----


def test_title():
    assert comparison.title("monet/hires/impression-sunrise.jpg") == "impression sunrise"
    assert comparison.title("other/van-gogh-starry-night.png", 8) == "van gogh"


def _pair(i, photo, held_out, style):
    img = _flat(0.0)
    return comparison.Pair(f"pair{i}", "motif", f"p{i}.jpg", f"h{i}.jpg", f"s{i}.jpg", _flat(photo), _flat(held_out),
                           _flat(style), img, img, torch.ones(6, 8, dtype=torch.bool), None)


def test_pair_rows_measure_the_references_and_every_method(mean_metrics):
    pairs = [_pair(0, 0.2, 0.5, 0.4), _pair(1, 0.1, 0.9, 0.6)]
    out = {(0, "a"): Stylized(_flat(0.45), 2.0, False, {}), (1, "a"): Stylized(_flat(0.7), 4.0, False, {}),
           (0, "b"): Stylized(_flat(0.3), 1.0, False, {}), (1, "b"): Stylized(_flat(0.9), 3.0, False, {})}
    rows = comparison.pair_rows(pairs, out, ["a", "b"])
    order = [(f"pair{i}", m) for i in (0, 1) for m in ("photo", "style canvas", "a", "b")]
    assert [(r["pair"], r["method"]) for r in rows] == order
    by = {(r["pair"], r["method"]): r for r in rows}
    assert by["pair0", "photo"]["gram"] == pytest.approx(0.3) and by["pair0", "photo"]["content"] == 0.0
    assert by["pair0", "photo"]["canvas"] == pytest.approx(3.0)  # the photograph against the canvas, in place
    assert by["pair1", "style canvas"]["gram"] == pytest.approx(0.3)
    assert math.isnan(by["pair1", "style canvas"]["content"]) and math.isnan(by["pair1", "style canvas"]["canvas"])
    assert by["pair1", "a"]["moments"] == pytest.approx(0.1) and by["pair1", "a"]["content"] == pytest.approx(6)
    assert by["pair1", "a"]["canvas"] == pytest.approx(2.0)
    assert math.isnan(by["pair0", "photo"]["seconds"]) and by["pair1", "b"]["seconds"] == 3.0
    mean = comparison.means(rows)
    assert list(mean) == ["photo", "style canvas", "a", "b"]
    assert mean["a"]["gram"] == pytest.approx((0.05 + 0.2) / 2) and mean["b"]["seconds"] == 2.0
    assert mean["photo"]["gram"] == pytest.approx((0.3 + 0.8) / 2) and math.isnan(mean["photo"]["seconds"])


def test_summary_is_the_student_interval_and_paired_the_difference_pair_by_pair():
    from scipy import stats

    gram = {"photo": [1.0, 1.2, 0.9, 1.4], "a": [0.8, 1.1, 0.6, 1.3]}
    rows = [{"pair": f"p{i}", "method": m, "gram": v[i], "moments": 0.0, "canvas": 0.0, "content": math.nan,
             "seconds": 1.0} for m, v in gram.items() for i in range(4)]
    s = comparison.summary(rows)
    a = np.array(gram["a"])
    half = stats.t.ppf(0.975, 3) * a.std(ddof=1) / 2
    assert s["a"]["gram"] == pytest.approx((a.mean(), a.mean() - half, a.mean() + half))
    assert all(math.isnan(v) for v in s["a"]["content"])
    d = np.array(gram["a"]) - np.array(gram["photo"])  # [-0.2, -0.1, -0.3, -0.1]
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    assert comparison.paired(rows, "gram") == {"a": pytest.approx((d.mean(), d.mean() - half, d.mean() + half))}
    assert comparison.paired(rows, "gram")["a"][2] < 0  # closer than the photograph, pair for pair
    # the pairs are matched by id, not by order
    shuffled = rows[4:][::-1] + rows[:4]
    assert comparison.paired(shuffled, "gram")["a"] == pytest.approx(comparison.paired(rows, "gram")["a"])


def test_load_pair_aligns_and_crops_to_the_covered_rectangle(data_root):
    from patchbook.style import alignment, pairs

    spec = next(iter(pairs.load().values()))
    p = comparison.load_pair(spec, 96)
    al = p.alignment
    assert max(p.canvas.shape[-2:]) == 96 and al.frame == tuple(p.canvas.shape[-2:])
    t, l, b, r = al.box
    assert bool(p.mask[t:b, l:r].all()) and p.photo.shape == p.held_out.shape == (3, b - t, r - l)
    torch.testing.assert_close(p.held_out, p.canvas[:, t:b, l:r])
    assert al.rms == pytest.approx(alignment.rms(alignment.residuals(al.H, al.photo_points, al.canvas_points)))
    assert al.loo_rms >= al.rms and 0 < al.coverage <= 1
    np.testing.assert_allclose(al.canvas_points, alignment.to_pixels(spec.canvas_points, al.frame[1], al.frame[0]))


def test_distances_vanish_for_the_painting_itself(data_root):
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 40, 56, generator=g)
    d = comparison.distances(img, img, img, size=64)
    assert d == pytest.approx({"gram": 0, "moments": 0, "content": 0}, abs=1e-6)
    other = comparison.distances(img, img.flip(0), None, size=64)
    assert other["gram"] > 0.01 and other["moments"] > 0.01 and other["content"] == 0


# ------------------------------------------------------------- projections ----


def test_iterate_feeds_each_result_to_the_next_step(monkeypatch):
    seen = []

    def fake(method, content, style, seed, **kw):
        seen.append((method, float(content.mean()), seed, kw))
        return Stylized(content * 0.5 + 0.25, 0.1, False, {})

    monkeypatch.setattr(projections, "stylize_cached", fake)
    chain = projections.iterate("gatys", _flat(1.0), _flat(0.0), 3, seed=2, n_iter=5)
    assert [float(r.image.mean()) for r in chain] == pytest.approx([0.75, 0.625, 0.5625])
    assert [s[1] for s in seen] == pytest.approx([1.0, 0.75, 0.625])
    assert [s[2] for s in seen] == [2000, 2001, 2002] and all(s[3] == {"n_iter": 5} for s in seen)


def test_perturb_is_seeded_noise_of_the_given_size():
    img = _flat(0.5, 64, 64)
    assert torch.equal(projections.perturb(img, 0.0, seed=1), img)
    a, b = projections.perturb(img, 0.02, seed=1), projections.perturb(img, 0.02, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, projections.perturb(img, 0.02, seed=2))
    assert float((a - img).pow(2).mean().sqrt()) == pytest.approx(0.02, rel=0.05)


def test_spread_is_the_mean_pairwise_rms_difference():
    chains = [[_flat(0.0), _flat(0.0)], [_flat(0.1), _flat(0.0)], [_flat(0.3), _flat(0.6), _flat(1.0)]]
    # step 1: |0-0.1|, |0-0.3|, |0.1-0.3|; step 2: 0, 0.6, 0.6; the third chain's step 3 is ignored
    assert projections.spread(chains) == pytest.approx([0.2, 0.4])
    with pytest.raises(ValueError, match="two chains"):
        projections.spread(chains[:1])


def test_drift_measures_every_step_from_the_photograph(mean_metrics):
    d = projections.drift(_flat(0.2), _flat(1.0), [_flat(0.4), _flat(0.5)])
    assert d["content"] == pytest.approx([0, 2, 3])
    assert d["style"] == pytest.approx([0.8, 0.6, 0.5])
    assert d["step"] == pytest.approx([0, 0.2, 0.1])


# ------------------------------------------------------------------ images ----


def test_images_round_trip_and_resize():
    img = torch.rand(3, 30, 45, generator=torch.Generator().manual_seed(1))
    arr = to_numpy(img)
    assert arr.shape == (30, 45, 3)
    torch.testing.assert_close(to_tensor(arr), img)
    assert to_tensor((arr * 255).astype("uint8")).max() <= 1
    assert resize_long(img, 90).shape == (3, 60, 90)
    assert resize_long(img[None], 15).shape == (1, 3, 10, 15)
    assert torch.equal(resize_long(img, 45), img)
    with pytest.raises(ValueError, match="3 x H x W"):
        resize_long(torch.zeros(2, 30, 45), 10)


def test_crop_takes_fractions_of_the_image():
    img = torch.arange(3 * 10 * 20, dtype=torch.float32).reshape(3, 10, 20)
    assert torch.equal(crop(img, (0.25, 0.5, 0.75, 1.0)), img[:, 5:10, 5:15])
    assert crop(img[None], (0, 0, 1, 1)).shape == (1, 3, 10, 20)
    assert crop(img, (0.99, 0.99, 1.0, 1.0)).shape == (3, 1, 1)  # never empty
    with pytest.raises(ValueError, match="u0 < u1"):
        crop(img, (0.5, 0, 0.4, 1))


# -------------------------------------------------------- decoder and methods ----


def test_decoder_layout_is_vgg16s_and_the_encoder_is_the_features_extractor():
    net = trunk("vgg16", "conv4_1", weights="random")
    convs = [(m.in_channels, m.out_channels) for m in net if isinstance(m, torch.nn.Conv2d)]
    ops = decoder._vgg16_ops("conv4_1")
    assert [op[1:] for op in ops if isinstance(op, tuple)] == convs
    assert [op for op in ops if isinstance(op, str)] == ["pool1", "pool2", "pool3"]
    assert decoder.RECON == {"relu1_1": "recon1", "relu2_1": "recon2", "relu3_1": "recon3", "relu4_1": "recon4"}
    x = torch.rand(1, 3, 8, 8)
    enc = LayerFeatures(["relu2_1"], weights="random")
    out = decoder._activations(enc, x, {"image", "relu1_1"})
    assert set(out) == {"image", "relu1_1"} and out["image"] is x
    torch.testing.assert_close(out["relu1_1"], enc(x, ["relu1_1"])["relu1_1"])


def test_feed_forward_methods_get_the_decoders_they_use():
    kinds = methods._decoder_kinds
    assert kinds("adain", {}) == ["adain"] and kinds("adain", {"layer": "relu3_1"}) == ["recon3"]
    assert kinds("wct", {}) == ["recon3", "recon2", "recon1"]
    assert kinds("wct", {"levels": ("relu4_1",)}) == ["recon4"]
    assert kinds("mst", {}) == ["recon3"]
    assert kinds("mst", {"transform": "adain", "layer": "relu4_1"}) == ["adain"]
    assert kinds("magenta", {}) == [] and kinds("gatys", {}) == []


def test_unavailable_methods_are_skipped(monkeypatch):
    monkeypatch.setattr(methods.magenta, "available", lambda: (False, "no onnxruntime; pip install it"))
    assert methods.unavailable() == {"magenta": "no onnxruntime; pip install it"}
    assert methods.available(["gatys", "magenta", "wct"]) == ["gatys", "wct"]
    monkeypatch.setattr(methods.magenta, "available", lambda: (True, ""))
    assert methods.available() == list(methods.METHODS)
