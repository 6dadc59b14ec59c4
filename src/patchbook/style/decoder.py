"""Decoders that map VGG16 features back to images, and how they are trained.

A :class:`Decoder` for layer ``relu{k}_1`` mirrors VGG16 from ``conv{k}_1``
down to the image: each encoder convolution ``C_in -> C_out`` becomes a 3x3
convolution ``C_out -> C_in`` (reflection padding, ReLU except the last) and
each max pooling a nearest-neighbour upsampling, as in AdaIN's decoder
(Huang & Belongie 2017, which mirrors VGG19) and WCT's (Li et al. 2017).

Training (:func:`train_decoder`), by ``kind``:

``"adain"``
    the ``relu4_1`` decoder of AdaIN: content loss on ``relu4_1`` against the
    AdaIN target plus ``style_weight`` times the style loss on channel means
    and stds at ``relu1_1 .. relu4_1`` (Huang & Belongie 2017).
``"recon1" .. "recon4"``
    the ``relu{k}_1`` decoders of multi-level WCT: pixel reconstruction loss
    plus ``feature_weight`` times the feature reconstruction loss at the same
    layer (Li et al. 2017).

The published decoders trained for days on a GPU (AdaIN: 160,000 steps of 8
images at 256 px). A 2-core CPU affords a few dozen such steps in minutes,
which from a random initialisation give blobs. So by default
(``init="lstsq"``) a decoder starts from a closed-form fit: layer after layer,
from the deepest, each convolution is a ridge regression (on 3x3 patches) from
the decoder's own output so far to the encoder activation it should recover
(on photographs and paintings). This layer-wise least-squares inverse already
reconstructs images, blurred; the gradient steps that may follow fine-tune it
with the losses above (the ``laptop`` preset takes none: see :data:`PRESETS`). Every trained decoder carries a ``budget`` dict (steps, images,
seconds, losses, and its held-out reconstruction PSNR on the data root's
photographs, which no decoder is trained on: :func:`reconstruction_psnr`)
for the pages to quote, and is cached on disk keyed by all of its parameters
(and the source of the modules it depends on): it is fitted once.
"""

from __future__ import annotations

import json
import math
import time
from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from matplotlib import cbook
from PIL import Image
from sklearn.datasets import load_sample_image
from torchvision.models.vgg import cfgs
from tqdm.auto import tqdm

from patchbook.cache import memo_torch, source_hash
from patchbook.data import (
    list_images,
    load,
    load_painting,
    load_photo,
)
from patchbook.features import LayerFeatures, layer_names
from patchbook.paths import data_root
from patchbook.stats import mean_interval

from . import pairs
from .statistics import mean_std
from .transforms import adain_transform

LEVELS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
KINDS = {"adain": "relu4_1", "recon1": "relu1_1", "recon2": "relu2_1", "recon3": "relu3_1", "recon4": "relu4_1"}
#: The reconstruction decoder (a :data:`KINDS` key) of each layer of :data:`LEVELS`.
RECON = {layer: kind for kind, layer in KINDS.items() if kind != "adain"}


def _vgg16_ops(last: str = "conv4_1") -> tuple:
    """VGG16's ``features`` up to the convolution ``last``: ``(name, in, out)``
    for a convolution, the name for a pooling (torchvision's configuration "D")."""
    names = [n for n in layer_names("vgg16") if not n.startswith("relu")]
    ops, c_in = [], 3
    for name, width in zip(names, cfgs["D"]):
        if width == "M":
            ops.append(name)
        else:
            ops.append((name, c_in, width))
            c_in = width
        if name == last:
            return tuple(ops)
    raise ValueError(f"no convolution {last!r} in VGG16")


# VGG16 up to relu4_1: (name, in, out) convolutions and pools.
_ENCODER = _vgg16_ops("conv4_1")

