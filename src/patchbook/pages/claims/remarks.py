"""What the Remarks page says about its numbers.

The talk's last Part 2 remark: the code is "relatively stable with large
number of neighbors, and the derivative of the output w.r.t input is zero".
Each function takes what :mod:`patchbook.patchknn.sensitivity` measured and
returns the sentence the page shows, so that the page never says the code
grows more stable with ``K``, moves less than the pixels, has a zero
derivative or a soft-code gradient that vanishes when the numbers say
otherwise.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

# A gradient norm below this share of its largest value over the sweep "vanishes".
VANISHED = 1e-6


def falls(values: Sequence[float]) -> bool:
    """Whether ``values`` decrease strictly (at least two of them)."""
    v = list(values)
    return len(v) > 1 and all(b < a for a, b in zip(v, v[1:]))


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def neighbours(replaced: Mapping[str, Sequence[float]], entries: Mapping[str, Sequence[float]],
               ks: Sequence[int], n_atoms: int) -> str:
    """Flips of the unpooled code against ``K``: ``replaced[name][i]`` the share
    of a patch's ``K = ks[i]`` nearest atoms replaced under perturbation
    ``name``, ``entries[name][i]`` the share of all code entries that flip."""
    names = list(replaced)
    lo, hi = ks[0], ks[-1]
    text = (f"From $K = {lo}$ to $K = {hi}$ of $|D| = {n_atoms}$ atoms, the share of a patch's $K$ nearest atoms "
            "that a perturbation replaces goes " + "; ".join(
                f"from {_pct(replaced[n][0])} to {_pct(replaced[n][-1])} ({n})" for n in names) + ". ")
    down = [n for n in names if falls(replaced[n])]
    if len(down) == len(names):
        text += ("It falls at every step of $K$ for every perturbation: the larger $K$, the smaller the share of a "
                 "code that changes. ")
    elif down:
        text += (f"It falls at every step of $K$ for {', '.join(down)} only; not for "
                 f"{', '.join(n for n in names if n not in down)}. ")
    else:
        text += "It does not fall steadily with $K$ for any perturbation. "
    peak = {n: ks[int(np.argmax(entries[n]))] for n in names}
    if all(p not in (lo, hi) for p in peak.values()):
        text += ("The share of *all* entries that flip does not fall with $K$: it is largest in between (at $K$ = "
                 + ", ".join(sorted({str(p) for p in peak.values()}, key=int)) + " of those measured), as the "
                 "symmetric difference of two $K$-sets is at most $2\\min(K, |D| - K)$.")
    else:
        text += "The share of all entries that flip is largest at an end of the range measured (" + ", ".join(
            f"{n}: $K = {p}$" for n, p in peak.items()) + ")."
    return text


def pooled(pooled_change: Mapping[str, float], pixel_change: Mapping[str, float], k: int) -> str:
    """The pooled code against the pixels at ``K = k``: for each perturbation the
    median change over the median distance between two images, of the pooled
    code (``pooled_change``) and of the pixels (``pixel_change``)."""
    less = [n for n in pooled_change if pooled_change[n] < pixel_change[n]]
    more = [n for n in pooled_change if n not in less]
    text = (f"At $K = {k}$, in units of the distance between two images: " + "; ".join(
        f"{n}: pooled code {pooled_change[n]:.3g}, pixels {pixel_change[n]:.3g}" for n in pooled_change) + ". ")
    if less and not more:
        return text + "The pooled code moves less than the pixels under every perturbation measured."
    if more and not less:
        return text + "The pooled code moves *more* than the pixels under every perturbation measured."
    return (text + f"The pooled code moves less than the pixels under {'; '.join(less)}, and more under "
            f"{'; '.join(more)}: relative to how far apart images are, it is stabler than the pixels under the "
            "first and less stable under the second.")


def pooled_with_k(changes: Mapping[str, Sequence[float]], ks: Sequence[int]) -> str:
    """Whether the pooled code's change (``changes[name][i]`` at ``K = ks[i]``, as
    in :func:`pooled`) falls with ``K``."""
    best = {n: ks[int(np.argmin(v))] for n, v in changes.items()}
    down = [n for n, v in changes.items() if falls(v)]
    if len(down) == len(changes):
        return (f"The pooled code's change falls at every step of $K$ (smallest at $K = {ks[-1]}$) for every "
                "perturbation.")
    if len(set(best.values())) == 1:
        where = f"$K = {next(iter(best.values()))}$ for every perturbation"
    else:
        where = "; ".join(f"$K = {k}$ ({n})" for n, k in best.items())
    return ("The pooled code's change does not fall steadily with $K$: of the $K$ measured, it is smallest at "
            f"{where}.")


def binary_derivative(margins: np.ndarray, steps: Sequence[float], changes: np.ndarray, d: int) -> str:
    """The binary code's derivative: ``margins`` the distance of sampled patches
    to their nearest code change (pixel units, l2 over ``d`` pixels),
    ``changes[i, b]`` the change of image ``b``'s pooled code after a step of
    length ``steps[i]`` (increasing) along a random direction."""
    m = np.asarray(margins)
    moved = np.asarray(changes) > 0
    positive = float((m > 0).mean())
    text = (f"{_pct(positive)} of the {len(m):,} sampled patches have a positive margin (median "
            f"{np.median(m):.2g}, 10% of them below {np.quantile(m, 0.1):.2g}, in pixel units over the {d} "
            f"pixels of a patch; one grey level on one pixel is {1 / 255:.2g}). ")
    if positive == 1 and not moved[0].any():
        text += ("Around each of them the code is constant, so its derivative is zero there; and no image's "
                 f"pooled code moved after a step of {steps[0]:.2g}. ")
    elif positive < 1:
        text += "Some patches sit exactly on a boundary, where the code jumps and has no derivative. "
    else:
        text += f"Yet some image's pooled code moved after the shortest step measured ({steps[0]:.2g}). "
    still = [h for h, row in zip(steps, moved) if not row.any()]
    every = [h for h, row in zip(steps, moved) if row.all()]
    if still and every:
        size = "smaller" if np.median(m) < 1 / 255 else "no smaller"
        text += (f"Steps up to {max(still):.2g} changed no pooled code, steps from {min(every):.2g} changed "
                 f"every one: the code is piecewise constant, with pieces (the median margin) {size} than one "
                 "grey level on one pixel.")
    elif every:
        text += f"Every step from {min(every):.2g} changed every pooled code."
    else:
        text += "No step measured changed every pooled code."
    return text


def soft_derivative(scales: Sequence[float], norms: np.ndarray, min_gaps: Sequence[float]) -> str:
    """The soft code's gradient as ``s -> 0``: ``norms[i, b]`` the Jacobian norm
    of image ``b``'s pooled soft code at ``scales[i]`` (decreasing), and
    ``min_gaps[b]`` the image's smallest gap between its ``K``-th and
    ``(K+1)``-th scores."""
    s = np.asarray(scales, dtype=float)
    n = np.asarray(norms, dtype=float)
    g = np.asarray(min_gaps, dtype=float)
    above = s > g.max()
    mean = n.mean(1)
    text = ""
    if above.sum() >= 2:
        slope = np.polyfit(np.log(s[above]), np.log(np.maximum(mean[above], 1e-300)), 1)[0]
        grows = falls(mean[above][::-1])  # increasing as s decreases
        trend = "grows" if grows else "does not grow steadily"
        text += (f"While $s$ is above every image's smallest gap, the gradient norm {trend} as $s$ decreases "
                 f"(log-log slope {slope:.2f}; -0.5 is what patches whose two boundary scores lie within $s$ of "
                 "each other give, each contributing about $1/s$, their share about $s$). ")
    peak = n.max()
    low = s < g.min()
    if low.any():
        last = n[low][-1].max() / peak
        if last < VANISHED:
            share = "exactly 0" if last == 0 else f"{last:.2g} times its peak"
            text += (f"Below the smallest gap ({g.min():.2g}) it collapses: at $s = {s[low][-1]:.2g}$ it is "
                     f"{share}. The soft code's derivative does tend to the binary code's, zero, as $s \\to 0$, but "
                     "only once $s$ is below every gap of the image: the limit is not uniform.")
        else:
            text += (f"Even below the smallest gap ({g.min():.2g}), at $s = {s[low][-1]:.2g}$, it is still "
                     f"{last:.2g} times its peak: over this range it does not vanish.")
    else:
        text += ("No scale measured is below every image's smallest gap, so the limit $s \\to 0$ is not reached "
                 "here.")
    return text


def conclusion(stable_with_k: bool, pooled_k_best: bool, zero_derivative: bool, soft_vanishes: bool) -> str:
    """The page's answer to the slide's last remark from four verdicts: the
    unpooled code's replaced share falls with ``K``; the pooled code is most
    stable at the largest ``K``; the binary code's derivative is zero at every
    sampled patch; the soft code's gradient vanishes at the smallest ``s``."""
    parts = []
    if stable_with_k and pooled_k_best:
        parts.append("*Relatively stable with large number of neighbors*: measured so, for the unpooled and the "
                     "pooled code.")
    elif stable_with_k:
        parts.append("*Relatively stable with large number of neighbors*: true of the share of a patch's "
                     "neighbours that changes, not of the pooled code, whose change is not smallest at the largest "
                     "$K$.")
    else:
        parts.append("*Relatively stable with large number of neighbors*: not what these measurements show.")
    if zero_derivative and soft_vanishes:
        parts.append("*The derivative of the output w.r.t input is zero*: for the binary code, at every sampled "
                     "patch; the soft code's tends to it as $s \\to 0$, though only below every gap of the image.")
    elif zero_derivative:
        parts.append("*The derivative of the output w.r.t input is zero*: for the binary code, at every sampled "
                     "patch; the soft code's does not vanish over the scales measured.")
    else:
        parts.append("*The derivative of the output w.r.t input is zero*: not at every sampled patch.")
    return " ".join(parts)
