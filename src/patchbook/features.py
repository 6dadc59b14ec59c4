"""Named-layer activations of ImageNet convolutional networks (VGG16, VGG19,
AlexNet), the one feature extractor of the book.

Layers are named after the network's ``features`` modules: ``conv1_1``,
``relu1_1``, ``pool1`` ... for VGG, ``conv1``, ``relu1``, ``pool1`` ... for
AlexNet. Inputs are RGB images in [0, 1]; the ImageNet normalisation is
applied inside. Weights are ``"imagenet"`` (the offline files of
:func:`patchbook.data.load_conv_weights`, else torchvision's download; never
random weights in their place) or ``"random"`` (PyTorch's default
initialisation, drawn with ``seed``).
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn
import torchvision
from torchvision.models.vgg import cfgs, make_layers

from patchbook.data import DataNotFoundError, load_conv_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_VGG_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_ALEXNET = ("conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3", "relu3",
            "conv4", "relu4", "conv5", "relu5", "pool5")
ARCHS = ("vgg16", "vgg19", "alexnet")


def layer_names(arch: str) -> list[str]:
    """Names of the modules of ``torchvision.models.<arch>().features`` in order."""
    if arch == "alexnet":
        return list(_ALEXNET)
    if arch not in _VGG_BLOCKS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    names = []
    for b, n in enumerate(_VGG_BLOCKS[arch], start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return names


def trunk(arch: str, last: str | None = None, weights: str = "imagenet", seed: int = 0,
          root=None) -> nn.Sequential:
    """``torchvision.models.<arch>().features`` up to the layer ``last``
    (default: all), in eval mode, parameters frozen."""
    names = layer_names(arch)
    if last is not None and last not in names:
        raise ValueError(f"unknown layer {last!r} for {arch}; choose from {names}")
    if weights not in ("imagenet", "random"):
        raise ValueError(f"weights must be 'imagenet' or 'random', got {weights!r}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if arch == "alexnet":
            net = torchvision.models.alexnet(weights=None).features
        else:  # without the classifier, whose 120M random parameters cost seconds to draw
            net = make_layers(cfgs["D" if arch == "vgg16" else "E"])
    if weights == "imagenet":
        if arch == "vgg19":
            try:
                full = torchvision.models.vgg19(weights=torchvision.models.VGG19_Weights.IMAGENET1K_V1)
            except Exception as exc:
                raise DataNotFoundError(
                    f"VGG19 weights could not be downloaded ({exc}); use arch='vgg16' offline.") from exc
            net.load_state_dict(full.features.state_dict())
        else:
            net.load_state_dict(load_conv_weights(arch, root))
    if last is not None:
        net = net[: names.index(last) + 1]
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


class LayerFeatures(nn.Module):
    """Activations of named layers for images in [0, 1].

    ``LayerFeatures(["relu1_1", "relu4_1"])(x)`` returns ``{layer: B x C_l x
    H_l x W_l}`` for ``x`` ``B x 3 x H x W`` (or ``3 x H x W``). The network
    stops after the deepest layer asked for. ``pool="avg"`` swaps max pooling
    for average pooling (as Gatys et al. suggest). ReLUs are applied out of
    place, so a kept convolution output is not overwritten.
    """

    def __init__(self, layers: Iterable[str], arch: str = "vgg16", weights: str = "imagenet", pool: str = "max",
                 seed: int = 0, root=None):
        super().__init__()
        self.layers = list(layers)
        names = layer_names(arch)
        unknown = [l for l in self.layers if l not in names]
        if unknown or not self.layers:
            raise ValueError(f"unknown layers {unknown or self.layers} for {arch}; choose from {names}")
        if pool not in ("max", "avg"):
            raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
        last = max(names.index(l) for l in self.layers)
        net = trunk(arch, names[last], weights, seed, root)
        if pool == "avg":
            net = nn.Sequential(*[nn.AvgPool2d(2, 2) if isinstance(m, nn.MaxPool2d) else m for m in net])
        self.net, self.names, self.arch = net, names[: last + 1], arch
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, layers: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` (default: those given at construction;
        any layer up to the deepest of them)."""
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
            h = torch.relu(h) if isinstance(module, nn.ReLU) else module(h)
            if name in wanted:
                out[name] = h
        return out
