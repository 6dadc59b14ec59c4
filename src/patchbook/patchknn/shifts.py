"""Exact shift augmentation on cached codes.

Each patch of a crop of a padded image is a patch of the padded image, so
the code map of the crop is a window of the padded image's code map. When
the crop's offset is a multiple of the pooling stride (and the pooling
windows are not clipped at the border, ``ceil_mode=False``), the pooled
code of the crop is a window of the padded image's pooled code as well:
encode the padded images once, keep their pooled grid, and every epoch
take a random window of it. With pool 7, stride 4 and 6 x 6 patches, a
32 x 32 image padded by 4 pixels has a 35 x 35 code map and an 8 x 8
pooled grid, whose 6 x 6 windows are the crops at offsets 0, 4 and 8 in
each direction (9 shifts, 18 with flips).

The crop at offset ``(s, s)`` is the image itself, so the test codes are
the codes of the unpadded images. Flips are exact for a mirror-closed
dictionary (:meth:`~patchbook.patchknn.encoding.PatchEncoder.flip_permutation`).

This is the authors' augmentation (random crops after padding, flips)
restricted to offsets on the pooling grid, with codes computed once
instead of every epoch: 9 of the 81 offsets of a 4-pixel padding.
"""

from __future__ import annotations

import numpy as np
import torch

from patchbook.patchknn.classifier import ArrayBatches, flip_codes
from patchbook.patchknn.encoding import PatchEncoder, pool_windows

PAD_MODES = {"reflect": "reflect", "zeros": "constant"}


def check_shift(encoder: PatchEncoder, shift: int, height: int = 32, width: int = 32) -> int:
    """Grid offsets per side of the exact shifts of ``shift`` pixels (pad
    ``shift`` on each side, crops at offsets ``0, pool_stride, ..., 2 shift``),
    for ``encoder`` on ``height x width`` images; a one-line ``ValueError``
    where the shifted windows are not windows of the padded grid."""
    if isinstance(shift, bool) or not isinstance(shift, (int, np.integer)) or shift < 0:
        raise ValueError(f"shift must be an int >= 0 (pixels of padding), got {shift!r}")
    st = encoder.pool_stride
    if encoder.out_size or encoder.stride != 1:
        raise ValueError("exact shifts need out_size=None and patch stride 1")
    if shift % st:
        raise ValueError(f"shift = {shift} must be a multiple of the pooling stride {st}")
    for size in (height, width):
        small = pool_windows(size - encoder.patch + 1, encoder.pool, st, encoder.ceil_mode)
        big = pool_windows(size + 2 * shift - encoder.patch + 1, encoder.pool, st, encoder.ceil_mode)
        for o in range(0, 2 * shift + 1, st):
            moved = [(a + o, b + o) for a, b in small]
            g = o // st
            if big[g:g + len(small)] != moved:
                raise ValueError(f"the crop at offset {o} is not a window of the padded pooled grid (pool "
                                 f"{encoder.pool}, stride {st}, ceil_mode {encoder.ceil_mode}): use "
                                 "ceil_mode=False")
    return 2 * shift // st + 1


def pad_images(images: np.ndarray, shift: int, mode: str = "reflect") -> np.ndarray:
    """``uint8`` images ``N x H x W x C`` padded by ``shift`` pixels on each
    side (``"reflect"`` as ``torch.nn.functional.pad``, or ``"zeros"``):
    ``N x (H + 2 shift) x (W + 2 shift) x C``."""
    if mode not in PAD_MODES:
        raise ValueError(f"padding mode must be one of {sorted(PAD_MODES)}, got {mode!r}")
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"expected images N x H x W x C, got shape {images.shape}")
    if not shift:
        return images
    return np.pad(images, ((0, 0), (shift, shift), (shift, shift), (0, 0)), mode=PAD_MODES[mode])


def windows(grid: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Windows ``B x C x h x w`` of pooled grids ``grid`` (``B x C x G x G'``)
    at grid offsets ``dy``, ``dx`` (``B`` each; ``size = (h, w)``), in
    ``grid``'s dtype. The samples are gathered by offset (there are few):
    one strided slice per offset, not an index per element."""
    h, w = size
    out = torch.empty(len(grid), grid.shape[1], h, w, dtype=grid.dtype, device=grid.device)
    key = dy * (int(dx.max()) + 1 if len(dx) else 1) + dx
    for k in torch.unique(key).tolist():
        sel = torch.nonzero(key == k).flatten()
        oy, ox = int(dy[sel[0]]), int(dx[sel[0]])
        out[sel] = grid[sel, :, oy:oy + h, ox:ox + w]
    return out


class ShiftedBatches(ArrayBatches):
    """:class:`~patchbook.patchknn.classifier.ArrayBatches` of random windows
    of cached pooled grids: every sample a window at a uniform grid offset
    in ``[0, n_offsets)^2`` (drawn from ``(seed, epoch)`` before the flips),
    then scaled and, with ``flip_perm``, flipped as there.

    ``grids`` ``N x C x G x G'`` (any dtype), ``size`` the window ``(h, w)``.
    """

    def __init__(self, grids, labels, size: tuple[int, int], batch_size: int = 128, shuffle: bool = True,
                 scale: float = 1.0, device: str | torch.device = "cpu", seed: int = 0,
                 flip_perm: torch.Tensor | None = None):
        super().__init__(grids, labels, batch_size, shuffle, scale, device, seed, flip_perm=flip_perm)
        G, G2 = self.features.shape[-2:]
        self.size = tuple(size)
        if self.size[0] > G or self.size[1] > G2:
            raise ValueError(f"window {self.size} is larger than the grid {(G, G2)}")
        self.n_offsets = (G - self.size[0] + 1, G2 - self.size[1] + 1)

    def _rows(self, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        dy = torch.randint(0, self.n_offsets[0], (len(idx),), generator=g)
        dx = torch.randint(0, self.n_offsets[1], (len(idx),), generator=g)
        return windows(self.features[idx], dy, dx, self.size)


class FlipAveraged(torch.nn.Module):
    """A head whose evaluation averages the logits of a code and of its
    mirror image (``flip_perm``: the code's channel permutation under a
    flip); training is the head's own."""

    def __init__(self, head: torch.nn.Module, flip_perm: torch.Tensor):
        super().__init__()
        self.head = head
        self.register_buffer("flip_perm", torch.as_tensor(flip_perm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(x)
        if self.training:
            return out
        return (out + self.head(flip_codes(x, self.flip_perm))) / 2
