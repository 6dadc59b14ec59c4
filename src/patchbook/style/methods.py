"""A registry of style-transfer methods with one signature.

Every entry of :data:`METHODS` is a function ``fn(content, style, **kw) -> image``
on float tensors ``3 x H x W`` in [0, 1] (the output has the content's size):

========== ============== ====================================================
name       kind           what
========== ============== ====================================================
gatys      optimisation   Gram matrices of VGG features, L-BFGS (Gatys 2016)
strotss    optimisation   relaxed OT + self-similarity, coarse to fine (Kolkin 2019)
adain      feed-forward   channel mean/std of relu4_1 + trained decoder (Huang 2017)
wct        feed-forward   whitening-colouring at several layers (Li 2017)
mst        feed-forward   multimodal WCT over clusters of features (Zhang 2019)
magenta    feed-forward   Magenta's pretrained arbitrary stylisation (Ghiasi 2017)
========== ============== ====================================================

The feed-forward methods live in :mod:`patchbook.style.feedforward`; Magenta's
needs optional dependencies (:func:`unavailable` says what is missing).
:func:`stylize_cached` runs a method through the on-disk cache, keyed by the
method, both images, the parameters and the seed.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from patchbook.cache import memo_arrays

from . import feedforward, magenta, optimize
from .decoder import RECON, get_decoder
from .images import to_numpy, to_tensor

__all__ = ["INFO", "METHODS", "MethodInfo", "Stylized", "available", "method_kwargs", "stylize",
           "stylize_cached", "to_numpy", "to_tensor", "unavailable", "warm_up"]


@dataclass(frozen=True)
class MethodInfo:
    label: str
    kind: str  # "optimisation" or "feed-forward"
    cite: str  # key in book/references.bib
    summary: str


INFO: dict[str, MethodInfo] = {
    "gatys": MethodInfo("Gatys", "optimisation", "gatys2016image",
                        "Gram matrices of VGG features, pixels optimised with L-BFGS"),
    "strotss": MethodInfo("STROTSS", "optimisation", "kolkin2019style",
                          "relaxed optimal transport + self-similarity, coarse to fine, RMSprop"),
    "adain": MethodInfo("AdaIN", "feed-forward", "huang2017arbitrary",
                        "channel mean and std of relu4_1 features, learned decoder"),
    "wct": MethodInfo("WCT", "feed-forward", "li2017universal",
                      "whitening and colouring of features at several layers, learned decoders"),
    "mst": MethodInfo("MST", "feed-forward", "zhang2019multimodal",
                      "WCT between clusters of content and style features"),
    "magenta": MethodInfo("Magenta", "feed-forward", "ghiasi2017exploring",
                          "pretrained arbitrary stylisation network (style prediction + transformer)"),
}


def _decoder_kinds(name: str, kw: dict) -> list[str]:
    """The decoders (``get_decoder`` kinds) the feed-forward method ``name``
    will use with keyword arguments ``kw`` (defaults: those of :mod:`.feedforward`)."""
    if name == "adain":
        layer = kw.get("layer", "relu4_1")
        return ["adain" if layer == "relu4_1" else RECON[layer]]
    if name == "wct":
        return [RECON[l] for l in kw.get("levels", feedforward.WCT_LEVELS)]
    if name == "mst":
        layer = kw.get("layer", feedforward.MST_LAYER)
        return ["adain" if kw.get("transform") == "adain" and layer == "relu4_1" else RECON[layer]]
    return []


def _with_decoders(name: str) -> Callable[..., torch.Tensor]:
    """``patchbook.style.feedforward.<name>``, after getting its decoders (train
    on first use, else read from the cache) with gradients enabled: the methods
    themselves run under ``torch.no_grad()``, where a decoder could not be trained."""
    method = getattr(feedforward, name)

    def fn(content: torch.Tensor, style: torch.Tensor, **kw: Any) -> torch.Tensor:
        if kw.get("decoder") is None and not kw.get("decoders"):
            with torch.enable_grad():
                for kind in _decoder_kinds(name, kw):
                    get_decoder(kind, kw.get("profile", "laptop"))
        return method(content, style, **kw)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = method.__doc__
    return fn


METHODS: dict[str, Callable[..., torch.Tensor]] = {
    "gatys": optimize.gatys,
    "strotss": optimize.strotss,
    "adain": _with_decoders("adain"),
    "wct": _with_decoders("wct"),
    "mst": _with_decoders("mst"),
    "magenta": feedforward.magenta,
}


def unavailable() -> dict[str, str]:
    """``{method: reason}`` for registered methods that cannot run here
    (Magenta's network without its optional dependencies)."""
    ok, why = magenta.available()
    return {} if ok else {"magenta": why}


def available(names: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """The methods of ``names`` (default: all) that can run here, in order."""
    missing = unavailable()
    return [m for m in (names or list(METHODS)) if m not in missing]


# ------------------------------------------------------------- images ----


def _digest(t: torch.Tensor) -> str:
    a = np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))
    return hashlib.sha256(str(a.shape).encode() + a.tobytes()).hexdigest()[:16]


