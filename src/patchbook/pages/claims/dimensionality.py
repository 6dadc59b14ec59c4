"""What the dimensionality page says about its numbers.

Each function takes measured numbers (rows of
:class:`patchbook.patchknn.dimension.PatchDimensions`, or anything with the
same attributes) and returns the sentence the page shows, so that the words
follow the numbers: the page never says that a contrast falls, an estimate
grows with the database, whitening raises a dimension or a measurement falls
short of the authors' when the numbers say otherwise.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from patchbook.pages.published import Published

# Estimates at one ball mass within this factor of each other "agree".
SAME_SCALE_FACTOR = 1.15
# An estimate below this share of the ambient dimension no longer "follows" it.
FOLLOWS_SHARE = 0.9
# A covariance share at least this is "almost every direction".
ALMOST_ALL = 0.9


def grows(points: Sequence[tuple[int, float]]) -> bool:
    """Whether the estimates ``(database size, estimate)`` increase strictly
    with the database size."""
    pts = sorted(points)
    return len(pts) > 1 and all(b[1] > a[1] for a, b in zip(pts, pts[1:]))


def beyer(iid: np.ndarray, curved: np.ndarray, m: int, n: int) -> str:
    """Beyer's phenomenon on synthetic data: rows ``(D, median relative
    contrast, nearest-neighbour dimension)`` of i.i.d. uniform data and of a
    curved ``m``-dimensional set, ``n`` points each."""
    (d0, c0, _), (d1, c1, e1) = iid[0], iid[-1]
    text = (f"For i.i.d. uniform data the median contrast {'falls' if c1 < c0 else 'does not fall'} from {c0:.3g} "
            f"at $D = {d0:.0f}$ to {c1:.3g} at $D = {d1:.0f}$: the farthest of the {n:,} points is then "
            f"{'only ' if c1 < c0 else ''}{100 * c1:.0f}% farther than the nearest. ")
    lo, hi = curved[:, 1].min(), curved[:, 1].max()
    if curved[-1, 1] > c1:
        text += f"On the curved {m}-dimensional set it stays between {lo:.3g} and {hi:.3g} whatever $D$"
    else:
        text += (f"On the curved {m}-dimensional set it falls as low ({curved[-1, 1]:.3g} at "
                 f"$D = {curved[-1, 0]:.0f}$)")
    text += f", and the estimator finds {curved[-1, 2]:.2f} dimensions at $D = {curved[-1, 0]:.0f}$. "
    if e1 < FOLLOWS_SHARE * d1:
        return text + (f"For i.i.d. data it follows $D$ only while {n:,} points can fill the space: at "
                       f"$D = {d1:.0f}$ it reads {e1:.0f}, a first sign that the estimate depends on how many points "
                       "resolve the scale it looks at.")
    return text + f"For i.i.d. data it follows $D$ up to $D = {d1:.0f}$ (it reads {e1:.0f})."


def database_size(points: Mapping[str, Sequence[tuple[int, float]]], same: Mapping[str, Sequence[tuple[int, float]]],
                  Q: int, k_min: int, mass: float) -> str:
    """The database-size study: ``points[kind]`` the estimates ``(N, value)``
    averaged over ``k_min <= k <= K``, ``same[kind]`` the estimates at one ball
    mass ``k / N = mass``."""
    def listing(pts):
        return ", ".join(f"{v:.1f} (N = {n:,})" for n, v in sorted(pts))

    text = (f"CIFAR-10, Q = {Q}, averaged over k = {k_min}..K: "
            + "; ".join(f"{kind} {listing(p)}" for kind, p in points.items()) + ". The estimate ")
    growing = [kind for kind, p in points.items() if grows(p)]
    if len(growing) == len(points):
        text += "grows with the database in both cases. " if len(points) == 2 else "grows with the database. "
    elif growing:
        text += f"grows with the database for {' and '.join(growing)} patches only. "
    else:
        text += "does not grow monotonically with the database here. "
    text += f"At one ball mass, k/N = {mass:.2g}: " + "; ".join(
        kind + " " + ", ".join(f"{v:.1f} (N = {n:,})" for n, v in pts) for kind, pts in same.items())
    agree = all(len(p) > 1 and max(v for _, v in p) < SAME_SCALE_FACTOR * min(v for _, v in p) for p in same.values())
    if agree:
        return text + ". What changes with N is then mostly the scale the estimate reads."
    return (text + f". The values at one ball mass still differ by more than {100 * (SAME_SCALE_FACTOR - 1):.0f}% "
            "(or too few sizes reach that mass): the database size matters beyond the scale.")


def _span(ratios: Sequence[float]) -> str:
    return "–" if len(ratios) == 0 else f"{min(ratios):.2f} to {max(ratios):.2f}"


def readings(rows: Sequence, k_min: int, k: int) -> str:
    """The two readings of the estimator side by side: ``nn`` (ours, the
    average of ``d_k`` over ``k_min <= k <= K``, single ``(point, k)`` pairs
    blanked) and ``nn_authors`` (theirs, ``d_k`` at ``k = K - 1`` after the
    first neighbour, every query with a zero distance or a non-positive
    log-ratio dropped; ``authors_kept`` the share of queries kept)."""
    r = [x.nn_authors / x.nn for x in rows]
    text = (f"Their reading (k = {k - 1:,} after dropping the first neighbour, queries filtered) over ours "
            f"(average over k = {k_min}..{k:,}): {_span(r)}; ")
    if min(r) > 1:
        text += "it reads higher at every patch size and kind. "
    elif max(r) < 1:
        text += "it reads lower at every patch size and kind. "
    else:
        text += "it reads higher for some rows and lower for others. "
    kept = [x.authors_kept for x in rows]
    if min(kept) == 1:
        return text + "Their filter drops no query here."
    return text + (f"Their filter keeps {100 * min(kept):.1f}% to {100 * max(kept):.1f}% of the queries (the others "
                   "have a copy among their neighbours or a tie in their log-ratios), where ours leaves out single "
                   "(point, k) pairs.")


def against_authors(rows: Sequence, published: Mapping[tuple[str, int], Published], lam: float,
                    eigen_above: Mapping[int, int], k: int) -> str:
    """Measured over the authors' nearest-neighbour dimensions (CIFAR-10 rows
    of both kinds; ``published[kind, Q]`` the registry entries, which are
    values of the authors' reading) and the known differences: the database
    size, and the JPEG copy (``eigen_above[Q]`` eigenvalues of the raw
    covariance above ``lam``). Like is compared with like: the verdict is on
    the authors' reading (``nn_authors``); ours (``nn``) and the matched
    scale (``nn_star``) are given beside it."""
    def ratios(kind, attr):
        return [getattr(r, attr) / published[kind, r.Q].value for r in rows
                if r.kind == kind and (kind, r.Q) in published and getattr(r, attr) is not None]

    qs = sorted({r.Q for r in rows})
    every = ratios("raw", "nn_authors") + ratios("whitened", "nn_authors")
    text = (f"Measured over the authors' values, Q = {qs[0]}..{qs[-1]}, in their reading: raw "
            f"{_span(ratios('raw', 'nn_authors'))}, whitened {_span(ratios('whitened', 'nn_authors'))} (ours: raw "
            f"{_span(ratios('raw', 'nn'))}, whitened {_span(ratios('whitened', 'nn'))}; at the matched scale: raw "
            f"{_span(ratios('raw', 'nn_star'))}, whitened {_span(ratios('whitened', 'nn_star'))}). ")
    if every and max(every) < 1:
        text += "Every measured value of their reading is below the authors'. Two differences are known. "
    else:
        text += "The measured values of their reading are not all below the authors'. Two differences are known. "
    n_db = min(r.n_db for r in rows)
    text += (f"The database holds {n_db:,} patches instead of all of them, so $k = {k:,}$ probes a larger ball (the "
             "previous section measures how the estimate moves with the database size). And our CIFAR-10 is a JPEG "
             "re-encoding (quality about 75) of the original, whose quantisation may remove fine detail the original "
             "patches have, which would lower the raw covariance share (less energy in the small components) and the "
             "whitened dimension: ")
    shown = list(dict.fromkeys(q for q in (6, qs[-1]) if q in eigen_above))
    if shown:
        q = shown[0]
        text += (f"only {eigen_above[q]} of {3 * q * q} eigenvalues of the raw covariance exceed λ = {lam:g} at "
                 f"Q = {q}")
        text += "".join(f" ({eigen_above[q]} of {3 * q * q} at Q = {q})" for q in shown[1:])
        text += ", and whitening lifts only those directions to unit variance. "
    return text + "The original pickles are not in the offline data root, so this page cannot measure that effect."


def data_set(label: str, raw: Sequence, whitened: Sequence, tol: float) -> str:
    """Two bullet lines on one data set: raw and whitened rows in increasing
    ``Q`` (nearest-neighbour dimension against the ambient one, the covariance
    dimension, the relative contrast)."""
    a0, a1, w0, w1 = raw[0], raw[-1], whitened[0], whitened[-1]
    rr = [r.nn / r.d for r in raw]
    ww = [r.nn / r.d for r in whitened]
    falls = {"raw": all(b < a for a, b in zip(rr, rr[1:])), "whitened": all(b < a for a, b in zip(ww, ww[1:]))}
    text = (f"- **{label}.** Raw patches have a nearest-neighbour dimension of {a0.nn:.1f} to {a1.nn:.1f} for "
            f"Q = {a0.Q}..{a1.Q}, {100 * rr[0]:.0f}% of the ambient dimension at Q = {a0.Q} and {100 * rr[-1]:.0f}% "
            f"at Q = {a1.Q} ({a1.nn:.1f} of {a1.d}). Whitened: {w0.nn:.1f} to {w1.nn:.1f}, {100 * ww[0]:.0f}% and "
            f"{100 * ww[-1]:.0f}% of it. ")
    if len(raw) > 1 and all(falls.values()):
        text += "Both shares fall at every step of Q. "
    elif len(raw) > 1 and any(falls.values()):
        kind = next(k for k, v in falls.items() if v)
        text += f"The {kind} share falls at every step of Q, the other does not. "
    verdict = "says otherwise" if w1.cov.fraction > ww[-1] else "agrees"
    text += (f"The covariance {verdict} for whitened patches: {w1.cov.n_energy} of {w1.d} components hold "
             f"1 - {tol:g} of the energy at Q = {w1.Q} (raw: {a1.cov.n_energy}).")
    return text + (f"\n  The median relative contrast at Q = {a1.Q} is {a1.contrast:.2f} raw and {w1.contrast:.2f} "
                   f"whitened, against {w1.contrast_gauss:.2f} for i.i.d. Gaussian data of the same dimension and "
                   "size.")


def conclusion(label: str, raw: object, whitened: object, grew_at: int | None) -> str:
    """What the measurements settle, from the raw and whitened rows of the
    largest ``Q`` of one data set; ``grew_at``: the patch size at which the
    estimates grew with the database in the database-size study (``None`` if
    they did not, or if there was no such study)."""
    r, w = raw, whitened
    if w.cov.fraction >= ALMOST_ALL:
        text = ("So whitening spreads the energy over almost every direction (the covariance dimension of whitened "
                "patches is close to the ambient one)")
    else:
        text = (f"So whitening spreads the energy over {100 * w.cov.fraction:.0f}% of the directions (the covariance "
                "dimension of whitened patches)")
    if w.nn < w.cov.n_energy:
        text += (", yet the patches do not fill those directions: around each patch its neighbours lie on a set of "
                 f"dimension {w.nn:.0f} in $\\mathbb{{R}}^{{{w.d}}}$ ({label}, Q = {w.Q}, at this scale). ")
    else:
        text += (f", and the neighbours see as many: a dimension of {w.nn:.0f} in $\\mathbb{{R}}^{{{w.d}}}$ "
                 f"({label}, Q = {w.Q}). ")
    if w.contrast > w.contrast_gauss:
        text += ("That is why the k-NN code works: a nearest atom is meaningful when the relative contrast of a query "
                 f"against the dictionary stays away from 0, and it does for patches ({w.contrast:.2f} whitened) where "
                 f"i.i.d. data of the same dimension give {w.contrast_gauss:.2f}. ")
    else:
        text += (f"The relative contrast of whitened patches ({w.contrast:.2f}) is no larger than that of i.i.d. data "
                 f"of the same dimension ({w.contrast_gauss:.2f}): by this measure a nearest atom means no more for "
                 "patches than for noise. ")
    if w.nn > r.nn:
        text += ("Whitening raises the dimension the neighbours see (it equalises the directions that raw distances "
                 f"ignore) but, at Q = {w.Q}, leaves it at {100 * w.nn / w.d:.0f}% of the ambient one; raw patches "
                 f"sit at {100 * r.nn / r.d:.0f}%.")
    else:
        text += (f"Whitening does not raise the dimension the neighbours see here ({100 * w.nn / w.d:.0f}% of the "
                 f"ambient one, raw {100 * r.nn / r.d:.0f}%).")
    if grew_at is not None:
        text += (f" Since the estimates grew with the database at Q = {grew_at}, a search among every patch would "
                 "likely read higher dimensions than this page does")
        text += ("; the ordering (raw below whitened, both below the ambient dimension) is what these measurements "
                 "settle." if r.nn < w.nn < w.d else ".")
    return text
