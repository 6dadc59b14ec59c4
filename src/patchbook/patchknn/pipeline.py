"""The one pipeline of Part 2: a point of the patch k-NN experiments, configured once.

A *point* is a training and a test set, an encoder fitted on the training
images (patch moments, whitening, a dictionary drawn from them), the codes of
both sets and a linear head trained on the training codes. Every Part 2
page (the CIFAR-10 table, the ablations, the ImageNet table), the paper-scale
runs and ``python -m patchbook train CONFIG`` measure points with
:func:`measure`, configured by a :class:`PointConfig`.

Units: **accuracies are in percent** everywhere in this module (a
:class:`Point`, its history, :func:`train_head`), as in
:mod:`patchbook.patchknn.classifier`; times are in seconds.

Two ways to measure a point, chosen by ``augment``:

- ``augment=False``: the codes of both sets are computed once as ``uint8``
  window counts (exact, 4x smaller than float32) and cached on disk
  (:func:`encode_variants`); the head is trained on them (:func:`train_head`)
  and the point itself is cached. With ``mirror=True`` the cached codes are
  flipped at random for free (:meth:`~patchbook.patchknn.encoding.PatchEncoder.flip_permutation`);
  with ``shift`` they are those of the padded training images and every
  sample is a random exact shift of its code (:mod:`patchbook.patchknn.shifts`).
- ``augment=True``: the authors' recipe, codes of randomly cropped and
  flipped training images recomputed every epoch, trained by
  :func:`patchbook.patchknn.resumable.fit` (checkpoints after every epoch,
  bit-identical resume, data-parallel under ``torchrun``).

What is shared, so a sweep costs little more than its distinct parts: one
cache of patch moments (per data, patch size and moment subset), one of
codes (per fitted encoder and data), fitted encoders and loaded data in this
process. Variants that differ only in ``k`` or ``soft`` share one score
computation per batch (:func:`patchbook.patchknn.encoding.encode_shared`),
which :func:`sweep` prepares.

Also here: :func:`authors_score_ratio`, the factor between the authors'
sigmoid scale and ours, measured on data (see its docstring).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
import yaml

from patchbook import data
from patchbook.cache import (
    atomic_write,
    cache_path,
    memo_arrays,
    source_hash,
    stable_hash,
)
from patchbook.patchknn import resumable
from patchbook.patchknn.classifier import (
    ArrayBatches,
    EncodedBatches,
    Schedule,
    make_head,
    train,
)
from patchbook.patchknn.encoding import (
    AUTHORS_CIFAR_MEAN,
    AUTHORS_CIFAR_STD,
    SHARED_SCORE_PARAMS,
    PatchEncoder,
    check_formulation,
    resolve_k,
    transform_variants,
)
from patchbook.patchknn.patches import PatchMoments, image_shape, patch_moments
from patchbook.patchknn.shifts import FlipAveraged, ShiftedBatches, check_shift, pad_images
from patchbook.paths import cache_root
from patchbook.runtime import resolve_device

# Work done (not served from a cache), for tests and reports: moment passes,
# images encoded (once per variant), heads trained.
COUNTS: Counter = Counter()

HEADS = ("factorized", "linear")
WHITENINGS = ("zca", "pca", "none")


# ---------------------------------------------------------- configuration ----

@dataclass(frozen=True)
class PointConfig:
    """Everything a measured point depends on, in the profiles' names.

    Data: ``dataset`` (a :func:`patchbook.data.load` name; the test split is
    ``val`` for ``tiny-imagenet-100``, else ``test``), ``n_per_class`` and
    ``n_test_per_class`` (stratified subsets, 0: all), ``n_moment_images``
    (training images whose patches give the whitening covariance, 0: all).
    Encoder (:class:`~patchbook.patchknn.encoding.PatchEncoder`): ``n_atoms``,
    ``patch``, ``k`` (an ``int`` count or a ``float`` fraction of ``n_atoms``),
    ``lam``, ``whitening``, ``both_signs``, ``soft`` (``None``: the binary
    code), ``pool``, ``pool_stride``, ``ceil_mode``, ``out_size``, ``stride``,
    ``mirror``, ``formulation`` (``"ours"``, or ``"authors"``: what their
    script computes, see :mod:`patchbook.patchknn.encoding`; it also makes
    the augmented crops pad with zeros, :attr:`padding_mode`). Head (:func:`~patchbook.patchknn.classifier.make_head`): ``head``,
    ``bottleneck``, ``head_kernel``, ``batchnorm``. SGD: ``epochs``, ``lr``,
    ``milestones`` (x 0.1 at each), ``momentum``, ``weight_decay``,
    ``batch_size``; ``augment`` (random crop after ``padding`` and flip,
    codes recomputed every epoch); ``shift`` (cached codes only: exact
    random shifts of up to ``shift`` pixels, a multiple of ``pool_stride``,
    from the cached codes of the padded training images, see
    :mod:`patchbook.patchknn.shifts`; 0: none); ``test_flip`` (test logits
    averaged over the code and its mirror image; needs ``mirror``); test
    accuracy every ``eval_every`` epochs;
    ``seed`` (subsets, moment images, dictionary, initialisation, order).

    How a point is computed (device, working memory, progress bars, output
    folder) is not part of it: see :func:`measure`.
    """

    dataset: str = "cifar10"
    n_per_class: int = 0
    n_test_per_class: int = 0
    n_moment_images: int = 0
    n_atoms: int = 2048
    patch: int = 6
    k: int | float = 0.4
    lam: float = 1e-3
    whitening: str = "zca"
    both_signs: bool = True
    soft: float | None = None
    pool: int = 5
    pool_stride: int = 3
    ceil_mode: bool = True
    out_size: int | None = None
    stride: int = 1
    mirror: bool = False
    formulation: str = "ours"
    head: str = "factorized"
    bottleneck: int = 128
    head_kernel: int = 6
    batchnorm: bool = True
    epochs: int = 80
    lr: float = 3e-3
    milestones: tuple[int, ...] = (50, 75)
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 128
    augment: bool = False
    padding: int = 4
    shift: int = 0
    test_flip: bool = False
    eval_every: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        if self.soft is not None and not (isinstance(self.soft, (int, float)) and self.soft > 0):
            raise ValueError(f"soft must be None (binary code) or > 0, got {self.soft!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.whitening not in WHITENINGS:
            raise ValueError(f"whitening must be one of {WHITENINGS}, got {self.whitening!r}")
        resolve_k(self.k, self.n_atoms, check_formulation(self.formulation))
        for name in ("n_per_class", "n_test_per_class", "n_moment_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: all), got {getattr(self, name)}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not (
                np.isfinite(self.lr) and self.lr > 0):
            hint = " (YAML reads 3e-3 as text: write 3.0e-3)" if isinstance(self.lr, str) else ""
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}{hint}")
        if isinstance(self.shift, bool) or not isinstance(self.shift, (int, np.integer)) or self.shift < 0:
            raise ValueError(f"shift must be an int >= 0 (pixels), got {self.shift!r}")
        if self.shift and self.augment:
            raise ValueError("shift is the cached-code augmentation: with augment=True the crops are recomputed "
                             "(use padding)")
        if self.test_flip and not self.mirror:
            raise ValueError("test_flip needs mirror=True (a mirror-closed dictionary, so codes can be flipped)")

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **row: Any) -> "PointConfig":
        """The point of a page: its parameters ``params`` (a profile's, which
        may hold other keys: those that are not fields are the page's own),
        with a row's changes ``row`` (which must all be fields)."""
        unknown = sorted(set(row) - set(cls.fields()))
        if unknown:
            raise ValueError(f"unknown point parameters {unknown}; parameters are {list(cls.fields())}")
        return cls(**{**{f: params[f] for f in cls.fields() if f in params}, **row})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PointConfig":
        """The inverse of :meth:`to_dict`; unknown keys are an error."""
        unknown = sorted(set(d) - set(cls.fields()))
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known keys are {list(cls.fields())}")
        return cls(**d)

    def replace(self, **changes: Any) -> "PointConfig":
        """A copy with ``changes`` (field names only)."""
        unknown = sorted(set(changes) - set(self.fields()))
        if unknown:
            raise ValueError(f"unknown point parameters {unknown}; parameters are {list(self.fields())}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (``milestones`` as a list)."""
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    def key(self) -> str:
        """A hash of the point: every field (``k`` as the count it resolves
        to: ``k=0.25`` and ``k=4`` of 16 atoms are one point; ``formulation``
        only where it is not ``"ours"``, ``shift`` and ``test_flip`` only
        where set, so earlier keys stay valid), nothing of how it is computed."""
        d = {**self.to_dict(), "k": resolve_k(self.k, self.n_atoms, self.formulation)}
        for name, default in (("formulation", "ours"), ("shift", 0), ("test_flip", False)):
            if d[name] == default:
                del d[name]
        return stable_hash({"point": d})

    @property
    def padding_mode(self) -> str:
        """How the augmented crops pad: with zeros in the authors'
        formulation (``RandomCrop(32, padding=4)``, kneighbors.py:133),
        reflected in ours."""
        return "zeros" if self.formulation == "authors" else "reflect"

    @property
    def test_split(self) -> str:
        return "val" if self.dataset == "tiny-imagenet-100" else "test"

    def encoder_params(self) -> dict[str, Any]:
        """The :class:`~patchbook.patchknn.encoding.PatchEncoder` parameters of the point."""
        names = ("n_atoms", "patch", "k", "lam", "whitening", "both_signs", "soft", "pool", "pool_stride",
                 "ceil_mode", "out_size", "stride", "mirror", "formulation", "seed")
        return {n: getattr(self, n) for n in names}

    def schedule(self) -> Schedule:
        return Schedule(self.epochs, self.lr, self.milestones, momentum=self.momentum,
                        weight_decay=self.weight_decay)


def augmentation(config: PointConfig) -> str:
    """In words, how a point's training images are augmented (and its test
    images averaged)."""
    if config.augment:
        return (f"random crops (padding {config.padding}, {config.padding_mode}) and flips, codes recomputed "
                "every epoch")
    if config.shift:
        offsets = ", ".join(str(o) for o in range(0, 2 * config.shift + 1, config.pool_stride))
        text = (f"exact shifts of cached codes (padding {config.shift}, {config.padding_mode}; crops at offsets "
                f"{offsets} px)" + (" and flips" if config.mirror else ""))
    elif config.mirror:
        text = "flips of cached codes"
    else:
        return "none (cached codes)"
    return text + (", test logits averaged over flips" if config.test_flip else "")


def load_config(path: str | os.PathLike) -> PointConfig:
    """A :class:`PointConfig` from a ``.json`` or ``.yaml`` file of its fields."""
    text = Path(path).read_text()
    d = yaml.safe_load(text) if str(path).endswith((".yaml", ".yml")) else json.loads(text)
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a mapping of point parameters, got {type(d).__name__}")
    return PointConfig.from_dict(d)


# ------------------------------------------------------------------ data ----

@dataclass(frozen=True)
class Split:
    """Images (``uint8`` ``N x H x W x C``), labels and a JSON description
    (``key``) naming the data they come from, for cache keys."""

    images: np.ndarray
    labels: np.ndarray
    key: dict
    classes: tuple = ()

    def __len__(self) -> int:
        return len(self.labels)

    def describe(self) -> str:
        n_cls = len(np.unique(self.labels))
        return f"{self.key.get('dataset', '?')}/{self.key.get('split', '?')}: {len(self):,} images, {n_cls} classes"


_SPLITS: dict[tuple, Split] = {}


def load_split(name: str, split: str, n_per_class: int = 0, seed: int = 0) -> Split:
    """A (stratified subset of a) dataset split, kept in this process;
    ``n_per_class`` 0: all."""
    k = (name, split, n_per_class or 0, seed if n_per_class else None)
    if k not in _SPLITS:
        ds = data.load(name, split, n_per_class=n_per_class or None, seed=seed)
        key = {"dataset": name, "split": split, "fingerprint": ds.fingerprint, "n_per_class": n_per_class or None,
               "seed": seed if n_per_class else None}
        if len(_SPLITS) >= 8:
            _SPLITS.pop(next(iter(_SPLITS)))
        _SPLITS[k] = Split(ds.images, ds.labels, key, tuple(ds.classes))
    return _SPLITS[k]


def forget() -> None:
    """Empty this process's memory of loaded splits and fitted encoders (the
    disk caches stay): for tests that count work."""
    _SPLITS.clear()
    _FITTED.clear()


def splits(config: PointConfig) -> tuple[Split, Split]:
    """The training and test sets of a point."""
    return (load_split(config.dataset, "train", config.n_per_class, config.seed),
            load_split(config.dataset, config.test_split, config.n_test_per_class, config.seed))


def content_key(images: np.ndarray) -> str:
    """A hash of the bytes of ``images`` (for arrays that come with no key)."""
    a = np.ascontiguousarray(images)
    h = hashlib.sha256(str((a.shape, a.dtype.str)).encode())
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()[:16]


def data_key(images, key) -> Any:
    """``key`` if given, else a hash of the images' bytes."""
    return key if key is not None else {"content": content_key(np.asarray(images))}


# --------------------------------------------------------------- moments ----

def moments_cached(images: np.ndarray, patch: int, stride: int = 1, key: Any = None,
                   n_images: int | None = None, seed: int = 0, device: str = "cpu",
                   progress: bool = False) -> PatchMoments:
    """Mean and covariance of every ``patch x patch`` patch of ``images`` (or of
    ``n_images`` of them drawn with ``seed``), cached on disk: the one cache
    of patch moments."""
    idx = None
    if n_images and n_images < len(images):
        idx = np.sort(np.random.default_rng(seed).choice(len(images), n_images, replace=False))
    ckey = {"what": "patch moments", "data": data_key(images, key), "patch": patch, "stride": stride,
            "n_images": n_images if idx is not None else None, "seed": seed if idx is not None else None,
            "_src": source_hash("patchknn.patches")}

    def compute():
        COUNTS["moments"] += 1
        imgs = images if idx is None else images[idx]
        return patch_moments(imgs, patch, stride, device=device, progress=progress).to_arrays()

    return PatchMoments.from_arrays(memo_arrays("patch-moments", ckey, compute, include_code=False))


def fit_encoder(encoder: PatchEncoder, images: np.ndarray, key: Any = None, n_moment_images: int | None = None,
                moment_seed: int = 0) -> PatchEncoder:
    """Fit ``encoder`` on ``images`` with moments from :func:`moments_cached`
    (all images, or ``n_moment_images`` of them); returns it."""
    m = moments_cached(images, encoder.patch, encoder.stride, key, n_moment_images, moment_seed,
                       device=str(encoder.device), progress=encoder.progress)
    return encoder.fit(images, moments=m)


# What PatchEncoder.fit depends on (the other parameters only change how codes are computed;
# the formulation changes the kernels, not the dictionary or the whitening).
FIT_PARAMS = ("n_atoms", "patch", "lam", "whitening", "stride", "mirror", "formulation", "seed")
_FITTED: dict[str, PatchEncoder] = {}


def fitted_encoder(config: PointConfig, train_split: Split, *, device: str = "cpu", memory_mb: int = 512,
                   progress: bool = False) -> PatchEncoder:
    """The encoder of ``config`` fitted on ``train_split``: refitted (moments
    from the cache) only when a :data:`FIT_PARAMS` parameter, the data or the
    moment subset changes, else a copy sharing the fitted arrays."""
    params = config.encoder_params()
    fkey = stable_hash({"fit": {p: params[p] for p in FIT_PARAMS}, "data": train_split.key,
                        "n_moment_images": config.n_moment_images, "device": str(device)})
    if fkey not in _FITTED:
        e = PatchEncoder(**{p: params[p] for p in FIT_PARAMS}, device=device, memory_mb=memory_mb,
                         progress=progress)
        if len(_FITTED) >= 16:
            _FITTED.pop(next(iter(_FITTED)))
        _FITTED[fkey] = fit_encoder(e, train_split.images, train_split.key, config.n_moment_images or None,
                                    config.seed)
    e = copy.copy(_FITTED[fkey])
    e.set_params(**{p: v for p, v in params.items() if p not in FIT_PARAMS}, memory_mb=memory_mb,
                 progress=progress)
    e.k_ = resolve_k(e.k, e.n_atoms, e.formulation)
    e._check_soft()
    return e


def fitted_hash(encoder: PatchEncoder) -> str:
    """A hash of what an encoder's codes depend on beyond its parameters: its
    whitening (mean and operator) and its atoms."""
    encoder._check()
    h = hashlib.sha256()
    for t in (encoder.whitener_.mean_, encoder.whitener_.W_, encoder.atoms_):
        h.update(np.ascontiguousarray(t.detach().cpu().numpy()).tobytes())
    return h.hexdigest()[:16]


def variant(encoder: PatchEncoder, **changes) -> PatchEncoder:
    """A copy of a fitted encoder with other ``k`` and/or ``soft``, sharing
    its fitted arrays (no refit is needed for those two)."""
    bad = set(changes) - set(SHARED_SCORE_PARAMS)
    if bad:
        raise ValueError(f"variant() changes only {SHARED_SCORE_PARAMS}, not {sorted(bad)}; refit for those")
    v = copy.copy(encoder)
    v.set_params(**changes)
    v.k_ = resolve_k(v.k, v.n_atoms, v.formulation)
    v._check_soft()
    return v


# ----------------------------------------------------------------- codes ----

def codes_dtype(encoder: PatchEncoder) -> torch.dtype:
    """``uint8`` window counts for the binary code (exact, 4x smaller), else float32 means."""
    counts = encoder.soft is None and not encoder.out_size and encoder.pool * encoder.pool <= 255
    return torch.uint8 if counts else torch.float32


def codes_scale(encoder: PatchEncoder) -> float:
    """Factor turning cached codes into window means (``1 / pool^2`` for
    ``uint8`` counts; exact except at ceil-mode border windows, a
    per-position constant a linear head absorbs)."""
    return 1.0 / (encoder.pool * encoder.pool) if codes_dtype(encoder) == torch.uint8 else 1.0


def _codes_path(encoder: PatchEncoder, images, key) -> Path:
    params = {**encoder.code_params(), "k": resolve_k(encoder.k, encoder.n_atoms, encoder.formulation)}  # a count
    ckey = {"what": "pooled codes", "encoder": params, "fitted": fitted_hash(encoder),
            "data": data_key(images, key), "dtype": str(codes_dtype(encoder)),
            "_src": source_hash("patchknn.encoding")}
    return cache_path("codes", ckey, ".npz", include_code=False)


def _load_codes(path: Path) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            return f["codes"]
    except Exception:  # a corrupt entry is recomputed, not trusted
        path.unlink(missing_ok=True)
        return None


def encode_variants(encoder: PatchEncoder, images: np.ndarray, changes: Sequence[dict], key: Any = None,
                    batch_size: int | None = None, max_bytes: float = 1e9,
                    keep: bool = True) -> list[np.ndarray | None]:
    """Pooled codes of ``images`` for each variant ``variant(encoder, **c)`` of
    a fitted encoder, ``c`` in ``changes`` (dicts of ``k`` and/or ``soft``;
    ``{}`` is the encoder itself), cached on disk: the one cache of codes.

    Variants not in the cache are computed together
    (:func:`patchbook.patchknn.encoding.transform_variants`), a group of at
    most ``max_bytes`` of output at a time, sharing the products of each
    batch. Binary codes come as ``uint8`` window counts, soft codes as
    float32 window means (see :func:`codes_scale`). ``key`` describes the
    images (a :class:`Split` ``key``); without it their bytes are hashed.
    With ``keep=False`` nothing is returned (the codes are only made ready
    in the cache): a sweep's codes need not all fit in memory.
    """
    encoder._check()
    vs = [variant(encoder, **c) for c in changes]
    paths = [_codes_path(v, images, key) for v in vs]
    results: list[np.ndarray | None] = [None] * len(vs)
    todo = []
    for i, path in enumerate(paths):
        if path.exists():
            if not keep:
                continue
            results[i] = _load_codes(path)
            if results[i] is not None:
                continue
        todo.append(i)
    C, H, W = image_shape(images)
    groups: list[list[int]] = []
    size = 0.0
    for i in todo:
        nbytes = len(images) * int(np.prod(vs[i].out_shape(H, W))) * (1 if codes_dtype(vs[i]) == torch.uint8 else 4)
        if not groups or size + nbytes > max_bytes:
            groups.append([])
            size = 0.0
        groups[-1].append(i)
        size += nbytes
    for group in groups:
        t0 = time.perf_counter()
        codes = transform_variants([vs[i] for i in group], images, [codes_dtype(vs[i]) for i in group], batch_size)
        COUNTS["encoded images"] += len(images) * len(group)
        seconds = (time.perf_counter() - t0) / len(group)
        for i, c in zip(group, codes):
            arrays = {"codes": c.numpy(), "seconds": np.asarray(seconds)}
            _write_arrays(paths[i], arrays)
            if keep:
                results[i] = arrays["codes"]
        del codes
    return results


def _write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to the cache entry ``path`` atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def encode_cached(encoder: PatchEncoder, images: np.ndarray, key: Any = None,
                  batch_size: int | None = None) -> np.ndarray:
    """Pooled codes of ``images`` by a fitted ``encoder``, computed once and
    cached on disk (see :func:`encode_variants`)."""
    return encode_variants(encoder, images, [{}], key, batch_size)[0]


def cached_seconds(encoder: PatchEncoder, images: np.ndarray, key: Any = None) -> float | None:
    """Wall time (s) the cached codes of ``images`` took when they were
    computed (shared with the other variants of their pass), or ``None``."""
    path = _codes_path(encoder, images, key)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as f:
        return float(f["seconds"])


def codes_in_cache(encoder: PatchEncoder, split: Split) -> bool:
    """Whether the codes of ``split`` under ``encoder`` are in the cache."""
    return _codes_path(encoder, split.images, split.key).exists()


# ----------------------------------------------------------------- points ----

@dataclass(frozen=True)
class Point:
    """What :func:`measure` measured (accuracies in percent, times in seconds).

    ``test_top1``, ``test_top5`` and ``train_top1``: after the last epoch
    (the training accuracy is the running one over that epoch, the authors'
    "final train acc."); ``best_test_top1`` and ``best_epoch``: the best test
    accuracy over the evaluated epochs (the authors' "best test acc.").
    ``history``: one record per epoch (``epoch``, ``lr``, ``train_loss``,
    ``train_top1``, ``seconds``; ``test_top1``, ``test_top5``, ``test_loss``
    where evaluated). ``seconds``: per stage (``fit``, ``encode`` as measured
    when the codes were computed, ``train``, ...). ``codes_cached``: the codes
    came from the cache; ``cached``: the whole point did (nothing trained).
    """

    test_top1: float
    test_top5: float
    best_test_top1: float
    best_epoch: int
    train_top1: float
    n_train: int
    n_test: int
    n_features: int
    history: tuple = ()
    seconds: dict = field(default_factory=dict)
    codes_cached: bool = False
    cached: bool = False

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["history"] = list(self.history)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Point":
        return cls(**{**d, "history": tuple(d.get("history", ()))})


def point_from_history(history: Sequence[dict], *, n_train: int, n_test: int, n_features: int,
                       final: Mapping[str, float] | None = None, **kw: Any) -> Point:
    """A :class:`Point` from a training history (percent): best test accuracy
    over the evaluated epochs (the first of equal ones), final accuracies
    from ``final`` (an evaluation after training) or the last record."""
    if not history:
        raise ValueError("an empty history: nothing was trained")
    tested = [r for r in history if "test_top1" in r]
    best = max(tested, key=lambda r: r["test_top1"]) if tested else {}
    last = history[-1]
    final = final or {"top1": last.get("test_top1", float("nan")), "top5": last.get("test_top5", float("nan"))}
    return Point(test_top1=float(final["top1"]), test_top5=float(final["top5"]),
                 best_test_top1=float(best.get("test_top1", float("nan"))), best_epoch=int(best.get("epoch", -1)),
                 train_top1=float(last["train_top1"]), n_train=n_train, n_test=n_test, n_features=n_features,
                 history=tuple(dict(r) for r in history), **kw)


def train_head(train_x, train_y, test_x, test_y, config: PointConfig, *, scale: float = 1.0,
               flip_perm: torch.Tensor | None = None, window: tuple[int, int] | None = None,
               device: str = "cpu", progress: bool = False) -> Point:
    """Train the head of ``config`` (``head``, ``bottleneck``, ``head_kernel``,
    ``batchnorm``) on fixed features ``train_x`` (``N x C x h x w``, any dtype,
    times ``scale``) with its SGD schedule and seed, evaluating on ``test_x``
    every ``eval_every`` epochs: the one head-training function (patch codes
    and the ImageNet table's fixed-feature baselines alike).

    ``flip_perm`` flips a random half of each batch (see
    :class:`~patchbook.patchknn.classifier.ArrayBatches`) and, with
    ``config.test_flip``, averages the test logits over both orientations.
    ``window``: ``train_x`` are larger grids (``N x C x G x G'``) and each
    sample is a random ``window``-sized window of its grid
    (:class:`~patchbook.patchknn.shifts.ShiftedBatches`), ``test_x`` has
    the window's size."""
    COUNTS["trainings"] += 1
    train_x, test_x = torch.as_tensor(np.asarray(train_x)), torch.as_tensor(np.asarray(test_x))
    n_classes = int(max(np.max(train_y), np.max(test_y))) + 1
    if config.test_flip and flip_perm is None:
        raise ValueError("test_flip needs flip_perm (the mirror-closed dictionary's channel permutation)")
    if window is None:
        tr = ArrayBatches(train_x, train_y, config.batch_size, shuffle=True, scale=scale, device=device,
                          seed=config.seed, flip_perm=flip_perm)
    else:
        tr = ShiftedBatches(train_x, train_y, window, config.batch_size, scale=scale, device=device,
                            seed=config.seed, flip_perm=flip_perm)
    te = ArrayBatches(test_x, test_y, 500, scale=scale, device=device)
    torch.manual_seed(config.seed)
    model = make_head(config.head, tuple(test_x.shape[1:]), n_classes, config.bottleneck, config.head_kernel,
                      config.batchnorm).to(device)
    if config.test_flip:
        model = FlipAveraged(model, flip_perm).to(device)
    t0 = time.perf_counter()
    hist = train(model, tr, config.schedule(), test_data=te, eval_every=config.eval_every, progress=progress)
    return point_from_history(hist.epochs, n_train=len(train_y), n_test=len(test_y),
                              n_features=int(np.prod(test_x.shape[1:])),
                              seconds={"train": time.perf_counter() - t0})


def shifted_train_split(config: PointConfig, encoder: PatchEncoder, split: Split) -> Split:
    """The training images of a ``shift`` point, padded by ``shift`` pixels
    (``config.padding_mode``), with a key naming the padding; ``split`` as
    it is without ``shift``."""
    if not config.shift:
        return split
    H, W = split.images.shape[1:3]
    check_shift(encoder, config.shift, H, W)
    return Split(pad_images(split.images, config.shift, config.padding_mode), split.labels,
                 {**split.key, "padded": config.shift, "padding_mode": config.padding_mode}, split.classes)


def _point_path(config: PointConfig, train_split: Split, test_split: Split) -> Path:
    key = {"what": "point on cached codes", "point": config.key(), "train": train_split.key,
           "test": test_split.key, "_src": source_hash("patchknn.pipeline")}
    return cache_path("points", key, ".npz", include_code=False)


def measure(config: PointConfig, *, device: str = "auto", memory_mb: int = 512, progress: bool = False,
            output: str | os.PathLike | None = None, stop_after: int | None = None) -> Point | None:
    """Measure the point ``config``.

    Without ``augment``: codes from the cache (computed there if missing),
    a head trained on them, the point cached. With ``augment``: the
    resumable run of :mod:`patchbook.patchknn.resumable` in ``output``
    (default: a folder of the cache named by :meth:`PointConfig.key`, so a
    rerun resumes it and another point never meets it); under ``torchrun``
    each process trains its share and only rank 0 returns a point (the
    others ``None``). ``stop_after`` ends an augmented run after that epoch
    as if it had been killed (``None`` is returned; for tests of resuming).

    ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``), ``memory_mb`` (the
    encoder's working memory) and ``progress`` say how, not what: they are
    not part of the point's key.
    """
    device = resolve_device(device)
    if config.augment:
        return _measure_augmented(config, device, memory_mb, progress, output, stop_after)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("a data-parallel run (torchrun) needs augment=True; cached codes train in one process")
    train_split, test_split = splits(config)
    path = _point_path(config, train_split, test_split)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                return dataclasses.replace(Point.from_dict(json.loads(str(f["json"]))), cached=True)
        except Exception:
            path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    enc = fitted_encoder(config, train_split, device=device, memory_mb=memory_mb, progress=progress)
    seconds = {"fit": time.perf_counter() - t0}
    coded = shifted_train_split(config, enc, train_split)
    was_cached = codes_in_cache(enc, coded) and codes_in_cache(enc, test_split)
    t0 = time.perf_counter()
    xtr = encode_cached(enc, coded.images, coded.key)
    xte = encode_cached(enc, test_split.images, test_split.key)
    seconds["encode_this_run"] = time.perf_counter() - t0
    seconds["encode"] = sum(cached_seconds(enc, s.images, s.key) or 0.0 for s in (coded, test_split))
    H, W = train_split.images.shape[1:3]
    flip = enc.flip_permutation(H, W) if config.mirror else None
    p = train_head(xtr, train_split.labels, xte, test_split.labels, config, scale=codes_scale(enc), flip_perm=flip,
                   window=tuple(xte.shape[2:]) if config.shift else None, device=device, progress=progress)
    p = dataclasses.replace(p, seconds={**seconds, **p.seconds}, codes_cached=was_cached)
    _write_arrays(path, {"json": np.asarray(json.dumps(p.as_dict(), allow_nan=False))})
    return p


def run_folder(config: PointConfig) -> Path:
    """The default folder of an augmented run: the cache, named by the point's key."""
    return cache_root() / "train-runs" / config.key()


def _measure_augmented(config: PointConfig, device: str, memory_mb: int, progress: bool,
                       output: str | os.PathLike | None, stop_after: int | None) -> Point | None:
    dist = resumable.init_distributed(device)
    device = dist.device_for(device)
    t0 = time.perf_counter()
    train_split, test_split = splits(config)
    enc = fitted_encoder(config, train_split, device=device, memory_mb=memory_mb, progress=False)
    seconds = {"fit": time.perf_counter() - t0}
    H, W = train_split.images.shape[1:3]
    torch.manual_seed(config.seed)
    model = make_head(config.head, enc.out_shape(H, W), len(train_split.classes),
                      config.bottleneck, config.head_kernel, config.batchnorm).to(device)
    source = EncodedBatches(enc, train_split.images, train_split.labels, config.batch_size, shuffle=True,
                            augment_train=True, padding=config.padding, padding_mode=config.padding_mode,
                            seed=config.seed, rank=dist.rank, world=dist.world)
    test_source = EncodedBatches(enc, test_split.images, test_split.labels, config.batch_size)
    t0 = time.perf_counter()
    res = resumable.fit(model, source, config.schedule(), Path(output) if output else run_folder(config),
                        key=config.key(), meta={"config": config.to_dict()}, test_data=test_source,
                        eval_every=config.eval_every, dist=dist, progress=progress, stop_after=stop_after)
    seconds["this_run"] = time.perf_counter() - t0
    if res is None or not dist.main:
        return None
    seconds["train_epochs"] = float(sum(r["seconds"] for r in res.history))
    return point_from_history(res.history, n_train=len(train_split), n_test=len(test_split),
                              n_features=int(np.prod(enc.out_shape(H, W))), final=res.final, seconds=seconds,
                              cached=res.trained_epochs == 0)


def prepare(configs: Iterable[PointConfig], *, device: str = "auto", memory_mb: int = 512,
            progress: bool = False) -> None:
    """Make the codes of several points ready in the cache, sharing the
    scores of points whose encoders differ only in ``k`` or ``soft``
    (points already cached, and augmented ones, need none)."""
    device = resolve_device(device)
    groups: dict[str, tuple[PatchEncoder, tuple[Split, Split], list[dict]]] = {}
    for c in configs:
        if c.augment:
            continue
        tr, te = splits(c)
        if _point_path(c, tr, te).exists():
            continue
        e = fitted_encoder(c, tr, device=device, memory_mb=memory_mb, progress=progress)
        tr = shifted_train_split(c, e, tr)
        rest = {k: v for k, v in e.code_params().items() if k not in SHARED_SCORE_PARAMS}
        g = stable_hash([rest, fitted_hash(e), tr.key, te.key])
        groups.setdefault(g, (e, (tr, te), []))[2].append({k: getattr(e, k) for k in SHARED_SCORE_PARAMS})
    for e, pair, vs in groups.values():
        for s in pair:
            encode_variants(e, s.images, vs, s.key, keep=False)


def sweep(configs: Sequence[PointConfig], *, device: str = "auto", memory_mb: int = 512,
          progress: bool = False) -> list[Point]:
    """:func:`measure` every point of ``configs``, their codes prepared first
    (:func:`prepare`) so that points differing only in ``k`` or ``soft`` share
    one score computation; points equal to an earlier one are measured once."""
    configs = list(configs)
    prepare(configs, device=device, memory_mb=memory_mb, progress=progress)
    done: dict[str, Point] = {}
    out = []
    for c in configs:
        key = c.key()
        if key not in done:
            done[key] = measure(c, device=device, memory_mb=memory_mb, progress=progress)
        out.append(done[key])
    return out


# ------------------------------------------------------------- units ----

def authors_scores(encoder: PatchEncoder, patches: torch.Tensor, mean: Sequence[float] = AUTHORS_CIFAR_MEAN,
                   std: Sequence[float] = AUTHORS_CIFAR_STD) -> torch.Tensor:
    """The scores the authors' script ranks, for raw patches ``n x d`` (pixels
    in [0, 1], ``(channel, row, column)`` order) and ``encoder``'s atoms and
    whitening: ``0.5 ||W d_j||^2 - <W x~, W d_j>`` with ``x~`` the patch
    normalised per channel by ``mean`` and ``std`` (their input transform)
    and ``d_j`` the raw atom (their kernels and bias; louity/patches
    ``kneighbors.py``), i.e. half the squared Mahalanobis distance between
    ``x~`` and ``d_j`` up to a per-patch constant."""
    wh = encoder.whitener_
    C = len(mean)
    q = patches.shape[1] // C
    m = torch.tensor(mean, dtype=torch.float64).repeat_interleave(q)
    s = torch.tensor(std, dtype=torch.float64).repeat_interleave(q)
    xn = (patches.double() - m) / s
    M = wh.metric_
    atoms = encoder.atoms_.double()
    MA = atoms @ M
    return 0.5 * (MA * atoms).sum(1)[None, :] - xn @ MA.T


def ours_sqdist(encoder: PatchEncoder, patches: torch.Tensor) -> torch.Tensor:
    """``||W(x - d_j)||^2`` of raw patches ``n x d`` to every atom (the
    quantity our soft code's ``s`` divides)."""
    wh = encoder.whitener_
    return torch.cdist(wh.transform(patches.double()), encoder.whitened_atoms_.double()) ** 2


def authors_score_ratio(encoder: PatchEncoder, patches: torch.Tensor, **kw) -> dict:
    """How many of our units (squared whitened distance) one unit of the
    authors' score is worth, near the K-th neighbour where the soft code
    acts: for each patch, the spread (standard deviation over atoms) of our
    distances divided by that of their scores; the median over patches.
    An authors' sigmoid scale ``s`` maps to ``ratio * s`` in ours."""
    a = authors_scores(encoder, patches, **kw)
    o = ours_sqdist(encoder, patches)
    r = o.std(1) / a.std(1)
    return {"ratio": float(r.median()), "q10": float(r.quantile(0.1)), "q90": float(r.quantile(0.9)),
            "n_patches": len(patches)}
