"""How the patch code changes with its input: stability and derivative.

The talk's last remark on the patch k-NN code (Thiry et al. 2021) is that it
is "relatively stable with large number of neighbors, and the derivative of
the output w.r.t input is zero". This module measures both statements for a
fitted :class:`~patchbook.patchknn.encoding.PatchEncoder`.

Scores and ranks
----------------
For a raw patch ``x`` (``d = C Q^2`` pixels in [0, 1]) the encoder ranks the
atoms by the score ``s_j(x) = ||a_j||^2 - 2 <W(x - mu), a_j>``, with
``a_j = W(d_j - mu)`` (:mod:`patchbook.patchknn.encoding`). As a function of the
*raw* patch, ``s_j(x) = c_j - 2 <x, k_j>`` with the kernel ``k_j = W^T a_j``
and ``c_j = ||a_j||^2 + 2 <mu, k_j>``: affine in ``x``. The code of ``-w``
(``both_signs``) ranks ``||a_j||^2 + 2 <w, a_j>``, affine with slope
``+2 k_j``. :func:`scores` gives both, in float32 or float64, differentiable
in the images.

:func:`ranks` gives every atom's rank in its row under the key
``(s_j, j)``, the order of :func:`patchbook.patchknn.knn.knn_mask`, so the
binary code at *every* ``K`` is ``ranks < K``: one sort measures a whole curve
over ``K``.

Stability
---------
An entry of the code flips between two inputs at ``K`` when its rank is
below ``K`` for one and not for the other, i.e. when
``min(r, r') < K <= max(r, r')``. :func:`flip_curve` counts these for every
``K`` at once (:class:`FlipCurve`). Two perturbations are measured by
:func:`stability`: Gaussian noise of standard deviation ``sigma`` on every
pixel, and a shift by one pixel. A shifted image is compared with the image
at the *same* code position (two crops, one pixel apart, so no border is
invented): the code of a patch against that of the patch one pixel over.
Since the code map is translation-equivariant, this is what changes in the
unpooled code when the image moves; the pooled code then changes by less.

Derivative
----------
The binary code is constant on each cell where the ``K``-set does not
change: the cell of patch ``x`` is the intersection of the half-spaces
``s_j(x') < s_l(x')`` (``j`` in the set, ``l`` not), and ``x``'s distance to
its boundary is (the largest ball around a point of a convex polytope that the
polytope contains touches a facet)::

    margin(x) = min_{j in S, l not in S} (s_l(x) - s_j(x)) / (2 ||k_l - k_j||)

in raw pixel units (:func:`code_margin`, the minimum over both signs with
``both_signs``). Every perturbation of the patch shorter than its margin
leaves the code unchanged, so the derivative of the code, and of the pooled
code, is zero wherever no patch sits on a boundary (``margin > 0``), i.e.
almost everywhere.

The soft code ``sigmoid((tau - s_j)/s)`` (:func:`soft_code`,
:func:`pooled_soft_code`; ``tau`` the midpoint of the ``K``-th and
``(K+1)``-th scores) is differentiable. Its derivative with respect to a
patch is ``sigmoid'((tau - s_j)/s) / s * (grad tau - grad s_j)``: where the
``K``-th and ``(K+1)``-th scores tie (a patch on a boundary) it grows as
``1/s`` when ``s -> 0``; away from ties (a gap ``g > 0``) it vanishes like
``exp(-g / 2s) / s``. :func:`jacobian_norm` estimates the Frobenius norm of
the Jacobian of the pooled soft code with respect to the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from patchbook.patchknn.encoding import (
    PatchEncoder,
    soft_threshold,
    window_areas,
    window_sums,
)
from patchbook.patchknn.patches import extract_patches, to_tensor


# ---------------------------------------------------------------- scores
def folded(encoder: PatchEncoder, dtype: torch.dtype = torch.float32,
           device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(kernels, c, sqnorms)`` of a fitted encoder, computed in float64 from
    its whitener and raw atoms and cast to ``dtype``: ``kernels`` ``|D| x d``
    (``k_j = W^T W (d_j - mu)``), ``c`` (``c_j = ||a_j||^2 + 2 <mu, k_j>``) and
    ``sqnorms`` (``||a_j||^2``), so that ``s_j(x) = c_j - 2 <x, k_j>``."""
    encoder._check()
    wh = encoder.whitener_
    a = wh.transform(encoder.atoms_.double())
    kernels = a @ wh.W_
    sq = (a * a).sum(1)
    c = sq + 2 * kernels @ wh.mean_
    return tuple(t.to(device=device, dtype=dtype) for t in (kernels, c, sq))


