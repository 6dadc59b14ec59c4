"""Experiment helpers shared by the ablation and ImageNet-table pages.

Everything here is built on :class:`patchbook.patchknn.encoding.PatchEncoder` and the
training loop of :mod:`patchbook.patchknn.classifier`; what it adds is *reuse*, so a
sweep of many settings costs little more than its distinct parts:

- :func:`moments_cached`: patch means and covariances, on disk, per patch size;
- :func:`fit_encoder`: an encoder fitted from cached moments (the whitening
  and the dictionary draw are cheap);
- :func:`encode_variants` / :func:`encode_cached`: pooled codes on disk, keyed
  by the encoder's parameters, its fitted state and the images. Variants of
  one fitted encoder that differ only in ``k`` or ``soft`` share one score
  computation per batch (the matrix product), so a sweep of ``K`` or of the
  soft-code scale computes the scores once;
- :func:`fit_linear_on_codes`: a head trained on cached codes, with the test
  accuracy after every epoch (best and final) and the training accuracy;
- :class:`CodeExperiment` and :func:`sweep`: one point per setting, each
  setting given as changes to a base configuration, with every shared part
  (moments, fitted encoders, codes, trained points) computed once;
- :func:`authors_score_ratio`: the factor between the authors' sigmoid scale
  and ours, measured on data (see its docstring);
- :func:`paper_train_config`: the same point as a
  :class:`patchbook.patchknn.resumable.TrainConfig`, for GPU runs with augmentation.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from patchbook.cache import cache_path, memo_arrays, source_hash, stable_hash
from patchbook.patchknn.encoding import (
    PatchEncoder,
    resolve_k,
    window_areas,
    window_sums,
)
from patchbook.patchknn.patches import (
    PatchMoments,
    image_shape,
    patch_moments,
    to_tensor,
)

# The input normalisation of the authors' CIFAR-10 script (torchvision
# Normalize after ToTensor), louity/patches kneighbors.py.
AUTHORS_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
AUTHORS_CIFAR_STD = (0.2023, 0.1994, 0.2010)

# Work done (not served from the cache), for tests and reports: images
# encoded, moment passes, trainings.
COUNTS: Counter = Counter()

ENCODER_KEYS = ("n_atoms", "patch", "k", "lam", "whitening", "both_signs", "soft", "pool", "pool_stride",
                "ceil_mode", "out_size", "stride", "seed")
# What PatchEncoder.fit depends on (the rest only changes how codes are computed).
FIT_KEYS = ("n_atoms", "patch", "lam", "whitening", "stride", "seed")
# Parameters that variants of one fitted encoder may change while sharing scores.
SHARED_SCORE_KEYS = ("k", "soft")
HEAD_KEYS = ("head", "bottleneck", "head_kernel")
TRAIN_KEYS = ("epochs", "lr", "milestones", "momentum", "weight_decay", "batch_size")


# ------------------------------------------------------------------ data ----

@dataclass
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


def load_split(name: str, split: str, n_per_class: int | None = None, seed: int = 0) -> Split:
    """A (stratified subset of a) dataset split; ``n_per_class`` 0 or None: all."""
    from patchbook import data

    ds = data.load(name, split, n_per_class=n_per_class or None, seed=seed)
    key = {"dataset": name, "split": split, "fingerprint": ds.fingerprint, "n_per_class": n_per_class or None,
           "seed": seed if n_per_class else None}
    return Split(ds.images, ds.labels, key, tuple(ds.classes))


def content_key(images: np.ndarray) -> str:
    """A hash of the bytes of ``images`` (for arrays that come with no key)."""
    a = np.ascontiguousarray(images)
    h = hashlib.sha256(str((a.shape, a.dtype.str)).encode())
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()[:16]


def _data_key(images, key) -> Any:
    return key if key is not None else {"content": content_key(np.asarray(images))}


# --------------------------------------------------------------- moments ----

def moments_cached(images: np.ndarray, patch: int, stride: int = 1, key: Any = None,
                   n_images: int | None = None, seed: int = 0, device: str = "cpu",
                   progress: bool = False) -> PatchMoments:
    """Mean and covariance of every ``patch x patch`` patch of ``images`` (or of
    ``n_images`` of them drawn with ``seed``), cached on disk."""
    idx = None
    if n_images and n_images < len(images):
        idx = np.sort(np.random.default_rng(seed).choice(len(images), n_images, replace=False))
    ckey = {"what": "patch moments", "data": _data_key(images, key), "patch": patch, "stride": stride,
            "n_images": n_images if idx is not None else None, "seed": seed if idx is not None else None,
            "_src": source_hash("patchknn.encoding")}

    def compute():
        COUNTS["moments"] += 1
        imgs = images if idx is None else images[idx]
        return patch_moments(imgs, patch, stride, device=device, progress=progress).to_arrays()

    return PatchMoments.from_arrays(memo_arrays("experiment-moments", ckey, compute, include_code=False))


def fit_encoder(encoder: PatchEncoder, images: np.ndarray, key: Any = None, n_moment_images: int | None = None,
                moment_seed: int = 0) -> PatchEncoder:
    """Fit ``encoder`` on ``images`` with moments from :func:`moments_cached`
    (all images, or ``n_moment_images`` of them); returns it."""
    m = moments_cached(images, encoder.patch, encoder.stride, key, n_moment_images, moment_seed,
                       device=str(encoder.device), progress=encoder.progress)
    return encoder.fit(images, moments=m)


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
    bad = set(changes) - set(SHARED_SCORE_KEYS)
    if bad:
        raise ValueError(f"variant() changes only {SHARED_SCORE_KEYS}, not {sorted(bad)}; refit for those")
    v = copy.copy(encoder)
    v.set_params(**changes)
    if v.soft is not None and not v.soft > 0:
        raise ValueError(f"soft must be None or > 0, got {v.soft}")
    v.k_ = resolve_k(v.k, v.n_atoms)
    return v


# ----------------------------------------------------------------- codes ----

def _codes_dtype(encoder: PatchEncoder) -> torch.dtype:
    """``uint8`` window counts for the binary code (exact, 4x smaller), else float32 means."""
    counts = encoder.soft is None and not encoder.out_size and encoder.pool * encoder.pool <= 255
    return torch.uint8 if counts else torch.float32


def codes_scale(encoder: PatchEncoder) -> float:
    """Factor turning :func:`encode_cached`'s output into window means
    (``1 / pool^2`` for ``uint8`` counts; exact except at ceil-mode border
    windows, a per-position constant a linear head absorbs)."""
    return 1.0 / (encoder.pool * encoder.pool) if _codes_dtype(encoder) == torch.uint8 else 1.0


def _codes_key(encoder: PatchEncoder, images, key) -> dict:
    return {"what": "pooled codes", "encoder": encoder.code_params(), "fitted": fitted_hash(encoder),
            "data": _data_key(images, key), "dtype": str(_codes_dtype(encoder)), "_src": source_hash("patchknn.encoding")}


def _pool(encoder: PatchEncoder, c: torch.Tensor, B: int, h: int, w: int, counts: bool) -> torch.Tensor:
    """Window sums of one ``(B L) x |D|`` code, as :meth:`PatchEncoder.encode_batch` pools."""
    if c.dtype == torch.bool:
        c = c.view(torch.uint8) if encoder.pool * encoder.pool <= 255 else c.to(torch.int16)
    return window_sums(c.view(B, h, w, -1), encoder.pool, encoder.pool_stride, encoder.ceil_mode)


def _soft_threshold(s: torch.Tensor, k: int) -> torch.Tensor:
    """``tau`` of :meth:`PatchEncoder._code`: the midpoint between the K-th
    and (K+1)-th smallest score of each row."""
    from patchbook.patchknn import knn

    mask = knn.knn_mask(s, k)
    kth = s.masked_fill(~mask, -math.inf).amax(1, keepdim=True)
    nxt = s.masked_fill(mask, math.inf).amin(1, keepdim=True)
    return (kth + nxt) / 2


def _encode_many(variants: Sequence[PatchEncoder], images, batch_size: int | None) -> list[torch.Tensor]:
    """Pooled codes of ``images`` under every variant (same fitted state; may
    differ in ``k``, ``soft``): one score matrix per batch for all of them.
    Equal to ``v.transform(images, dtype, batch_size)`` for each variant."""
    import torch.nn.functional as F

    base = variants[0]
    C, H, W = image_shape(images)
    h, w = base.code_size(H, W)
    bs = batch_size or min(v.batch_size_for(H, W) for v in variants)
    dtypes = [_codes_dtype(v) for v in variants]
    outs = [torch.empty((len(images), *v.out_shape(H, W)), dtype=dt) for v, dt in zip(variants, dtypes)]
    area = window_areas(h, w, base.pool, base.pool_stride, base.ceil_mode)
    with torch.no_grad():
        for start in range(0, len(images), bs):
            x = to_tensor(images[start:start + bs], base.device)
            B = x.shape[0]
            s = base.scores(x)                                  # scores of +w
            signs = [s]
            if base.both_signs:
                _, _, sq = base._on(x.device)
                signs.append(2 * sq - s)                        # ||a||^2 + 2 <w, a>: scores of -w
            shared: dict = {}  # soft codes: the K-NN threshold tau of each (sign, K), computed once
            for v, dt, out in zip(variants, dtypes, outs):
                counts = dt == torch.uint8
                pooled = []
                for j, sc in enumerate(signs):
                    if v.soft is None:
                        c = v._code(sc)
                    else:  # PatchEncoder._code's soft branch, with tau shared across scales
                        if (j, v.k_) not in shared:
                            shared[j, v.k_] = _soft_threshold(sc, v.k_)
                        c = torch.sub(shared[j, v.k_], sc).div_(v.soft).sigmoid_()
                    pooled.append(_pool(v, c, B, h, w, counts))
                    del c
                o = torch.cat(pooled, -1).permute(0, 3, 1, 2)
                if not counts:
                    o = o.to(torch.float32) / area.to(o.device)
                    if v.out_size:
                        o = F.adaptive_avg_pool2d(o, v.out_size)
                out[start:start + B] = o.to("cpu", dt)
            COUNTS["encoded images"] += B * len(variants)
    return outs


def encode_variants(encoder: PatchEncoder, images: np.ndarray, changes: Sequence[dict], key: Any = None,
                    batch_size: int | None = None, max_bytes: float = 1e9,
                    keep: bool = True) -> list[np.ndarray | None]:
    """Pooled codes of ``images`` for each variant ``variant(encoder, **c)`` of
    a fitted encoder, ``c`` in ``changes`` (dicts of ``k`` and/or ``soft``;
    ``{}`` is the encoder itself), cached on disk.

    Variants not in the cache are computed together, a group of at most
    ``max_bytes`` of output at a time, sharing the score matrix of each batch.
    Binary codes come as ``uint8`` window counts, soft codes as float32
    window means (see :func:`codes_scale`). ``key`` describes the images (a
    :class:`Split` ``key``); without it their bytes are hashed. With
    ``keep=False`` nothing is returned (the codes are only made ready in the
    cache): a sweep's codes need not all fit in memory.
    """
    encoder._check()
    vs = [variant(encoder, **c) for c in changes]
    keys = [_codes_key(v, images, key) for v in vs]
    results: list[np.ndarray | None] = [None] * len(vs)
    todo = []
    for i, (v, k) in enumerate(zip(vs, keys)):
        path = cache_path("experiment-codes", k, ".npz", include_code=False)
        if path.exists() and (not keep or _try_load(path, results, i)):
            continue
        todo.append(i)
    C, H, W = image_shape(images)
    group: list[int] = []
    size = 0
    groups = []
    for i in todo:
        nbytes = len(images) * int(np.prod(vs[i].out_shape(H, W))) * (1 if _codes_dtype(vs[i]) == torch.uint8 else 4)
        if group and size + nbytes > max_bytes:
            groups.append(group)
            group, size = [], 0
        group.append(i)
        size += nbytes
    if group:
        groups.append(group)
    for group in groups:
        t0 = time.perf_counter()
        codes = _encode_many([vs[i] for i in group], images, batch_size)
        seconds = (time.perf_counter() - t0) / len(group)
        for i, c in zip(group, codes):
            arrays = {"codes": c.numpy(), "seconds": np.asarray(seconds)}
            memo_arrays("experiment-codes", keys[i], lambda a=arrays: a, include_code=False)
            if keep:
                results[i] = arrays["codes"]
        del codes
    return results


def _try_load(path, results, i) -> bool:
    try:
        with np.load(path, allow_pickle=False) as f:
            results[i] = f["codes"]
        return True
    except Exception:
        path.unlink(missing_ok=True)
        return False


def cached_seconds(encoder: PatchEncoder, images: np.ndarray, key: Any = None) -> float | None:
    """Wall time (s) the cached codes of ``images`` took when they were
    computed (shared with the other variants of their pass), or ``None``."""
    path = cache_path("experiment-codes", _codes_key(encoder, images, key), ".npz", include_code=False)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as f:
        return float(f["seconds"])


def encode_cached(encoder: PatchEncoder, images: np.ndarray, key: Any = None,
                  batch_size: int | None = None) -> np.ndarray:
    """Pooled codes of ``images`` by a fitted ``encoder``, computed once and
    cached on disk (see :func:`encode_variants`)."""
    return encode_variants(encoder, images, [{}], key, batch_size)[0]


# ------------------------------------------------------------ classifier ----

@dataclass
class LinearFit:
    """What :func:`fit_linear_on_codes` measured (accuracies in percent)."""

    test_top1: float          # after the last epoch
    test_top5: float
    best_test_top1: float     # best over the epochs (the authors' "best test acc.")
    best_epoch: int
    train_top1: float         # running accuracy over the last epoch (the authors' "final train acc.")
    n_train: int
    n_test: int
    seconds: float
    history: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def fit_linear_on_codes(train_codes, train_labels, test_codes, test_labels, *, head: str = "factorized",
                        bottleneck: int = 128, head_kernel: int = 6, epochs: int = 10, lr: float = 0.01,
                        milestones: Sequence[int] = (), momentum: float = 0.9, weight_decay: float = 0.0,
                        batch_size: int = 128, scale: float = 1.0, seed: int = 0, device: str = "cpu",
                        eval_every: int = 1, progress: bool = False) -> LinearFit:
    """Train a head (:func:`patchbook.patchknn.classifier.make_head`) on precomputed
    codes with SGD (momentum, step decay by 0.1 at ``milestones``) and
    evaluate it on the test codes every ``eval_every`` epochs."""
    from patchbook.patchknn.classifier import ArrayBatches, Schedule, make_head, train

    COUNTS["trainings"] += 1
    train_codes, test_codes = torch.as_tensor(np.asarray(train_codes)), torch.as_tensor(np.asarray(test_codes))
    n_classes = int(max(np.max(train_labels), np.max(test_labels))) + 1
    tr = ArrayBatches(train_codes, train_labels, batch_size, shuffle=True, scale=scale, device=device, seed=seed)
    te = ArrayBatches(test_codes, test_labels, 500, scale=scale, device=device)
    torch.manual_seed(seed)
    model = make_head(head, tuple(train_codes.shape[1:]), n_classes, bottleneck, head_kernel).to(device)
    sched = Schedule(epochs, lr, tuple(milestones), momentum=momentum, weight_decay=weight_decay)
    t0 = time.perf_counter()
    hist = train(model, tr, sched, test_data=te, eval_every=eval_every, progress=progress).epochs
    seconds = time.perf_counter() - t0
    tested = [r for r in hist if "test_top1" in r]
    best = max(tested, key=lambda r: r["test_top1"])
    last = hist[-1]
    return LinearFit(100 * last["test_top1"], 100 * last["test_top5"], 100 * best["test_top1"], int(best["epoch"]),
                     100 * last["train_top1"], len(train_labels), len(test_labels), seconds, hist)


# ---------------------------------------------------------- experiments ----

def _split_config(cfg: dict) -> tuple[dict, dict, dict]:
    enc = {k: cfg[k] for k in ENCODER_KEYS if k in cfg}
    head = {k: cfg[k] for k in HEAD_KEYS if k in cfg}
    tr = {k: cfg[k] for k in TRAIN_KEYS if k in cfg}
    return enc, head, tr


class CodeExperiment:
    """Points of a study: codes of a training and a test split under a
    configuration, a head trained on them, accuracies.

    ``base`` holds every parameter (encoder: :data:`ENCODER_KEYS`, head:
    :data:`HEAD_KEYS`, training: :data:`TRAIN_KEYS`); a point is ``base``
    with some changes (:meth:`config`). Moments are cached per patch size,
    fitted encoders per :data:`FIT_KEYS`, codes per encoder and split, and
    points (accuracies) per configuration, in this process and on disk, so a
    setting shared by several sweeps (the default one) is trained once.
    """

    def __init__(self, train: Split, test: Split, base: dict, *, n_moment_images: int | None = None,
                 seed: int = 0, device: str = "cpu", memory_mb: int = 512, cache_points: bool = True,
                 progress: bool = False):
        unknown = set(base) - set(ENCODER_KEYS + HEAD_KEYS + TRAIN_KEYS)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        self.train, self.test, self.base = train, test, dict(base)
        self.n_moment_images, self.seed, self.device = n_moment_images, seed, device
        self.memory_mb, self.cache_points, self.progress = memory_mb, cache_points, progress
        self._fitted: dict[str, PatchEncoder] = {}
        self._points: dict[str, dict] = {}

    def config(self, **changes) -> dict:
        unknown = set(changes) - set(ENCODER_KEYS + HEAD_KEYS + TRAIN_KEYS)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        return {**self.base, **changes}

    def encoder(self, **changes) -> PatchEncoder:
        """The fitted encoder of ``base`` with ``changes`` (refit only when a
        :data:`FIT_KEYS` parameter changes)."""
        enc, _, _ = _split_config(self.config(**changes))
        fkey = stable_hash({k: enc.get(k) for k in FIT_KEYS})
        if fkey not in self._fitted:
            e = PatchEncoder(**{k: enc[k] for k in FIT_KEYS if k in enc}, device=self.device,
                             memory_mb=self.memory_mb)
            self._fitted[fkey] = fit_encoder(e, self.train.images, self.train.key, self.n_moment_images, self.seed)
        e = copy.copy(self._fitted[fkey])
        e.set_params(**{k: v for k, v in enc.items() if k not in FIT_KEYS})
        return variant(e)

    def codes(self, **changes) -> tuple[np.ndarray, np.ndarray, float]:
        """Training codes, test codes and their scale (:func:`codes_scale`)."""
        e = self.encoder(**changes)
        return (encode_cached(e, self.train.images, self.train.key),
                encode_cached(e, self.test.images, self.test.key), codes_scale(e))

    def prepare(self, changes: Iterable[dict]) -> None:
        """Make the codes of several points ready in the cache, sharing the
        scores of points whose encoders differ only in ``k`` or ``soft``."""
        groups: dict[str, tuple[PatchEncoder, list[dict]]] = {}
        for ch in changes:
            e = self.encoder(**ch)
            rest = {k: v for k, v in e.code_params().items() if k not in SHARED_SCORE_KEYS}
            g = stable_hash([rest, fitted_hash(e)])
            groups.setdefault(g, (e, []))[1].append({k: getattr(e, k) for k in SHARED_SCORE_KEYS})
        for e, vs in groups.values():
            for split in (self.train, self.test):
                encode_variants(e, split.images, vs, split.key, keep=False)

    def point_key(self, **changes) -> dict:
        cfg = self.config(**changes)
        e = self.encoder(**changes)
        _, head, tr = _split_config(cfg)
        return {"what": "linear head on codes", "encoder": e.code_params(), "fitted": fitted_hash(e),
                "train": self.train.key, "test": self.test.key, "head": head, "train_cfg": tr,
                "seed": self.seed}

    def point(self, **changes) -> dict:
        """Accuracies (percent) of the head trained on the codes of ``base``
        with ``changes``; ``cached`` says whether it was trained earlier."""
        key = self.point_key(**changes)
        h = stable_hash(key)
        if h in self._points:
            return {**self._points[h], "cached": True}
        cfg = self.config(**changes)
        _, head, tr = _split_config(cfg)

        def compute():
            xtr, xte, scale = self.codes(**changes)
            fit = fit_linear_on_codes(xtr, self.train.labels, xte, self.test.labels,
                                      head=head.get("head", "factorized"), bottleneck=head.get("bottleneck", 128),
                                      head_kernel=head.get("head_kernel", 6), scale=scale, seed=self.seed,
                                      device=self.device, progress=self.progress, **tr)
            out = fit.as_dict()
            out["n_features"] = int(np.prod(xtr.shape[1:]))
            return {"json": np.asarray(json.dumps(out))}

        path = cache_path("experiment-points", key, ".npz")
        cached = self.cache_points and path.exists()
        arrays = memo_arrays("experiment-points", key, compute) if self.cache_points else compute()
        res = json.loads(str(arrays["json"]))
        self._points[h] = res
        return {**res, "cached": cached}


def sweep(experiment: CodeExperiment, values: Sequence, to_changes: Callable[[Any], dict] | str,
          progress: Callable[[str], None] | None = None) -> list[dict]:
    """One point per value: ``experiment.point(**to_changes(value))`` (a string
    ``to_changes`` names the parameter set to the value). Codes of all values
    are prepared first, sharing scores where possible. Returns a list of
    point dicts with ``value`` and ``changes`` added, in the order of ``values``."""
    fn = (lambda v: {to_changes: v}) if isinstance(to_changes, str) else to_changes
    changes = [fn(v) for v in values]
    experiment.prepare(changes)
    out = []
    for v, ch in zip(values, changes):
        t0 = time.perf_counter()
        p = experiment.point(**ch)
        if progress:
            progress(f"{ch}: test {p['best_test_top1']:.1f}% train {p['train_top1']:.1f}% "
                     f"({time.perf_counter() - t0:.0f} s)")
        out.append({"value": v, "changes": ch, **p})
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


# ----------------------------------------------------------- paper runs ----

def paper_train_config(cfg: dict, *, dataset: str, output: str, n_per_class: int | None = None,
                       test_n_per_class: int | None = None, augment: bool = True, padding: int = 4, seed: int = 0, notebook: str | None = None,
                       profile: str | None = None, device: str = "auto", eval_every: int = 1):
    """The :class:`patchbook.patchknn.resumable.TrainConfig` of one point (``cfg`` as in
    :meth:`CodeExperiment.config`): codes recomputed every epoch from
    augmented images, as the authors train on GPUs."""
    from patchbook.patchknn.resumable import TrainConfig

    enc, head, tr = _split_config(cfg)
    enc = {k: v for k, v in enc.items() if k != "seed"}
    return TrainConfig(
        output=output, dataset=dataset, n_per_class=n_per_class or None,
        test_n_per_class=test_n_per_class or None, encoder=enc,
        head={"kind": head.get("head", "factorized"), "bottleneck": head.get("bottleneck", 128),
              "kernel": head.get("head_kernel", 6)},
        schedule={"epochs": tr["epochs"], "lr": tr["lr"], "milestones": list(tr.get("milestones", [])),
                  "momentum": tr.get("momentum", 0.9), "weight_decay": tr.get("weight_decay", 0.0)},
        batch_size=tr.get("batch_size", 128), augment=augment, padding=padding, seed=seed,
        eval_every=eval_every, device=device, notebook=notebook, profile=profile)


def summarize_history(history: list[dict]) -> dict:
    """Best and final test accuracy and final training accuracy (percent) of
    a :func:`patchbook.patchknn.resumable.run` history."""
    tested = [r for r in history if "test_top1" in r]
    best = max(tested, key=lambda r: r["test_top1"]) if tested else {}
    last = history[-1] if history else {}
    return {"best_test_top1": 100 * best.get("test_top1", float("nan")), "best_epoch": best.get("epoch"),
            "test_top1": 100 * last.get("test_top1", float("nan")),
            "test_top5": 100 * last.get("test_top5", float("nan")),
            "train_top1": 100 * last.get("train_top1", float("nan"))}