#: Training settings by profile, for the ``"adain"`` decoder and for the
#: ``"recon<k>"`` decoders of WCT. ``paper`` is AdaIN's published recipe
#: (random initialisation, 160k Adam steps of 8 images at 256 px, learning
#: rate 1e-4; WCT's decoders were trained similarly on MS-COCO). ``laptop``
#: fits a 2-core CPU in a few minutes for all five decoders: the closed-form
#: fit does all the work (more fitting data helped more than gradient steps
#: did, per CPU second). In development, 16 AdaIN-loss steps after it lowered
#: the AdaIN decoder's held-out reconstruction PSNR (16.5 to 10.8 dB) and
#: raised its held-out content loss, so ``laptop`` takes none: its ``"adain"``
#: decoder is the closed-form inverse of ``relu4_1``, the one ``"recon4"`` shares.
#: ``smoke`` takes seconds.
PRESETS = {
    "smoke": {
        "adain": {"steps": 2, "size": 64, "batch": 2, "n_fit": 4, "max_samples": 2000,
                  "n_content": 8, "n_style": 8, "lr": 5e-5, "psnr_size": 48},
        "recon": {"steps": 2, "size": 64, "batch": 2, "n_fit": 4, "max_samples": 2000,
                  "n_content": 8, "lr": 5e-5, "psnr_size": 48},
    },
    "laptop": {
        "adain": {"steps": 0, "size": 128, "batch": 4, "n_fit": 96, "max_samples": 32000,
                  "ridge": 0.1, "n_content": 64, "n_style": 64, "lr": 5e-5, "psnr_size": 256},
        "recon": {"steps": 0, "size": 128, "batch": 4, "n_fit": 96, "max_samples": 32000,
                  "ridge": 0.1, "n_content": 64, "psnr_size": 256},
    },
    "paper": {
        "adain": {"steps": 160_000, "size": 256, "batch": 8, "init": "random", "lr": 1e-4,
                  "n_content": 80_000, "n_style": 80_000, "psnr_size": 512},
        "recon": {"steps": 160_000, "size": 256, "batch": 8, "init": "random", "lr": 1e-4,
                  "n_content": 80_000, "psnr_size": 512},
    },
}


def _level_ops(layer: str) -> list:
    if layer not in LEVELS:
        raise ValueError(f"layer must be one of {LEVELS}, got {layer!r}")
    k = int(layer[4])
    end = [i for i, op in enumerate(_ENCODER) if isinstance(op, tuple) and op[0] == f"conv{k}_1"][0]
    return list(_ENCODER[: end + 1])


def _encoder_input_name(conv: str) -> str:
    """Name of the encoder activation a convolution reads (``image`` for conv1_1)."""

    names = layer_names("vgg16")
    i = names.index(conv)
    return "image" if i == 0 else names[i - 1]


class Decoder(nn.Module):
    """VGG16 mirrored from ``layer`` (``relu1_1 .. relu4_1``) down to RGB.

    ``width`` scales the hidden channel counts (1.0 mirrors VGG16 exactly;
    the closed-form initialisation needs 1.0). ``upsample="nearest"`` undoes
    a pooling by nearest-neighbour upsampling followed by the mirrored 3x3
    convolution (AdaIN's and WCT's decoders); ``"shuffle"`` applies that
    convolution at the low resolution with 4x the outputs, one set per
    sub-pixel position, and rearranges them (sub-pixel convolution, Shi et al.
    2016): each output pixel then has its own weights over a 3x3 neighbourhood
    of pooled features, which helps to guess where a max came from.
    ``forward`` maps ``B x C x h x w`` features to ``B x 3 x H x W`` images
    (not clamped; clamp to [0, 1] for display).
    """

    def __init__(self, layer: str = "relu4_1", width: float = 1.0, upsample: str = "nearest"):
        super().__init__()
        if upsample not in ("nearest", "shuffle"):
            raise ValueError(f"upsample must be 'nearest' or 'shuffle', got {upsample!r}")
        self.layer, self.width, self.upsample = layer, width, upsample
        ops = _level_ops(layer)
        scaled = lambda c: c if c in (3,) else max(4, int(round(c * width)))
        modules, self.targets = [], []
        first, pending_up = True, False
        for op in reversed(ops):
            if isinstance(op, str):
                if upsample == "nearest":
                    modules.append(nn.Upsample(scale_factor=2, mode="nearest"))
                else:
                    pending_up = True
                continue
            name, cin, cout = op
            c_in = cout if first else scaled(cout)
            c_out = 3 if cin == 3 else scaled(cin)
            first = False
            if pending_up:
                modules += [nn.ReflectionPad2d(1), nn.Conv2d(c_in, 4 * c_out, 3), nn.PixelShuffle(2)]
                pending_up = False
            else:
                modules += [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3)]
            self.targets.append(_encoder_input_name(name))
            if cin != 3:
                modules.append(nn.ReLU())
        self.net = nn.Sequential(*modules)
        self.in_channels = ops[-1][2]
        self.factor = 2 ** sum(isinstance(op, str) for op in ops)
        self.budget: dict = {}

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f)

    def convs(self) -> list[nn.Conv2d]:
        return [m for m in self.net if isinstance(m, nn.Conv2d)]