def patch_scores(encoder: PatchEncoder, patches: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Scores of raw patches ``patches`` (``n x d``) against the encoder's
    atoms: ``n_signs x n x |D|`` (``n_signs = 2`` with ``both_signs``: the
    scores of ``w`` then of ``-w``), in ``dtype`` (default: the patches'),
    differentiable in ``patches``."""
    dtype = dtype or patches.dtype
    kernels, c, sq = folded(encoder, dtype, patches.device)
    if patches.ndim != 2 or patches.shape[1] != kernels.shape[1]:
        raise ValueError(f"expected n x {kernels.shape[1]} patches, got shape {tuple(patches.shape)}")
    p = patches.to(dtype) @ kernels.T
    s = c - 2 * p
    if not encoder.both_signs:
        return s[None]
    return torch.stack([s, 2 * sq - s])  # ||a||^2 + 2 <w, a>: the scores of -w


def scores(encoder: PatchEncoder, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Scores of every patch of float images ``x`` (``B x C x H x W``):
    ``n_signs x (B L) x |D|``, rows in (image, row-major position) order."""
    P = extract_patches(x, encoder.patch, encoder.stride)
    return patch_scores(encoder, P.reshape(-1, P.shape[-1]), dtype)


def ranks(s: torch.Tensor) -> torch.Tensor:
    """Rank of every entry within its row (last axis) under the key
    ``(value, index)``: 0 for the smallest; ``ranks(s) < K`` is
    ``knn_mask(s, K)`` for every ``K``. ``int16`` when rows are short enough."""
    order = torch.sort(s.detach(), dim=-1, stable=True).indices
    r = torch.empty_like(order)
    r.scatter_(-1, order, torch.arange(s.shape[-1], device=s.device).expand_as(order))
    return r.to(torch.int16) if s.shape[-1] <= torch.iinfo(torch.int16).max else r


# ------------------------------------------------------------- stability
@dataclass
class FlipCurve:
    """Code entries that differ between two inputs, at every ``K``.

    ``flips[K]`` (``K = 0 .. n_atoms``) is the number of (row, atom) entries
    whose binary code differs, summed over ``rows`` rows (patch codes: images
    x positions x signs). Curves of disjoint rows add up."""

    flips: np.ndarray
    rows: int

    @property
    def n_atoms(self) -> int:
        return len(self.flips) - 1

    @property
    def ks(self) -> np.ndarray:
        return np.arange(len(self.flips))

    def entry_fraction(self) -> np.ndarray:
        """Share of the code's entries that flip, at every ``K``."""
        return self.flips / max(1, self.rows * self.n_atoms)

    def replaced(self) -> np.ndarray:
        """Share of a patch's ``K`` nearest atoms that are replaced (each
        replacement flips two entries), at every ``K``; NaN at ``K = 0``."""
        k = self.ks.astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(k > 0, self.flips / (2 * np.maximum(k, 1) * max(1, self.rows)), np.nan)

    def __add__(self, other: "FlipCurve") -> "FlipCurve":
        if len(self.flips) != len(other.flips):
            raise ValueError(f"curves over {self.n_atoms} and {other.n_atoms} atoms do not add")
        return FlipCurve(self.flips + other.flips, self.rows + other.rows)


def flip_curve(ra: torch.Tensor, rb: torch.Tensor) -> FlipCurve:
    """:class:`FlipCurve` between two rank tensors of the same shape
    ``... x |D|`` (:func:`ranks` of two inputs' scores, rows aligned)."""
    if ra.shape != rb.shape:
        raise ValueError(f"rank tensors of shapes {tuple(ra.shape)} and {tuple(rb.shape)} are not aligned")
    m = ra.shape[-1]
    lo = torch.minimum(ra, rb).reshape(-1).long()
    hi = torch.maximum(ra, rb).reshape(-1).long()
    # flipped at K iff lo < K <= hi: #{lo <= K - 1} - #{hi <= K - 1}
    below_lo = torch.bincount(lo, minlength=m).cumsum(0)
    below_hi = torch.bincount(hi, minlength=m).cumsum(0)
    flips = np.zeros(m + 1, dtype=np.int64)
    flips[1:] = (below_lo - below_hi).cpu().numpy()
    return FlipCurve(flips, int(np.prod(ra.shape[:-1])))


def pooled_at(encoder: PatchEncoder, r: torch.Tensor, k: int, batch: int, h: int, w: int) -> torch.Tensor:
    """Pooled binary code at ``K = k`` from ranks ``r`` (``n_signs x (B h w)
    x |D|``): ``B x n_codes x h' x w'``, the encoder's pooling (no ``out_size``)."""
    wide = encoder.pool * encoder.pool > 255                         # window counts past 255
    codes = (r < k).to(torch.int16 if wide else torch.uint8)         # n_signs x (B h w) x |D|
    maps = torch.cat(list(codes), -1).view(batch, h, w, -1)          # channels: [w | -w]
    sums = window_sums(maps, encoder.pool, encoder.pool_stride, encoder.ceil_mode)
    area = window_areas(h, w, encoder.pool, encoder.pool_stride, encoder.ceil_mode)
    return (sums.float() / area[None, :, :, None].to(sums.device)).permute(0, 3, 1, 2)


@dataclass
class Stability:
    """What :func:`stability` measured, per perturbation (``"noise 2/255"``,
    ``"shift 1 px (horizontal)"``, ...).

    ``curves``: :class:`FlipCurve` of the unpooled codes for every ``K``.
    ``pooled[name]``: for each ``K`` of ``ks``, the median over images of
    ``||Phi(x') - Phi(x)|| / D`` with ``Phi`` the pooled code and ``D`` the
    median distance ``||Phi(x_i) - Phi(x_j)||`` between two different images
    (so 1 means "as far as another image"). ``pixels[name]``: the same ratio
    for the pixels.
    """

    ks: list[int]
    n_images: int
    curves: dict[str, FlipCurve] = field(default_factory=dict)
    pooled: dict[str, np.ndarray] = field(default_factory=dict)
    pixels: dict[str, float] = field(default_factory=dict)


def _pairs(batch: int) -> torch.Tensor:
    """Index of another image for every image of a batch (a cyclic shift)."""
    return torch.roll(torch.arange(batch), 1)


def _ratios(change: list[torch.Tensor], between: list[torch.Tensor]) -> float:
    """Median over images of a change over the median distance between images."""
    c, b = torch.cat(change), torch.cat(between)
    return float(torch.median(c) / torch.median(b).clamp_min(1e-30))


def perturbations(x: torch.Tensor, noise: list[float], seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{name: (reference, perturbed)}`` float image pairs of a batch ``x``:
    Gaussian noise of each standard deviation in ``noise`` (pixel units, on the
    whole image, then clipped to the pixel range [0, 1] that the encoder
    accepts), and the two crops one pixel apart (horizontal,
    vertical): the image and the image shifted by one pixel, with no invented
    border."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for sigma in noise:
        eps = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
        out[f"noise {sigma * 255:g}/255"] = (x, (x + sigma * eps).clamp(0, 1))
    out["shift 1 px (horizontal)"] = (x[..., :, :-1], x[..., :, 1:])
    out["shift 1 px (vertical)"] = (x[..., :-1, :], x[..., 1:, :])
    return out


def stability(encoder: PatchEncoder, images, noise: list[float], ks: list[int], batch_size: int = 8,
              seed: int = 0, progress: bool = False) -> Stability:
    """Flips of the binary code at every ``K`` and changes of the pooled code
    at ``ks`` under :func:`perturbations` of ``images`` (``uint8 N x H x W x
    C`` or float ``N x C x H x W``; at least two images per batch for the
    distance between images).

    The codes are those of the encoder's fitted dictionary and whitening; its
    own ``k`` is not used (every ``K`` is measured). Scores in float32, as the
    encoder computes them."""
    encoder._check()
    if batch_size < 2 or len(images) < 2:
        raise ValueError("stability needs at least two images per batch (the distance between images)")
    if any(not 0 <= k <= encoder.n_atoms for k in ks):
        raise ValueError(f"every K of {ks} must be in [0, {encoder.n_atoms}]")
    result = Stability(list(ks), len(images))
    change: dict[str, list[list[torch.Tensor]]] = {}
    between: dict[str, list[list[torch.Tensor]]] = {}
    px_change: dict[str, list[torch.Tensor]] = {}
    px_between: dict[str, list[torch.Tensor]] = {}
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, disable=not progress, desc="stability", leave=False):
        x = to_tensor(images[start:start + batch_size])
        if len(x) < 2:
            continue
        B, other = len(x), _pairs(len(x))
        ref_cache: dict[tuple, torch.Tensor] = {}
        for i, (name, (a, b)) in enumerate(perturbations(x, noise, seed * 1_000_003 + start).items()):
            key = tuple(a.shape)
            ra = ref_cache.get(key)
            if ra is None:
                ra = ref_cache[key] = ranks(scores(encoder, a))
            rb = ranks(scores(encoder, b))
            curve = flip_curve(ra, rb)
            result.curves[name] = result.curves[name] + curve if name in result.curves else curve
            h, w = encoder.code_size(*a.shape[-2:])
            ch, bt = change.setdefault(name, [[] for _ in ks]), between.setdefault(name, [[] for _ in ks])
            for j, k in enumerate(ks):
                pa, pb = pooled_at(encoder, ra, k, B, h, w), pooled_at(encoder, rb, k, B, h, w)
                ch[j].append((pb - pa).flatten(1).norm(dim=1))
                bt[j].append((pa - pa[other]).flatten(1).norm(dim=1))
            px_change.setdefault(name, []).append((b - a).flatten(1).norm(dim=1))
            px_between.setdefault(name, []).append((a - a[other]).flatten(1).norm(dim=1))
    for name in change:
        result.pooled[name] = np.array([_ratios(change[name][j], between[name][j]) for j in range(len(ks))])
        result.pixels[name] = _ratios(px_change[name], px_between[name])
    return result


# ----------------------------------------------------- binary derivative
def code_margin(encoder: PatchEncoder, patches: torch.Tensor, k: int | None = None,
                chunk_entries: int = 1 << 22) -> torch.Tensor:
    """Distance (raw pixel units, l2 over the ``d`` pixels of the patch) from
    each raw patch of ``patches`` (``n x d``) to the nearest input at which its
    binary code at ``K = k`` (default: the encoder's) changes: ``n`` float64.

    Exact (float64): the minimum over the pairs (``j`` among the ``K``
    nearest, ``l`` not) of ``(s_l - s_j) / (2 ||k_l - k_j||)``, over both
    signs with ``both_signs``. 0 for a patch on a boundary (tied scores across
    the threshold); ``inf`` when ``K`` is 0 or ``|D|`` (the code never
    changes). ``chunk_entries`` bounds the pairs held at once."""
    k = encoder.k_ if k is None else k
    m = encoder.n_atoms
    if not 0 <= k <= m:
        raise ValueError(f"k = {k} is not in [0, {m}]")
    n = len(patches)
    if k in (0, m):
        return torch.full((n,), float("inf"), dtype=torch.float64)
    kernels, _, _ = folded(encoder, torch.float64)
    sqn = (kernels * kernels).sum(1)
    dist = (sqn[:, None] + sqn[None, :] - 2 * kernels @ kernels.T).clamp_min(0).sqrt()
    dist = torch.where(dist > 0, dist, torch.full_like(dist, float("inf")))  # equal kernels never swap
    s_all = patch_scores(encoder, patches.double().cpu(), torch.float64)
    out = torch.full((n,), float("inf"), dtype=torch.float64)
    rows = max(1, chunk_entries // (k * (m - k)))
    for s in s_all:
        for r0 in range(0, n, rows):
            sc = s[r0:r0 + rows]
            order = torch.sort(sc, dim=1, stable=True).indices
            inside, outside = order[:, :k], order[:, k:]
            gap = sc.gather(1, outside)[:, None, :] - sc.gather(1, inside)[:, :, None]   # >= 0
            dd = dist[inside[:, :, None], outside[:, None, :]]
            out[r0:r0 + rows] = torch.minimum(out[r0:r0 + rows], (gap / (2 * dd)).flatten(1).amin(1))
    return out


def image_margins(encoder: PatchEncoder, x: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """Smallest :func:`code_margin` over the patches of each float image of
    ``x`` (``B x C x H x W``): no perturbation of the image shorter than this
    (l2 over all its pixels) changes its code map, hence its pooled code."""
    P = extract_patches(x, encoder.patch, encoder.stride)
    B, L, d = P.shape
    return code_margin(encoder, P.reshape(-1, d), k).view(B, L).amin(1)


def pooled_changes(encoder: PatchEncoder, x: torch.Tensor, steps: list[float], seed: int = 0) -> np.ndarray:
    """Finite differences of the encoder's pooled binary code: for each step
    ``h`` of ``steps`` and each image of ``x`` (float ``B x C x H x W``),
    ``||Phi(x + h v) - Phi(x)||`` along a random direction ``v`` of unit l2
    norm (one per image, Gaussian, seeded), the perturbed image clipped to
    [0, 1]: clipping is the projection onto the pixel box, which holds ``x``,
    so the perturbed image stays within ``h`` of ``x`` and a step below the
    margin still changes nothing. ``len(steps) x B``."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(x.shape, generator=g, dtype=torch.float32).to(x.device)
    v = v / v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    with torch.no_grad():
        base = encoder.encode_batch(x)
        out = [(encoder.encode_batch((x + h * v).clamp(0, 1)) - base).flatten(1).norm(dim=1).cpu().numpy() for h in steps]
    return np.stack(out)


# ------------------------------------------------------------ soft code
def _soft(s: torch.Tensor, k: int, scale: float) -> torch.Tensor:
    """Soft code of a score matrix ``n x |D|`` (as :class:`PatchEncoder` with
    ``soft=scale``): ``sigmoid((tau - s) / scale)``, ``tau`` the midpoint of the
    ``k``-th and ``(k+1)``-th smallest scores of the row (differentiable: the
    selection is piecewise constant, ``tau`` follows the two scores)."""
    return torch.sigmoid((soft_threshold(s, k) - s) / scale)


def soft_code(encoder: PatchEncoder, patches: torch.Tensor, scale: float, k: int | None = None) -> torch.Tensor:
    """Soft code of raw patches (``n x d``) at sigmoid scale ``scale`` with the
    encoder's atoms: ``n x n_codes`` (``[w | -w]`` with ``both_signs``), in the
    patches' dtype, differentiable in ``patches``: the code of
    ``PatchEncoder(soft=scale)`` with the same dictionary and whitening."""
    if not scale > 0:
        raise ValueError(f"the soft code's scale must be > 0, got {scale}")
    k = encoder.k_ if k is None else k
    if not 0 < k < encoder.n_atoms:
        raise ValueError(f"the soft code needs 0 < k < {encoder.n_atoms}, got {k}")
    return torch.cat([_soft(s, k, scale) for s in patch_scores(encoder, patches)], 1)


def pooled_soft_code(encoder: PatchEncoder, x: torch.Tensor, scale: float, k: int | None = None) -> torch.Tensor:
    """Pooled soft code of float images ``x`` (``B x C x H x W``, any float
    dtype): ``B x n_codes x h' x w'``, what ``PatchEncoder(soft=scale)``'s
    ``encode_batch`` returns with the same dictionary, but differentiable."""
    B = x.shape[0]
    h, w = encoder.code_size(*x.shape[-2:])
    P = extract_patches(x, encoder.patch, encoder.stride)
    c = soft_code(encoder, P.reshape(-1, P.shape[-1]), scale, k)
    maps = c.view(B, h, w, -1).permute(0, 3, 1, 2)
    out = F.avg_pool2d(maps, encoder.pool, encoder.pool_stride, ceil_mode=encoder.ceil_mode)
    return F.adaptive_avg_pool2d(out, encoder.out_size) if encoder.out_size else out


def jacobian_norm(encoder: PatchEncoder, x: torch.Tensor, scale: float, n_probes: int = 8, seed: int = 0,
                  k: int | None = None) -> torch.Tensor:
    """Frobenius norm of the Jacobian of each image's pooled soft code with
    respect to its pixels (code units per pixel unit): ``B`` estimates, the
    square root of Hutchinson's ``mean_p ||J^T u_p||^2`` over ``n_probes``
    Rademacher vectors ``u_p`` (unbiased for ``||J||_F^2``)."""
    g = torch.Generator().manual_seed(seed)
    xi = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = pooled_soft_code(encoder, xi, scale, k)
        total = torch.zeros(len(x), dtype=torch.float64)
        for p in range(n_probes):
            u = (torch.randint(0, 2, y.shape, generator=g) * 2 - 1).to(y.dtype)
            (grad,) = torch.autograd.grad(y, xi, u, retain_graph=p < n_probes - 1)
            total += grad.flatten(1).double().pow(2).sum(1).cpu()
    return (total / n_probes).sqrt()


def score_gaps(encoder: PatchEncoder, patches: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """Gap between the ``(K+1)``-th and ``K``-th smallest scores of each raw
    patch (``n x d``), ``n_signs x n``, squared whitened distance units: the
    scale ``s`` of the soft code at which a patch's boundary atoms blur."""
    k = encoder.k_ if k is None else k
    s = patch_scores(encoder, patches.double(), torch.float64)
    top = torch.topk(s, k + 1, dim=-1, largest=False).values
    return top[..., k] - top[..., k - 1]
