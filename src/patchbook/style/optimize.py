"""Style transfer by optimising the pixels of an image.

- :func:`gatys`: Gatys, Ecker & Bethge (2016). Minimise
  ``w_c sum_l ||Phi_l(I) - Phi_l(I_c)||^2 + w_s sum_l ||G[Phi_l(I)] - G[Phi_l(I_s)]||^2``
  over the image ``I`` with L-BFGS (as in the paper) or Adam.
- :func:`strotss`: Kolkin, Salavon & Shakhnarovich (2019). Coarse-to-fine
  over scales (64, 128, ... pixels on the long side), the image parameterised
  by its Laplacian pyramid and optimised with RMSprop; at every iteration the
  loss is computed on hypercolumns (RGB and nine VGG16 layers) sampled at
  random positions: relaxed EMD (or the Sinkhorn cost of the artists' paper)
  plus moment and palette terms for style, self-similarity for content.

Both take and return float tensors ``3 x H x W`` in [0, 1] (the output has
the content's size) and accept ``history=[]`` to collect the loss of every
iteration. Features come from the offline ImageNet VGG16 (VGG19, Gatys'
network, needs a download).
"""

from __future__ import annotations

import math
import time
from functools import lru_cache
from typing import Sequence

import torch
import torch.nn.functional as F

from patchbook.features import LayerFeatures, layer_names

from . import losses
from .images import as_batch, resize_long
from .statistics import gram

GATYS_CONTENT_LAYERS = ("relu4_2",)
GATYS_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# The layers of STROTSS' hypercolumns (indices 1,3,6,8,11,13,15,22,29 of VGG16's features).
STROTSS_LAYERS = ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3",
                  "relu4_3", "relu5_3")


@lru_cache(maxsize=4)
def _vgg_full(arch: str, pool: str, device: str = "cpu") -> LayerFeatures:
    """The network ``arch`` up to its last ReLU (``relu5_3`` for VGG16), on ``device``."""
    last = [n for n in layer_names(arch) if n.startswith("relu")][-1]
    return LayerFeatures([last], arch=arch, pool=pool).eval().to(device)


