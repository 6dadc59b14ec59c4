"""Distances used to compare stylised images.

They are measured with the ImageNet-trained **AlexNet** (offline weights),
a network that none of the style-transfer methods optimise (they all use
VGG16), so that no method is favoured by being scored with its own loss.
Images are resized to a common long side (224 pixels by default) first.

- :func:`style_distance`: relative distance between feature statistics,
  Gram matrices (``stat="gram"``) or channel means and standard deviations
  (``stat="moments"``), averaged over layers: 0 for identical statistics.
- :func:`content_distance`: relative distance between deep feature maps of an
  image and the content it was made from (0 = same structure).
- :func:`pixel_distance`: root-mean-square pixel difference.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch
import torch.nn.functional as F

from patchbook.features import LayerFeatures

from .images import resize_long, to_tensor
from .statistics import MOMENT_EPS, gram, mean_std

STYLE_LAYERS = ("relu1", "relu2", "relu3", "relu4", "relu5")
CONTENT_LAYERS = ("relu4",)


@lru_cache(maxsize=1)
def _alexnet() -> LayerFeatures:
    return LayerFeatures(STYLE_LAYERS, arch="alexnet")


def _prep(img, size: int | None) -> torch.Tensor:
    x = to_tensor(img)[None]
    return x if size is None else resize_long(x, size)


def features(img, layers: Sequence[str] = STYLE_LAYERS, size: int | None = 224) -> dict[str, torch.Tensor]:
    """AlexNet activations of an image (array or tensor) at long side ``size``."""
    with torch.no_grad():
        return _alexnet()(_prep(img, size), layers)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def style_distance(image, reference, stat: str = "gram", layers: Sequence[str] = STYLE_LAYERS,
                   size: int | None = 224) -> float:
    """Mean over ``layers`` of ``|S(image) - S(reference)| / |S(reference)|``
    where ``S`` is the Gram matrix (``stat="gram"``) or the vector of channel
    means and standard deviations (``stat="moments"``)."""
    fa, fb = features(image, layers, size), features(reference, layers, size)
    out = []
    for l in layers:
        if stat == "gram":
            out.append(_rel(gram(fa[l]), gram(fb[l])))
        elif stat == "moments":
            out.append(_rel(torch.cat(mean_std(fa[l], MOMENT_EPS), -1), torch.cat(mean_std(fb[l], MOMENT_EPS), -1)))
        else:
            raise ValueError(f"stat must be 'gram' or 'moments', got {stat!r}")
    return float(sum(out) / len(out))


def content_distance(image, content, layers: Sequence[str] = CONTENT_LAYERS, size: int | None = 224) -> float:
    """Mean over ``layers`` of ``|Phi(image) - Phi(content)| / |Phi(content)|``,
    the image resized to the content's aspect ratio first."""
    a, c = to_tensor(image), to_tensor(content)
    if a.shape[-2:] != c.shape[-2:]:
        a = F.interpolate(a[None], size=c.shape[-2:], mode="bilinear", align_corners=False)[0]
    fa, fc = features(a, layers, size), features(c, layers, size)
    return float(sum(_rel(fa[l], fc[l]) for l in layers) / len(layers))


def pixel_distance(a, b) -> float:
    """Root-mean-square difference of two images in [0, 1] (``a`` resized to ``b``)."""
    x, y = to_tensor(a), to_tensor(b)
    if x.shape[-2:] != y.shape[-2:]:
        x = F.interpolate(x[None], size=y.shape[-2:], mode="bilinear", align_corners=False)[0]
    return float((x - y).pow(2).mean().sqrt())
