"""Translations and small deformations of images.

A deformation by a displacement field ``tau`` moves the value at ``u - tau(u)``
to ``u``: ``x_tau(u) = x(u - tau(u))``, the convention of Mallat (2012). A
constant ``tau = c`` is the translation by ``c``. Fields are ``2 x H x W``
arrays in pixels, ``tau[0]`` along rows (down), ``tau[1]`` along columns
(right).

- :func:`translate`: translation by whole pixels, zero-filled (or periodic).
- :func:`warp`: ``x(u - tau(u))`` by interpolation (bilinear or cubic), with
  zero, border or periodic extension outside the image.
- :func:`random_field`: a random smooth field, Gaussian-filtered white noise,
  scaled so that ``||grad tau||_inf`` is exactly what is asked.
- :func:`grad_norm_inf`: ``sup_u ||grad tau(u)||`` (operator norm of the
  2 x 2 Jacobian, central differences), and :func:`sup_norm`:
  ``sup_u |tau(u)|``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Boundary = Literal["zeros", "border", "periodic"]

# ------------------------------------------------------------ translations ----


def translate(images: np.ndarray, shift: tuple[int, int], boundary: Boundary = "zeros") -> np.ndarray:
    """Translate ``images`` (``N x H x W`` or ``N x H x W x C``, the layout of
    :func:`patchbook.data.load_dataset`) by whole pixels, ``shift = (down,
    right)``: ``out[:, r, c] = images[:, r - down, c - right]``.

    Pixels moved out are lost and the uncovered ones are zero (``"zeros"``),
    or they wrap around (``"periodic"``, identical to ``np.roll``).
    """
    a = np.asarray(images)
    dy, dx = int(shift[0]), int(shift[1])
    if a.ndim not in (3, 4):
        raise ValueError(f"expected N x H x W [x C] images, got shape {a.shape}")
    if boundary == "periodic":
        return np.roll(a, (dy, dx), axis=(1, 2))
    if boundary != "zeros":
        raise ValueError("translate supports boundary 'zeros' or 'periodic'")
    H, W = a.shape[1:3]
    out = np.zeros_like(a)
    if abs(dy) >= H or abs(dx) >= W:
        return out
    src_r = slice(max(0, -dy), H - max(0, dy))
    dst_r = slice(max(0, dy), H - max(0, -dy))
    src_c = slice(max(0, -dx), W - max(0, dx))
    dst_c = slice(max(0, dx), W - max(0, -dx))
    out[:, dst_r, dst_c] = a[:, src_r, src_c]
    return out


def shifts_of_norm(r: int) -> list[tuple[int, int]]:
    """The integer shifts ``(dy, dx)`` with ``max(|dy|, |dx|) = r``:
    the square ring of radius ``r`` (``[(0, 0)]`` for ``r = 0``)."""
    if r == 0:
        return [(0, 0)]
    return [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if max(abs(dy), abs(dx)) == r]


# ------------------------------------------------------------- warping ----


def _cubic_weights(t: np.ndarray, a: float = -0.5) -> list[np.ndarray]:
    """Keys' cubic-convolution weights of the taps at offsets -1, 0, 1, 2 for
    a fractional position ``t`` in [0, 1) (exact at ``t = 0``: 0, 1, 0, 0)."""
    def k(s):
        s = np.abs(s)
        return np.where(s <= 1, (a + 2) * s**3 - (a + 3) * s**2 + 1,
                        np.where(s < 2, a * s**3 - 5 * a * s**2 + 8 * a * s - 4 * a, 0.0))
    return [k(t + 1), k(t), k(1 - t), k(2 - t)]


def sample(images: np.ndarray, rows: np.ndarray, cols: np.ndarray, order: int = 3,
           boundary: Boundary = "zeros") -> np.ndarray:
    """Values of ``images`` (``N x H x W`` or ``N x H x W x C``) at the
    (fractional) positions ``rows, cols`` (``H' x W'`` arrays, the same for
    every image), by bilinear (``order=1``) or Keys cubic (``order=3``)
    interpolation. Outside the image the signal is zero, the border value
    repeated, or periodic."""
    a = np.asarray(images)
    squeeze = a.ndim == 3
    x = a[..., None] if squeeze else a
    x = x.astype(np.float64)
    H, W = x.shape[1:3]
    r0 = np.floor(rows).astype(np.int64)
    c0 = np.floor(cols).astype(np.int64)
    tr, tc = rows - r0, cols - c0
    if order == 1:
        offs, wr, wc = (0, 1), [1 - tr, tr], [1 - tc, tc]
    elif order == 3:
        offs, wr, wc = (-1, 0, 1, 2), _cubic_weights(tr), _cubic_weights(tc)
    else:
        raise ValueError("order must be 1 (bilinear) or 3 (cubic)")

    def index(i, n):
        if boundary == "periodic":
            return np.mod(i, n), np.ones(i.shape, bool)
        if boundary == "border":
            return np.clip(i, 0, n - 1), np.ones(i.shape, bool)
        if boundary == "zeros":
            return np.clip(i, 0, n - 1), (i >= 0) & (i < n)
        raise ValueError(f"unknown boundary {boundary!r}")

    out = np.zeros((x.shape[0],) + rows.shape + (x.shape[3],))
    for a_, wa in zip(offs, wr):
        ri, rv = index(r0 + a_, H)
        for b_, wb in zip(offs, wc):
            ci, cv = index(c0 + b_, W)
            w = wa * wb * (rv & cv)
            if not np.any(w):
                continue
            out += x[:, ri, ci] * w[None, ..., None]
    return out[..., 0] if squeeze else out


def grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(rows, cols)`` of an ``H x W`` image."""
    return np.meshgrid(np.arange(shape[0], dtype=np.float64), np.arange(shape[1], dtype=np.float64), indexing="ij")


