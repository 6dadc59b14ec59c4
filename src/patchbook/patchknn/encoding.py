"""Patch k-NN codes: the representation of Thiry et al. (2021).

A dictionary ``D`` of ``|D|`` patches (atoms) is drawn at random from the
training images. Every patch ``x`` of an image gets a binary code
``phi(x) in {0, 1}^|D|`` with ones at its ``K`` nearest atoms under the
whitened distance ``||W(x - d)||`` (:mod:`patchbook.patchknn.whitening`); the codes of
all positions form a ``|D|``-channel map that is average-pooled.

Distances in the whitened space, with ``w = W(x - mu)`` and ``a_j = W(d_j - mu)``,
are ``||w - a_j||^2 = ||w||^2 + s_ij`` with the score
``s_ij = ||a_j||^2 - 2 <w, a_j>``; the row constant ``||w||^2`` does not change
the ranking, so the K nearest atoms are the K smallest scores, selected by
:func:`patchbook.patchknn.knn.knn_mask` (ties towards the lower atom index). The inner
products come from one matrix product of the raw patches with the kernels
``k_j = W^T W (d_j - mu)`` (the whitening folded into the kernels):
``<w, a_j> = <x, k_j> - <mu, k_j>``.

Variants:

- ``both_signs=True`` (the authors'): the codes of ``w`` and of ``-w``
  concatenated (``2|D|`` channels); the scores of ``-w`` are
  ``||a_j||^2 + 2 <w, a_j>``, the same product with the other sign.
- ``soft=s`` ("without VQ"): ``sigmoid((tau_i - d_ij) / s)`` instead of the
  0/1 code, with ``d_ij = ||w_i - a_j||^2`` and ``tau_i`` the midpoint between
  the ``K``-th and ``(K+1)``-th smallest ``d_ij`` of the row, so the soft code
  tends to the hard one as ``s -> 0`` (and gives 1/2 to atoms tied across the
  threshold). ``s`` is in units of squared whitened distance.

The authors' formulation (``formulation="authors"``): what the script behind
the published numbers computes (louity/patches ``kneighbors.py`` and
``utils.py`` at the head of the repository; file:line below), the same
dictionary and whitening fitted on the same [0, 1] pixels, with four
departures from the definitions above:

- *input normalisation*: the images fed to the encoder are ``ToTensor()``
  then ``Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))``-ed
  (kneighbors.py:132-141, CIFAR-10; :data:`AUTHORS_CIFAR_MEAN`,
  :data:`AUTHORS_CIFAR_STD`), while the whitening (kneighbors.py:338-396,
  utils.py:90-132: the biased covariance of every patch of ``ToTensor()``
  images, ``whitening_op = U diag((s + lambda)^(-1/2))``, the identity for a
  negative ``lambda``) and the atoms (kneighbors.py:398-406, utils.py:50-72:
  patches of ``trainset.data / 255``) are computed on [0, 1] images;
- *raw-atom kernels and bias*: the kernels are ``W^T W d_j`` and the bias
  ``0.5 ||W d_j||^2`` of the raw atoms, not centred (kneighbors.py:442-450),
  and ``Net.forward`` (kneighbors.py:317-334) codes the scores
  ``t_ij = 0.5 ||W d_j||^2 - <x~_i, W^T W d_j>`` (``-out + bias``) and, for its
  second half, ``0.5 ||W d_j||^2 + <x~_i, W^T W d_j>`` (``out + bias``): the
  code of the *negated normalised* patch ``-x~``, where ours reflects the
  patch through the patch mean. ``t`` ranks atoms by the Mahalanobis
  distance between the normalised patch ``x~`` (about 5 times larger than
  ``x`` and centred per channel) and the raw atom ``d_j``;
- *K* is ``int(k |D|)`` (kneighbors.py:488; 204 of 512 where ours rounds to
  205);
- *the binary code* is ``t < t_(K+1)`` and the soft code
  ``sigmoid((t_(K+1) - t) / s)``, ``t_(K+1)`` the (K+1)-th smallest score of
  the patch (``lowestk_heaviside``, ``lowestk_sigmoid``, kneighbors.py:231-239),
  so ``s`` is in the unit of ``t`` (their ``--sigmoid``): the binary code is
  ours (exactly K ones) away from exact ties, the soft one has another
  threshold and another unit;
- *crops* pad with zeros (``RandomCrop(32, padding=4)``, kneighbors.py:133),
  where our augmented runs reflect: a property of the point
  (:attr:`patchbook.patchknn.pipeline.PointConfig.padding_mode`), not of the
  encoder.

It runs in the same machinery: the images (pixels in [0, 1], as for every
formulation at the entry points) are normalised as theirs
(``(x - mean) / std`` per channel, the arithmetic of ``Normalize``, so the
normalised pixels are theirs bit for bit) and coded with kernels
``k_j = W^T W d_j``, no offset and ``sqnorms_ = ||W d_j||^2``:
:func:`patchbook.patchknn.knn.knn_codes`' scores ``||W d_j||^2 - 2 <x~, k_j>``
are then exactly twice theirs. (Folding the normalisation into the kernels
would save that pass but lose about a digit to the cancellation of
``<x, k_j>`` and ``<m, k_j>``, which a small soft scale shows.) Pooling is the same
(``avg_pool2d(..., ceil_mode=True)``, kneighbors.py:324). Their script runs the
encoder in float16 on a GPU (kneighbors.py:477-479); this one computes in
float32. tests/patchknn/test_authors.py checks the codes against a
transcription of ``Net.forward``.

Mirror-closed dictionary (``mirror=True``, an option of this library, not
the authors'): half the atoms are drawn, the other half are their
left-right mirror images, and the patch moments are symmetrised (those of the
training set together with its mirror images). The whitened distance is then
mirror-invariant, so the code of a mirrored image is the mirrored code map
with the atom channels swapped pairwise (up to float rounding at exact
ties), and with mirror-symmetric pooling windows a flip of an image is a
flip and a channel permutation (:meth:`PatchEncoder.flip_permutation`) of
its cached pooled code: random flips for free when training on cached codes.

Encoding many images: :meth:`PatchEncoder.transform` (and
:func:`transform_variants`, the one loop over batches of images) codes them a
batch at a time; :func:`encode_shared` codes a batch under several variants
of one fitted encoder that differ only in ``k`` and ``soft``, sharing the
matrix product, with the same codes as :meth:`PatchEncoder.encode_batch`.

Pooling: average pooling of size ``pool``, stride ``pool_stride`` (``ceil_mode``
as in PyTorch, border windows averaging over the pixels they cover), then
optionally adaptive average pooling to ``out_size``. With 32 x 32 images,
``patch=6``, ``pool=5``, ``pool_stride=3`` and ``ceil_mode`` the 27 x 27 code
maps pool to 9 x 9.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from patchbook.patchknn import knn
from patchbook.patchknn.patches import (
    PatchIndex,
    PatchMoments,
    check_channels,
    check_images,
    extract_patches,
    image_shape,
    n_positions,
    patch_moments,
    sample_patches,
    to_tensor,
)
from patchbook.patchknn.whitening import Whitener

# Parameters that variants of one fitted encoder may differ in while sharing its scores.
SHARED_SCORE_PARAMS = ("k", "soft")

# The encoder's formulations: the paper's definitions, or what the authors' script computes.
FORMULATIONS = ("ours", "authors")

# The input normalisation of the authors' CIFAR-10 script (torchvision
# Normalize after ToTensor), louity/patches kneighbors.py:136.
AUTHORS_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
AUTHORS_CIFAR_STD = (0.2023, 0.1994, 0.2010)


def check_formulation(formulation: str) -> str:
    if formulation not in FORMULATIONS:
        raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")
    return formulation


def resolve_k(k: int | float, n_atoms: int, formulation: str = "ours") -> int:
    """Number of neighbours: an ``int`` is a count, a ``float`` a fraction of
    ``n_atoms`` (``0.4`` is the authors' choice), rounded to the nearest
    count in our formulation, truncated (``int(k * n_atoms)``, as their
    script) in the authors'."""
    check_formulation(formulation)
    if isinstance(k, bool):
        raise TypeError("k must be an int (count) or a float (fraction of n_atoms)")
    if isinstance(k, (int, np.integer)):
        kk = int(k)
    else:
        if not 0.0 <= float(k) <= 1.0:
            raise ValueError(f"a fractional k must be in [0, 1], got {k}")
        kk = int(float(k) * n_atoms) if formulation == "authors" else int(round(float(k) * n_atoms))
    if not 0 <= kk <= n_atoms:
        raise ValueError(f"k = {kk} is not in [0, n_atoms = {n_atoms}]")
    return kk


def pooled_size(size: int, pool: int, stride: int, ceil_mode: bool) -> int:
    """Output size of ``avg_pool2d`` (no padding) along one side."""
    if pool > size:
        raise ValueError(f"pooling window {pool} exceeds the code map size {size}")
    if ceil_mode:
        out = math.ceil((size - pool) / stride) + 1
        if (out - 1) * stride >= size:  # PyTorch drops a window starting outside
            out -= 1
        return out
    return (size - pool) // stride + 1


def pool_windows(size: int, pool: int, stride: int, ceil_mode: bool) -> list[tuple[int, int]]:
    """``[start, stop)`` of every pooling window along one side, as
    ``avg_pool2d`` (no padding) places them; ``ceil_mode`` windows are clipped
    at the border."""
    n = pooled_size(size, pool, stride, ceil_mode)
    return [(i * stride, min(i * stride + pool, size)) for i in range(n)]


def window_sums(x: torch.Tensor, pool: int, stride: int, ceil_mode: bool) -> torch.Tensor:
    """Sums of ``x`` (``B x h x w x c``, channels last) over the pooling windows:
    ``B x h' x w' x c`` in ``x``'s dtype (separable: rows, then columns).

    On ``uint8`` 0/1 codes this is exact integer counting with 1-byte
    memory traffic, several times faster than ``avg_pool2d`` on a float copy.
    """
    B, h, w, c = x.shape
    rows, cols = pool_windows(h, pool, stride, ceil_mode), pool_windows(w, pool, stride, ceil_mode)
    t = torch.empty(B, len(rows), w, c, dtype=x.dtype, device=x.device)
    for i, (a, b) in enumerate(rows):
        acc = t[:, i]
        acc.copy_(x[:, a])
        for r in range(a + 1, b):
            acc.add_(x[:, r])
    o = torch.empty(B, len(rows), len(cols), c, dtype=x.dtype, device=x.device)
    for j, (a, b) in enumerate(cols):
        acc = o[:, :, j]
        acc.copy_(t[:, :, a])
        for r in range(a + 1, b):
            acc.add_(t[:, :, r])
    return o


def window_areas(h: int, w: int, pool: int, stride: int, ceil_mode: bool) -> torch.Tensor:
    """Pixels in each pooling window (``h' x w'``): the divisor of ``avg_pool2d``."""
    r = torch.tensor([b - a for a, b in pool_windows(h, pool, stride, ceil_mode)], dtype=torch.float32)
    c = torch.tensor([b - a for a, b in pool_windows(w, pool, stride, ceil_mode)], dtype=torch.float32)
    return r[:, None] * c[None, :]


def mirror_index(channels: int, patch: int) -> torch.Tensor:
    """Permutation of a flattened ``(channel, row, column)`` patch that mirrors
    it left-right: ``v[mirror_index(...)]`` is the mirrored patch."""
    idx = torch.arange(channels * patch * patch).reshape(channels, patch, patch)
    return idx.flip(-1).reshape(-1)


def symmetrize_moments(moments: PatchMoments, channels: int, patch: int) -> PatchMoments:
    """Moments of a set of patches together with their mirror images."""
    f = mirror_index(channels, patch)
    mean = (moments.mean + moments.mean[f]) / 2
    # E[x x^T] of the union, minus the new mean's outer product
    second = moments.cov + torch.outer(moments.mean, moments.mean)
    second = (second + second[f][:, f]) / 2
    return PatchMoments(mean, second - torch.outer(mean, mean), 2 * moments.count)


class PatchEncoder:
    """Patch k-NN encoder with a scikit-learn-style interface.

    Parameters
    ----------
    n_atoms
        Dictionary size ``|D|``.
    patch
        Patch side ``Q``.
    k
        Nearest atoms per patch: an ``int`` count or a ``float`` fraction of
        ``n_atoms`` (default 0.4).
    lam
        Whitening regulariser ``lambda`` (units of the patch covariance;
        pixels are in [0, 1]).
    whitening
        ``"zca"``, ``"pca"`` (same distances) or ``"none"`` (Euclidean
        distance between centred patches).
    both_signs
        Concatenate the codes of ``x`` and ``-x`` (the authors' variant).
    soft
        ``None`` for the binary code, else the sigmoid scale ``s`` of the
        soft code (see the module docstring).
    pool, pool_stride, ceil_mode
        Average pooling of the code maps.
    out_size
        If given, adaptive average pooling of the pooled maps to
        ``out_size x out_size``.
    stride
        Stride of the patch positions (1: every position).
    mirror
        Mirror-closed dictionary and symmetrised whitening (see the module
        docstring); ``n_atoms`` must be even.
    formulation
        ``"ours"`` (the paper's definitions) or ``"authors"`` (what their
        script computes: input normalisation, raw-atom kernels and bias, the
        code of ``-x~``, ``K = int(k |D|)``, their soft threshold and its unit;
        see the module docstring). Both fit the same dictionary and
        whitening.
    seed
        Seed of the dictionary draw.
    device
        Where the encoding runs (``"cpu"``, ``"cuda"``).
    memory_mb
        Bound on the working memory of one batch (scores, masks), which sets
        the number of images encoded at once.
    progress
        Show a progress bar in :meth:`transform`.

    Attributes (after ``fit``)
    --------------------------
    whitener_ : :class:`~patchbook.patchknn.whitening.Whitener`;
    atoms_ : ``|D| x d`` raw atoms; atom_index_ : where they were drawn;
    whitened_atoms_ : ``W (atoms_ - mean)``; kernels_ : ``|D| x d`` float32
    ``W^T W (d_j - mu)`` (the authors': ``W^T W d_j``); sqnorms_ :
    ``||a_j||^2`` (the authors': ``||W d_j||^2``); k_ : the resolved ``K``;
    n_channels_ : channels of the images (checked at every entry point).
    """

    def __init__(self, n_atoms: int = 2048, patch: int = 6, k: int | float = 0.4, lam: float = 1e-3,
                 whitening: str = "zca", both_signs: bool = True, soft: float | None = None,
                 pool: int = 5, pool_stride: int = 3, ceil_mode: bool = True, out_size: int | None = None,
                 stride: int = 1, mirror: bool = False, formulation: str = "ours", seed: int = 0,
                 device: str | torch.device = "cpu", memory_mb: int = 512, progress: bool = False):
        self.n_atoms = n_atoms
        self.patch = patch
        self.k = k
        self.lam = lam
        self.whitening = whitening
        self.both_signs = both_signs
        self.soft = soft
        self.pool = pool
        self.pool_stride = pool_stride
        self.ceil_mode = ceil_mode
        self.out_size = out_size
        self.stride = stride
        self.mirror = mirror
        self.formulation = formulation
        self.seed = seed
        self.device = device
        self.memory_mb = memory_mb
        self.progress = progress

    # scikit-learn style introspection
    _PARAMS = ("n_atoms", "patch", "k", "lam", "whitening", "both_signs", "soft", "pool", "pool_stride",
               "ceil_mode", "out_size", "stride", "mirror", "formulation", "seed", "device", "memory_mb",
               "progress")

    def get_params(self, deep: bool = True) -> dict:
        return {p: getattr(self, p) for p in self._PARAMS}

    def set_params(self, **params) -> "PatchEncoder":
        for key, value in params.items():
            if key not in self._PARAMS:
                raise ValueError(f"unknown parameter {key!r}; parameters are {self._PARAMS}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in self._PARAMS[:15])
        return f"PatchEncoder({args})"

    def code_params(self) -> dict:
        """The parameters the codes depend on (for cache keys; ``formulation``
        only where it is not the default, so earlier keys stay valid)."""
        return {p: getattr(self, p) for p in self._PARAMS if p not in ("device", "memory_mb", "progress")
                and not (p == "formulation" and self.formulation == "ours")}

    # ------------------------------------------------------------ fitting
    def fit(self, images, y=None, moments: PatchMoments | None = None) -> "PatchEncoder":
        """Estimate the patch moments of ``images`` (every patch, streamed),
        fit the whitening and draw the dictionary from ``images``.

        ``moments`` (from :func:`patchbook.patchknn.patches.patch_moments` on the same
        images at the same patch size and stride) skips the moment pass.
        """
        C, H, W = check_images(images)
        check_formulation(self.formulation)
        if self.formulation == "authors" and C != len(AUTHORS_CIFAR_MEAN):
            raise ValueError(f"the authors' formulation normalises {len(AUTHORS_CIFAR_MEAN)}-channel (CIFAR-10) "
                             f"images, got {C}-channel images")
        self.k_ = resolve_k(self.k, self.n_atoms, self.formulation)
        self._check_soft()
        if moments is None:
            moments = patch_moments(images, self.patch, self.stride, device=self.device, progress=self.progress)
        if moments.mean.numel() != C * self.patch ** 2:
            raise ValueError(f"moments of dimension {moments.mean.numel()} do not match {C} x {self.patch}^2 patches")
        if self.mirror:
            if self.n_atoms % 2:
                raise ValueError(f"a mirror-closed dictionary needs an even n_atoms, got {self.n_atoms}")
            moments = symmetrize_moments(moments, C, self.patch)
        self.moments_ = moments
        self.whitener_ = Whitener(self.lam, self.whitening).fit_moments(moments)
        n_draw = self.n_atoms // 2 if self.mirror else self.n_atoms
        atoms, index = sample_patches(images, self.patch, n_draw, seed=self.seed, stride=self.stride,
                                      return_index=True)
        if self.mirror:
            atoms = torch.cat([atoms, atoms[:, mirror_index(C, self.patch)]])
        self.set_atoms(atoms, index)
        self.image_size_ = (H, W)
        return self

    def _check_soft(self) -> None:
        if self.soft is not None and not self.soft > 0:
            raise ValueError(f"soft must be None or > 0, got {self.soft}")
        if self.soft is not None and self.formulation == "authors" and not self.k_ < self.n_atoms:
            raise ValueError(f"the authors' soft code needs the (K+1)-th score: K = {self.k_} must be < "
                             f"|D| = {self.n_atoms}")

    def flip_permutation(self, height: int = 32, width: int = 32) -> torch.Tensor:
        """Channel permutation ``perm`` with ``codes(flip(image)) ==
        flip(codes(image))[perm]`` (pooled codes, last axis flipped), for a
        mirror-closed dictionary and mirror-symmetric pooling windows."""
        self._check()
        if not self.mirror:
            raise ValueError("flip_permutation needs mirror=True")
        h, w = self.code_size(height, width)
        if self.out_size is None:
            win = pool_windows(w, self.pool, self.pool_stride, self.ceil_mode)
            if sorted((w - b, w - a) for a, b in win) != win:
                raise ValueError(f"pooling windows {win} are not mirror-symmetric")
        half = self.n_atoms // 2
        one = torch.cat([torch.arange(half, 2 * half), torch.arange(half)])
        return torch.cat([one + i * self.n_atoms for i in range(2 if self.both_signs else 1)])

    def set_atoms(self, atoms: torch.Tensor, index: PatchIndex | None = None) -> "PatchEncoder":
        """Use ``atoms`` (``|D| x d``, raw patches) as the dictionary (after
        the whitener is fitted) and build the kernels."""
        wh = self.whitener_
        atoms = atoms.double().cpu()
        a = wh.transform(atoms)                       # whitened atoms, |D| x d
        d = atoms.shape[1]
        if d % (self.patch * self.patch):
            raise ValueError(f"atoms of dimension {d} are not C x {self.patch} x {self.patch} patches")
        C = d // (self.patch * self.patch)
        if check_formulation(self.formulation) == "authors":
            if C != len(AUTHORS_CIFAR_MEAN):
                raise ValueError(f"the authors' formulation normalises {len(AUTHORS_CIFAR_MEAN)}-channel images, "
                                 f"got atoms of {C} channels")
            kernels = atoms @ wh.metric_              # rows W^T W d_j of the raw atoms (the metric is symmetric)
            shift = torch.zeros(d, dtype=torch.float64)  # on normalised images, no offset
            sqnorms = (kernels * atoms).sum(1)        # ||W d_j||^2: twice the authors' bias
        else:
            kernels, shift = a @ wh.W_, wh.mean_      # rows W^T a_j = W^T W (d_j - mu)
            sqnorms = (a * a).sum(1)
        self.atoms_, self.atom_index_ = atoms.float(), index
        self.whitened_atoms_ = a.float()
        self.n_atoms = len(atoms)
        self.n_channels_ = C
        self.k_ = resolve_k(self.k, self.n_atoms, self.formulation)
        self.sqnorms_ = sqnorms.float()
        self.kernels_ = kernels.float()
        self._offset = (kernels @ shift).float()     # <mu, k_j> (the authors': 0)
        self._formulation_fitted = self.formulation
        self._cache_device = self._fused_key = None
        return self

    def _check(self) -> None:
        if not hasattr(self, "kernels_"):
            raise RuntimeError("PatchEncoder is not fitted; call fit first")
        if self._formulation_fitted != self.formulation:
            raise ValueError(f"the encoder was fitted with formulation={self._formulation_fitted!r}, not "
                             f"{self.formulation!r}: refit it")

    def _input(self, x) -> torch.Tensor:
        """Images at an entry point: checked and converted by
        :func:`~patchbook.patchknn.patches.to_tensor` (channels against the
        fit), on ``x``'s device for a tensor, the encoder's for an array."""
        self._check()
        return to_tensor(x, x.device if isinstance(x, torch.Tensor) else self.device, channels=self.n_channels_)

    def _scored(self, x: torch.Tensor) -> torch.Tensor:
        """What the kernels are applied to: the images ``x`` (float, [0, 1])
        themselves, or in the authors' formulation their normalisation
        ``(x - mean) / std`` (``Normalize``'s arithmetic: a new tensor)."""
        if self.formulation != "authors":
            return x
        shape = (1, -1, 1, 1)
        mean = torch.tensor(AUTHORS_CIFAR_MEAN, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(AUTHORS_CIFAR_STD, dtype=x.dtype, device=x.device).view(shape)
        return (x - mean).div_(std)

    def _on(self, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Kernels (transposed), bias of the ``+x`` scores and squared norms on ``device``."""
        if self._cache_device != str(device):
            kt = self.kernels_.to(device).T.contiguous()
            bias = (self.sqnorms_ + 2 * self._offset).to(device)
            self._cached = (kt, bias, self.sqnorms_.to(device))
            self._cache_device = str(device)
        return self._cached

    # ----------------------------------------------------------- encoding
    @property
    def n_codes(self) -> int:
        """Channels of a code map: ``|D|``, doubled with ``both_signs``."""
        return self.n_atoms * (2 if self.both_signs else 1)

    def code_size(self, height: int, width: int) -> tuple[int, int]:
        """Positions of the (unpooled) code map."""
        return n_positions(height, self.patch, self.stride), n_positions(width, self.patch, self.stride)

    def out_shape(self, height: int = 32, width: int = 32) -> tuple[int, int, int]:
        """``(channels, h, w)`` of :meth:`transform`'s output for images of that size."""
        if self.out_size:
            return self.n_codes, self.out_size, self.out_size
        h, w = self.code_size(height, width)
        return (self.n_codes, pooled_size(h, self.pool, self.pool_stride, self.ceil_mode),
                pooled_size(w, self.pool, self.pool_stride, self.ceil_mode))

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Scores ``s = ||a_j||^2 - 2 <W(x_i - mu), a_j>`` of every patch of the
        images ``x`` (``B x C x H x W``): ``(B * L) x |D|``, rows in
        (image, row-major position) order (the authors' formulation: twice
        their scores, ``||W d_j||^2 - 2 <x~_i, W^T W d_j>``)."""
        x = self._scored(self._input(x))
        kt, bias, _ = self._on(x.device)
        P = extract_patches(x, self.patch, self.stride)
        return torch.addmm(bias, P.reshape(-1, P.shape[-1]), kt, alpha=-2.0)

    def _code(self, s: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Code of a score matrix: the K-NN mask, or its soft version (written
        into ``out`` if given)."""
        if self.soft is None:
            mask = knn.knn_mask(s, self.k_)
            return mask if out is None else out.copy_(mask)
        return torch.sigmoid((self.threshold(s) - s) / self.soft_divisor, out=out)

    def threshold(self, s: torch.Tensor) -> torch.Tensor:
        """``tau`` of the soft code for scores ``s`` (``n x |D|``): ``n x 1``,
        the midpoint between the K-th and (K+1)-th smallest score (ours) or
        the (K+1)-th smallest (the authors')."""
        if self.formulation == "authors":
            return s.kthvalue(self.k_ + 1, dim=1, keepdim=True).values
        return soft_threshold(s, self.k_)

    @property
    def soft_divisor(self) -> float:
        """What the soft code divides ``tau - s`` by: ``soft`` in units of
        the scores (ours: squared whitened distance), ``2 soft`` in the
        authors' formulation, whose scores here are twice theirs."""
        return 2 * self.soft if self.formulation == "authors" else self.soft

    def codes(self, x: torch.Tensor, tile_rows: int | None = None) -> list[torch.Tensor]:
        """Unpooled codes of images ``x`` (``B x C x H x W``), as a list of
        one or two (``both_signs``) ``(B * L) x |D|`` tensors (bool for the hard code).

        The hard code is :func:`patchbook.patchknn.knn.knn_codes` on the raw patches
        with the whitening folded into the kernels (distances and selection
        fused tile by tile; the two tensors are views of one ``(B L) x 2|D|``
        mask). The soft code computes the scores ``tile_rows`` rows at a time
        (default: about 2 MiB of scores on the CPU, the whole batch on a GPU).
        ``x`` may be any batch :func:`~patchbook.patchknn.patches.to_tensor`
        accepts (checked there).
        """
        x = self._scored(self._input(x))
        if self.soft is None:
            full = self._hard_codes(x, tile_rows)
            m = self.n_atoms
            return [full[:, :m], full[:, m:]] if self.both_signs else [full]
        kt, bias, sq = self._on(x.device)
        B = x.shape[0]
        L = math.prod(self.code_size(*x.shape[-2:]))
        n, m = B * L, self.n_atoms
        cpu = x.device.type == "cpu"
        if tile_rows is None:
            tile_rows = max(128, (1 << 19) // max(m, 1)) if cpu else n
        per = max(1, (4 * tile_rows) // L) if cpu else B       # images unfolded at once
        out = [torch.empty(n, m, dtype=torch.float32, device=x.device) for _ in range(2 if self.both_signs else 1)]
        buf = torch.empty(min(tile_rows, n), m, dtype=torch.float32, device=x.device)
        two_sq = 2 * sq
        for i0 in range(0, B, per):
            P = extract_patches(x[i0:i0 + per], self.patch, self.stride)   # b x L x d
            P = P.reshape(-1, P.shape[-1])                                  # (b L) x d
            for r0 in range(0, P.shape[0], tile_rows):
                Pt = P[r0:r0 + tile_rows]
                rows = slice(i0 * L + r0, i0 * L + r0 + len(Pt))
                s = torch.addmm(bias, Pt, kt, alpha=-2.0, out=buf[: len(Pt)])
                self._code(s, out[0][rows])
                if self.both_signs:
                    s.neg_().add_(two_sq)        # ||a||^2 + 2 <w, a>: the scores of -w
                    self._code(s, out[1][rows])
        return out

    def _hard_codes(self, x: torch.Tensor, tile_rows: int | None = None) -> torch.Tensor:
        """The binary code of every patch of ``x`` (checked and
        :meth:`_scored`): ``(B L) x n_codes`` bool, ``[code(x) | code(-x)]``
        with ``both_signs``."""
        kernels, offset, sq = self._fused_on(x.device)
        C = x.shape[1]
        out = knn.knn_codes(x, kernels.view(-1, C, self.patch, self.patch), self.k_, self.both_signs,
                            sqnorms=sq, offset=offset, stride=self.stride, tile_rows=tile_rows)
        return out.view(-1, out.shape[-1])

    def _fused_on(self, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Kernels ``W^T a_j``, offsets ``-<mu, W^T a_j>`` and ``||a_j||^2`` on
        ``device``: :func:`patchbook.patchknn.knn.knn_codes`'s scores ``||a||^2 - 2
        (<p, k_j> - <mu, k_j>)`` are then the whitened squared distances up to
        the patch's own norm."""
        key = ("fused", str(device))
        if getattr(self, "_fused_key", None) != key:
            self._fused = (self.kernels_.to(device).contiguous(), (-self._offset).to(device),
                           self.sqnorms_.to(device))
            self._fused_key = key
        return self._fused

    def code_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Unpooled code maps ``B x n_codes x h x w`` (float) of images ``x``
        (any batch :func:`~patchbook.patchknn.patches.to_tensor` accepts)."""
        x = self._input(x)
        B = x.shape[0]
        h, w = self.code_size(*x.shape[-2:])
        return torch.cat([c.view(B, h, w, -1).permute(0, 3, 1, 2).float() for c in self.codes(x)], 1)

    def encode_batch(self, x: torch.Tensor, counts: bool = False) -> torch.Tensor:
        """Pooled codes ``B x n_codes x h' x w'`` of images ``x`` (``B x C x H x W``
        float in [0, 1] on the encoder's device, or any batch
        :func:`~patchbook.patchknn.patches.to_tensor` accepts). ``counts``:
        window sums instead of means (exact integers, ``uint8`` for the
        binary code; ``int16`` if a window can count past 255)."""
        x = self._input(x)
        B = x.shape[0]
        h, w = self.code_size(*x.shape[-2:])
        if self.soft is None:  # one mask for x and -x, pooled a few images at a time while it is in cache
            per = B if x.device.type != "cpu" else max(1, (8 << 20) // (h * w * self.n_codes))
            mask = torch.empty(min(per, B) * h * w, self.n_codes, dtype=torch.bool, device=x.device)
            out = None
            for i0 in range(0, B, per):
                xi = self._scored(x[i0:i0 + per])
                c = mask[: len(xi) * h * w]
                kernels, offset, sq = self._fused_on(x.device)
                knn.knn_codes(xi, kernels.view(-1, x.shape[1], self.patch, self.patch), self.k_,
                              self.both_signs, sqnorms=sq, offset=offset, stride=self.stride,
                              out=c.view(len(xi), h * w, -1))
                o = self._window_sums(c, len(xi), h, w)
                if out is None:
                    out = torch.empty(B, *o.shape[1:], dtype=o.dtype, device=x.device)
                out[i0:i0 + len(xi)] = o
        else:
            out = torch.cat([self._window_sums(c, B, h, w) for c in self.codes(x)], -1)
        return self._finish(out, h, w, counts)

    def _window_sums(self, c: torch.Tensor, B: int, h: int, w: int) -> torch.Tensor:
        """Sums over the pooling windows of one code ``(B h w) x c`` (bool, as
        ``uint8`` -- a free view -- or ``int16`` if a window can count past
        255; float as it is): ``B x h' x w' x c``."""
        if c.dtype == torch.bool:
            c = c.view(torch.uint8) if self.pool * self.pool <= 255 else c.to(torch.int16)
        return window_sums(c.view(B, h, w, -1), self.pool, self.pool_stride, self.ceil_mode)

    def _finish(self, sums: torch.Tensor, h: int, w: int, counts: bool) -> torch.Tensor:
        """Window sums ``B x h' x w' x n_codes`` to :meth:`encode_batch`'s
        output: channels first, as counts or as means (then ``out_size``)."""
        out = sums.permute(0, 3, 1, 2)                               # B x n_codes x h' x w'
        if counts:
            if self.out_size:
                raise ValueError("counts need out_size=None")
            return out.contiguous()
        area = window_areas(h, w, self.pool, self.pool_stride, self.ceil_mode).to(sums.device)
        out = out.to(torch.float32) / area
        if self.out_size:
            out = F.adaptive_avg_pool2d(out, self.out_size)
        return out.contiguous()

    def batch_size_for(self, height: int, width: int) -> int:
        """Images per batch within ``memory_mb`` (the unpooled codes, and on a GPU the scores)."""
        h, w = self.code_size(height, width)
        per_image = h * w * self.n_codes * (1 if self.soft is None else 8)
        if self.device != "cpu" and str(self.device) != "cpu":  # whole-batch scores on a GPU
            per_image += h * w * self.n_atoms * 4 * (1 + (self.soft is not None) * 3)
        return max(1, int(self.memory_mb * 2 ** 20 // per_image))

    def transform(self, images, dtype: torch.dtype = torch.float32, batch_size: int | None = None) -> torch.Tensor:
        """Pooled codes of ``images`` (``uint8`` ``N x H x W x C`` or float
        ``N x C x H x W`` in [0, 1]: what :func:`~patchbook.patchknn.patches.to_tensor`
        accepts, checked batch by batch) as a CPU tensor ``N x n_codes x h' x w'``.

        ``dtype=torch.uint8`` stores window *counts* (the binary code
        summed over each pooling window; exact integers, 4x smaller than
        float32); it needs the binary code and no ``out_size``.
        """
        return transform_variants([self], images, [dtype], batch_size)[0]

    def fit_transform(self, images, y=None, **kw) -> torch.Tensor:
        return self.fit(images).transform(images, **kw)

    # ------------------------------------------------------------ helpers
    def state(self) -> dict[str, np.ndarray]:
        """The fitted state as arrays (moments and atoms), for caching."""
        self._check()
        return {**{f"moments_{k}": v for k, v in self.moments_.to_arrays().items()},
                "atoms": self.atoms_.numpy()}

    def load_state(self, arrays: dict[str, np.ndarray]) -> "PatchEncoder":
        """Inverse of :meth:`state` (the atoms are used as they are)."""
        moments = PatchMoments.from_arrays({k[8:]: v for k, v in arrays.items() if k.startswith("moments_")})
        self.moments_ = moments
        self.whitener_ = Whitener(self.lam, self.whitening).fit_moments(moments)
        return self.set_atoms(torch.from_numpy(np.asarray(arrays["atoms"])))


def soft_threshold(s: torch.Tensor, k: int) -> torch.Tensor:
    """``tau`` of the soft code: per row of the scores ``s`` (``n x m``), the
    midpoint between the ``k``-th and ``(k+1)``-th smallest score (``n x 1``)."""
    mask = knn.knn_mask(s, k)
    kth = s.masked_fill(~mask, -math.inf).amax(1, keepdim=True)   # K-th smallest score
    nxt = s.masked_fill(mask, math.inf).amin(1, keepdim=True)     # (K+1)-th smallest
    return (kth + nxt) / 2


def _check_variants(variants: Sequence[PatchEncoder]) -> None:
    base = variants[0]
    base._check()
    for v in variants[1:]:
        v._check()
        same = {p: getattr(v, p) for p in base._PARAMS if p not in SHARED_SCORE_PARAMS + ("progress", "memory_mb")}
        if same != {p: getattr(base, p) for p in same} or v.kernels_ is not base.kernels_:
            raise ValueError("variants must share one fitted encoder and differ only in "
                             f"{SHARED_SCORE_PARAMS} (see patchbook.patchknn.pipeline.variant)")


def encode_shared(variants: Sequence[PatchEncoder], x: torch.Tensor,
                  counts: Sequence[bool]) -> list[torch.Tensor]:
    """:meth:`PatchEncoder.encode_batch` of float images ``x`` under several
    variants of one fitted encoder that differ only in ``k`` and ``soft``
    (:data:`SHARED_SCORE_PARAMS`), sharing one matrix product of the patches
    with the kernels per batch (and one soft threshold per ``k``).

    Equal to ``[v.encode_batch(x, c) for v, c in zip(variants, counts)]``:
    the binary codes select on the scores ``||a||^2 -/+ 2 (<x, k_j> - <mu, k_j>)``
    rounded as :func:`patchbook.patchknn.knn.knn_codes` rounds them, the soft
    codes on the scores of :meth:`PatchEncoder.scores`.
    """
    _check_variants(variants)
    if len(variants) == 1:
        return [variants[0].encode_batch(x, counts=counts[0])]
    base = variants[0]
    B = x.shape[0]
    h, w = base.code_size(*x.shape[-2:])
    P = extract_patches(base._scored(x), base.patch, base.stride)
    P = P.reshape(-1, P.shape[-1])                                   # (B L) x d
    products: dict[str, list[torch.Tensor]] = {}

    def scores(soft: bool) -> list[torch.Tensor]:
        """Scores of x (and of -x with both_signs), for the binary or the soft code."""
        kind = "soft" if soft else "hard"
        if kind not in products:
            if soft:
                kt, bias, sq = base._on(x.device)
                s = torch.addmm(bias, P, kt, alpha=-2.0)              # as PatchEncoder.scores
                products[kind] = [s, 2 * sq - s] if base.both_signs else [s]
            else:
                kernels, offset, sq = base._fused_on(x.device)
                q = torch.mm(P, kernels.T) + offset                    # as knn.knn_codes
                products[kind] = [sq - (q + q), sq + (q + q)] if base.both_signs else [sq - (q + q)]
        return products[kind]

    taus: dict[tuple[int, int], torch.Tensor] = {}
    outs = []
    for v, c in zip(variants, counts):
        sums = []
        for j, s in enumerate(scores(v.soft is not None)):
            if v.soft is None:
                code = knn.knn_mask(s, v.k_)
            else:
                if (j, v.k_) not in taus:
                    taus[j, v.k_] = v.threshold(s)
                code = torch.sub(taus[j, v.k_], s).div_(v.soft_divisor).sigmoid_()
            sums.append(v._window_sums(code, B, h, w))
            del code
        outs.append(v._finish(torch.cat(sums, -1), h, w, c))
    return outs


def transform_variants(variants: Sequence[PatchEncoder], images, dtypes: Sequence[torch.dtype],
                       batch_size: int | None = None) -> list[torch.Tensor]:
    """:meth:`PatchEncoder.transform` of ``images`` under each variant (see
    :func:`encode_shared`), ``dtypes[i]`` the dtype of variant ``i``'s codes
    (``torch.uint8``: window counts of the binary code): one pass over the
    images, batches of ``batch_size`` (default: what the working memory
    ``memory_mb`` of the variants allows). The one encoding loop of the
    library."""
    _check_variants(variants)
    base = variants[0]
    for v, dt in zip(variants, dtypes):
        if dt == torch.uint8 and (v.soft is not None or v.out_size):
            raise ValueError("uint8 counts need the binary code (soft=None) and out_size=None")
        if dt == torch.uint8 and v.pool * v.pool > 255:
            raise ValueError(f"a {v.pool} x {v.pool} window can count past 255: use int16")
    C, H, W = image_shape(images)
    check_channels(C, base.n_channels_)
    if batch_size is None:
        batch_size = min(v.batch_size_for(H, W) for v in variants)
        if len(variants) > 1:  # the shared products: (B L) x |D| float32, twice with both signs, and scores
            h, w = base.code_size(H, W)
            per_image = h * w * base.n_atoms * 4 * (3 if base.both_signs else 2)
            batch_size = max(1, min(batch_size, int(base.memory_mb * 2 ** 20 // per_image)))
    counts = [dt == torch.uint8 for dt in dtypes]
    outs = [torch.empty((len(images), *v.out_shape(H, W)), dtype=dt) for v, dt in zip(variants, dtypes)]
    with torch.no_grad():
        for start in tqdm(range(0, len(images), batch_size), disable=not base.progress, desc="encoding",
                          leave=False, mininterval=2.0):
            x = to_tensor(images[start:start + batch_size], base.device, channels=base.n_channels_)
            for out, o, dt in zip(outs, encode_shared(variants, x, counts), dtypes):
                out[start:start + len(x)] = o.to("cpu", dt)
    return outs


def knn_code_reference(x: torch.Tensor, atoms: torch.Tensor, whitener: Whitener, k: int) -> torch.Tensor:
    """Brute-force code of patches ``x`` (``n x d``): whiten both, compute all
    squared distances, stable-sort each row, ones at the first ``k``
    (ties to the lower atom index). For tests."""
    wx = whitener.transform(x.double())
    wa = whitener.transform(atoms.double())
    d2 = ((wx[:, None, :] - wa[None, :, :]) ** 2).sum(-1)
    order = torch.sort(d2, dim=1, stable=True).indices[:, :k]
    out = torch.zeros(d2.shape, dtype=torch.bool)
    out.scatter_(1, order, True)
    return out
