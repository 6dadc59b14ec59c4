"""Iterated projections (the interactive setting of Kerdreux, Thiry & Kerdreux
2020): the stylised image becomes the content of the next turn,
``I_{k+1} = T(I_k, I_s)`` with ``I_0`` the photograph.

- :func:`iterate`: a chain of projections (each step cached);
- :func:`perturb`: the photograph plus a small, seeded Gaussian noise;
- :func:`drift`: how far each step is from the photograph and from the
  painting (:mod:`.metrics`) and how much it changed the image;
- :func:`spread`: how different several chains are from each other, step by step.
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np
import torch

from . import metrics
from .images import to_tensor
from .methods import Stylized, stylize_cached


def iterate(method: str, content: Any, style: Any, n_steps: int, seed: int = 0, **kw: Any) -> list[Stylized]:
    """Stylise ``content``, then stylise the result again with the same
    style, ``n_steps`` times (step ``k`` seeded ``1000 * seed + k``, each
    cached). Returns the ``n_steps`` results in order."""
    out: list[Stylized] = []
    current = to_tensor(content)
    for step in range(n_steps):
        r = stylize_cached(method, current, style, seed=1000 * seed + step, **kw)
        out.append(r)
        current = r.image
    return out


def perturb(img: Any, sigma: float, seed: int) -> torch.Tensor:
    """``img`` plus Gaussian noise of standard deviation ``sigma`` (seeded), clipped to [0, 1]."""
    t = to_tensor(img)
    if sigma <= 0:
        return t
    g = torch.Generator().manual_seed(int(seed))
    return (t + sigma * torch.randn(t.shape, generator=g)).clamp(0, 1)


def drift(photo: torch.Tensor, style: torch.Tensor, chain: Sequence[torch.Tensor],
          size: int | None = 224) -> dict[str, list[float]]:
    """For the images ``[photo, *chain]`` (steps 0 .. n): ``content``, the
    content distance to the photograph; ``style``, the style distance (Gram)
    to the painting ``style``; ``step``, the RMS pixel change from the
    previous step (0 at step 0). Lists of ``n + 1`` floats."""
    imgs = [photo, *chain]
    return {"content": [metrics.content_distance(x, photo, size=size) for x in imgs],
            "style": [metrics.style_distance(x, style, size=size) for x in imgs],
            "step": [0.0, *[metrics.pixel_distance(b, a) for a, b in zip(imgs, imgs[1:])]]}


def spread(chains: Sequence[Sequence[torch.Tensor]]) -> list[float]:
    """Mean RMS pixel difference over the pairs of chains at each step:
    ``chains[c][k]`` is the image of chain ``c`` at step ``k``; returns one
    value per step of the shortest chain (needs two chains or more)."""
    if len(chains) < 2:
        raise ValueError(f"the spread needs two chains or more, got {len(chains)}")
    n = min(len(c) for c in chains)
    out = []
    for k in range(n):
        diffs = [metrics.pixel_distance(a[k], b[k]) for a, b in itertools.combinations(chains, 2)]
        out.append(float(np.mean(diffs)))
    return out
