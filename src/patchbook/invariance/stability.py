"""The experiments of the invariance pages: distances between digits and their
translates, nearest-neighbour accuracy of shifted digits, and the numerical
check of the stability of scattering to deformations.

Representations are functions ``phi(images) -> N x d`` (see
:func:`representation`): raw pixels, Gaussian local averages at scale
``2^J`` and scattering coefficients at scale ``2^J``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

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
    return {"pixels": "pixels", "average": f"Gaussian average, J={J}", "scattering": f"scattering, J={J}"}[kind]


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