# -------------------------------------------------------------- encoder ----

@lru_cache(maxsize=4)
def get_encoder(last: str = "relu4_1", device: str = "cpu") -> LayerFeatures:
    """The shared, frozen VGG16 (ImageNet weights from the data root) up to
    ``last``, on ``device``: ``get_encoder()(x, layers)`` gives the
    activations of any ``layers`` up to ``last``
    (:class:`patchbook.features.LayerFeatures`)."""
    return LayerFeatures([last], arch="vgg16").eval().to(device)


def _activations(encoder: LayerFeatures, x: torch.Tensor, wanted) -> dict[str, torch.Tensor]:
    """``encoder(x, wanted)``, where ``wanted`` may name ``"image"``: the input itself."""
    layers = set(wanted) - {"image"}
    out = encoder(x, layers) if layers else {}
    return {**out, "image": x} if "image" in wanted else out


# ------------------------------------------------------------ data pools ----

def _random_crops(img: np.ndarray, size: int, n: int, rng: np.random.Generator,
                  scale_range: tuple[float, float]) -> list[np.ndarray]:
    """``n`` random ``size``-square crops of ``img`` resized so its short side is
    a random multiple (in ``scale_range``) of ``size``; random horizontal flips."""

    pil = Image.fromarray(img)
    out = []
    for _ in range(n):
        short = max(size, int(round(size * rng.uniform(*scale_range))))
        w, h = pil.size
        s = short / min(w, h)
        im = pil.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
        x0 = rng.integers(0, im.size[0] - size + 1)
        y0 = rng.integers(0, im.size[1] - size + 1)
        a = np.asarray(im.crop((x0, y0, x0 + size, y0 + size)))
        out.append(a[:, ::-1] if rng.random() < 0.5 else a)
    return out


def _training_photos() -> dict[str, np.ndarray]:
    """Photographs that ship with scikit-learn and matplotlib (never the data
    root's: those are the book's held-out photographs)."""
    out = {}
    try:
        out.update({f"sklearn/{n}": load_sample_image(n) for n in ("china.jpg", "flower.jpg")})
    except Exception:  # scikit-learn without its sample images
        pass
    try:
        with cbook.get_sample_data("grace_hopper.jpg") as f:
            out["matplotlib/grace_hopper.jpg"] = np.asarray(Image.open(f).convert("RGB"))
    except Exception:  # matplotlib without its sample data
        pass
    return out


@lru_cache(maxsize=4)
def content_pool(size: int, n: int, seed: int = 0, root=None) -> tuple[np.ndarray, dict]:
    """``n`` content crops ``size x size`` (uint8 ``N x S x S x 3``, read-only,
    kept in memory for the next call) and a description of where they came from.

    Half are crops, at random scales, of the photographs that ship with
    scikit-learn and matplotlib; half are Tiny-ImageNet training images (64
    px, resized to ``size``). None is a photograph of the data root: those
    are the pages' photographs and the held-out set of :func:`reconstruction_psnr` on the pages.
    """

    rng = np.random.default_rng(seed)
    photos = _training_photos()
    if not photos:
        raise RuntimeError("no training photograph: scikit-learn's and matplotlib's sample images are missing")
    n_photo = n - n // 2
    crops = []
    names = sorted(photos)
    for i, which in enumerate(rng.integers(0, len(names), n_photo)):
        crops += _random_crops(photos[names[which]], size, 1, rng, (1.0, 3.0))
    ds = load("tiny-imagenet-100", "train", root=root)
    idx = rng.choice(len(ds.images), n - n_photo, replace=False)
    for i in idx:
        img = ds.images[i]
        crops += _random_crops(img, size, 1, rng, (1.0, 1.0)) if img.shape[0] != size else [img]
    crops = np.stack(crops)[rng.permutation(n)]
    crops.flags.writeable = False  # shared between calls (cached in memory)
    info = {"photos": names, "n_photo_crops": n_photo, "n_tiny_imagenet": n - n_photo,
            "tiny_imagenet_fingerprint": ds.fingerprint, "data_root_photos": "none (held out)"}
    return crops, info


