"""Image patches: extraction and streamed first and second moments.

A ``Q x Q`` patch of a ``C``-channel image is flattened in the order
``(channel, row, column)``, as ``torch.nn.functional.unfold`` does, so a
patch vector has ``d = C * Q * Q`` entries and a dictionary of patches can be
reshaped into convolution kernels ``|D| x C x Q x Q``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def to_tensor(images: np.ndarray | torch.Tensor, device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``uint8`` ``N x H x W x C`` images (numpy) to float ``N x C x H x W`` in
    [0, 1]; a tensor already ``N x C x H x W`` is only moved and cast."""
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise ValueError(f"expected N x H x W x C images, got shape {images.shape}")
        t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        scale = 255.0 if images.dtype == np.uint8 else 1.0
        return t.to(device=device, dtype=dtype).div_(scale)
    return images.to(device=device, dtype=dtype)


def n_positions(size: int, patch: int, stride: int = 1) -> int:
    """Patch positions along one side (no padding)."""
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
    return F.unfold(images, kernel_size=patch, stride=stride).transpose(1, 2)


@dataclass
class PatchMoments:
    """Mean ``d`` and covariance ``d x d`` (float64) of ``count`` patches."""

    mean: torch.Tensor
    cov: torch.Tensor
    count: int


def patch_moments(images: np.ndarray | torch.Tensor, patch: int, stride: int = 1,
                  batch_size: int = 512, device: str | torch.device = "cpu",
                  normalize=None, progress: bool = False) -> PatchMoments:
    """Mean and covariance of every patch of every image, streamed in batches.

    Memory stays at one batch of patches whatever the dataset size (all
    50,000 x 729 CIFAR-10 patches at ``patch=6`` fit this way). Each batch's
    Gram matrix is computed in float32 around a fixed shift (the first
    batch's mean) and accumulated in float64, which keeps the cancellation
    in ``E[xx^T] - mu mu^T`` harmless.

    ``normalize`` is an optional callable applied to each float batch
    ``B x C x H x W`` before the patches are taken.
    """
    from tqdm.auto import tqdm

    n = len(images)
    total = 0
    s1 = s2 = shift = None
    for start in tqdm(range(0, n, batch_size), disable=not progress, desc="patch moments", leave=False):
        x = to_tensor(images[start:start + batch_size], device)
        if normalize is not None:
            x = normalize(x)
        p = extract_patches(x, patch, stride).reshape(-1, x.shape[1] * patch * patch)
        if shift is None:
            shift = p.mean(0)
            d = p.shape[1]
            s1 = torch.zeros(d, dtype=torch.float64, device=device)
            s2 = torch.zeros(d, d, dtype=torch.float64, device=device)
        p = p - shift
        s1 += p.sum(0, dtype=torch.float64)
        s2 += (p.T @ p).double()
        total += p.shape[0]
    if total == 0:
        raise ValueError("no images given")
    m = s1 / total
    cov = s2 / total - torch.outer(m, m)
    cov = (cov + cov.T) / 2
    return PatchMoments(mean=(m + shift.double()).cpu(), cov=cov.cpu(), count=total)


def sample_patches(images: np.ndarray | torch.Tensor, patch: int, n: int, seed: int = 0,
                   stride: int = 1, normalize=None) -> torch.Tensor:
    """``n`` patches drawn uniformly at random (with ``seed``) over
    (image, position) pairs, without replacement. Returns ``n x d``."""
    N = len(images)
    x0 = to_tensor(images[:1])
    H, W = x0.shape[-2:]
    ph, pw = n_positions(H, patch, stride), n_positions(W, patch, stride)
    L = ph * pw
    if n > N * L:
        raise ValueError(f"asked for {n} patches but there are only {N * L}")
    g = np.random.default_rng(seed)
    flat = g.choice(N * L, size=n, replace=False)
    img_idx, pos = flat // L, flat % L
    rows, cols = (pos // pw) * stride, (pos % pw) * stride
    order = np.argsort(img_idx, kind="stable")
    out = torch.empty(n, x0.shape[1] * patch * patch)
    # decode only the images needed, in order
    uniq = np.unique(img_idx)
    x = to_tensor(images[uniq] if isinstance(images, np.ndarray) else images[torch.as_tensor(uniq)])
    if normalize is not None:
        x = normalize(x)
    where = {int(u): i for i, u in enumerate(uniq)}
    for k in order:
        xi = x[where[int(img_idx[k])], :, rows[k]:rows[k] + patch, cols[k]:cols[k] + patch]
        out[k] = xi.reshape(-1)
    return out
