"""Fixed-feature baselines for the ImageNet table: random (or pretrained)
convolutional features and scattering coefficients.

Both give ``N x C x h x w`` float32 feature maps, average-pooled to a small
grid, on which the same heads as the patch codes are trained, by the same
function (:func:`patchbook.patchknn.pipeline.train_head`, through
:func:`measure_features`), so a row of the table differs from another by its
representation only. Accuracies are in percent.

- :func:`conv_features`: AlexNet's convolutional layers
  (``torchvision.models.alexnet().features``) up to the ReLU of ``layer``,
  with random weights drawn with ``seed`` (the "random network" baseline of
  Arandjelovic et al. 2017, whose ImageNet row the talk quotes) or with the
  ImageNet weights of :func:`patchbook.data.load_conv_weights` (an upper
  reference, *not* a baseline: those weights were trained on ImageNet, of
  which Tiny-ImageNet is a subset).
- :func:`scattering_features`: the 2D scattering transform of
  :mod:`patchbook.invariance.scattering` (equal to ``kymatio.torch.Scattering2D``),
  colour channel by colour channel, optionally ``log(1 + c |S|)``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from patchbook.cache import memo_arrays, source_hash
from patchbook.features import LayerFeatures
from patchbook.invariance import scattering
from patchbook.patchknn.patches import to_tensor
from patchbook.patchknn.pipeline import (
    COUNTS,
    Point,
    PointConfig,
    data_key,
    splits,
    train_head,
)
from patchbook.runtime import resolve_device

ALEXNET_CONVS = ("conv1", "conv2", "conv3", "conv4", "conv5")


def alexnet_features(layer: str = "conv2", weights: str = "random", seed: int = 0) -> LayerFeatures:
    """AlexNet's ``features`` up to the ReLU after ``layer`` (``conv1`` ...
    ``conv5``); ``weights`` ``"random"`` (PyTorch's default initialisation,
    seeded) or ``"imagenet"``."""
    if layer not in ALEXNET_CONVS:
        raise ValueError(f"layer must be one of {ALEXNET_CONVS}, got {layer!r}")
    return LayerFeatures([f"relu{layer[4:]}"], arch="alexnet", weights=weights, seed=seed)


def conv_features(images: np.ndarray, layer: str = "conv2", weights: str = "random", out_size: int | None = 6,
                  seed: int = 0, batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """Feature maps of ``images`` (``uint8`` ``N x H x W x 3``) after ``layer``
    of AlexNet, inputs standardised with the ImageNet channel statistics,
    adaptively average-pooled to ``out_size x out_size`` (``None``: as is)."""
    net = alexnet_features(layer, weights, seed).to(device)
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            y = net(to_tensor(images[i:i + batch_size], device))[net.layers[0]]
            if out_size:
                y = F.adaptive_avg_pool2d(y, out_size)
            out.append(y.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def scattering_features(images: np.ndarray, J: int = 3, L: int = 8, max_order: int = 2, out_size: int | None = 4,
                        log: bool = False, log_scale: float = 1e3, batch_size: int = 128,
                        device: str | None = None) -> np.ndarray:
    """Scattering coefficients of ``images`` (``uint8`` ``N x H x W x C``,
    pixels scaled to [0, 1]), ``C x (1 + J L + L^2 J (J - 1) / 2)`` channels,
    adaptively average-pooled to ``out_size x out_size``; with ``log``,
    ``log(1 + log_scale * S)`` (a pointwise, monotone compression of the
    heavy-tailed coefficients that linear classifiers of scattering
    coefficients commonly use)."""
    out = []
    for i in range(0, len(images), 4 * batch_size):
        S = torch.from_numpy(scattering.transform(images[i:i + 4 * batch_size], J, L, max_order, batch_size,
                                                  device=device))
        if out_size and S.shape[-1] != out_size:
            S = F.adaptive_avg_pool2d(S, out_size)
        if log:
            S = torch.log1p(log_scale * S.clamp_min(0))
        out.append(S.numpy())
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def cached_features(kind: str, images: np.ndarray, key: Any = None, with_seconds: bool = False, **params):
    """:func:`conv_features` (``kind="conv"``) or :func:`scattering_features`
    (``kind="scattering"``) of ``images``, cached on disk; ``key`` describes
    the images (their bytes are hashed without it). ``with_seconds``: also
    the wall time the features took when they were computed."""
    fn = {"conv": conv_features, "scattering": scattering_features}[kind]
    src = source_hash("patchknn.baselines")
    ckey = {"what": f"{kind} features", "params": {k: v for k, v in params.items() if k != "device"},
            "data": data_key(images, key), "_src": src}

    def compute():
        COUNTS[f"{kind} features"] += len(images)
        t0 = time.perf_counter()
        f = fn(images, **params)
        return {"features": f, "seconds": np.asarray(time.perf_counter() - t0)}

    arrays = memo_arrays("baseline-features", ckey, compute, include_code=False)
    return (arrays["features"], float(arrays["seconds"])) if with_seconds else arrays["features"]


def measure_features(config: PointConfig, kind: str, *, device: str = "auto", progress: bool = False,
                     **params) -> Point:
    """A row of fixed features: :func:`cached_features` ``kind`` (with
    ``params``; ``device`` is passed to the AlexNet features) of the training
    and test sets of ``config``, and the head of ``config`` trained on them
    by :func:`patchbook.patchknn.pipeline.train_head`. ``seconds``:
    ``features`` (as measured when they were computed) and ``train``."""
    device = resolve_device(device)
    if kind == "conv":
        params = {**params, "device": device}
    train_split, test_split = splits(config)
    ftr, s1 = cached_features(kind, train_split.images, train_split.key, with_seconds=True, **params)
    fte, s2 = cached_features(kind, test_split.images, test_split.key, with_seconds=True, **params)
    p = train_head(ftr, train_split.labels, fte, test_split.labels, config, device=device, progress=progress)
    return dataclasses.replace(p, seconds={"features": s1 + s2, **p.seconds})
