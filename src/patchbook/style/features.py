"""Pretrained VGG features with layers selected by name (``relu1_1`` ...).

Offline, ImageNet-trained VGG16 convolutional weights are read from the data
root (:func:`patchbook.data.load_conv_weights`); VGG19 needs torchvision's
download. Missing weights raise an error: never random weights.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}


def layer_names(arch: str) -> list[str]:
    """Names of the modules of ``torchvision.models.<arch>().features`` in order."""
    names = []
    for b, n in enumerate(_BLOCKS[arch], start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return names


def load_vgg(arch: str = "vgg16", root=None) -> nn.Sequential:
    """``features`` of a pretrained VGG (eval mode, no gradients on weights).

    ``vgg16`` reads the offline weights file when present; ``vgg19`` (and
    ``vgg16`` without the file) use torchvision's pretrained weights, which
    need a download.
    """
    import torchvision

    if arch not in _BLOCKS:
        raise ValueError(f"arch must be one of {sorted(_BLOCKS)}, got {arch!r}")
    if arch == "vgg16":
        from ..data import pretrained_features

        net = pretrained_features("vgg16", root)
    else:
        from ..data import DataNotFoundError

        try:
            net = torchvision.models.vgg19(weights=torchvision.models.VGG19_Weights.IMAGENET1K_V1).features
        except Exception as exc:
            raise DataNotFoundError(
                f"VGG19 weights could not be downloaded ({exc}); use arch='vgg16' offline."
            ) from exc
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


class VGGFeatures(nn.Module):
    """Activations of named layers of a pretrained VGG for images in [0, 1].

    ``VGGFeatures(["relu1_1", "relu4_1"])(x)`` returns a dict of tensors
    ``B x C_l x H_l x W_l``. Inputs are ``B x 3 x H x W`` RGB in [0, 1]; the
    ImageNet normalisation is applied inside. ``pool="avg"`` swaps max
    pooling for average pooling (as Gatys et al. suggest).
    """

    def __init__(self, layers: Iterable[str], arch: str = "vgg16", pool: str = "max", root=None):
        super().__init__()
        self.layers = list(layers)
        names = layer_names(arch)
        unknown = [l for l in self.layers if l not in names]
        if unknown:
            raise ValueError(f"unknown layers {unknown} for {arch}; choose from {names}")
        last = max(names.index(l) for l in self.layers)
        net = load_vgg(arch, root)[: last + 1]
        if pool == "avg":
            net = nn.Sequential(*[nn.AvgPool2d(2, 2) if isinstance(m, nn.MaxPool2d) else m for m in net])
        self.net = net
        self.names = names[: last + 1]
        self.arch = arch
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, layers: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` (default: the layers given at construction,
        or any subset of the layers up to the deepest of them); the network
        stops after the deepest layer asked for."""
        if x.ndim == 3:
            x = x[None]
        wanted = set(self.layers if layers is None else layers)
        unknown = wanted - set(self.names)
        if unknown:
            raise ValueError(f"layers {sorted(unknown)} are not computed by this extractor (up to {self.names[-1]})")
        stop = max(self.names.index(l) for l in wanted)
        h = (x - self.mean) / self.std
        out = {}
        for name, module in zip(self.names[: stop + 1], self.net):
            # in-place ReLUs would overwrite the conv outputs we keep
            h = torch.relu(h) if isinstance(module, nn.ReLU) else module(h)
            if name in wanted:
                out[name] = h
        return out
