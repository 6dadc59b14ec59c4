"""Gaussian local averaging at scale ``2^J``: ``A_J x = x * phi_J``.

``phi_J`` is a normalised Gaussian (its values sum to one) of standard
deviation ``sigma_J = 0.4 * 2^J`` pixels, the width of kymatio's scattering
low-pass filter at the same ``J`` (``0.8 * 2^(J-1)``), so that the averages
and the order-0 scattering coefficients are the same operator. ``J = 0`` is a
light blur (``sigma = 0.4``); the averages are computed at full resolution
(``subsample`` keeps every ``2^J``-th pixel, as the scattering does).

Averaging is stable to translations and small deformations: a translation by
``c`` changes ``A_J x`` by about ``|c| / sigma_J`` of its norm, a
deformation by ``||grad tau||_inf`` times a constant. The price is the loss
of every detail finer than ``2^J`` pixels.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Boundary = Literal["zeros", "periodic"]


def sigma(J: float, sigma0: float = 0.4) -> float:
    """Standard deviation in pixels of the averaging at scale ``2^J``."""
    return sigma0 * 2.0**J


def transfer_function(shape: tuple[int, int], J: float, sigma0: float = 0.4) -> np.ndarray:
    """``phi_J`` in Fourier on an ``H x W`` periodic grid (numpy FFT order):
    ``exp(-2 pi^2 sigma^2 |f|^2)``, equal to 1 at zero frequency and
    decreasing with ``|f|``."""
    H, W = shape
    fy = np.fft.fftfreq(H)[:, None]
    fx = np.fft.fftfreq(W)[None, :]
    s = sigma(J, sigma0)
    return np.exp(-2 * (np.pi * s) ** 2 * (fy**2 + fx**2))


def kernel(J: float, sigma0: float = 0.4, radius: int | None = None) -> np.ndarray:
    """The 1D Gaussian taps (sum one) whose outer product is ``phi_J``."""
    s = sigma(J, sigma0)
    r = int(np.ceil(4 * s)) if radius is None else radius
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-t**2 / (2 * s * s))
    return k / k.sum()


def average(images: np.ndarray, J: float, boundary: Boundary = "zeros", subsample: bool = False,
            sigma0: float = 0.4) -> np.ndarray:
    """``images * phi_J`` for ``N x H x W`` or ``N x H x W x C`` images
    (uint8 are scaled to [0, 1]), float64, same layout.

    ``boundary="zeros"``: the image is zero outside (digits on black); the
    sum of the output then equals the sum of the input up to the Gaussian
    mass leaving the image. ``"periodic"``: circular convolution, which
    preserves the mean exactly. ``subsample`` keeps pixels ``2^J k``.
    """
    a = np.asarray(images)
    x = a.astype(np.float64) / (255.0 if a.dtype == np.uint8 else 1.0)
    squeeze = x.ndim == 3
    if squeeze:
        x = x[..., None]
    H, W = x.shape[1:3]
    k = kernel(J, sigma0)
    r = len(k) // 2
    if boundary == "periodic":
        g = transfer_function((H, W), J, sigma0)
        out = np.fft.ifft2(np.fft.fft2(x, axes=(1, 2)) * g[None, :, :, None], axes=(1, 2)).real
    elif boundary == "zeros":
        # separable linear convolution with zeros outside, by FFT on a grid
        # padded by the kernel radius (no wrap-around reaches the image)
        Hp, Wp = H + 2 * r, W + 2 * r
        xp = np.zeros((x.shape[0], Hp, Wp, x.shape[3]))
        xp[:, r:r + H, r:r + W] = x
        def taps(n):  # the kernel centred at index 0 of a length-n periodic grid
            t = np.zeros(n)
            t[: r + 1] = k[r:]
            if r:
                t[-r:] = k[:r]
            return t

        g = np.fft.fft(taps(Hp))[:, None] * np.fft.fft(taps(Wp))[None, :]
        out = np.fft.ifft2(np.fft.fft2(xp, axes=(1, 2)) * g[None, :, :, None], axes=(1, 2)).real
        out = out[:, r:r + H, r:r + W]
    else:
        raise ValueError(f"unknown boundary {boundary!r}")
    if subsample:
        step = int(2**J)
        out = out[:, ::step, ::step]
    return out[..., 0] if squeeze else out