def warp(images: np.ndarray, tau: np.ndarray, order: int = 3, boundary: Boundary = "zeros") -> np.ndarray:
    """``x_tau(u) = x(u - tau(u))`` for every image; ``tau`` is ``2 x H x W``
    (one field for all images) or ``N x 2 x H x W`` (one per image).

    Returns float64 in the units of the input (no clipping: cubic
    interpolation may overshoot slightly).
    """
    a = np.asarray(images)
    H, W = a.shape[1:3]
    tau = np.asarray(tau, np.float64)
    rows, cols = grid((H, W))
    if tau.ndim == 3:
        if tau.shape != (2, H, W):
            raise ValueError(f"tau must be 2 x {H} x {W}, got {tau.shape}")
        return sample(a, rows - tau[0], cols - tau[1], order, boundary)
    if tau.shape != (len(a), 2, H, W):
        raise ValueError(f"tau must be 2 x H x W or N x 2 x H x W, got {tau.shape}")
    return np.stack([sample(a[i:i + 1], rows - tau[i, 0], cols - tau[i, 1], order, boundary)[0]
                     for i in range(len(a))])


# -------------------------------------------------------------- fields ----


def jacobian(tau: np.ndarray) -> np.ndarray:
    """``H x W x 2 x 2`` Jacobian of a ``2 x H x W`` field (central
    differences inside, one-sided at the border)."""
    tau = np.asarray(tau, np.float64)
    d0 = np.stack(np.gradient(tau[0]), -1)  # d tau0 / d(row, col)
    d1 = np.stack(np.gradient(tau[1]), -1)
    return np.stack([d0, d1], -2)


def grad_norm_inf(tau: np.ndarray) -> float:
    """``||grad tau||_inf = sup_u ||J_tau(u)||`` (largest singular value)."""
    Jm = jacobian(tau)
    return float(np.linalg.norm(Jm, ord=2, axis=(-2, -1)).max())


def sup_norm(tau: np.ndarray) -> float:
    """``|tau|_inf = sup_u |tau(u)|`` (Euclidean length of the displacement)."""
    tau = np.asarray(tau, np.float64)
    return float(np.sqrt((tau**2).sum(0)).max())


def _gaussian_smooth_periodic(noise: np.ndarray, sigma: float) -> np.ndarray:
    H, W = noise.shape[-2:]
    fy = np.fft.fftfreq(H)[:, None]
    fx = np.fft.fftfreq(W)[None, :]
    g = np.exp(-2 * (np.pi * sigma) ** 2 * (fy**2 + fx**2))
    return np.fft.ifft2(np.fft.fft2(noise) * g).real


def random_field(shape: tuple[int, int], grad_norm: float, smoothness: float = 4.0,
                 rng: np.random.Generator | int | None = None, zero_mean: bool = True,
                 margin: int | None = None) -> np.ndarray:
    """A random smooth displacement field ``2 x H x W`` with
    ``grad_norm_inf(tau) == grad_norm`` exactly.

    White noise filtered by a Gaussian of ``smoothness`` pixels (on a grid
    larger by ``margin`` pixels on each side, default ``3 * smoothness``, so
    the field is not periodic on the image), with its mean removed when
    ``zero_mean`` (no global translation), then scaled. The same ``rng``
    state and a different ``grad_norm`` give the same field up to scale, so a
    sweep over ``grad_norm`` moves along one direction of deformation.
    """
    rng = np.random.default_rng(rng)
    H, W = shape
    m = int(np.ceil(3 * smoothness)) if margin is None else int(margin)
    noise = rng.standard_normal((2, H + 2 * m, W + 2 * m))
    f = _gaussian_smooth_periodic(noise, smoothness)[:, m:m + H, m:m + W]
    if zero_mean:
        f = f - f.mean(axis=(1, 2), keepdims=True)
    g = grad_norm_inf(f)
    if g == 0:
        raise ValueError("degenerate field")
    return f * (grad_norm / g)


def dilation_field(shape: tuple[int, int], eps: float, center: tuple[float, float] | None = None) -> np.ndarray:
    """``tau(u) = eps (u - center)``: a dilation by ``1 / (1 - eps)`` about
    ``center`` (default: the image centre); ``||grad tau||_inf = |eps|``."""
    H, W = shape
    c = ((H - 1) / 2, (W - 1) / 2) if center is None else center
    rows, cols = grid(shape)
    return eps * np.stack([rows - c[0], cols - c[1]])


def relative_change(phi_x: np.ndarray, phi_y: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """``||phi(x) - phi(y)|| / ||ref||`` per row (``ref`` defaults to
    ``phi_x``), on arrays ``N x ...``."""
    a = np.asarray(phi_x, np.float64).reshape(len(phi_x), -1)
    b = np.asarray(phi_y, np.float64).reshape(len(phi_y), -1)
    r = a if ref is None else np.asarray(ref, np.float64).reshape(len(ref), -1)
    return np.linalg.norm(a - b, axis=1) / np.linalg.norm(r, axis=1)