class _Layers(torch.nn.Module):
    """The activations of ``layers`` of a shared :class:`~patchbook.features.LayerFeatures`."""

    def __init__(self, full: LayerFeatures, layers: Sequence[str]):
        super().__init__()
        self.full = full
        self.layers = list(layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.full(x, self.layers)


@lru_cache(maxsize=16)
def vgg(layers: tuple[str, ...], arch: str = "vgg16", pool: str = "max", device: str = "cpu") -> torch.nn.Module:
    """An extractor of ``layers`` (a dict of activations per call) on
    ``device``; the pretrained network is loaded once per ``arch``, ``pool``
    and device and shared."""
    return _Layers(_vgg_full(arch, pool, device), layers)


# ----------------------------------------------------------------- Gatys ----


def gatys(content: torch.Tensor, style: torch.Tensor, *, style_weight: float = 100.0,
          content_weight: float = 1.0, tv_weight: float = 0.0, n_iter: int = 300, normalize: bool = True,
          optimizer: str = "lbfgs", lr: float | None = None, init: str = "content",
          content_layers: Sequence[str] = GATYS_CONTENT_LAYERS,
          style_layers: Sequence[str] = GATYS_STYLE_LAYERS, style_scale: float = 1.0,
          pool: str = "max", arch: str = "vgg16", seed: int | None = None,
          history: list | None = None) -> torch.Tensor:
    """Gatys et al.'s style transfer; returns ``3 x H x W`` in [0, 1].

    ``style_weight`` multiplies the mean of the per-layer Gram losses
    (:func:`losses.gram_loss`), ``content_weight`` the content loss
    (:func:`losses.content_loss`). With ``normalize`` (default) each term is
    divided by the mean square of its target (features of the content, Gram
    matrix of the style): Gatys et al. rescaled VGG so that every filter's mean
    activation is one, which balances the layers; the torchvision weights are
    not rescaled, and unnormalised Gram losses differ by three orders of
    magnitude between ``relu1_1`` and ``relu4_1`` (the colours, carried by the
    first layers, would then be ignored). ``n_iter`` counts loss evaluations
    (L-BFGS' line search included) or Adam steps. ``init`` is ``"content"``
    (faster) or ``"noise"`` (the paper). The style image is resized to
    ``style_scale`` times the content's long side.
    """
    if seed is not None:
        torch.manual_seed(seed)
    c = as_batch(content)
    s = resize_long(as_batch(style), max(8, round(style_scale * max(c.shape[-2:]))))
    layers = tuple(dict.fromkeys([*content_layers, *style_layers]))
    net = vgg(layers, arch, pool, str(c.device))
    with torch.no_grad():
        fc = net(c)
        fs = net(s)
        targets_c = {l: fc[l] for l in content_layers}
        targets_s = {l: gram(fs[l]) for l in style_layers}
        scale_c = {l: float(t.pow(2).mean()) if normalize else 1.0 for l, t in targets_c.items()}
        scale_s = {l: float(t.pow(2).mean()) if normalize else 1.0 for l, t in targets_s.items()}

    if init == "content":
        x = c.clone()
    elif init == "noise":
        x = torch.rand_like(c)
    else:
        raise ValueError(f"init must be 'content' or 'noise', got {init!r}")
    x.requires_grad_(True)
    t0 = time.perf_counter()

    def objective():
        f = net(x)
        lc = sum(losses.content_loss(f[l], targets_c[l]) / scale_c[l] for l in content_layers) / len(content_layers)
        ls = sum(losses.gram_loss(f[l], targets_s[l]) / scale_s[l] for l in style_layers) / len(style_layers)
        loss = content_weight * lc + style_weight * ls
        if tv_weight:
            loss = loss + tv_weight * losses.total_variation(x)
        if history is not None:
            history.append({"loss": float(loss.detach()), "content": float(lc.detach()),
                            "style": float(ls.detach()), "seconds": time.perf_counter() - t0})
        return loss

    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([x], lr=1.0 if lr is None else lr, max_iter=n_iter, max_eval=n_iter,
                                tolerance_grad=1e-9, tolerance_change=1e-12, history_size=50,
                                line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = objective()
            loss.backward()
            return loss

        opt.step(closure)
    elif optimizer == "adam":
        opt = torch.optim.Adam([x], lr=0.02 if lr is None else lr)
        for _ in range(n_iter):
            opt.zero_grad()
            objective().backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)
    else:
        raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {optimizer!r}")
    return x.detach().clamp(0, 1)[0]


# --------------------------------------------------------------- STROTSS ----


def laplacian_pyramid(img: torch.Tensor, depth: int) -> list[torch.Tensor]:
    """Laplacian pyramid ``[L_0 (finest), ..., L_{depth-1}, residual]`` of
    ``B x C x H x W`` with bilinear down- and up-sampling by two."""
    levels = []
    cur = img
    for _ in range(depth):
        h, w = cur.shape[-2:]
        down = F.interpolate(cur, size=(max(h // 2, 1), max(w // 2, 1)), mode="bilinear", align_corners=False)
        levels.append(cur - F.interpolate(down, size=(h, w), mode="bilinear", align_corners=False))
        cur = down
    levels.append(cur)
    return levels


def synthesize_pyramid(levels: Sequence[torch.Tensor]) -> torch.Tensor:
    """Inverse of :func:`laplacian_pyramid`."""
    cur = levels[-1]
    for lap in reversed(levels[:-1]):
        cur = lap + F.interpolate(cur, size=lap.shape[-2:], mode="bilinear", align_corners=False)
    return cur


def _grid(pos: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pixel positions ``N x 2`` (row, col) of an ``h x w`` image to a
    ``grid_sample`` grid ``1 x 1 x N x 2`` in normalised (x, y) coordinates."""
    gy = (pos[:, 0].float() + 0.5) / h * 2 - 1
    gx = (pos[:, 1].float() + 0.5) / w * 2 - 1
    return torch.stack([gx, gy], -1)[None, None]


def hypercolumns(img: torch.Tensor, feats: dict[str, torch.Tensor], pos: torch.Tensor,
                 layers: Sequence[str] = STROTSS_LAYERS) -> torch.Tensor:
    """Hypercolumns ``N x D`` at pixel positions ``pos`` (``N x 2``): the
    centred RGB values, then the activations of ``layers`` bilinearly
    interpolated at the same relative positions."""
    h, w = img.shape[-2:]
    pos = pos.to(img.device)  # drawn on a CPU generator (reproducible), used where the image is
    grid = _grid(pos, h, w)
    cols = [(img - 0.5)[0, :, pos[:, 0], pos[:, 1]].T]
    for l in layers:
        cols.append(F.grid_sample(feats[l], grid, mode="bilinear", align_corners=False)[0, :, 0].T)
    return torch.cat(cols, 1)


def _random_positions(h: int, w: int, n: int, gen: torch.Generator) -> torch.Tensor:
    idx = torch.randperm(h * w, generator=gen)[: min(n, h * w)]
    return torch.stack([idx // w, idx % w], 1)


def strotss_scales(size: int, min_size: int = 64) -> list[int]:
    """Long sides of STROTSS' scales: ``min_size``, doubling, up to ``size``
    (``size`` itself added last if the doubling misses it)."""
    scales = [min_size]
    while scales[-1] * 2 <= size:
        scales.append(scales[-1] * 2)
    if scales[-1] < size:
        scales.append(size)
    return [s for s in scales if s <= max(size, min_size)]


def strotss(content: torch.Tensor, style: torch.Tensor, *, content_weight: float = 16.0,
            n_iter: int = 250, lr: float = 2e-3, min_size: int = 64, n_samples: int = 1024,
            n_style: int = 5000, ot: str = "relaxed", sinkhorn_eps: float = 0.1,
            sinkhorn_iter: int = 30, moment_weight: float = 1.0, covariance: str = "full",
            pyramid_depth: int = 5,
            decay_at: float = 0.8, seed: int | None = 0, history: list | None = None) -> torch.Tensor:
    """STROTSS style transfer; returns ``3 x H x W`` in [0, 1] at the content's size.

    Scales run from ``min_size`` pixels on the long side, doubling, up to the
    content's long side (:func:`strotss_scales`); at each, ``n_iter`` RMSprop
    steps of rate ``lr`` (divided by ten after a fraction ``decay_at`` of them;
    halved at the last of several scales) on the Laplacian pyramid of the
    image, and ``content_weight`` is halved after each scale (the paper's
    ``alpha = 16``). The first scale starts from the style's mean colour plus
    the content's finest Laplacian level; each later one from the previous
    result upsampled plus the content's finest level (the last: upsampled
    only). Every iteration samples ``n_samples`` positions of the output
    (the same in the content) and compares their hypercolumns with
    ``n_style`` hypercolumns sampled from the style at that scale.
    ``ot="sinkhorn"`` replaces the relaxed EMD with the entropic transport
    cost (the artists' variant; its plan is not differentiated through).
    ``covariance="layer"`` compares only the block-diagonal of the hypercolumn
    covariances (one block per layer and one for RGB), far cheaper than the
    paper's ``"full"`` 2179 x 2179 matrices.
    """
    if covariance not in ("full", "layer"):
        raise ValueError(f"covariance must be 'full' or 'layer', got {covariance!r}")
    gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
    c_full = as_batch(content)
    s_full = as_batch(style)
    H, W = c_full.shape[-2:]
    net = vgg(STROTSS_LAYERS, device=str(c_full.device))
    scales = strotss_scales(max(H, W), min_size)
    style_mean = s_full.mean(dim=(2, 3), keepdim=True)
    x = None
    cw = content_weight
    t0 = time.perf_counter()
    for k, side in enumerate(scales):
        last = k == len(scales) - 1
        c = resize_long(c_full, side) if side != max(H, W) else c_full
        h, w = c.shape[-2:]
        finest = laplacian_pyramid(c, 1)[0]
        if k == 0:
            x0 = style_mean + finest
        elif last:
            x0 = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        else:
            x0 = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False) + finest
        s = resize_long(s_full, side)
        with torch.no_grad():
            fc = net(c)
            fs = net(s)
            zs = hypercolumns(s, fs, _random_positions(*s.shape[-2:], n_style, gen))
            blocks = None if covariance == "full" else [3] + [fs[l].shape[1] for l in STROTSS_LAYERS]
            s_moments = losses.set_moments(zs, blocks)
        params = [torch.nn.Parameter(l.detach().clone()) for l in laplacian_pyramid(x0, pyramid_depth)]
        rate = lr * (0.5 if last and len(scales) > 1 else 1.0)
        opt = torch.optim.RMSprop(params, lr=rate)
        decay = int(math.ceil(decay_at * n_iter))
        for i in range(n_iter):
            if i == decay and decay > 0:
                for g in opt.param_groups:
                    g["lr"] = rate * 0.1
            opt.zero_grad()
            img = synthesize_pyramid(params)
            pos = _random_positions(h, w, n_samples, gen)
            zx = hypercolumns(img, net(img), pos)
            with torch.no_grad():
                zc = hypercolumns(c, fc, pos)
            loss = losses.strotss_loss(zx, zc, zs, cw, ot=ot, sinkhorn_eps=sinkhorn_eps,
                                       sinkhorn_iter=sinkhorn_iter, moment_weight=moment_weight,
                                       blocks=blocks, s_moments=s_moments)
            loss.backward()
            opt.step()
            if history is not None:
                history.append({"scale": side, "iteration": i, "loss": float(loss.detach()),
                                "content_weight": cw, "seconds": time.perf_counter() - t0})
        with torch.no_grad():
            x = synthesize_pyramid(params).clamp(0, 1)
        cw = cw / 2
    if x.shape[-2:] != (H, W):
        x = F.interpolate(x, size=(H, W), mode="bilinear", align_corners=False)
    return x.detach().clamp(0, 1)[0]
