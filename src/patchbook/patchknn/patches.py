"""Image patches: extraction, random sampling and streamed first and second moments.

A ``Q x Q`` patch of a ``C``-channel image is flattened in the order
``(channel, row, column)``, as ``torch.nn.functional.unfold`` does, so a
patch vector has ``d = C * Q * Q`` entries and a dictionary of patches can be
reshaped into convolution kernels ``|D| x C x Q x Q``.

Images come either as numpy arrays ``N x H x W x C`` (``uint8``, what
:mod:`patchbook.data` returns) or as tensors ``N x C x H x W``, of pixel
values 0-255 in an integer dtype or of floats in [0, 1]; :func:`to_tensor`,
the one conversion, checks them (:func:`check_images`: range, finite values,
channels) and returns float tensors ``N x C x H x W`` in [0, 1].
A ``normalize`` callable, where a function takes one, is applied to float
``N x C x H x W`` tensors before patches are taken; it must act pixel by pixel
(e.g. a per-channel standardisation), since :func:`sample_patches` applies it
to the patches themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

Normalize = Callable[[torch.Tensor], torch.Tensor]


def check_images(images: np.ndarray | torch.Tensor, channels: int | None = None) -> tuple[int, int, int]:
    """Check a batch of images for what :func:`to_tensor` accepts and return
    its ``(C, H, W)``; a one-line ``ValueError`` (``TypeError`` for other
    types) saying what was expected otherwise.

    Accepted: numpy arrays ``N x H x W x C`` or torch tensors ``N x C x H x W``
    of pixel values 0-255 in an integer dtype (``uint8``, ``int64``, ...), or of
    floats in [0, 1]. Refused: floats outside [0, 1] (such as images in
    [0, 255]: divide by 255 or pass ``uint8``), integers outside 0-255, NaN or
    infinite values, booleans, another number of dimensions, and, when
    ``channels`` is given (the channels an encoder was fitted on), another
    number of channels. Range and finiteness are read from the values (a
    pass over a float batch); an integer batch of dtype ``uint8`` needs none.
    """
    C, H, W = image_shape(images)
    check_channels(C, channels)
    numpy = isinstance(images, np.ndarray)
    dt = images.dtype
    if (numpy and dt == np.bool_) or (not numpy and dt == torch.bool):
        raise ValueError("boolean images: expected pixel values 0-255 (integers) or floats in [0, 1]")
    if (numpy and np.issubdtype(dt, np.complexfloating)) or (not numpy and dt.is_complex):
        raise ValueError(f"complex images ({dt}): expected pixel values 0-255 (integers) or floats in [0, 1]")
    floating = np.issubdtype(dt, np.floating) if numpy else dt.is_floating_point
    if dt in (np.uint8, torch.uint8) or (images.size if numpy else images.numel()) == 0:
        return C, H, W
    if numpy:
        lo, hi = (float(v) for v in (np.min(images), np.max(images)))
    else:
        lo, hi = (float(v) for v in torch.aminmax(images.detach() if floating else images.long()))
    if floating:
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("images contain NaN or infinite values: expected finite floats in [0, 1]")
        if lo < 0.0 or hi > 1.0:
            hint = " (pixel values 0-255? divide by 255 or pass uint8)" if hi > 1.0 and hi <= 255.0 else ""
            raise ValueError(f"float images must be in [0, 1], got values in [{lo:g}, {hi:g}]{hint}")
    elif lo < 0 or hi > 255:
        raise ValueError(f"integer images must be pixel values 0-255, got values in [{lo:g}, {hi:g}]")
    return C, H, W


def check_channels(C: int, channels: int | None) -> None:
    """A one-line error unless ``C`` (the images' channels) is ``channels``
    (an encoder's, from its fit; ``None``: anything goes)."""
    if channels is not None and C != channels:
        raise ValueError(f"images with {C} channel(s) given to an encoder fitted on {channels}-channel images")


def to_tensor(images: np.ndarray | torch.Tensor, device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float32, channels: int | None = None) -> torch.Tensor:
    """Images to float ``N x C x H x W`` in [0, 1] on ``device``: the one
    conversion of images in Part 2, checked by :func:`check_images`
    (``channels``: the number an encoder was fitted on).

    Numpy arrays are ``N x H x W x C``, tensors ``N x C x H x W``; integer
    pixel values (0-255, any integer dtype) are divided by 255, floats in
    [0, 1] are only moved and cast.
    """
    check_images(images, channels)
    if isinstance(images, np.ndarray):
        integer = not np.issubdtype(images.dtype, np.floating)
        t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    else:
        integer = not images.dtype.is_floating_point
        t = images
    t = t.to(device=device, dtype=dtype)
    if integer:  # .to made a copy: divide it in place
        t.div_(255.0)
    return t.contiguous()


def image_shape(images: np.ndarray | torch.Tensor) -> tuple[int, int, int]:
    """``(C, H, W)`` of a batch in either layout (see :func:`to_tensor`)."""
    if not isinstance(images, (np.ndarray, torch.Tensor)):
        raise TypeError(f"expected images as a numpy array or a torch tensor, got {type(images).__name__}")
    if images.ndim != 4:
        layout = "N x H x W x C (numpy)" if isinstance(images, np.ndarray) else "N x C x H x W (torch)"
        raise ValueError(f"expected a batch of images {layout} with 4 dimensions, got shape "
                         f"{tuple(images.shape)} (a greyscale batch needs its channel axis of size 1)")
    if isinstance(images, np.ndarray):
        H, W, C = images.shape[1:]
    else:
        C, H, W = images.shape[1:]
    return int(C), int(H), int(W)


def n_positions(size: int, patch: int, stride: int = 1) -> int:
    """Patch positions along one side (no padding)."""
    if patch < 1 or stride < 1:
        raise ValueError(f"patch and stride must be >= 1, got {patch}, {stride}")
    if patch > size:
        raise ValueError(f"patch size {patch} exceeds image size {size}")
    return (size - patch) // stride + 1


def extract_patches(images: torch.Tensor, patch: int, stride: int = 1) -> torch.Tensor:
    """All ``patch x patch`` patches of ``images`` (``N x C x H x W``).

    Returns ``N x L x d`` with ``L`` positions in row-major order and
    ``d = C * patch * patch``.
    """
    if images.ndim != 4:
        raise ValueError(f"expected N x C x H x W, got shape {tuple(images.shape)}")
    n_positions(min(images.shape[-2:]), patch, stride)
    # one strided copy; the same values and order as F.unfold(...).transpose(1, 2),
    # several times faster on the CPU (im2col's threading is costly on a busy machine)
    N, C = images.shape[:2]
    v = images.unfold(2, patch, stride).unfold(3, patch, stride)      # N x C x h x w x Q x Q
    return v.permute(0, 2, 3, 1, 4, 5).reshape(N, -1, C * patch * patch)


@dataclass
class PatchMoments:
    """Mean ``d`` and covariance ``d x d`` (float64, on the CPU) of ``count`` patches."""

    mean: torch.Tensor
    cov: torch.Tensor
    count: int

    def to_arrays(self) -> dict[str, np.ndarray]:
        """For :func:`patchbook.cache.memo_arrays`."""
        return {"mean": self.mean.numpy(), "cov": self.cov.numpy(), "count": np.asarray(self.count)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "PatchMoments":
        return cls(torch.from_numpy(np.asarray(arrays["mean"])), torch.from_numpy(np.asarray(arrays["cov"])),
                   int(arrays["count"]))


def patch_moments(images: np.ndarray | torch.Tensor, patch: int, stride: int = 1,
                  batch_size: int = 512, device: str | torch.device = "cpu",
                  normalize: Normalize | None = None, progress: bool = False,
                  method: str = "auto") -> PatchMoments:
    """Mean and covariance of every patch of every image, streamed in batches.

    Memory stays at one batch of images whatever the dataset size (all
    50,000 x 729 CIFAR-10 patches at ``patch=6`` take about 6 s on two CPU
    cores). The images are shifted by the first batch's per-channel mean,
    which makes the patch mean small, so the float32 products of each batch
    lose nothing to the cancellation in ``E[xx^T] - mu mu^T``; they are
    accumulated in float64. The covariance is the biased one (divided by the
    number of patches).

    ``method``: ``"rows"`` (products of patch rows, :class:`_RowMoments`;
    stride 1 only), ``"patches"`` (the explicit patches, any stride) or
    ``"auto"`` (rows at stride 1). Both give the same moments.
    """

    if method == "auto":
        method = "rows" if stride == 1 else "patches"
    if method == "rows" and stride != 1:
        raise ValueError(f"method='rows' needs stride 1, got stride {stride}")
    if method not in ("rows", "patches"):
        raise ValueError(f"method must be 'auto', 'rows' or 'patches', got {method!r}")
    acc = _RowMoments(patch) if method == "rows" else _UnfoldMoments(patch, stride)
    shift = None
    for start in tqdm(range(0, len(images), batch_size), disable=not progress, desc="patch moments", leave=False):
        x = to_tensor(images[start:start + batch_size], device)
        if normalize is not None:
            x = normalize(x)
        n_positions(min(x.shape[-2:]), patch, stride)
        if shift is None:
            shift = x.mean((0, 2, 3))
        acc.add(x - shift[None, :, None, None])
    if shift is None:
        raise ValueError("no images given")
    m, second, total = acc.result()
    cov = second - torch.outer(m, m)
    cov = (cov + cov.T) / 2
    mean = m + shift.double().repeat_interleave(patch * patch)  # (channel, row, column) order
    return PatchMoments(mean=mean.cpu(), cov=cov.cpu(), count=total)


class _UnfoldMoments:
    """First and second moments of the explicit patches (any stride):
    ``H' W' (C Q^2)^2 * 2`` FLOPs per image."""

    def __init__(self, patch: int, stride: int):
        self.patch, self.stride, self.total = patch, stride, 0
        self.s1 = self.s2 = None

    def add(self, x: torch.Tensor) -> None:
        d = x.shape[1] * self.patch ** 2
        p = extract_patches(x, self.patch, self.stride).reshape(-1, d)
        if self.s1 is None:
            self.s1 = torch.zeros(d, dtype=torch.float64, device=x.device)
            self.s2 = torch.zeros(d, d, dtype=torch.float64, device=x.device)
        self.s1 += p.sum(0, dtype=torch.float64)
        self.s2 += (p.T @ p).double()
        self.total += p.shape[0]

    def result(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.s1 / self.total, self.s2 / self.total, self.total


class _RowMoments:
    """The same moments at stride 1 from products of patch *rows*.

    A Q x Q patch at ``(i, j)`` is Q stacked row segments
    ``R[r, j] = x[:, r, j:j+Q]`` (``C Q`` values), ``r = i .. i+Q-1``. So
    block ``(u1, u2)`` of the second moment (patch rows ``u1``, ``u2``) is
    ``sum_{i} T[i + u1, u2 - u1]`` with ``T[r, delta] = sum_{images, j}
    R[r, j] R[r + delta, j]^T``: one batched product per image batch (the
    second factor a strided view of the first, no copy) and prefix sums over
    ``r`` at the end, ``H (C Q) (Q C Q) W' * 2`` FLOPs per image, about
    ``Q`` times fewer than the explicit patches. The first moment is a window
    sum of the summed images.
    """

    def __init__(self, patch: int):
        self.patch, self.total = patch, 0
        self.T = self.s1 = None

    def add(self, x: torch.Tensor) -> None:
        Q = self.patch
        B, C, H, W = x.shape
        Wp, Hp = W - Q + 1, H - Q + 1
        if self.T is None:
            self.T = torch.zeros(H, C * Q, Q * C * Q, dtype=torch.float64, device=x.device)
            self.s1 = torch.zeros(C, H, W, dtype=torch.float64, device=x.device)
        elif self.s1.shape != (C, H, W):
            raise ValueError(f"images of shape {(C, H, W)} after {tuple(self.s1.shape)}: one size per call")
        self.s1 += x.sum(0, dtype=torch.float64)
        # rows of all images side by side (H x C x B x W): a (1 x Q) unfold
        # gives R[r] = C Q x (B W') for every r without a transposed copy
        R = F.unfold(x.permute(2, 1, 0, 3).contiguous(), (1, Q))           # H x CQ x (B W')
        K = B * Wp
        win = R.as_strided((Hp, Q * C * Q, K), (C * Q * K, K, 1))        # rows r .. r+Q-1 stacked
        self.T[:Hp] += torch.bmm(R[:Hp], win.transpose(1, 2)).double()
        for r in range(Hp, H):  # the last rows have fewer rows below them
            self.T[r, :, :(H - r) * C * Q] += (R[r] @ R[r:].reshape(-1, K).T).double()
        self.total += B * Hp * Wp

    def result(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        Q, T, total = self.patch, self.T, self.total
        C, H, W = self.s1.shape
        Wp, Hp = W - Q + 1, H - Q + 1
        cs = F.pad(self.s1.cumsum(1).cumsum(2), (1, 0, 1, 0))           # 2-D prefix sums
        m = torch.empty(C, Q, Q, dtype=torch.float64, device=T.device)
        for u in range(Q):
            for v in range(Q):
                m[:, u, v] = cs[:, u + Hp, v + Wp] - cs[:, u, v + Wp] - cs[:, u + Hp, v] + cs[:, u, v]
        P = F.pad(T.cumsum(0), (0, 0, 0, 0, 1, 0))                        # prefix sums over r
        S = torch.empty(C, Q, Q, C, Q, Q, dtype=torch.float64, device=T.device)  # (c1,u1,v1,c2,u2,v2)
        for u1 in range(Q):
            for u2 in range(u1, Q):
                dl = u2 - u1
                blk = (P[u1 + Hp] - P[u1])[:, dl * C * Q:(dl + 1) * C * Q].reshape(C, Q, C, Q)
                S[:, u1, :, :, u2, :] = blk
                S[:, u2, :, :, u1, :] = blk.permute(2, 3, 0, 1)
        d = C * Q * Q
        return m.reshape(d) / total, S.reshape(d, d) / total, total


@dataclass
class PatchIndex:
    """Where sampled patches come from: image index and top-left corner."""

    image: np.ndarray
    row: np.ndarray
    col: np.ndarray


def sample_patch_index(n_images: int, height: int, width: int, patch: int, n: int,
                       seed: int = 0, stride: int = 1) -> PatchIndex:
    """``n`` distinct (image, position) pairs drawn uniformly at random with
    ``seed`` among the ``n_images x L`` of a dataset (``L`` positions per
    image at ``stride``)."""
    ph, pw = n_positions(height, patch, stride), n_positions(width, patch, stride)
    L = ph * pw
    if n > n_images * L:
        raise ValueError(f"asked for {n} patches but there are only {n_images * L}")
    flat = np.random.default_rng(seed).choice(n_images * L, size=n, replace=False)
    img, pos = flat // L, flat % L
    return PatchIndex(img.astype(np.int64), (pos // pw) * stride, (pos % pw) * stride)


def gather_patches(images: np.ndarray | torch.Tensor, index: PatchIndex, patch: int,
                   normalize: Normalize | None = None) -> torch.Tensor:
    """The patches at ``index`` as a float32 ``n x d`` tensor (flattened in
    ``(channel, row, column)`` order; pixels in [0, 1], via :func:`to_tensor`)."""
    a = np.arange(patch)
    rows = (index.row[:, None] + a)[:, :, None]
    cols = (index.col[:, None] + a)[:, None, :]
    img = index.image[:, None, None]
    if isinstance(images, np.ndarray):
        p = to_tensor(images[img, rows, cols])  # n x Q x Q x C -> n x C x Q x Q
    else:
        t = images.cpu()
        p = t[torch.as_tensor(img), :, torch.as_tensor(rows), torch.as_tensor(cols)]  # n x Q x Q x C
        p = to_tensor(p.permute(0, 3, 1, 2))
    if normalize is not None:
        p = normalize(p)
    return p.reshape(len(index.image), -1).contiguous()


def sample_patches(images: np.ndarray | torch.Tensor, patch: int, n: int, seed: int = 0,
                   stride: int = 1, normalize: Normalize | None = None,
                   return_index: bool = False):
    """``n`` patches drawn uniformly at random (with ``seed``) over
    (image, position) pairs, without replacement. Returns ``n x d`` (and the
    :class:`PatchIndex` with ``return_index``)."""
    C, H, W = image_shape(images)
    index = sample_patch_index(len(images), H, W, patch, n, seed, stride)
    out = gather_patches(images, index, patch, normalize)
    return (out, index) if return_index else out
