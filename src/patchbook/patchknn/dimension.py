"""How many dimensions do image patches really have, and when is a nearest
neighbour meaningful?

Three measurements, and the exact nearest-neighbour search they rest on.

**Covariance dimension.** From the eigenvalues ``s_1 >= s_2 >= ... >= s_d``
of a covariance (:func:`covariance_dimension`):

- ``trace``: the talk's form, the *sum of the eigenvalues* of the covariance
  normalised so that its largest eigenvalue is 1, i.e. ``sum_i s_i / s_1``
  (``d`` for isotropic data, ``r`` for ``r`` equal non-zero eigenvalues);
- ``participation``: the participation ratio ``(sum_i s_i)^2 / sum_i s_i^2``
  (same two limits, less sensitive to the top eigenvalue alone);
- ``n_energy`` and ``fraction``: the number of principal components holding
  ``1 - tol`` of the energy (the variance, ``sum_i s_i``), i.e. the smallest
  ``n`` with ``s_1 + ... + s_n >= (1 - tol) sum_i s_i``, and ``n / d``.

Whitening with ``W = (lambda I + Sigma)^(-1/2)`` maps the spectrum to
``s_i / (s_i + lambda)`` (:func:`whitened_spectrum`).

**Nearest-neighbour dimension** (Levina and Bickel 2004). With ``tau_k(p)``
the distance from ``p`` to its ``k``-th nearest neighbour,

    d_k(p) = [ (1 / (k - 1)) sum_{j < k} log(tau_k(p) / tau_j(p)) ]^(-1),

per point (:func:`levina_bickel`), averaged over points for every ``k``, and
averaged over ``k`` in ``[k_min, k_max]`` as Levina and Bickel do
(:func:`nn_dimension`). Neighbours at distance zero (copies of the query:
the query itself when it is a database point, exact duplicates, frequent
among 8-bit image patches) are skipped by default: ``tau_k`` is then the
distance to the ``k``-th neighbour *different from* the query; :func:`knn`
returns copies at exactly 0. The authors' code reads the estimator
differently (:func:`authors_dimension`): the value at the largest ``k``
alone, with every query that has a zero distance or a non-positive
log-ratio dropped.

**Relative contrast** (Beyer et al. 1999): ``(D_max - D_min) / D_min`` of a
query against a data set; it tends to 0 with the dimension for i.i.d. data,
which is when "nearest" stops meaning anything (:func:`relative_contrast`).

**Exact k-NN** (:func:`knn`): queries against a database that is a tensor or
a stream of chunks (:class:`PatchDatabase` draws image patches on the fly),
tiled over queries and database with a running top-``k``, so memory stays at
one ``query_batch x db_batch`` tile plus ``n_queries x k`` however large the
database. Each tile is one matrix product (``||x||^2 - 2 <q, x>``); only the
entries below each query's current ``k``-th distance are merged, so after
the first tiles the cost is the matrix product alone.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, ContextManager, Iterator, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from patchbook.cache import memo_arrays
from patchbook.patchknn.patches import PatchMoments, patch_moments
from patchbook.patchknn.whitening import Whitener

Transform = Callable[[torch.Tensor], torch.Tensor]


# ------------------------------------------------------ covariance dimension

def spectrum(cov: np.ndarray | torch.Tensor) -> np.ndarray:
    """Eigenvalues of a symmetric covariance, float64, descending, clipped at 0."""
    c = torch.as_tensor(cov).double()
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {tuple(c.shape)}")
    s = torch.linalg.eigvalsh((c + c.T) / 2).clamp_min(0)
    return s.flip(0).numpy()


def _desc(eigvals) -> np.ndarray:
    s = np.sort(np.clip(np.asarray(eigvals, dtype=np.float64).ravel(), 0, None))[::-1]
    if s.size == 0 or s[0] <= 0:
        raise ValueError("need at least one positive eigenvalue")
    return s


def trace_dimension(eigvals) -> float:
    """``sum_i s_i / max_i s_i``: the trace of the covariance scaled to a largest eigenvalue of 1."""
    s = _desc(eigvals)
    return float(s.sum() / s[0])


def participation_ratio(eigvals) -> float:
    """``(sum_i s_i)^2 / sum_i s_i^2``."""
    s = _desc(eigvals)
    return float(s.sum() ** 2 / (s ** 2).sum())


def energy_dimension(eigvals, tol: float = 1e-3) -> int:
    """Smallest ``n`` such that the ``n`` largest eigenvalues hold ``1 - tol``
    of the total (the number of principal components keeping that energy)."""
    if not 0 <= tol < 1:
        raise ValueError(f"tol must be in [0, 1), got {tol}")
    s = _desc(eigvals)
    c = np.cumsum(s)
    # a relative slack of 1e-12 keeps round-off from adding a component
    return int(np.searchsorted(c, (1 - tol) * c[-1] * (1 - 1e-12)) + 1)


def whitened_spectrum(eigvals, lam: float) -> np.ndarray:
    """Spectrum after whitening with ``(lambda I + Sigma)^(-1/2)``: ``s / (s + lambda)``."""
    s = np.clip(np.asarray(eigvals, dtype=np.float64), 0, None)
    if lam < 0 or (lam == 0 and np.any(s == 0)):
        raise ValueError("lam must be > 0 (or 0 with a non-singular covariance)")
    return s / (s + lam)


@dataclass(frozen=True)
class CovarianceDimension:
    """The covariance dimensions of one spectrum (see the module docstring)."""

    ambient: int
    trace: float
    participation: float
    n_energy: int
    fraction: float
    tol: float


def covariance_dimension(eigvals, tol: float = 1e-3) -> CovarianceDimension:
    """All covariance dimensions of a spectrum (pass :func:`spectrum` of a covariance)."""
    s = _desc(eigvals)
    n = energy_dimension(s, tol)
    return CovarianceDimension(ambient=len(s), trace=trace_dimension(s), participation=participation_ratio(s),
                               n_energy=n, fraction=n / len(s), tol=tol)


# ------------------------------------------------------------ databases ----

class Database(Protocol):
    """What :func:`knn` searches: ``len``, ``dim``, ``chunks`` and optionally ``gather``."""

    def __len__(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def chunks(self, batch: int) -> Iterator[tuple[int, torch.Tensor]]: ...


class TensorDatabase:
    """A database held in memory as an ``n x d`` tensor."""

    def __init__(self, x: torch.Tensor):
        if x.ndim != 2:
            raise ValueError(f"expected an n x d tensor, got shape {tuple(x.shape)}")
        self.x = x

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def dim(self) -> int:
        return self.x.shape[1]

    def chunks(self, batch: int) -> Iterator[tuple[int, torch.Tensor]]:
        for start in range(0, len(self), batch):
            yield start, self.x[start:start + batch]

    def gather(self, idx: torch.Tensor) -> torch.Tensor:
        return self.x[idx]


class PatchDatabase:
    """``patch x patch`` patches of ``uint8`` images, extracted on the fly.

    Parameters
    ----------
    images
        ``uint8`` ``N x H x W x C`` (numpy, as :mod:`patchbook.data` returns).
    patch, stride
        Patch size and the stride of the positions.
    n
        Number of patches, drawn uniformly without replacement over all
        ``(image, position)`` pairs with ``seed``; ``None`` for every patch.
    transform
        Applied to every float batch of patches (e.g. a whitener's
        ``transform``), on ``device`` (where the images are kept); patches
        are in ``[0, 1]`` and flattened in the order ``(channel, row,
        column)`` like :func:`patchbook.patchknn.patches.extract_patches`.

    Only the images (as ``uint8``) and the drawn positions stay in memory.
    """

    def __init__(self, images: np.ndarray, patch: int, n: int | None = None, seed: int = 0,
                 stride: int = 1, transform: Transform | None = None, device: str | torch.device = "cpu"):
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(f"expected uint8 N x H x W x C images, got {images.dtype} {images.shape}")
        self.device = torch.device(device)
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)  # N x H x W x C, no copy on CPU
        N, H, W, C = self.images.shape
        if patch > min(H, W):
            raise ValueError(f"patch size {patch} exceeds image size {H} x {W}")
        self.patch, self.stride, self.channels = patch, stride, C
        self.ph, self.pw = (H - patch) // stride + 1, (W - patch) // stride + 1
        self.positions = self.ph * self.pw
        self.total = N * self.positions
        self.transform = transform
        if n is None:
            self.flat = None
        else:
            if n > self.total:
                raise ValueError(f"asked for {n} patches but there are only {self.total}")
            rng = np.random.default_rng(seed)
            self.flat = torch.from_numpy(np.sort(rng.choice(self.total, size=n, replace=False))).to(self.device)
        ar = torch.arange(patch, device=self.device)
        self._grid = (ar[:, None], ar[None, :])

    def __len__(self) -> int:
        return self.total if self.flat is None else len(self.flat)

    @property
    def dim(self) -> int:
        return self.channels * self.patch * self.patch

    def raw(self, idx: torch.Tensor) -> torch.Tensor:
        """Patches number ``idx`` as float in [0, 1], before the transform."""
        idx = torch.as_tensor(idx, dtype=torch.int64, device=self.device)
        flat = idx if self.flat is None else self.flat[idx]
        img, pos = flat // self.positions, flat % self.positions
        r = (pos // self.pw) * self.stride
        c = (pos % self.pw) * self.stride
        dr, dc = self._grid
        rows = r[:, None, None] + dr                     # n x Q x 1
        cols = c[:, None, None] + dc                     # n x 1 x Q
        p = self.images[img[:, None, None], rows, cols]  # n x Q x Q x C
        return p.permute(0, 3, 1, 2).reshape(len(idx), -1).float().div_(255.0)

    def gather(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.raw(idx)
        return x if self.transform is None else self.transform(x)

    def chunks(self, batch: int) -> Iterator[tuple[int, torch.Tensor]]:
        for start in range(0, len(self), batch):
            yield start, self.gather(torch.arange(start, min(start + batch, len(self))))


class GaussianDatabase:
    """``n`` i.i.d. standard Gaussian points in ``R^d``, never all in memory.

    The points are drawn in blocks of ``block`` rows, one after the other
    from one generator seeded with ``seed``, so they depend on ``(n, d,
    seed, block)`` only, not on the batch size :func:`knn` asks for.
    :meth:`gather` regenerates the blocks up to the last one it needs (one
    pass over the database at most) and returns the very same float32 rows.
    """

    def __init__(self, n: int, d: int, seed: int = 0, block: int = 16384):
        self.n, self.d, self.seed, self.block = n, d, seed, block

    def __len__(self) -> int:
        return self.n

    @property
    def dim(self) -> int:
        return self.d

    def _blocks(self, stop: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed)
        for start in range(0, self.n if stop is None else min(stop, self.n), self.block):
            yield start, torch.randn(min(self.block, self.n - start), self.d, generator=g)

    def chunks(self, batch: int) -> Iterator[tuple[int, torch.Tensor]]:
        pending, at = torch.empty(0, self.d), 0
        for _, x in self._blocks():
            pending = torch.cat([pending, x]) if len(pending) else x
            while len(pending) >= batch:
                yield at, pending[:batch]
                at, pending = at + batch, pending[batch:]
        if len(pending):
            yield at, pending

    def gather(self, idx: torch.Tensor) -> torch.Tensor:
        idx = torch.as_tensor(idx, dtype=torch.int64).reshape(-1)
        if len(idx) == 0:
            return torch.empty(0, self.d)
        if idx.min() < 0 or idx.max() >= self.n:
            raise ValueError(f"indices must be in [0, {self.n}), got {int(idx.min())}..{int(idx.max())}")
        out = torch.empty(len(idx), self.d)
        for start, x in self._blocks(int(idx.max()) + 1):
            sel = (idx >= start) & (idx < start + len(x))
            out[sel] = x[idx[sel] - start]
        return out


def as_database(x) -> Database:
    return TensorDatabase(x) if isinstance(x, torch.Tensor) else x


# -------------------------------------------------------------- exact k-NN ---

@dataclass
class KNNResult:
    """``dist`` ``n x k`` ascending (ties by index; which of several points
    tied at the ``k``-th distance is kept is not specified), ``index`` ``n x k`` into
    the database, ``dmax`` ``n`` the largest distance to the database,
    ``seconds`` the wall time of the search, ``n_database`` its size."""

    dist: torch.Tensor
    index: torch.Tensor
    dmax: torch.Tensor
    seconds: float = 0.0
    n_database: int = 0
    stats: dict = field(default_factory=dict)


def _merge(best_s, best_i, cand_s, cand_i, k):
    s = torch.cat([best_s, cand_s], 1)
    i = torch.cat([best_i, cand_i], 1)
    v, j = torch.topk(s, k, dim=1, largest=False, sorted=False)
    return v, torch.gather(i, 1, j)


# Distances with ``dist^2 < EXACT_REL ||q||^2`` are recomputed exactly: in
# float32, ||q||^2 + ||x||^2 - 2 <q, x> carries an absolute error of about
# 1e-7 (||q||^2 + ||x||^2), i.e. a relative error above 1e-5 below this.
EXACT_REL = 1e-2


def exact_sq_distances(queries: torch.Tensor, database, index: torch.Tensor,
                       batch: int = 2 ** 22) -> torch.Tensor:
    """``||q_i - x_{index[i, j]}||^2`` in float64 from ``database.gather``
    (``queries`` ``n x d``, ``index`` ``n x m`` -> ``n x m``), on the
    queries' device; a point bitwise equal to its query gives exactly 0."""
    db = as_database(database)
    if not hasattr(db, "gather"):
        raise ValueError(f"exact distances need a database with gather(), got {type(db).__name__}")
    n, m = index.shape
    out = torch.empty(n, m, dtype=torch.float64, device=queries.device)
    step = max(1, batch // max(1, m * db.dim))
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        xs = db.gather(index[r0:r1].reshape(-1)).to(queries.device, torch.float64).reshape(r1 - r0, m, -1)
        out[r0:r1] = ((xs - queries[r0:r1, None, :].double()) ** 2).sum(-1)
    return out


def knn(queries: torch.Tensor, database, k: int, *, query_batch: int = 1024, db_batch: int = 16384,
        exclude: torch.Tensor | None = None, refine: int = 0, exact: bool = True, track_max: bool = True,
        device: str | torch.device | None = None, progress: bool = False) -> KNNResult:
    """Exact ``k`` nearest neighbours (Euclidean) of ``queries`` in ``database``.

    ``database`` is an ``n x d`` tensor or a :class:`Database` (e.g.
    :class:`PatchDatabase`, whose chunks are made on the fly). ``track_max``
    also keeps each query's largest distance (``dmax``, NaN otherwise), for
    the relative contrast. The search runs on ``device`` (default: the
    queries'); results come back on the CPU.

    **Copies of the query.** A database point equal to the query (the query
    itself when queries are database points, or an exact duplicate of it) is
    a *copy*, not a neighbour: it is returned at distance exactly 0, and
    :func:`levina_bickel` skips zero distances, so ``tau_k`` is the distance
    to the ``k``-th neighbour different from the query, whether or not the
    queries are in the data. Two mechanisms make this hold:

    - ``exact`` (default): every returned entry with ``dist^2 < EXACT_REL
      ||q||^2`` (the distances float32 cannot resolve; a copy comes out
      around ``1e-3 ||q||`` instead of 0) is recomputed in float64 from
      ``database.gather`` (:func:`exact_sq_distances`), so points bitwise
      equal to the query give 0. Exact for :class:`TensorDatabase`, for
      :class:`GaussianDatabase` (whose rows ``gather`` regenerates) and for
      a :class:`PatchDatabase` whose transform acts coordinate by coordinate
      (centring). A transform that mixes coordinates (whitening) may map two
      equal raw patches to vectors that differ by float32 round-off (a
      matrix product's result depends on the batch); for those, use
      ``exclude`` for the query itself and :func:`exact_small_distances`
      (from the raw patches) for its other copies.
    - ``exclude`` (``n_queries`` database indices, ``-1`` for none) removes
      one point per query, the query's own index when queries are database
      points: exact for every database, and the ``k`` neighbours are then
      ``k`` other points.

    Distances come from ``||q||^2 + ||x||^2 - 2 <q, x>`` in the dtype of the
    queries. In float32 the smallest distances of data far from the origin
    lose relative precision to cancellation; ``refine > 0`` searches
    ``k + refine`` candidates and recomputes all their distances directly as
    ``||q - x||`` in float64 from ``database.gather`` (then sorts and keeps
    ``k``), which makes them exact up to float64 round-off. Centring the data
    first (distances do not change) also helps.

    Memory: one ``query_batch x db_batch`` tile (a few of them while merging)
    plus ``n_queries x (k + refine)``.
    """
    db = as_database(database)
    n = len(db)
    nq = queries.shape[0]
    kk = k + refine
    if not 1 <= k <= n - (1 if exclude is not None else 0):
        raise ValueError(f"k must be in [1, {n}] for a database of {n} points, got {k}")
    kk = min(kk, n - (1 if exclude is not None else 0))
    if queries.ndim != 2 or queries.shape[1] != db.dim:
        raise ValueError(f"queries must be n x {db.dim}, got shape {tuple(queries.shape)}")
    dtype = queries.dtype if queries.is_floating_point() else torch.float32
    dev = torch.device(device) if device is not None else queries.device
    q = queries.to(device=dev, dtype=dtype)
    qn = (q * q).sum(1)
    inf = torch.tensor(float("inf"), dtype=dtype, device=dev)
    best_s = torch.full((nq, kk), float("inf"), dtype=dtype, device=dev)
    best_i = torch.full((nq, kk), -1, dtype=torch.int64, device=dev)
    smax = torch.full((nq,), -float("inf"), dtype=dtype, device=dev)
    ex = None if exclude is None else torch.as_tensor(exclude, dtype=torch.int64, device=dev)
    stats = {"tiles": 0, "dense_merges": 0, "sparse_merges": 0, "candidates": 0, "exact": 0}
    t0 = time.perf_counter()
    it = db.chunks(db_batch)
    if progress:

        it = tqdm(it, total=math.ceil(n / db_batch), desc="k-NN", leave=False, mininterval=2.0)
    for start, x in it:
        x = x.to(device=dev, dtype=dtype)
        m = x.shape[0]
        xn = (x * x).sum(1)
        for r0 in range(0, nq, query_batch):
            r1 = min(nq, r0 + query_batch)
            stats["tiles"] += 1
            s = torch.addmm(xn[None, :], q[r0:r1], x.T, beta=1, alpha=-2)  # ||x||^2 - 2 <q, x>
            if track_max:
                smax[r0:r1] = torch.maximum(smax[r0:r1], s.amax(1))
            if ex is not None:
                loc = ex[r0:r1] - start
                ok = (loc >= 0) & (loc < m)
                if ok.any():
                    rows = torch.nonzero(ok).squeeze(1)
                    s[rows, loc[rows]] = inf
            thr = best_s[r0:r1].amax(1)
            if torch.isinf(thr).any():  # first tiles: every entry is a candidate
                mc = m
            else:
                rows, cols = torch.nonzero(s < thr[:, None], as_tuple=True)  # row-major order
                if len(rows) == 0:
                    continue
                counts = torch.bincount(rows, minlength=r1 - r0)
                mc = int(counts.max())
                stats["candidates"] += len(rows)
            if kk + mc >= m:
                # early tiles: most entries are candidates, a dense top-k is cheaper
                stats["dense_merges"] += 1
                kt = min(kk, m)
                v, j = torch.topk(s, kt, dim=1, largest=False, sorted=False)
                cand_s, cand_i = v, j + start
            else:
                stats["sparse_merges"] += 1
                offs = torch.cumsum(counts, 0) - counts
                pos = torch.arange(len(rows), device=dev) - offs[rows]
                cand_s = torch.full((r1 - r0, mc), float("inf"), dtype=dtype, device=dev)
                cand_i = torch.full((r1 - r0, mc), -1, dtype=torch.int64, device=dev)
                cand_s[rows, pos] = s[rows, cols]
                cand_i[rows, pos] = cols + start
            best_s[r0:r1], best_i[r0:r1] = _merge(best_s[r0:r1], best_i[r0:r1], cand_s, cand_i, kk)
    seconds = time.perf_counter() - t0
    if refine > 0:
        dist2 = exact_sq_distances(q, db, best_i)
        seconds = time.perf_counter() - t0
    else:
        dist2 = best_s + qn[:, None]
        if exact:
            rows, cols = torch.nonzero(dist2 < EXACT_REL * qn[:, None], as_tuple=True)
            if len(rows):
                dist2 = dist2.double()
                dist2[rows, cols] = exact_sq_distances(q[rows], db, best_i[rows, cols][:, None])[:, 0]
                stats["exact"] = len(rows)
    # sort by (distance, index): index first, then a stable sort on distance
    oi = torch.argsort(best_i, dim=1)
    dist2, best_i = torch.gather(dist2, 1, oi), torch.gather(best_i, 1, oi)
    od = torch.sort(dist2, dim=1, stable=True).indices[:, :k]
    dist2, best_i = torch.gather(dist2, 1, od), torch.gather(best_i, 1, od)
    dist = dist2.clamp_min(0).sqrt().to(dtype)
    dmax = (smax + qn).clamp_min(0).sqrt() if track_max else torch.full_like(qn, float("nan"))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - t0
    return KNNResult(dist=dist.cpu(), index=best_i.cpu(), dmax=dmax.cpu(), seconds=seconds, n_database=n,
                     stats=stats)


def knn_bruteforce(queries: torch.Tensor, data: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: ``torch.cdist`` and a stable sort (ties by index); ``(dist, index)``."""
    d = torch.cdist(queries, data, compute_mode="donot_use_mm_for_euclid_dist")
    o = torch.sort(d, dim=1, stable=True)
    return o.values[:, :k], o.indices[:, :k]


# ----------------------------------------------- nearest-neighbour dimension --

def levina_bickel(dist, drop_zero: bool = True, tie_tol: float = 1e-5) -> np.ndarray:
    """Per-point Levina-Bickel estimates ``d_k(p)`` for every ``k``.

    ``dist``: ``n x K`` distances to the ``K`` nearest neighbours, ascending.
    Returns ``n x K`` float64 whose column ``k - 1`` is ``d_k(p)``; column 0
    (``k = 1``) is NaN, and so is ``d_k(p)`` where it is undefined: fewer
    than ``k`` neighbours left after skipping zero distances (``drop_zero``),
    or ``tau_1 = ... = tau_k`` (``k`` database points at the same distance,
    e.g. copies of one 8-bit patch: an infinite estimate). Ties are taken up
    to round-off: ``d_k(p)`` is undefined when the mean log-ratio
    ``(1 / (k - 1)) sum_{j<k} log(tau_k / tau_j)`` is at most ``tie_tol``
    (an estimate above ``1 / tie_tol``).
    """
    t = np.asarray(dist.detach().cpu().numpy() if isinstance(dist, torch.Tensor) else dist, dtype=np.float64)
    if t.ndim != 2:
        raise ValueError(f"expected n x K distances, got shape {t.shape}")
    n, K = t.shape
    if drop_zero:
        z = (t <= 0).sum(1)
        cols = np.arange(K)[None, :] + z[:, None]
        valid = cols < K
        t = np.take_along_axis(t, np.minimum(cols, K - 1), axis=1)
        t[~valid] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        L = np.log(t)
        C = np.cumsum(L, axis=1)  # C[:, k-1] = sum_{j<=k} log tau_j
        k = np.arange(1, K + 1)
        S = np.full((n, K), np.nan)
        S[:, 1:] = L[:, 1:] - C[:, :-1] / (k[1:] - 1)
        d = 1.0 / S
    d[~(S > tie_tol)] = np.nan
    return d


@dataclass
class NNDimension:
    """Levina-Bickel dimension of a set of queries.

    ``per_k[k - 1]``: the points' ``d_k`` averaged over points (NaN for
    ``k = 1``); ``per_point``: each point's ``d_k`` averaged over
    ``k_min <= k <= k_max``; ``estimate``: ``per_k`` averaged over
    ``k_min <= k <= k_max``; ``at_k_max``: ``per_k[k_max - 1]``;
    ``undefined``: the fraction of ``(point, k)`` pairs left out.
    """

    per_k: np.ndarray
    per_point: np.ndarray
    estimate: float
    at_k_max: float
    k_min: int
    k_max: int
    undefined: float
    average: str


def _avg(d: np.ndarray, axis: int, average: str) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"), _quiet():
        if average == "mean":
            return np.nanmean(d, axis=axis)
        if average == "inverse":
            return 1.0 / np.nanmean(1.0 / d, axis=axis)
    raise ValueError(f"average must be 'mean' or 'inverse', got {average!r}")


class _quiet:
    def __enter__(self):

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *a):
        self._w.__exit__(*a)


def nn_dimension(dist, k_min: int = 10, k_max: int | None = None, drop_zero: bool = True,
                 average: str = "mean") -> NNDimension:
    """Levina-Bickel dimension from ``n x K`` neighbour distances.

    ``average="mean"`` averages the estimates ``d_k(p)`` over points (Levina
    and Bickel; the talk's form); ``"inverse"`` averages ``1 / d_k(p)`` and
    inverts (MacKay and Ghahramani's correction, less biased upwards by
    points with few neighbours nearby).
    """
    d = levina_bickel(dist, drop_zero=drop_zero)
    K = d.shape[1]
    k_max = K if k_max is None else k_max
    if not 2 <= k_min <= k_max <= K:
        raise ValueError(f"need 2 <= k_min <= k_max <= {K}, got k_min={k_min}, k_max={k_max}")
    per_k = _avg(d, 0, average)
    sl = d[:, k_min - 1:k_max]
    per_point = _avg(sl, 1, average)
    est = float(_avg(per_k[k_min - 1:k_max], 0, average))  # "inverse": harmonic mean over k too
    return NNDimension(per_k=per_k, per_point=per_point, estimate=est, at_k_max=float(per_k[k_max - 1]),
                       k_min=k_min, k_max=k_max, undefined=float(np.isnan(sl).mean()), average=average)


@dataclass(frozen=True)
class AuthorsDimension:
    """The authors' reading of the Levina-Bickel estimator (:func:`authors_dimension`).

    ``estimate``: the mean over the kept queries of ``d_k(p)`` at the largest
    ``k``; ``per_k``: those means for every ``k`` their code computes;
    ``k_max``: that largest ``k`` (``K - 1``: the first neighbour is dropped);
    ``n_queries``; ``dropped_zero`` / ``dropped_ratio``: queries dropped for
    a zero distance / for a non-positive mean log-ratio; ``kept``: the share
    of queries kept.
    """

    estimate: float
    per_k: np.ndarray
    k_max: int
    n_queries: int
    dropped_zero: int
    dropped_ratio: int
    kept: float


def authors_dimension(dist, k_min: int = 10) -> AuthorsDimension:
    """The nearest-neighbour dimension as the authors' code computes it.

    ``dist``: ``n x K`` distances to the ``K`` nearest neighbours, ascending
    (not squared). Transcribes ``intrinsic_dim`` (louity/patches,
    ``analyze_patches.py`` lines 170-184) and its use in
    ``PatchesAnalysis.ipynb`` (``compute_intrinsic_dims``,
    ``int_dims_largest_scale``):

    1. the first column is dropped (line 174; their queries are training
       patches, so it is meant to be the query itself): ``tau_j`` below is
       the distance to the ``(j + 1)``-th neighbour;
    2. every query with a zero among the remaining ``K - 1`` distances is
       dropped (lines 175-176), where :func:`levina_bickel` skips the zeros;
    3. ``Z_k = log tau_k - (1 / (k - 1)) sum_{j<k} log tau_j`` for
       ``k = k_min + 1, ..., K - 1`` (lines 173, 179-180), and every query with
       ``Z_k <= 0`` at *any* of those ``k`` is dropped (lines 181-182), where
       :func:`levina_bickel` blanks the single ``(point, k)``;
    4. ``d_k(p) = 1 / Z_k`` (line 183: ``2 / Z`` on squared distances, the
       same number), averaged over the kept queries for every ``k``
       (``torch.mean(Idim, dim=0)`` in ``compute_intrinsic_dims``), and the
       reported number is the last one, ``k = K - 1`` (``dic['Idim'][-1]`` in
       ``int_dims_largest_scale``).

    Their distances are float16 squared distances; here the logarithms are
    taken in float64 of the distances given.
    """
    t = np.asarray(dist.detach().cpu().numpy() if isinstance(dist, torch.Tensor) else dist, dtype=np.float64)
    if t.ndim != 2:
        raise ValueError(f"expected n x K distances, got shape {t.shape}")
    n, K = t.shape
    if not 1 <= k_min <= K - 2:
        raise ValueError(f"need 1 <= k_min <= K - 2 = {K - 2}, got k_min={k_min}")
    t = t[:, 1:]
    no_zero = ~(t == 0).any(1)
    t = t[no_zero]
    L = np.log(t)
    C = np.cumsum(L, axis=1)
    c = np.arange(k_min, K - 1)  # 0-based columns of the reduced array: k = c + 1 neighbours
    Z = L[:, c] - C[:, c - 1] / c
    positive = (Z > 0).all(1)
    with np.errstate(divide="ignore", invalid="ignore"), _quiet():
        per_k = np.mean(1.0 / Z[positive], axis=0) if positive.any() else np.full(len(c), np.nan)
    kept = int(positive.sum())
    return AuthorsDimension(estimate=float(per_k[-1]), per_k=per_k, k_max=K - 1, n_queries=n,
                            dropped_zero=int(n - no_zero.sum()), dropped_ratio=int(no_zero.sum() - kept),
                            kept=kept / n if n else float("nan"))


# ------------------------------------------------------- relative contrast --

def relative_contrast(dmin, dmax) -> np.ndarray:
    """Beyer et al.'s ``(D_max - D_min) / D_min`` per query (NaN where ``D_min = 0``)."""
    a = np.asarray(dmin.cpu() if isinstance(dmin, torch.Tensor) else dmin, dtype=np.float64)
    b = np.asarray(dmax.cpu() if isinstance(dmax, torch.Tensor) else dmax, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rc = (b - a) / a
    rc[~np.isfinite(rc)] = np.nan
    return rc


def nearest_positive(dist) -> np.ndarray:
    """Distance to the nearest neighbour that is not a copy of the query
    (the first positive entry of each row of ``dist``; NaN if none)."""
    t = np.asarray(dist.cpu() if isinstance(dist, torch.Tensor) else dist, dtype=np.float64)
    pos = t > 0
    first = np.argmax(pos, axis=1)
    out = t[np.arange(len(t)), first]
    out[~pos.any(1)] = np.nan
    return out


def query_contrast(queries: torch.Tensor, data, **kw) -> np.ndarray:
    """Relative contrast of every query against ``data`` (one exact 1-NN search)."""
    res = knn(queries, data, 1, **kw)
    return relative_contrast(res.dist[:, 0], res.dmax)


# -------------------------------------------- data of known dimension -------

def _rng(seed) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def random_isometry(d: int, D: int, seed: int = 0) -> torch.Tensor:
    """``D x d`` matrix with orthonormal columns (a random isometric embedding)."""
    if d > D:
        raise ValueError(f"cannot embed dimension {d} isometrically in {D}")
    g = _rng(seed)
    Qm, R = torch.linalg.qr(torch.randn(D, d, generator=g, dtype=torch.float64))
    return (Qm * torch.sign(torch.diagonal(R))).float()


def embed(Z: torch.Tensor, D: int, seed: int = 0) -> torch.Tensor:
    """Rotate ``n x d`` points into ``R^D`` with a random isometry (distances unchanged)."""
    return Z.float() @ random_isometry(Z.shape[1], D, seed).T


def uniform_cube(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """``n`` i.i.d. points uniform in ``[0, 1]^d``."""
    return torch.rand(n, d, generator=_rng(seed))


def gaussian(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=_rng(seed))


def sphere(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """``n`` points uniform on the unit sphere ``S^d`` in ``R^(d+1)`` (intrinsic dimension ``d``)."""
    x = torch.randn(n, d + 1, generator=_rng(seed))
    return x / x.norm(dim=1, keepdim=True)


def swiss_roll(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` points of the Swiss roll in ``R^3`` (intrinsic dimension 2), area-uniform."""
    g = _rng(seed)
    # arclength of the spiral r = t grows like t^2 / 2: sample t with density ~ t
    a, b = 1.5 * math.pi, 4.5 * math.pi
    u = torch.rand(n, generator=g, dtype=torch.float64)
    t = torch.sqrt(a ** 2 + u * (b ** 2 - a ** 2))
    h = 21 * torch.rand(n, generator=g, dtype=torch.float64)
    return torch.stack([t * torch.cos(t), h, t * torch.sin(t)], 1).float()


def curved_manifold(n: int, m: int, D: int, seed: int = 0, manifold: int = 0, scale: float = 3.0) -> torch.Tensor:
    """``n`` points (drawn with ``seed``) of a curved ``m``-dimensional
    manifold in ``R^D`` (chosen with ``manifold``): random Fourier features
    ``sqrt(2 / D) cos(scale * z W^T + b)`` of ``z`` uniform in ``[0, 1]^m``.

    As ``D`` grows, ``||x - x'||^2`` tends to ``2 (1 - exp(-scale^2 ||z - z'||^2 / 2))``,
    a fixed metric on the ``m``-dimensional parameter cube: the geometry does
    not depend on the ambient dimension.
    """
    g = _rng(seed)
    z = torch.rand(n, m, generator=g)
    W = torch.randn(D, m, generator=_rng(7919 + manifold))
    b = 2 * math.pi * torch.rand(D, generator=_rng(104729 + manifold))
    return math.sqrt(2.0 / D) * torch.cos(scale * z @ W.T + b)


# ------------------------------------------------ Beyer's phenomenon ----

def synthetic_contrast(dims: list[int], manifold_dims: list[int], n: int, n_queries: int, seed: int = 0,
                       k: int = 20, k_min: int = 10) -> dict[str, np.ndarray]:
    """Relative contrast and nearest-neighbour dimension of data of known dimension.

    Families: i.i.d. uniform and Gaussian coordinates in ``R^D``, and for every
    ``m`` of ``manifold_dims`` a flat ``m``-cube rotated into ``R^D``
    (:func:`embed`, isometry seeded ``seed + 11``) and a curved ``m``-dimensional
    set (:func:`curved_manifold`, manifold ``seed``). For every ``D`` of
    ``dims`` at least ``m``: ``n`` points (seed ``seed + 1``) and ``n_queries``
    queries (seed ``seed + 2``) of the family. Returns ``{family: rows}``,
    rows ``(D, median relative contrast, Levina-Bickel dimension over
    k_min <= k <= k)``.
    """
    families: dict[str, tuple[int, Callable[[int, int, int], torch.Tensor]]] = {
        "i.i.d. uniform": (1, uniform_cube), "i.i.d. Gaussian": (1, gaussian)}
    for m in manifold_dims:
        families[f"flat {m}-dim."] = (m, lambda n_, D, s, m=m: embed(uniform_cube(n_, m, s), D, seed=seed + 11))
        families[f"curved {m}-dim."] = (m, lambda n_, D, s, m=m: curved_manifold(n_, m, D, seed=s, manifold=seed))
    out = {}
    for name, (m, make) in families.items():
        rows = []
        for D in dims:
            if D < m:
                continue
            res = knn(make(n_queries, D, seed + 2), make(n, D, seed + 1), k)
            rc = relative_contrast(res.dist[:, 0], res.dmax)
            rows.append((D, float(np.nanmedian(rc)), nn_dimension(res.dist, k_min, k).estimate))
        out[name] = np.array(rows)
    return out


# ------------------------------------------------- image patches, cached ----

def patch_covariance(images: np.ndarray, patch: int, n_images: int | None = None, seed: int = 0,
                     fingerprint: str | None = None, device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """Mean (``d``), covariance (``d x d``, float64) and patch count of every
    ``patch x patch`` patch (pixels in [0, 1]) of ``n_images`` images drawn
    with ``seed`` (all images if ``None``), via
    :func:`patchbook.patchknn.patches.patch_moments`; cached when ``fingerprint``
    (of the data set) is given."""

    def compute():
        idx = (np.arange(len(images)) if n_images is None or n_images >= len(images)
               else np.sort(np.random.default_rng(seed).choice(len(images), n_images, replace=False)))
        m = patch_moments(images[idx], patch, device=device)
        return {"mean": m.mean.numpy(), "cov": m.cov.numpy(), "count": np.asarray(m.count)}

    if fingerprint is None:
        return compute()
    key = {"data": fingerprint, "patch": patch, "n_images": n_images, "seed": seed}
    return memo_arrays("dimension-covariance", key, compute)


def patch_linear(moments: dict[str, np.ndarray], lam: float | None) -> torch.Tensor | None:
    """The linear part ``L`` (float64 ``d x d``) of :func:`patch_transform`,
    ``T(x) = L (x - mu)``: ``None`` (identity) for raw patches, the
    whitener's ``W_`` otherwise."""
    return None if lam is None else _whitener(moments, lam).W_.double()


def _whitener(moments: dict[str, np.ndarray], lam: float):

    return Whitener(lam, "zca").fit_moments(PatchMoments(torch.from_numpy(moments["mean"]),
                                                         torch.from_numpy(moments["cov"]),
                                                         int(moments["count"])))


def exact_small_distances(dist: torch.Tensor, index: torch.Tensor, q_raw: torch.Tensor, db: "PatchDatabase",
                          linear: torch.Tensor | None, qnorm2: torch.Tensor, rel: float = EXACT_REL,
                          batch: int = 65536) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Recompute exactly the neighbour distances that float32 cannot resolve.

    ``||q||^2 + ||x||^2 - 2 <q, x>`` in float32 carries an absolute error of
    about ``1e-7 (||q||^2 + ||x||^2)``: a copy of the query comes out at a
    small positive distance, and neighbours much closer than the norms lose
    their relative precision. Every entry with ``dist^2 < rel * qnorm2`` is
    recomputed in float64 as ``||L (q_raw - x_raw)||`` from the raw patches
    (``L`` the linear part of the transform, ``None`` for the identity), so
    copies come out at exactly 0; rows are then re-sorted by
    ``(distance, index)``. Returns ``(dist, index, entries recomputed)``.
    """
    d2 = dist.double() ** 2
    rows, cols = torch.nonzero(d2 < rel * qnorm2.double()[:, None], as_tuple=True)
    if len(rows) == 0:
        return dist, index, 0
    for a in range(0, len(rows), batch):
        r, c = rows[a:a + batch], cols[a:a + batch]
        diff = q_raw[r].double() - db.raw(index[r, c]).double()
        if linear is not None:
            diff = diff @ linear.T
        d2[r, c] = (diff * diff).sum(1)
    touched = torch.unique(rows)
    sub_d, sub_i = d2[touched], index[touched]
    oi = torch.argsort(sub_i, dim=1)  # sort by (distance, index)
    sub_d, sub_i = torch.gather(sub_d, 1, oi), torch.gather(sub_i, 1, oi)
    od = torch.sort(sub_d, dim=1, stable=True).indices
    index = index.clone()
    d2[touched] = torch.gather(sub_d, 1, od)
    index[touched] = torch.gather(sub_i, 1, od)
    return d2.sqrt().to(dist.dtype), index, len(rows)


def patch_transform(moments: dict[str, np.ndarray], lam: float | None,
                    device: str | torch.device = "cpu") -> Transform:
    """Centring (``lam=None``: raw patches, distances unchanged) or ZCA
    whitening ``(lambda I + Sigma)^(-1/2) (x - mu)`` with
    :class:`patchbook.patchknn.whitening.Whitener`, from :func:`patch_covariance`.
    On a device other than the CPU the whitener's operator ``W_``
    (documented as applied as ``(x - mean_) @ W_.T``) is copied there."""
    if lam is None:
        mean = torch.from_numpy(moments["mean"]).float().to(device)
        return lambda X: X - mean
    w = _whitener(moments, lam)
    if torch.device(device).type == "cpu":
        return w.transform
    W, mu = w.W_.float().to(device), w.mean_.float().to(device)
    return lambda X: (X - mu) @ W.T


def patch_neighbours(train, test, patch: int, *, lam: float | None, n_database: int | None,
                     n_queries: int, k: int, n_cov_images: int | None, seed: int = 0,
                     db_batch: int = 16384, device: str | torch.device = "cpu",
                     cache: bool = True) -> dict[str, np.ndarray]:
    """The ``k`` nearest database patches of ``n_queries`` query patches.

    ``train`` and ``test`` are :class:`patchbook.data.Dataset`: the database
    is ``n_database`` patches drawn uniformly over every (image, position) of
    ``train`` (every patch if ``None``), the queries are patches drawn the
    same way from the held-out ``test`` images (so no query is in the
    database). Patches are centred (``lam=None``) or whitened with ``lam``
    (covariance from :func:`patch_covariance` of ``n_cov_images`` train
    images). The search runs in float32; the distances it cannot resolve
    (copies of the query, neighbours much closer than the patches' norms)
    are recomputed exactly (:func:`exact_small_distances`). Returns
    ``dist`` (``n_queries x k``, float32), ``dmax``, ``seconds`` and
    ``cpu_seconds`` of the search (with the recomputation), ``n_database``,
    ``n_all`` (every patch of ``train``) and ``n_exact`` (entries
    recomputed); cached on every argument.
    """

    def compute():
        mom = patch_covariance(train.images, patch, n_cov_images, seed, train.fingerprint if cache else None, device)
        tf = patch_transform(mom, lam, device)
        db = PatchDatabase(train.images, patch, n=n_database, seed=seed, transform=tf, device=device)
        qs = PatchDatabase(test.images, patch, n=n_queries, seed=seed + 1, device=device)
        c0, t0 = time.process_time(), time.perf_counter()
        q_raw = qs.raw(torch.arange(n_queries))
        q = tf(q_raw)
        res = knn(q, db, k, db_batch=db_batch, exact=False, device=device)  # exact from the raw patches below
        lin = patch_linear(mom, lam)
        dist, index, n_exact = exact_small_distances(
            res.dist.to(device), res.index.to(device), q_raw, db, None if lin is None else lin.to(device),
            (q.double() ** 2).sum(1))
        return {"dist": dist.cpu().numpy(), "dmax": res.dmax.numpy(), "seconds": np.asarray(time.perf_counter() - t0),
                "cpu_seconds": np.asarray(time.process_time() - c0), "n_database": np.asarray(len(db)),
                "n_all": np.asarray(db.total), "n_exact": np.asarray(n_exact)}

    if not cache:
        return compute()
    key = {"train": train.fingerprint, "test": test.fingerprint, "patch": patch, "lam": lam,
           "n_database": n_database, "n_queries": n_queries, "k": k, "n_cov_images": n_cov_images,
           "seed": seed}
    return memo_arrays("dimension-knn", key, compute)


# ------------------------------------------- the dimensions of patches ----

Timer = Callable[[str], ContextManager]


def _no_timer(name: str) -> ContextManager:
    return contextlib.nullcontext()


def matched_k(k: int, n_database: int, n_all: int) -> int:
    """The ``k`` whose ball among ``n_database`` points holds the same share of
    the data as the ``k``-th neighbour among all ``n_all`` points:
    ``round(k n_database / n_all)`` (at most ``k``)."""
    return min(k, round(k * n_database / n_all))


@lru_cache(maxsize=64)
def gaussian_contrast(d: int, n: int, n_queries: int, seed: int = 0, db_batch: int = 16384,
                      device: str = "cpu") -> float:
    """Median relative contrast of ``n_queries`` i.i.d. standard Gaussian
    queries (seed ``seed + 5``) against ``n`` such points in ``R^d`` (seed
    ``seed + 6``): the reference of no structure beyond second moments."""
    g = knn(gaussian(n_queries, d, seed + 5), GaussianDatabase(n, d, seed + 6), 1, db_batch=db_batch, device=device)
    return float(np.nanmedian(relative_contrast(g.dist[:, 0], g.dmax)))


@dataclass(frozen=True)
class PatchDimensions:
    """The dimensions of the ``Q x Q`` patches of one data set, raw or whitened.

    ``nn``: Levina-Bickel over ``k_min <= k <= K`` (:func:`nn_dimension`),
    ``nn_K`` at ``k = K``, ``nn_inv`` its inverse average; ``nn_authors``
    the authors' reading (:func:`authors_dimension`), ``authors_kept`` the
    share of queries their filter keeps; ``nn_star`` at the
    matched scale ``k_star`` (:func:`matched_k`; ``None`` below ``k_min``),
    ``per_k`` the per-``k`` estimates; ``cov`` the covariance dimensions;
    ``n_db`` / ``n_all`` database patches / all patches of the training
    images; ``n_exact`` distances recomputed exactly; ``duplicates`` the share
    of queries with a copy in the database; ``undefined`` the share of
    (point, k) left out; ``contrast`` / ``contrast_gauss`` the median relative
    contrast of the queries / of i.i.d. Gaussian data of the same ``d`` and
    ``n_db``; ``seconds`` / ``cpu_seconds`` of the search.
    """

    name: str
    Q: int
    d: int
    kind: str
    nn: float
    nn_K: float
    nn_inv: float
    nn_authors: float
    authors_kept: float
    k_star: int
    nn_star: float | None
    per_k: np.ndarray
    cov: CovarianceDimension
    n_db: int
    n_all: int
    n_exact: int
    duplicates: float
    undefined: float
    contrast: float
    contrast_gauss: float
    seconds: float
    cpu_seconds: float


def patch_dimensions(name: str, train, test, patch: int, *, lam: float, n_database: int | None,
                     n_queries: int, k: int, k_min: int, n_cov_images: int | None, energy_tol: float,
                     contrast_queries: int, seed: int = 0, db_batch: int = 16384, device: str = "cpu",
                     timer: Timer = _no_timer) -> tuple[list[PatchDimensions], np.ndarray]:
    """The raw and whitened (``lam``) :class:`PatchDimensions` of the
    ``patch x patch`` patches of data set ``name`` (``train``, ``test``: as for
    :func:`patch_neighbours`), and the spectrum of the raw patch covariance
    (of every patch of ``n_cov_images`` train images). ``timer(stage)``
    times the covariance, the searches and the Gaussian reference."""
    with timer(f"covariance {name}"):
        mom = patch_covariance(train.images, patch, n_cov_images, seed, train.fingerprint, device)
    s = spectrum(mom["cov"])
    rows = []
    for kind, lm in (("raw", None), ("whitened", lam)):
        with timer(f"k-NN {name}"):
            out = patch_neighbours(train, test, patch, lam=lm, n_database=n_database, n_queries=n_queries, k=k,
                                   n_cov_images=n_cov_images, seed=seed, db_batch=db_batch, device=device)
        nd = nn_dimension(out["dist"], k_min, k)
        au = authors_dimension(out["dist"], k_min)
        n_db, n_all = int(out["n_database"]), int(out["n_all"])
        k_star = matched_k(k, n_db, n_all)
        with timer("Gaussian reference"):
            gauss = gaussian_contrast(3 * patch * patch, n_db, contrast_queries, seed, db_batch, str(device))
        rows.append(PatchDimensions(
            name=name, Q=patch, d=3 * patch * patch, kind=kind, nn=nd.estimate, nn_K=nd.at_k_max,
            nn_inv=nn_dimension(out["dist"], k_min, k, average="inverse").estimate,
            nn_authors=au.estimate, authors_kept=au.kept, k_star=k_star,
            nn_star=float(nd.per_k[k_star - 1]) if k_star >= k_min else None, per_k=nd.per_k,
            cov=covariance_dimension(s if lm is None else whitened_spectrum(s, lm), energy_tol),
            n_db=n_db, n_all=n_all, n_exact=int(out["n_exact"]), duplicates=float((out["dist"][:, 0] == 0).mean()),
            undefined=nd.undefined,
            contrast=float(np.nanmedian(relative_contrast(nearest_positive(out["dist"]), out["dmax"]))),
            contrast_gauss=gauss, seconds=float(out["seconds"]), cpu_seconds=float(out["cpu_seconds"])))
    return rows, s


def database_size_study(train, test, patch: int, sizes: list[int], *, lam: float, n_queries: int, k: int,
                        k_min: int, n_cov_images: int | None, seed: int = 0, db_batch: int = 16384,
                        device: str = "cpu") -> dict[tuple[str, int], NNDimension]:
    """:func:`nn_dimension` of raw and whitened patches against databases of
    each size ``n`` of ``sizes`` (``K = min(k, n // 2)``): ``{(kind, n): ...}``."""
    out = {}
    for n in sizes:
        kk = min(k, n // 2)
        for kind, lm in (("raw", None), ("whitened", lam)):
            nb = patch_neighbours(train, test, patch, lam=lm, n_database=n, n_queries=n_queries, k=kk,
                                  n_cov_images=n_cov_images, seed=seed, db_batch=db_batch, device=device)
            out[kind, n] = nn_dimension(nb["dist"], k_min, kk)
    return out


def at_ball_mass(per_k: dict[int, np.ndarray], mass: float, k_min: int) -> list[tuple[int, float]]:
    """The estimate at one ball mass ``k / n``: ``(n, per_k[n][k - 1])`` at
    ``k = round(mass n)`` for every database size ``n`` of ``per_k`` (in its
    order; ``per_k[n]`` the per-``k`` estimates of :attr:`NNDimension.per_k`,
    one per ``k = 1..K``) whose estimates cover that ``k``
    (``k_min <= k <= K``)."""
    out = []
    for n, curve in per_k.items():
        k = round(mass * n)
        if k_min <= k <= len(curve):
            out.append((n, float(curve[k - 1])))
    return out