@lru_cache(maxsize=4)
def style_pool(size: int, n: int, seed: int = 0, exclude: tuple[str, ...] = ("rouen-cathedral",),
               root=None) -> tuple[np.ndarray, dict]:
    """``n`` style crops: Monet's ``wikiart-224`` paintings, the higher-resolution
    Monets and the other painters of the data root, minus names containing an
    ``exclude`` string (the Rouen Cathedral canvases are kept for the demos)
    and every canvas of the Monet comparison's pairs (:func:`.pairs.canvases`)."""

    rng = np.random.default_rng(seed + 1)
    held_out = set(pairs.canvases())
    names = [n_ for n_ in list_images("paintings", "monet/wikiart-224", root=root)
             + list_images("paintings", "monet/hires", root=root)
             + list_images("paintings", "other", root=root)
             if not any(e in n_ for e in exclude) and n_ not in held_out]
    picks = rng.choice(len(names), n, replace=n > len(names))
    cache: dict[str, np.ndarray] = {}
    crops = []
    for i in picks:
        name = names[i]
        if name not in cache:
            cache[name] = load_painting(name, max_side=max(224, 3 * size), root=root)
        crops += _random_crops(cache[name], size, 1, rng, (1.0, 2.0))
    info = {"n_paintings_in_pool": len(names), "n_distinct_paintings": len(cache),
            "pool": "paintings/monet/wikiart-224 + monet/hires + other",
            "exclude": list(exclude), "excluded_pair_canvases": len(held_out)}
    crops = np.stack(crops)
    crops.flags.writeable = False  # shared between calls (cached in memory)
    return crops, info


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a)).permute(0, 3, 1, 2).float() / 255


# --------------------------------------------------------- closed form ----

def _patches(h: torch.Tensor) -> torch.Tensor:
    """3x3 patches of reflection-padded ``B x C x H x W``: ``B x (C*9) x (H*W)``."""
    return F.unfold(F.pad(h, (1, 1, 1, 1), mode="reflect"), 3)