# ------------------------------------------------------------ running ----


def stylize(method: str, content: Any, style: Any, seed: int | None = None, **kw: Any) -> torch.Tensor:
    """Run ``METHODS[method](content, style, **kw)`` after seeding torch with
    ``seed``; images may be arrays or tensors; returns ``3 x H x W`` in [0, 1]."""
    if method not in METHODS:
        raise KeyError(f"unknown method {method!r}; methods are {list(METHODS)}")
    if seed is not None:
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        if method in ("strotss", "mst"):
            kw.setdefault("seed", seed)
    # no torch.no_grad() here: a feed-forward method may train its decoder on first use
    out = METHODS[method](to_tensor(content), to_tensor(style), **kw)
    return to_tensor(out).clamp(0, 1)


@dataclass
class Stylized:
    image: torch.Tensor  # 3 x H x W in [0, 1]
    seconds: float  # wall time of the computation (when it was computed)
    cached: bool  # read from the cache in this call
    history: dict[str, np.ndarray]  # per-iteration values of an optimisation (empty otherwise)


def stylize_cached(method: str, content: Any, style: Any, seed: int = 0, **kw: Any) -> Stylized:
    """:func:`stylize` through :func:`patchbook.cache.memo_arrays`, keyed by the
    method, hashes of both images, ``kw`` and ``seed``. The wall time of the
    computation, and for an optimisation the history of its loss terms, are
    cached with the image."""
    c, s = to_tensor(content), to_tensor(style)
    key = {"method": method, "content": _digest(c), "style": _digest(s), "seed": seed,
           "kw": {k: kw[k] for k in sorted(kw)}}
    computed = []

    def compute() -> dict[str, np.ndarray]:
        hist: list[dict] = []
        extra = {"history": hist} if INFO[method].kind == "optimisation" else {}
        t0 = time.perf_counter()
        out = stylize(method, c, s, seed=seed, **kw, **extra)
        seconds = time.perf_counter() - t0
        computed.append(True)
        arrays = {"image": out.numpy().astype(np.float32), "seconds": np.float64(seconds)}
        for k in (hist[0] if hist else {}):
            arrays[f"history/{k}"] = np.asarray([h[k] for h in hist], dtype=np.float64)
        return arrays

    arrays = memo_arrays("stylize", key, compute)
    history = {k.split("/", 1)[1]: np.asarray(v) for k, v in arrays.items() if k.startswith("history/")}
    return Stylized(torch.from_numpy(np.asarray(arrays["image"])), float(arrays["seconds"]), not computed, history)


def warm_up(method: str, **kw: Any) -> float:
    """Run ``method`` once on a small random image so that later timings
    exclude one-off costs (loading weights, training or reading decoders);
    returns the seconds it took."""
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 64, 64, generator=g)
    t0 = time.perf_counter()
    if INFO[method].kind == "optimisation":
        kw = {**kw, "n_iter": 1}
        if method == "strotss":
            kw.update(min_size=64, n_samples=16, n_style=16)
    stylize(method, img, img, seed=0, **kw)
    return time.perf_counter() - t0


def method_kwargs(method: str, params: dict) -> dict:
    """Keyword arguments of ``method`` from a notebook's parameters: the dict
    ``params[method]`` for an optimisation method (``params["gatys"]``...),
    ``profile=params["decoders"]`` for the feed-forward methods with decoders
    (AdaIN, WCT, MST), nothing for Magenta's pretrained network."""
    if INFO[method].kind == "optimisation":
        return dict(params.get(method, {}))
    if method in ("adain", "wct", "mst") and "decoders" in params:
        return {"profile": params["decoders"]}
    return {}
