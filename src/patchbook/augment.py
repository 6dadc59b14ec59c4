"""The standard image augmentation: random crops of a padded image and
horizontal flips, drawn from a generator so that an epoch can be replayed."""

from __future__ import annotations

import torch
import torch.nn.functional as F

PADDING_MODES = ("zeros", "reflect", "replicate")


def random_crop_flip(x: torch.Tensor, padding: int = 4, padding_mode: str = "zeros", flip: bool = True,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop (each side padded by ``padding`` pixels, ``padding_mode``
    ``"zeros"`` as torchvision's ``RandomCrop(padding=...)``, or ``"reflect"``)
    and random horizontal flip of every image of ``x`` (``B x C x H x W``).

    The draws, in this order: the ``B`` row offsets, the ``B`` column offsets
    (each in ``[0, 2 padding]``), then ``B`` uniforms for the flips (flipped
    when ``< 1/2``); all on the CPU generator ``generator``.
    """
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    B, C, H, W = x.shape
    if padding:
        mode = "constant" if padding_mode == "zeros" else padding_mode
        xp = F.pad(x, (padding,) * 4, mode=mode)
        dy = torch.randint(0, 2 * padding + 1, (B,), generator=generator)
        dx = torch.randint(0, 2 * padding + 1, (B,), generator=generator)
        rows = (dy[:, None] + torch.arange(H)).to(x.device)           # B x H
        cols = (dx[:, None] + torch.arange(W)).to(x.device)           # B x W
        bidx = torch.arange(B, device=x.device)[:, None, None]
        x = xp.permute(0, 2, 3, 1)[bidx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        f = (torch.rand(B, generator=generator) < 0.5).to(x.device)
        x = torch.where(f[:, None, None, None], x.flip(-1), x)
    return x.contiguous()
