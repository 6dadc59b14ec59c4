"""The experiments of the invariance pages: distances between digits and their
translates, nearest-neighbour accuracy of shifted digits, and the numerical
check of the stability of scattering to deformations.

Representations are functions ``phi(images) -> N x d`` (see
:func:`representation`): raw pixels, Gaussian local averages at scale
``2^J`` and scattering coefficients at scale ``2^J``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from patchbook.cache import memo_arrays, source_hash
from patchbook.invariance import averaging, deformation, scattering
from patchbook.runtime import cpu_threads

Rep = Callable[[np.ndarray], np.ndarray]


# -------------------------------------------------------- representations ----


def pixels(images: np.ndarray) -> np.ndarray:
    """Images in [0, 1], flattened: ``N x (H W C)``."""
    a = np.asarray(images)
    x = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
    return x.reshape(len(x), -1)


def representation(kind: str, J: int | None = None, L: int = 8) -> Rep:
    """``"pixels"``, ``"average"`` (Gaussian average at scale ``2^J``, full
    resolution) or ``"scattering"`` (at scale ``2^J``, ``L`` orientations,
    times ``2^J`` so that norms compare with the images'), as a function of ``N x H x W [x C]`` images returning ``N x d`` float32."""
    if kind == "pixels":
        return pixels
    if kind == "average":
        return lambda im: averaging.average(im, J).astype(np.float32).reshape(len(im), -1)
    if kind == "scattering":
        return lambda im: scattering.image_scale(J) * scattering.transform(im, J, L).reshape(len(im), -1)
    raise ValueError(f"unknown representation {kind!r}")


def label(kind: str, J: int | None = None) -> str:
    """The name a page gives a representation: ``"pixels"``, ``"Gaussian average, J=2"``..."""
    return {"pixels": "pixels", "average": f"Gaussian average, J={J}", "scattering": f"scattering, J={J}"}[kind]


def dimension(kind: str, J: int | None = None, L: int = 8, shape: tuple[int, int] = (28, 28),
              channels: int = 1) -> int:
    """Length of the vector :func:`representation` gives for ``H x W x channels`` images."""
    if kind in ("pixels", "average"):
        return int(shape[0] * shape[1] * channels)
    if kind == "scattering":
        return int(scattering.n_channels(J, L) * np.prod(scattering.output_shape(shape, J)) * channels)
    raise ValueError(f"unknown representation {kind!r}")


def cached_features(kind: str, J: int | None, L: int, images: np.ndarray) -> np.ndarray:
    """``representation(kind, J, L)(images)``, cached on disk under a hash of
    the images' bytes, the representation and the source of this module."""
    a = np.ascontiguousarray(images)
    key = {"kind": kind, "J": J, "L": L, "shape": list(a.shape), "dtype": str(a.dtype),
           "images": hashlib.sha256(a.tobytes()).hexdigest(), "code": source_hash("invariance.stability")}
    return memo_arrays("invariance-features", key, lambda: {"f": representation(kind, J, L)(a)})["f"]


# ------------------------------------------------------------ translations ----


def random_shifts(n: int, radius: int, rng: np.random.Generator) -> np.ndarray:
    """``n x 2`` integer shifts drawn uniformly on the square ring
    ``max(|dy|, |dx|) = radius``."""
    ring = np.array(deformation.shifts_of_norm(radius))
    return ring[rng.integers(0, len(ring), n)]


def shift_each(images: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Translate image ``i`` by ``shifts[i]`` (whole pixels, zero fill)."""
    out = np.empty_like(images)
    for s in np.unique(shifts, axis=0):
        idx = np.flatnonzero((shifts == s).all(1))
        out[idx] = deformation.translate(images[idx], tuple(s))
    return out


def shifted_sets(images: np.ndarray, radii: list[int], seed: int) -> dict[int, np.ndarray]:
    """For every radius ``r``, ``images`` each translated by a random shift of
    max-norm ``r`` (:func:`random_shifts`, generator seeded ``seed + r``)."""
    out = {}
    for r in radii:
        out[r] = shift_each(images, random_shifts(len(images), r, np.random.default_rng(seed + r)))
    return out


@dataclass(frozen=True)
class TranslationDistances:
    """Distances of digits to their translates and to reference digits, each
    relative to the digit's norm: ``to_translate`` ``n x len(radii)``,
    ``same`` and ``other`` ``n`` (to the nearest reference of the same class
    and of another class)."""

    radii: tuple[int, ...]
    to_translate: np.ndarray
    same: np.ndarray
    other: np.ndarray

    def median_to_translate(self) -> np.ndarray:
        """Median over digits of the distance to the translate, per radius."""
        return np.median(self.to_translate, 0)

    def share_beyond_other(self) -> np.ndarray:
        """Per radius, the share of digits farther from their translate than
        from their nearest reference digit of another class."""
        return (self.to_translate > self.other[:, None]).mean(0)


def translation_distances(images: np.ndarray, labels: np.ndarray, references: np.ndarray,
                          ref_labels: np.ndarray, radii: list[int],
                          rng: np.random.Generator) -> TranslationDistances:
    """``||x_c - x|| / ||x||`` for a random shift ``c`` of every max-norm in
    ``radii`` (drawn from ``rng``, one radius after the other), and the
    distances from ``x`` to its nearest reference digit of the same class and
    of another class, relative to ``||x||`` (pixels in [0, 1])."""
    labels, ref_labels = np.asarray(labels), np.asarray(ref_labels)
    X = pixels(images)
    norms = np.linalg.norm(X, axis=1)
    to_translate = np.zeros((len(X), len(radii)))
    for k, r in enumerate(radii):
        moved = shift_each(images, random_shifts(len(X), r, rng))
        to_translate[:, k] = np.linalg.norm(pixels(moved) - X, axis=1) / norms
    R = pixels(references)
    same, other = np.empty(len(X)), np.empty(len(X))
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        _, same[rows] = nearest_neighbour(R[ref_labels == c], X[rows])
        _, other[rows] = nearest_neighbour(R[ref_labels != c], X[rows])
    return TranslationDistances(tuple(radii), to_translate, same / norms, other / norms)


def other_class_pairs(labels: np.ndarray, n_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs`` distinct indices ``a`` and, for each, a random index ``b``
    of another class (both drawn from ``rng``)."""
    labels = np.asarray(labels)
    a = rng.choice(len(labels), n_pairs, replace=False)
    b = np.array([rng.choice(np.flatnonzero(labels != labels[i])) for i in a])
    return a, b


def translation_vs_class_change(phi: Rep, images: np.ndarray, others: np.ndarray,
                                shift: tuple[int, int] = (2, 0)) -> tuple[float, float]:
    """Median over pairs of ``||phi(x_c) - phi(x)|| / ||phi(x)||`` (``x``
    translated by ``shift``) and of ``||phi(y) - phi(x)|| / ||phi(x)||`` (``y``
    the paired image of ``others``)."""
    fa = phi(images)
    ft = phi(deformation.translate(images, shift))
    fb = phi(others)
    na = np.linalg.norm(fa, axis=1)
    dt = np.median(np.linalg.norm(ft - fa, axis=1) / na)
    db = np.median(np.linalg.norm(fb - fa, axis=1) / na)
    return float(dt), float(db)


def pairwise_sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``||a_i - b_j||^2``, ``len(a) x len(b)``, float64 accumulation."""
    a = torch.as_tensor(np.asarray(a, np.float32))
    b = torch.as_tensor(np.asarray(b, np.float32))
    d = (a * a).sum(1, dtype=torch.float64)[:, None] + (b * b).sum(1, dtype=torch.float64)[None, :] \
        - 2.0 * (a @ b.T).double()
    return d.clamp_min_(0).numpy()


def nearest_neighbour(train: np.ndarray, test: np.ndarray, batch: int = 1024,
                      threads: int | None = 1) -> tuple[np.ndarray, np.ndarray]:
    """Index of, and Euclidean distance to, the nearest row of ``train`` for
    every row of ``test`` (ties to the lower index), on ``threads`` CPU
    threads (``None``: torch's setting)."""
    with cpu_threads(threads):
        return _nearest_neighbour(train, test, batch)


def _nearest_neighbour(train: np.ndarray, test: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    tr = torch.as_tensor(np.asarray(train, np.float32))
    tr_sq = (tr * tr).sum(1)
    idx, dist = [], []
    for i in range(0, len(test), batch):
        te = torch.as_tensor(np.asarray(test[i:i + batch], np.float32))
        d = tr_sq[None, :] - 2.0 * te @ tr.T  # + ||te||^2, constant per row
        j = d.argmin(1)
        idx.append(j.numpy())
        dist.append(torch.sqrt((d.gather(1, j[:, None])[:, 0] + (te * te).sum(1)).clamp_min(0)).numpy())
    return np.concatenate(idx), np.concatenate(dist)


def nn_accuracy(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> float:
    """Accuracy of the 1-nearest-neighbour classifier."""
    j, _ = nearest_neighbour(train, test)
    return float((np.asarray(y_train)[j] == np.asarray(y_test)).mean())


def shift_accuracies(kind: str, J: int | None, L: int, references: np.ndarray, ref_labels: np.ndarray,
                     shifted: dict[int, np.ndarray], labels: np.ndarray) -> dict[int, float]:
    """1-NN accuracy (a fraction) of every set of ``shifted`` test images
    (``{radius: images}``, as :func:`shifted_sets` gives) against the
    unshifted ``references``, in the representation ``(kind, J, L)``
    (features cached with :func:`cached_features`)."""
    radii = list(shifted)
    ref = cached_features(kind, J, L, references)
    parts = np.split(cached_features(kind, J, L, np.concatenate([shifted[r] for r in radii])), len(radii))
    return {r: nn_accuracy(ref, ref_labels, f, labels) for r, f in zip(radii, parts)}


# -------------------------------------------------------------- stability ----


def fit_through_origin(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope ``k`` of ``y = k x`` and its ``R^2`` (the share of
    the variance of ``y`` about its mean that the line explains)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    k = float((x * y).sum() / (x * x).sum())
    ss_res = ((y - k * x) ** 2).sum()
    ss_tot = ((y - y.mean()) ** 2).sum()
    return k, float(1 - ss_res / ss_tot) if ss_tot > 0 else 1.0


@dataclass(frozen=True)
class StabilityFit:
    """How ``||Phi(x_tau) - Phi(x)|| / ||x||`` grows with ``||grad tau||_inf``
    (amplitudes > 0 only): ``slope`` of the least-squares line through 0 over
    every (amplitude, field, digit), ``r2`` of a line through 0 fitted to the
    mean curve, ``sup_ratio`` the largest change / ``||grad tau||_inf`` (an
    empirical ``K``), ``mean_ratio`` that ratio averaged per amplitude
    (ascending amplitudes) and ``variation`` = max / min of ``mean_ratio`` - 1
    (0 for a change exactly linear in the amplitude)."""

    slope: float
    r2: float
    sup_ratio: float
    mean_ratio: np.ndarray
    variation: float


def relative_changes(reps: dict[str, Rep], sweep: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``||Phi(x_tau) - Phi(x)|| / ||x||`` for every representation of
    ``reps`` and every image of a :func:`deform_sweep`: ``A x F x N`` each."""
    A, F, N = sweep["grad"].shape
    x0 = sweep["original"]
    flat = sweep["images"].reshape(A * F * N, *x0.shape[1:])
    norm_x = np.linalg.norm(x0.reshape(N, -1), axis=1)
    out = {}
    for name, phi in reps.items():
        f0 = phi(x0)
        fd = phi(flat).reshape(A, F, N, -1)
        out[name] = np.linalg.norm(fd - f0[None, None], axis=-1) / norm_x
    return out


def stability_fit(grad: np.ndarray, change: np.ndarray, amplitudes: list[float]) -> StabilityFit:
    """Fit ``change`` (``A x F x N``, from :func:`relative_changes`) against the
    measured ``grad`` (``A x F x N``) over the nominal ``amplitudes`` > 0."""
    nonzero = np.asarray(amplitudes) > 0
    if not nonzero.any():
        raise ValueError("need at least one amplitude > 0")
    g, ch = grad[nonzero], change[nonzero]
    slope, _ = fit_through_origin(g.ravel(), ch.ravel())
    _, r2 = fit_through_origin(g.mean((1, 2)), ch.mean((1, 2)))
    per_amp = (ch / g).reshape(int(nonzero.sum()), -1).mean(1)
    return StabilityFit(slope, r2, float((ch.ravel() / g.ravel()).max()), per_amp,
                        float(per_amp.max() / per_amp.min() - 1))


def deform_sweep(images: np.ndarray, grad_norms: list[float], n_fields: int, smoothness: float,
                 seed: int = 0, order: int = 3) -> dict[str, np.ndarray]:
    """Deform every image by ``n_fields`` random smooth fields at every
    amplitude ``||grad tau||_inf`` of ``grad_norms`` (the same directions of
    deformation at every amplitude: only the scale changes).

    Returns ``images``: ``A x F x N x H x W`` (float, [0, 1]), ``grad``:
    measured ``||grad tau||_inf`` (``A x F x N``) and ``sup``: ``|tau|_inf``.
    """
    a = np.asarray(images)
    x = a.astype(np.float64) / (255.0 if a.dtype == np.uint8 else 1.0)
    if x.ndim == 4:
        x = x[..., 0]
    N, H, W = x.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2**31, (n_fields, N))
    unit = np.stack([np.stack([deformation.random_field((H, W), 1.0, smoothness, int(s)) for s in row]) for row in seeds])
    out = np.empty((len(grad_norms), n_fields, N, H, W), np.float32)
    grad = np.empty((len(grad_norms), n_fields, N))
    sup = np.empty_like(grad)
    for i, g in enumerate(grad_norms):
        for f in range(n_fields):
            tau = g * unit[f]
            out[i, f] = deformation.warp(x, tau, order=order)
            grad[i, f] = [deformation.grad_norm_inf(t) for t in tau]
            sup[i, f] = [deformation.sup_norm(t) for t in tau]
    return {"images": out, "grad": grad, "sup": sup, "original": x.astype(np.float32)}


def windowed_cosines(freqs: list[float], size: int = 32, width: float = 6.0) -> np.ndarray:
    """Cosines of ``f`` cycles per ``size`` pixels (along the direction
    (1, 1/2)) under a Gaussian window of ``width`` pixels: images of one
    frequency each, ``len(freqs) x size x size``."""
    rows, cols = deformation.grid((size, size))
    c = (size - 1) / 2
    win = np.exp(-((rows - c) ** 2 + (cols - c) ** 2) / (2 * width**2))
    return np.stack([win * np.cos(2 * np.pi * f * (rows + 0.5 * cols) / size) for f in freqs])


def frequency_sweep(freqs: list[float], dilation: float, J: int = 3, L: int = 8) -> dict[str, np.ndarray]:
    """Windowed cosines (:func:`windowed_cosines`) of every frequency, dilated
    by ``tau(u) = dilation (u - u_0)``, and the change of each representation
    relative to ``||x|| ||grad tau||_inf``: ``pixels``, ``scattering`` and
    ``average`` (at scale ``2^J``), one value per frequency; with the
    ``patterns`` and their dilations ``moved``."""
    pats = windowed_cosines(freqs)
    tau = deformation.dilation_field(pats.shape[1:], dilation)
    gn = deformation.grad_norm_inf(tau)
    moved = deformation.warp(pats, tau, order=3)
    S = representation("scattering", J, L)
    return {"patterns": pats, "moved": moved,
            "pixels": deformation.relative_change(pats, moved) / gn,
            "scattering": deformation.relative_change(S(pats), S(moved), ref=pats) / gn,
            "average": deformation.relative_change(averaging.average(pats, J), averaging.average(moved, J),
                                                   ref=pats) / gn}
