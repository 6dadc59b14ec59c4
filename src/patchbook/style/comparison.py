"""How far a rendering is from a painting and from the photograph it was made
from: what the style pages measure, per photograph and averaged.

A *pair* (Monet comparisons) is a photograph of a motif, the canvas of the same
motif held out, and another canvas of the series whose style is used. Its
rows are the distances (:mod:`.metrics`, AlexNet features) of each method's
rendering to the held-out canvas (``gram``, ``moments``) and to the
photograph (``content``), with two reference rows measured the same way: the
photograph itself (``"photo"``: no stylisation) and the style canvas itself
(``"style canvas"``: another canvas of the series, a ceiling no method should
be expected to pass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from patchbook import data

from . import metrics
from .images import to_tensor
from .methods import Stylized

#: The reference rows of a pair, before the methods' rows.
REFERENCES = ("photo", "style canvas")
#: The measured columns of a row.
COLUMNS = ("gram", "moments", "content", "seconds")


def title(name: str, width: int = 28) -> str:
    """A painting's or photograph's file name as a short title:
    ``"monet/hires/impression-sunrise.jpg"`` -> ``"impression sunrise"``."""
    return name.split("/")[-1].rsplit(".", 1)[0].replace("-", " ")[:width]


def distances(image: torch.Tensor, painting: torch.Tensor, photo: torch.Tensor | None,
              size: int | None = 224) -> dict[str, float]:
    """``{"gram", "moments", "content"}``: style distances of ``image`` to
    ``painting`` (Gram matrices; channel means and stds) and its content
    distance to ``photo`` (0 when ``photo`` is None: the image is the
    photograph), on AlexNet features at long side ``size``."""
    return {"gram": metrics.style_distance(image, painting, size=size),
            "moments": metrics.style_distance(image, painting, stat="moments", size=size),
            "content": 0.0 if photo is None else metrics.content_distance(image, photo, size=size)}


@dataclass(frozen=True)
class Pair:
    """A photograph, the held-out canvas of the same motif and the style canvas
    (names under the data root, images ``3 x H x W`` in [0, 1])."""

    photo_name: str
    held_out_name: str
    style_name: str
    photo: torch.Tensor
    held_out: torch.Tensor
    style: torch.Tensor


def load_pair(photo: str, held_out: str, style: str, max_side: int, root=None) -> Pair:
    """The :class:`Pair` of a profile's ``[photograph, held-out canvas, style canvas]``
    at ``max_side`` pixels on the long side."""
    return Pair(photo, held_out, style, to_tensor(data.load_photo(photo, max_side=max_side, root=root)),
                to_tensor(data.load_painting(held_out, max_side=max_side, root=root)),
                to_tensor(data.load_painting(style, max_side=max_side, root=root)))


def pair_rows(pairs: Sequence[Pair], renderings: Mapping[tuple[int, str], Stylized], methods: Sequence[str],
              size: int | None = 224) -> list[dict]:
    """One row per pair and per reference or method (``renderings[i, m]`` the
    rendering of pair ``i`` by method ``m``): ``pair``, ``photo``, ``method``
    and the :data:`COLUMNS` (``seconds`` is NaN for the references)."""
    rows = []
    for i, p in enumerate(pairs):
        base = {"pair": i, "photo": p.photo_name}
        rows.append({**base, "method": "photo", **distances(p.photo, p.held_out, None, size), "seconds": math.nan})
        rows.append({**base, "method": "style canvas", **distances(p.style, p.held_out, p.photo, size),
                     "seconds": math.nan})
        for m in methods:
            r = renderings[i, m]
            rows.append({**base, "method": m, **distances(r.image, p.held_out, p.photo, size),
                         "seconds": r.seconds})
    return rows


def means(rows: Sequence[Mapping]) -> dict[str, dict[str, float]]:
    """``{method: {column: mean over its rows}}`` for the :data:`COLUMNS`,
    methods in the order of their first row (NaN stays NaN)."""
    out: dict[str, dict[str, float]] = {}
    for m in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == m]
        out[m] = {k: float(np.mean([r[k] for r in mine])) for k in COLUMNS}
    return out