@torch.no_grad()
def fit_lstsq(decoder: Decoder, images: torch.Tensor, encoder: LayerFeatures | None = None,
              ridge: float = 1e-2, max_samples: int = 20000, seed: int = 0) -> list[float]:
    """Closed-form, layer-wise initialisation of a width-1 ``decoder``.

    From the deepest layer down, each convolution is set to the ridge
    regression (``ridge`` times the mean diagonal of the Gram matrix, at most
    ``max_samples`` random locations) from the 3x3 patches of the decoder's
    own activations so far (computed from the encoder's features of
    ``images``) to the encoder activation it inverts (``relu`` or pool output,
    or the image in [0, 1] for the last one); ReLUs follow as in the decoder.
    Returns the relative squared error of each fit.
    """
    if decoder.width != 1.0:
        raise ValueError("the closed-form initialisation needs width=1.0")
    encoder = encoder or get_encoder()
    g = torch.Generator().manual_seed(seed)
    wanted = set(decoder.targets) | {decoder.layer}
    acts = {}
    for i in range(0, len(images), 4):
        out = _activations(encoder, images[i:i + 4], wanted)
        for k, v in out.items():
            acts.setdefault(k, []).append(v)
    acts = {k: torch.cat(v) for k, v in acts.items()}
    h = acts[decoder.layer]
    errors = []
    convs = iter(decoder.targets)
    modules = list(decoder.net)
    j = 0
    while j < len(modules):
        m = modules[j]
        if isinstance(m, nn.Upsample):
            h = m(h)
            j += 1
            continue
        if isinstance(m, nn.ReflectionPad2d):
            conv = modules[j + 1]
            target = acts[next(convs)]
            shuffle = j + 2 < len(modules) and isinstance(modules[j + 2], nn.PixelShuffle)
            if shuffle:  # one output per sub-pixel position
                target = F.pixel_unshuffle(target, 2)
            n_img, _, hh, ww = h.shape
            per = max(1, min(hh * ww, max_samples // n_img))
            xs, ys = [], []
            for b in range(n_img):
                loc = torch.randperm(hh * ww, generator=g)[:per]
                xs.append(_patches(h[b:b + 1])[0][:, loc].T)
                ys.append(target[b].reshape(target.shape[1], -1)[:, loc].T)
            x, y = torch.cat(xs), torch.cat(ys)
            mx, my = x.mean(0), y.mean(0)
            xc = x - mx
            gram = (xc.T @ xc).double()
            gram += ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=torch.float64)
            w = torch.linalg.solve(gram, (xc.T @ (y - my)).double()).float()  # D x C_out
            conv.weight.copy_(w.T.reshape(conv.weight.shape))
            conv.bias.copy_(my - mx @ w)
            pred = xc @ w + my
            errors.append(float(((pred - y) ** 2).sum() / ((y - my) ** 2).sum().clamp_min(1e-12)))
            del x, y, xs, ys, xc, gram
            h = conv(modules[j](h))
            j += 2
            if shuffle:
                h = modules[j](h)
                j += 1
            if j < len(modules) and isinstance(modules[j], nn.ReLU):
                h = torch.relu(h)
                j += 1
            continue
        h = m(h)
        j += 1
    return errors


# ------------------------------------------------------ held-out quality ----

def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of an image against a reference, both
    in [0, 1] and of one shape: ``10 log10(1 / MSE)`` (infinite when equal)."""
    if image.shape != reference.shape:
        raise ValueError(f"shapes differ: {tuple(image.shape)} and {tuple(reference.shape)}")
    mse = float((image.double() - reference.double()).pow(2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


@torch.no_grad()
def reconstruct(decoder: Decoder, image: torch.Tensor, encoder: LayerFeatures | None = None) -> torch.Tensor:
    """``decoder(encoder(image))`` clamped to [0, 1], ``3 x H x W`` like the
    image (in [0, 1], any size): reflection-padded to a multiple of the
    decoder's factor, encoded to the decoder's layer, decoded, cropped back.
    For the ``"adain"`` decoder this is AdaIN with the image as its own style
    (the identity on the features)."""
    encoder = encoder or get_encoder()
    decoder.eval()
    h, w = image.shape[-2:]
    xp = F.pad(image[None].float(), (0, (-w) % decoder.factor, 0, (-h) % decoder.factor), mode="reflect")
    return decoder(encoder(xp, [decoder.layer])[decoder.layer])[0, :, :h, :w].clamp(0, 1)


def reconstruction_psnr(decoder: Decoder, images, encoder: LayerFeatures | None = None) -> list[float]:
    """The PSNR of each image's :func:`reconstruct` against the image (dB)."""
    return [psnr(reconstruct(decoder, x, encoder), x.float()) for x in images]


def heldout_photos(size: int, root=None) -> dict[str, torch.Tensor]:
    """The data root's photographs (none of which the decoders are trained on)
    at ``size`` pixels on the long side: ``{name: 3 x H x W}``."""
    return {n: torch.from_numpy(load_photo(n, max_side=size, root=root).copy()).permute(2, 0, 1).float() / 255
            for n in list_images("photos", root=root)}


def _psnr_summary(values: list[float], prefix: str) -> dict:
    m, lo, hi = mean_interval(values)
    return {f"{prefix}": m, f"{prefix}_interval": [lo, hi]}


# -------------------------------------------------------------- training ----

def adain_loss(decoder: Decoder, encoder: LayerFeatures, content: torch.Tensor, style: torch.Tensor,
               style_weight: float = 10.0) -> tuple[torch.Tensor, dict[str, float]]:
    """AdaIN's training loss (Huang & Belongie 2017) for a batch of content and
    style images: ``||f(g(t)) - t||^2 + style_weight * sum_l (||mu_l(g(t)) - mu_l(s)||^2
    + ||sigma_l(g(t)) - sigma_l(s)||^2)`` with ``t = AdaIN(f(c), f(s))`` at
    ``relu4_1``, ``l`` in ``relu1_1 .. relu4_1`` (mean squared errors)."""
    with torch.no_grad():
        fc = encoder(content, ["relu4_1"])["relu4_1"]
        fs = encoder(style, LEVELS)
        t = adain_transform(fc, fs["relu4_1"])
    out = encoder(decoder(t), LEVELS)
    lc = F.mse_loss(out["relu4_1"], t)
    ls = content.new_zeros(())
    for layer in LEVELS:
        mo, so = mean_std(out[layer])
        ms, ss = mean_std(fs[layer])
        ls = ls + F.mse_loss(mo, ms) + F.mse_loss(so, ss)
    loss = lc + style_weight * ls
    return loss, {"loss": loss.item(), "content": lc.item(), "style": ls.item()}


def recon_loss(decoder: Decoder, encoder: LayerFeatures, images: torch.Tensor,
               feature_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """WCT's decoder loss (Li et al. 2017): ``||g(f(x)) - x||^2 +
    feature_weight * ||f(g(f(x))) - f(x)||^2`` at the decoder's layer."""
    with torch.no_grad():
        f = encoder(images, [decoder.layer])[decoder.layer]
    rec = decoder(f)
    lp = F.mse_loss(rec, images)
    lf = F.mse_loss(encoder(rec, [decoder.layer])[decoder.layer], f) if feature_weight else rec.new_zeros(())
    loss = lp + feature_weight * lf
    return loss, {"loss": loss.item(), "pixel": lp.item(), "feature": lf.item()}


def train_steps(decoder: Decoder, kind: str, content: np.ndarray, style: np.ndarray | None = None,
                steps: int = 10, batch: int = 4, lr: float = 1e-4, style_weight: float = 10.0,
                feature_weight: float = 1.0, seed: int = 0, progress: bool = False,
                encoder: LayerFeatures | None = None) -> dict[str, list[float]]:
    """``steps`` Adam steps on ``decoder`` (in place) with the loss of ``kind``
    (:func:`adain_loss` or :func:`recon_loss`), each on ``batch`` random
    images of ``content`` (and of ``style`` for ``"adain"``), uint8 arrays
    ``N x S x S x 3``. Returns the per-step losses by name."""

    if kind not in KINDS or KINDS[kind] != decoder.layer:
        raise ValueError(f"kind {kind!r} does not fit a decoder of {decoder.layer}")
    if kind == "adain" and style is None:
        raise ValueError("the adain loss needs style images")
    encoder = encoder or get_encoder()
    decoder.train()
    opt = torch.optim.Adam(decoder.parameters(), lr=lr)
    rng = np.random.default_rng(seed + 2)
    history: dict[str, list[float]] = {}
    bar = tqdm(range(steps), desc=f"training the {kind} decoder", disable=not progress, mininterval=2.0)
    for _ in bar:
        c = _to_tensor(content[rng.integers(0, len(content), batch)])
        if kind == "adain":
            s = _to_tensor(style[rng.integers(0, len(style), batch)])
            loss, parts = adain_loss(decoder, encoder, c, s, style_weight)
        else:
            loss, parts = recon_loss(decoder, encoder, c, feature_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        for k, v in parts.items():
            history.setdefault(k, []).append(v)
        bar.set_postfix(loss=f"{parts['loss']:.3g}")
    decoder.eval()
    return history


def _eval_batch(kind: str, decoder: Decoder, encoder: LayerFeatures, size: int, style_weight: float,
                feature_weight: float, seed: int):
    """A function giving the loss of ``kind`` on one fixed batch of 8 held-out
    crops (other random crops of the same sources, seed ``seed + 1000``)."""
    content = _to_tensor(content_pool(size, 8, seed + 1000)[0])
    style = _to_tensor(style_pool(size, 8, seed + 1000)[0]) if kind == "adain" else None

    @torch.no_grad()
    def evaluate() -> dict[str, float]:
        decoder.eval()
        if kind == "adain":
            return adain_loss(decoder, encoder, content, style, style_weight)[1]
        return recon_loss(decoder, encoder, content, feature_weight)[1]

    return evaluate


def _train(kind: str, steps: int, size: int, batch: int, lr: float, style_weight: float,
           feature_weight: float, init: str, width: float, upsample: str, n_fit: int, ridge: float,
           max_samples: int, n_content: int, n_style: int, seed: int, psnr_size: int, progress: bool,
           cache: bool = True) -> dict:

    layer = KINDS[kind]
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    encoder = get_encoder()
    decoder = Decoder(layer, width, upsample)
    content, cinfo = content_pool(size, max(n_content, n_fit, 1), seed)
    style = None
    sinfo = {}
    if kind == "adain":
        style, sinfo = style_pool(size, max(n_style, n_fit // 2, 1), seed)
    t_data = time.perf_counter() - t0
    fit_errors = []
    lstsq_seconds = (0.0, 0.0)
    if init == "lstsq":
        n_paint = n_fit // 2  # invert painting features too: stylised features look like them
        fit = _to_tensor(content[: n_fit - n_paint])
        if n_paint:
            fit = torch.cat([fit, _to_tensor(style_pool(size, n_paint, seed)[0])])

        def lstsq():
            t, c = time.perf_counter(), time.process_time()
            errors = fit_lstsq(decoder, fit, encoder, ridge=ridge, max_samples=max_samples, seed=seed)
            return {"state_dict": decoder.state_dict(), "errors": errors,
                    "seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c}

        key = {"layer": layer, "upsample": upsample, "size": size, "n_fit": n_fit, "n_paint": n_paint, "ridge": ridge,
               "max_samples": max_samples, "seed": seed, "data": str(data_root()), "held_out": pairs.canvases(),
               "source": source_hash("style.decoder")}
        init_state = memo_torch("style-decoders-lstsq", key, lstsq, include_code=False) if cache else lstsq()
        decoder.load_state_dict(init_state["state_dict"])
        fit_errors = init_state["errors"]
        lstsq_seconds = (init_state["seconds"], init_state["cpu_seconds"])
    elif init != "random":
        raise ValueError(f"init must be 'lstsq' or 'random', got {init!r}")
    evaluate = _eval_batch(kind, decoder, encoder, size, style_weight, feature_weight, seed)
    eval_before = evaluate()
    t2 = time.perf_counter()
    heldout = heldout_photos(psnr_size)
    psnr_before = reconstruction_psnr(decoder, heldout.values(), encoder) if steps else None
    t_psnr = time.perf_counter() - t2
    t1, c1 = time.perf_counter(), time.process_time()
    history = train_steps(decoder, kind, content, style, steps=steps, batch=batch, lr=lr,
                          style_weight=style_weight, feature_weight=feature_weight, seed=seed,
                          progress=progress, encoder=encoder)
    t_sgd, c_sgd = time.perf_counter() - t1, time.process_time() - c1
    eval_after = evaluate() if steps else eval_before
    t2 = time.perf_counter()
    psnr_after = reconstruction_psnr(decoder, heldout.values(), encoder)
    t_psnr += time.perf_counter() - t2
    tail = max(1, steps // 10)
    budget = {
        "kind": kind, "layer": layer, "init": init, "width": width, "upsample": upsample,
        "steps": steps, "batch": batch, "size": size, "lr": lr, "ridge": ridge, "max_samples": max_samples,
        "images_seen": steps * batch, "n_content_crops": len(content),
        "n_style_crops": 0 if style is None else len(style), "n_fit_images": n_fit if init == "lstsq" else 0,
        "content": cinfo, "style": sinfo,
        "lstsq_relative_errors": fit_errors,
        # wall-clock seconds of the run that computed each part (the CPU
        # seconds, over all threads, are less sensitive to a busy machine)
        "seconds_total": t_data + lstsq_seconds[0] + t_sgd, "seconds_data": t_data,
        "seconds_lstsq": lstsq_seconds[0], "seconds_sgd": t_sgd,
        "cpu_seconds_lstsq": lstsq_seconds[1], "cpu_seconds_sgd": c_sgd,
        "threads": torch.get_num_threads(),
        # held-out reconstruction PSNR (dB) on the data root's photographs at psnr_size px: mean and
        # Student-t interval over them, after the closed form (init) and after the gradient steps
        "psnr_size": psnr_size, "heldout_photos": list(heldout),
        **_psnr_summary(psnr_after, "heldout_psnr"),
        "heldout_psnr_per_photo": dict(zip(heldout, psnr_after)),
        **_psnr_summary(psnr_before if psnr_before is not None else psnr_after, "heldout_psnr_init"),
        "seconds_psnr": t_psnr,
        # losses on one fixed held-out batch, before and after the gradient steps
        "eval_losses_before": eval_before, "eval_losses_after": eval_after,
        "eval_batch": "8 held-out content crops (and 8 style crops) of the same sources, seed + 1000",
        # training losses, mean of the first and the last 10% of the steps (noisy: one batch a step)
        "initial_losses": {k: float(np.mean(v[:tail])) for k, v in history.items()},
        "final_losses": {k: float(np.mean(v[-tail:])) for k, v in history.items()},
        "published": "AdaIN: 160,000 steps x 8 images at 256 px (MS-COCO + WikiArt), Adam 1e-4",
    }
    return {"state_dict": decoder.state_dict(), "budget": budget, "history": history}


def train_decoder(kind: str = "adain", steps: int = 60, size: int = 128, batch: int = 4, *,
                  lr: float = 1e-4, style_weight: float = 10.0, feature_weight: float = 1.0,
                  init: str = "lstsq", width: float = 1.0, upsample: str = "nearest", n_fit: int = 16, ridge: float = 1e-2,
                  max_samples: int = 8000, n_content: int = 256, n_style: int = 256, seed: int = 0,
                  psnr_size: int = 256, cache: bool = True, progress: bool = True) -> dict:
    """Train a decoder (see the module docstring for ``kind``) and return
    ``{"state_dict", "budget", "history"}``.

    ``steps`` Adam steps of ``batch`` random content crops (and style crops
    for ``"adain"``) of ``size`` px, drawn from pools of ``n_content`` /
    ``n_style`` crops; with ``init="lstsq"`` the decoder first gets the
    closed-form fit of :func:`fit_lstsq` on ``n_fit`` crops (half of them
    paintings for ``"adain"``). ``budget`` records the settings, the data,
    the wall-clock seconds (of the run that computed it: a cached result
    keeps them and gains ``cached=True``), and the mean losses of the first and
    last 10% of the steps. Cached under ``style-decoders`` keyed by every
    argument, the data's fingerprint and the source of this module.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    args = dict(kind=kind, steps=steps, size=size, batch=batch, lr=lr, style_weight=style_weight,
                feature_weight=feature_weight, init=init, width=width, upsample=upsample, n_fit=n_fit, ridge=ridge,
                max_samples=max_samples, n_content=n_content, n_style=n_style, seed=seed, psnr_size=psnr_size)
    if kind != "adain":
        args.update(style_weight=None, n_style=0)
    def compute():
        with torch.enable_grad():  # callers may be under torch.no_grad() (the feed-forward methods are)
            return _train(**{**args, "style_weight": style_weight, "n_style": n_style},
                          progress=progress, cache=cache)

    if not cache:
        return compute()

    key = {**args, "data": str(data_root()), "held_out": pairs.canvases(),
           "source": source_hash("style.decoder")}
    fresh = {"flag": False}

    def run():
        fresh["flag"] = True
        return compute()

    result = memo_torch("style-decoders", key, run, include_code=False)
    result["budget"] = {**result["budget"], "cached": not fresh["flag"]}
    return result


def decoder_settings(kind: str = "adain", profile: str = "laptop", **overrides) -> dict:
    """The :data:`PRESETS` of ``profile`` for ``kind``, updated with ``overrides``."""
    if profile not in PRESETS:
        raise ValueError(f"profile must be one of {sorted(PRESETS)}, got {profile!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    return {**PRESETS[profile]["adain" if kind == "adain" else "recon"], **overrides}


_LOADED: dict[str, Decoder] = {}


def get_decoder(kind: str = "adain", profile: str = "laptop", **overrides) -> Decoder:
    """The trained decoder ``kind`` (eval mode, frozen) for a profile's
    :data:`PRESETS` (updated with ``overrides``, any :func:`train_decoder`
    argument); trains it on first use, then reads it from the cache (and
    keeps it in memory). Its ``budget`` attribute says how it was trained."""
    settings = decoder_settings(kind, profile, **overrides)
    tag = json.dumps([kind, settings], sort_keys=True, default=str)
    if tag not in _LOADED:
        result = train_decoder(kind, **settings)
        decoder = Decoder(KINDS[kind], settings.get("width", 1.0), settings.get("upsample", "nearest"))
        decoder.load_state_dict(result["state_dict"])
        decoder.budget = result["budget"]
        decoder.history = result["history"]
        for p in decoder.parameters():
            p.requires_grad_(False)
        _LOADED[tag] = decoder.eval()
    return _LOADED[tag]


def decoder_budgets(profile: str = "laptop", kinds=tuple(KINDS), **overrides) -> dict[str, dict]:
    """``{kind: budget}`` of the decoders of a profile (training them if needed):
    what the pages quote about how small the training was."""
    return {k: get_decoder(k, profile, **overrides).budget for k in kinds}
