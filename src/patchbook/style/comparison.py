"""How far a rendering is from a painting and from the photograph it was made
from: what the style pages measure, per photograph, averaged, with intervals.

The Monet comparison (this book's reading of the *predictivity* of
Kerdreux, Thiry & Kerdreux 2020) works on *aligned pairs* (:class:`Pair`,
:func:`load_pair`): a photograph of a motif warped into the frame of the
canvas Monet painted of that view (held out) by the homography of the pair's
points (:mod:`.pairs`, :mod:`.alignment`), both cropped to the largest
rectangle the photograph covers, and another canvas of the series whose style
the methods use. A pair's rows (:func:`pair_rows`) are distances
(:mod:`.metrics`, AlexNet features) of each method's rendering of the aligned
photograph: ``gram`` and ``moments``, its feature statistics against the
held-out canvas'; ``canvas``, its features against the canvas' at the same
positions (meaningful because the pair is aligned); ``content``, its features
against the photograph's. Two reference rows are measured the same way: the
photograph itself (``"photo"``: no stylisation) and the style canvas itself
(``"style canvas"``: another canvas of the series, a ceiling no method should
be expected to pass; it is not aligned with the others, so its position-wise
columns are NaN). :func:`summary` gives means with Student-t intervals over
the pairs, :func:`paired` the mean difference of each row with a reference,
pair by pair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from patchbook import data
from patchbook.stats import mean_interval

from . import alignment, metrics
from .images import resize_long, to_tensor
from .methods import Stylized
from .pairs import PairSpec

#: The reference rows of a pair, before the methods' rows.
REFERENCES = ("photo", "style canvas")
#: The measured columns of a row.
COLUMNS = ("gram", "moments", "canvas", "content", "seconds")


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
class Alignment:
    """The homography of a pair and how well it fits, in pixels of the canvas
    frame (the held-out canvas at the page's long side).

    ``H`` maps photograph pixels to canvas pixels; ``residuals`` are the
    distances of the mapped photograph points to their canvas partners,
    ``loo`` the same for each point left out of the fit
    (:func:`~.alignment.leave_one_out`); ``box = (top, left, bottom, right)``
    is the crop both images are compared on; ``coverage`` the fraction of the
    canvas the photograph covers."""

    H: np.ndarray
    photo_points: np.ndarray
    canvas_points: np.ndarray
    residuals: np.ndarray
    loo: np.ndarray
    box: tuple[int, int, int, int]
    coverage: float
    frame: tuple[int, int]

    @property
    def rms(self) -> float:
        return alignment.rms(self.residuals)

    @property
    def loo_rms(self) -> float:
        return alignment.rms(self.loo)


@dataclass(frozen=True)
class Pair:
    """An aligned pair: ``photo`` (the photograph warped into the canvas frame
    and cropped to ``alignment.box``) and ``held_out`` (the canvas, same crop)
    are what is compared; ``style`` is the other canvas; ``canvas``,
    ``warped`` and ``mask`` are the whole frame (for figures). Images ``3 x H
    x W`` in [0, 1]."""

    id: str
    motif: str
    photo_name: str
    held_out_name: str
    style_name: str
    photo: torch.Tensor
    held_out: torch.Tensor
    style: torch.Tensor
    canvas: torch.Tensor
    warped: torch.Tensor
    mask: torch.Tensor
    alignment: Alignment


def _painting(name: str, size: int, root) -> torch.Tensor:
    """A painting at ``size`` pixels on the long side (enlarged if stored smaller)."""
    return resize_long(to_tensor(data.load_painting(name, root=root)), size).clamp(0, 1)


def load_pair(spec: PairSpec, size: int, root=None) -> Pair:
    """The aligned :class:`Pair` of ``spec``: the held-out and style canvases at
    ``size`` pixels on the long side, the photograph read at twice that and
    warped into the held-out canvas' frame by the homography of the points."""
    canvas = _painting(spec.held_out, size, root)
    photo = to_tensor(data.load_photo(spec.photo, max_side=2 * size, root=root))
    (hp, wp), (hc, wc) = photo.shape[-2:], canvas.shape[-2:]
    src = alignment.to_pixels(spec.photo_points, wp, hp)
    dst = alignment.to_pixels(spec.canvas_points, wc, hc)
    H = alignment.fit_homography(src, dst)
    warped, mask = alignment.warp(photo, H, (hc, wc))
    t, l, b, r = box = alignment.largest_rectangle(mask.numpy())
    al = Alignment(H, src, dst, alignment.residuals(H, src, dst), alignment.leave_one_out(src, dst), box,
                   float(mask.float().mean()), (hc, wc))
    return Pair(spec.id, spec.motif, spec.photo, spec.held_out, spec.style, warped[:, t:b, l:r].contiguous(),
                canvas[:, t:b, l:r].contiguous(), _painting(spec.style, size, root), canvas, warped, mask, al)


def pair_rows(pairs: Sequence[Pair], renderings: Mapping[tuple[int, str], Stylized], methods: Sequence[str],
              size: int | None = 224) -> list[dict]:
    """One row per pair and per reference or method (``renderings[i, m]`` the
    rendering of pair ``i``'s aligned photograph by method ``m``): ``pair``
    (the pair's id), ``photo``, ``method`` and the :data:`COLUMNS`
    (``seconds`` is NaN for the references, ``canvas`` and ``content`` for the
    style canvas, which is not aligned with them)."""
    rows = []
    for i, p in enumerate(pairs):
        base = {"pair": p.id, "photo": p.photo_name}

        def row(method, image, seconds, aligned=True):
            d = distances(image, p.held_out, p.photo if aligned else None, size)
            if aligned:
                d["canvas"] = metrics.content_distance(image, p.held_out, size=size)
            else:
                d["canvas"] = d["content"] = math.nan
            return {**base, "method": method, **d, "seconds": seconds}

        rows.append(row("photo", p.photo, math.nan))
        rows.append(row("style canvas", p.style, math.nan, aligned=False))
        rows += [row(m, renderings[i, m].image, renderings[i, m].seconds) for m in methods]
    return rows


def _methods(rows: Sequence[Mapping]) -> list[str]:
    return list(dict.fromkeys(r["method"] for r in rows))


def means(rows: Sequence[Mapping]) -> dict[str, dict[str, float]]:
    """``{method: {column: mean over its rows}}`` for the :data:`COLUMNS`,
    methods in the order of their first row (NaN stays NaN)."""
    return {m: {k: float(np.mean([r[k] for r in rows if r["method"] == m])) for k in COLUMNS}
            for m in _methods(rows)}


def _interval(values: Sequence[float], level: float) -> tuple[float, float, float]:
    v = np.asarray(values, dtype=np.float64)
    return (math.nan,) * 3 if v.size == 0 or not np.all(np.isfinite(v)) else mean_interval(v, level)


def summary(rows: Sequence[Mapping], level: float = 0.95) -> dict[str, dict[str, tuple[float, float, float]]]:
    """``{method: {column: (mean, low, high)}}``: the mean over the pairs and
    its Student-t interval at ``level`` (:func:`patchbook.stats.mean_interval`;
    NaN for a column with a NaN), for the :data:`COLUMNS`."""
    return {m: {k: _interval([r[k] for r in rows if r["method"] == m], level) for k in COLUMNS}
            for m in _methods(rows)}


def paired(rows: Sequence[Mapping], column: str, reference: str = "photo",
           level: float = 0.95) -> dict[str, tuple[float, float, float]]:
    """``{method: (mean, low, high)}`` of ``row[column] - reference row[column]``
    over the pairs (matched by ``pair``), for every method but the reference: a
    negative interval means closer than the reference, pair for pair."""
    ref = {r["pair"]: r[column] for r in rows if r["method"] == reference}
    out = {}
    for m in _methods(rows):
        if m != reference:
            out[m] = _interval([r[column] - ref[r["pair"]] for r in rows if r["method"] == m], level)
    return out
