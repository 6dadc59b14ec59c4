"""Style-transfer optimisation: each method lowers its loss; pyramid, sampling, registry, metrics.

The optimisation tests swap the pretrained VGG16 for a tiny random network with
the same layer names (the optimisers do not care what the features mean); one
test runs the real network end to end on a tiny image.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn

from patchbook.features import layer_names
from patchbook.style import methods, optimize


class TinyFeatures(nn.Module):
    """Random convolutions laid out like VGG16 (same layer names), few channels."""

    def __init__(self, layers, widths=(4, 6, 8, 8, 8), seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.layers = list(layers)
        names = layer_names("vgg16")
        last = max(names.index(l) for l in self.layers)
        mods, cin = [], 3
        for name in names[: last + 1]:
            if name.startswith("conv"):
                cout = widths[int(name[4]) - 1]
                mods.append(nn.Conv2d(cin, cout, 3, padding=1))
                cin = cout
            elif name.startswith("relu"):
                mods.append(nn.ReLU())
            else:
                mods.append(nn.AvgPool2d(2, ceil_mode=True))
        self.net = nn.Sequential(*mods)
        self.names = names[: last + 1]
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        if x.ndim == 3:
            x = x[None]
        out, h = {}, x - 0.5
        for name, m in zip(self.names, self.net):
            h = m(h)
            if name in self.layers:
                out[name] = h
        return out


@pytest.fixture
def tiny_vgg(monkeypatch):
    cache = {}

    def fake(layers, arch="vgg16", pool="max", device="cpu"):
        return cache.setdefault(tuple(layers), TinyFeatures(layers))

    monkeypatch.setattr(optimize, "vgg", fake)


def _images(h=24, w=32):
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    content = torch.stack([xx, yy, 0.5 * (xx + yy)])  # smooth gradients
    style = torch.rand(3, 20, 20, generator=g) * torch.tensor([0.9, 0.5, 0.2]).view(3, 1, 1)
    return content, style


# ------------------------------------------------------------- helpers ----


def test_laplacian_pyramid_round_trip():
    x = torch.rand(1, 3, 37, 50, generator=torch.Generator().manual_seed(1))
    levels = optimize.laplacian_pyramid(x, 4)
    assert len(levels) == 5 and levels[-1].shape[-2:] == (2, 3)
    assert torch.allclose(optimize.synthesize_pyramid(levels), x, atol=1e-6)


def test_strotss_scales():
    assert optimize.strotss_scales(512) == [64, 128, 256, 512]
    assert optimize.strotss_scales(192) == [64, 128, 192]
    assert optimize.strotss_scales(48, min_size=32) == [32, 48]


def test_hypercolumns_sample_rgb_and_features_at_the_positions():
    img = torch.rand(1, 3, 8, 10, generator=torch.Generator().manual_seed(2))
    feats = {"relu1_1": torch.rand(1, 4, 8, 10), "relu2_1": torch.rand(1, 5, 4, 5)}
    pos = torch.tensor([[0, 0], [3, 7], [7, 9]])
    z = optimize.hypercolumns(img, feats, pos, layers=("relu1_1", "relu2_1"))
    assert z.shape == (3, 3 + 4 + 5)
    assert torch.allclose(z[:, :3], img[0, :, pos[:, 0], pos[:, 1]].T - 0.5)
    assert torch.allclose(z[:, 3:7], feats["relu1_1"][0, :, pos[:, 0], pos[:, 1]].T, atol=1e-6)


# ----------------------------------------------------- optimisations ----


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_gatys_lowers_its_loss(tiny_vgg, optimizer):
    content, style = _images()
    hist = []
    out = optimize.gatys(content, style, n_iter=25, optimizer=optimizer, init="noise", seed=0,
                         style_weight=10.0, history=hist)
    assert out.shape == content.shape and 0 <= out.min() and out.max() <= 1
    loss = [h["loss"] for h in hist]
    assert len(loss) <= 25
    assert min(loss[-3:]) < 0.5 * loss[0]
    assert hist[-1]["style"] < hist[0]["style"]


@pytest.mark.parametrize("ot", ["relaxed", "sinkhorn"])
def test_strotss_lowers_its_loss_at_every_scale(tiny_vgg, ot):
    content, style = _images(24, 32)
    hist = []
    # all positions sampled (n_samples >= pixels): the loss is deterministic within a scale
    out = optimize.strotss(content, style, min_size=16, n_iter=20, lr=2e-2, n_samples=1024,
                           n_style=200, ot=ot, sinkhorn_iter=20, history=hist)
    assert out.shape == content.shape
    for side in (16, 32):
        loss = [h["loss"] for h in hist if h["scale"] == side]
        assert len(loss) == 20
        assert np.mean(loss[-3:]) < np.mean(loss[:3]), (side, loss[:3], loss[-3:])
    assert [h["content_weight"] for h in hist][::20] == [16.0, 8.0]


def test_strotss_layer_covariance_option(tiny_vgg):
    content, style = _images(32, 32)
    out = optimize.strotss(content, style, min_size=32, n_iter=3, covariance="layer", n_style=100)
    assert out.shape == content.shape
    with pytest.raises(ValueError):
        optimize.strotss(content, style, min_size=32, n_iter=1, covariance="diag")


def test_registry_and_cache(tiny_vgg, tmp_cache):
    assert set(methods.METHODS) == {"gatys", "strotss", "adain", "wct", "mst", "magenta"}
    assert set(methods.INFO) == set(methods.METHODS)
    content, style = _images(16, 16)
    arr = (methods.to_numpy(content) * 255).astype(np.uint8)
    assert methods.to_tensor(arr).shape == (3, 16, 16)
    a = methods.stylize_cached("gatys", content, style, seed=1, n_iter=3)
    b = methods.stylize_cached("gatys", content, style, seed=1, n_iter=3)
    c = methods.stylize_cached("gatys", content, style, seed=1, n_iter=4)
    assert not a.cached and b.cached and not c.cached
    assert torch.equal(a.image, b.image) and b.seconds == a.seconds
    with pytest.raises(KeyError):
        methods.stylize("nope", content, style)


# ------------------------------------------------ with the real networks ----


def test_gatys_with_pretrained_vgg16_on_a_tiny_image(data_root):
    content, style = _images(32, 32)
    hist = []
    out = methods.stylize("gatys", content, style, seed=0, n_iter=6, history=hist)
    assert out.shape == (3, 32, 32)
    assert hist[-1]["loss"] < hist[0]["loss"]


def test_metrics_vanish_on_identical_images(data_root):
    from patchbook.style import metrics

    content, style = _images(40, 48)
    assert metrics.style_distance(style, style) == pytest.approx(0, abs=1e-6)
    assert metrics.style_distance(style, style, stat="moments") == pytest.approx(0, abs=1e-6)
    assert metrics.content_distance(content, content) == pytest.approx(0, abs=1e-6)
    assert metrics.style_distance(content, style) > 0.05
    assert metrics.content_distance(style, content) > 0.05
    assert metrics.pixel_distance(content, content) == 0
