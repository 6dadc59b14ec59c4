"""Images as the style package holds them: float tensors ``3 x H x W`` in [0, 1]
(``B x 3 x H x W`` for batches), converted from and to arrays, and resized."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def to_tensor(img: Any) -> torch.Tensor:
    """An image ``H x W x 3``, uint8 or float (or a ``3 x H x W`` tensor), to
    a float tensor ``3 x H x W`` (uint8 divided by 255: in [0, 1])."""
    if isinstance(img, torch.Tensor):
        t = img.detach().float()
        if t.ndim == 3 and t.shape[0] != 3 and t.shape[-1] == 3:
            t = t.permute(2, 0, 1)
        return t.contiguous()
    a = np.asarray(img)
    t = torch.from_numpy(np.ascontiguousarray(a).copy())
    t = t.float() / 255.0 if a.dtype == np.uint8 else t.float()
    if t.ndim == 3 and t.shape[-1] == 3:
        t = t.permute(2, 0, 1)
    return t.contiguous()


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A ``3 x H x W`` tensor to a float32 ``H x W x 3`` array in [0, 1]."""
    return t.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy().astype(np.float32)


def as_batch(img: torch.Tensor) -> torch.Tensor:
    """``3 x H x W`` (or ``B x 3 x H x W``) to a contiguous float ``B x 3 x H x W``, ``B = 1``
    for one image."""
    img = torch.as_tensor(img)
    if img.ndim == 3:
        img = img[None]
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"expected an image 3 x H x W (or B x 3 x H x W), got shape {tuple(img.shape)}")
    return img.float().contiguous()


def resize_long(img: torch.Tensor, long_side: int) -> torch.Tensor:
    """Resize ``[B x] 3 x H x W`` so that its longer side is ``long_side``
    pixels (bilinear, antialiased when shrinking; returned as it is when the
    size does not change)."""
    x = as_batch(img)
    h, w = x.shape[-2:]
    s = long_side / max(h, w)
    size = (max(1, round(h * s)), max(1, round(w * s)))
    if size == (h, w):
        return x if img.ndim == 4 else x[0]
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=s < 1)
    return y if img.ndim == 4 else y[0]


def crop(img: torch.Tensor, box) -> torch.Tensor:
    """The region ``box = (u0, v0, u1, v1)`` of ``[B x] 3 x H x W``, given as
    fractions of the width (``u``) and height (``v``), rounded to whole pixels
    (at least one)."""
    u0, v0, u1, v1 = (float(b) for b in box)
    if not (0 <= u0 < u1 <= 1 and 0 <= v0 < v1 <= 1):
        raise ValueError(f"expected a box (u0, v0, u1, v1) with 0 <= u0 < u1 <= 1 and 0 <= v0 < v1 <= 1, got {box}")
    h, w = img.shape[-2:]
    top, left = min(round(v0 * h), h - 1), min(round(u0 * w), w - 1)
    return img[..., top:max(top + 1, round(v1 * h)), left:max(left + 1, round(u1 * w))]
