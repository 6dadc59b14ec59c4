"""What the Part 1 pages say about their numbers (translation-instability,
wavelets-and-scattering, scattering-vs-convnets).

Each function takes measured numbers and returns the sentence a page shows,
so that the words follow the numbers: a sentence never says that a ratio
falls, a curve is flat or a value passes a bound when the numbers say
otherwise. Accuracies are in percent; ratios are plain numbers.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from patchbook.pages.published import Published

# Two slopes within this factor of each other are "about as stable".
SIMILAR_FACTOR = 1.5
# A line through 0 "fits" the mean curve when its R^2 is at least this.
LINEAR_R2 = 0.95
# A ratio curve is "flat" when its largest value is within this factor of its smallest.
FLAT_FACTOR = 1.5


def translation_ratio(ratios: Mapping[str, float]) -> str:
    """The verdict on ``{representation: change under a translation / distance
    to a digit of another class}`` (``"pixels"`` among them): which
    representations lower the ratio below that of pixels."""
    if "pixels" not in ratios or len(ratios) < 2:
        raise ValueError(f"need the ratio of pixels and of at least one other representation, got {list(ratios)}")
    pix = ratios["pixels"]
    others = {k: v for k, v in ratios.items() if k != "pixels"}
    best = min(others, key=others.get)
    head = ("The ratio in the last column is what matters to a nearest-neighbour classifier: a translation must "
            f"move a digit much less than a change of class does. It is {pix:.2f} for pixels")
    if others[best] >= pix:
        return (head + f", and no representation lowers it (the lowest, {others[best]:.2f}, is that of {best}): "
                "here averaging and scattering do not shrink the effect of the translation more than the distances "
                "between digits.")
    above = [k for k, v in others.items() if v >= pix]
    if above:
        return (head + f" and falls to {others[best]:.2f} for {best}, but not for every representation ("
                + ", ".join(above) + " stay at or above it).")
    return (head + f" and falls to {others[best]:.2f} for {best}: averaging and scattering shrink the effect of the "
            "translation more than they shrink the distances between digits.")


def energy_shares(shares: Mapping[int, float], n_digits: int, J: int, L: int) -> str:
    """The sentence on the share of ``||x||^2`` carried by each scattering order
    (``{order: share}``, shares as fractions)."""
    total = sum(shares.values())
    top = max(shares, key=shares.get)
    text = (f"Share of the energy $\\|x\\|^2$ of a digit carried by each order (mean over {n_digits} test digits, "
            f"$J={J}$, $L={L}$): " + ", ".join(f"order {k}: **{100 * v:.1f}%**" for k, v in shares.items())
            + f"; together {100 * total:.1f}% (coefficients times $2^J$, the step of their grid).")
    if 100 * total < 99.95:  # some energy is left out at the precision shown
        text += (" The rest is carried by higher orders and by the finest frequencies, which the wavelets only "
                 "partly cover.")
    if top == 0:
        return text + (" The average holds the largest share: a Euclidean distance on raw scattering coefficients "
                       "is dominated by it.")
    return text + f" Order {top} holds the largest share, more than the average (order 0)."


def stability(scattering: object, pixels: object, average: object) -> str:
    """The verdict on the stability fits (:class:`patchbook.invariance.stability.StabilityFit`,
    or anything with ``slope``, ``r2``, ``sup_ratio``, ``mean_ratio`` and
    ``variation``) of the scattering, the pixels and the Gaussian average."""
    s, p, a = scattering, pixels, average
    fits = "fits" if s.r2 >= LINEAR_R2 else "fits only roughly"
    text = (f"For the scattering transform a line through the origin of slope $K \\approx$ **{s.slope:.2f}** {fits} "
            f"the mean change (R² {s.r2:.4f}); the mean ratio change / $\\|\\nabla\\tau\\|_\\infty$ varies by "
            f"{100 * s.variation:.0f}% over the sweep, and no deformation in it exceeds **{s.sup_ratio:.2f}** "
            "$\\|x\\| \\|\\nabla\\tau\\|_\\infty$: the constant of the theorem, measured on these digits and fields. ")
    if p.slope > s.slope:
        text += f"The pixels move {p.slope / s.slope:.1f} times more at equal $\\|\\nabla\\tau\\|_\\infty$"
    else:
        text += (f"The pixels move no more than the scattering here ({p.slope / s.slope:.2f} times as much at equal "
                 "$\\|\\nabla\\tau\\|_\\infty$)")
    text += (f", and their ratio varies by {100 * p.variation:.0f}% over the sweep (from {p.mean_ratio[0]:.2f} at "
             f"the smallest amplitude to {p.mean_ratio[-1]:.2f} at the largest). ")
    factor = a.slope / s.slope
    if 1 / SIMILAR_FACTOR <= factor <= SIMILAR_FACTOR:
        verdict = "is about as stable as the scattering"
    elif factor < 1:
        verdict = f"is more stable than the scattering ({1 / factor:.1f} times smaller a slope)"
    else:
        verdict = f"is less stable than the scattering ({factor:.1f} times its slope)"
    return text + (f"The Gaussian average (slope {a.slope:.2f}, variation {100 * a.variation:.0f}%) {verdict}, but "
                   "it has thrown away the detail that orders 1 and 2 keep.")


def frequency_sweep(pixels: Sequence[float], scattering: Sequence[float]) -> str:
    """The verdict on the ratios change / (``||x|| ||grad tau||_inf``) of
    pixels and scattering over patterns of growing frequency."""
    p0, p1 = pixels[0], pixels[-1]
    smin, smax = min(scattering), max(scattering)
    text = (f"From the lowest to the highest frequency the pixel ratio goes from {p0:.2f} to {p1:.2f} "
            f"({p1 / p0:.1f} times), the scattering ratio from {scattering[0]:.2f} to {scattering[-1]:.2f}. ")
    if p1 > FLAT_FACTOR * p0:
        text += ("The pixel ratio grows with the frequency (until the pattern and its dilation decorrelate), so no "
                 "constant $K$ bounds it over all images")
    else:
        text += "The pixel ratio does not grow much over these frequencies"
    if smax <= FLAT_FACTOR * smin:
        return text + f"; the scattering ratio stays flat (within a factor {smax / smin:.2f})."
    return text + f"; the scattering ratio is not flat either (it varies by a factor {smax / smin:.2f})."


def versus_published(measured: float, entry: Published) -> str:
    """How a measured accuracy (percent) stands against a published one: a
    bound is passed or not (no gap), a value has a gap in points."""
    if entry.kind == "bound":
        passes = {">": measured > entry.value, ">=": measured >= entry.value,
                  "<": measured < entry.value, "<=": measured <= entry.value}[entry.relation]
        return f"{'meets' if passes else 'does not meet'} the bound {entry.text()}"
    gap = entry.gap(measured)
    if gap == 0:
        return f"equal to {entry.text()}"
    return f"{abs(gap):.1f} points {'above' if gap > 0 else 'below'} {entry.text()}"
