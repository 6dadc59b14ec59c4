"""What the style pages (Part 3) say about their numbers.

Each function takes measured values (distances from :mod:`patchbook.style.metrics`:
lower is closer; seconds) and returns the sentence a page shows, so that a
sentence never says the opposite of its numbers. Methods are named by their
keys (``"gatys"``...) and shown with ``labels`` (default: the keys).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from patchbook.pages.tables import Md


def join(names: Sequence[str]) -> str:
    """``"A"``, ``"A and B"``, ``"A, B and C"``."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def lowest(values: Mapping[str, float]) -> list[str]:
    """The keys with the smallest value (several on a tie; NaN ignored)."""
    finite = {k: v for k, v in values.items() if not math.isnan(v)}
    if not finite:
        raise ValueError("no value to rank")
    best = min(finite.values())
    return [k for k, v in finite.items() if v == best]


def trend(values: Sequence[float]) -> str:
    """``"falls"``, ``"rises"``, ``"stays"`` (strictly monotone, or constant)
    or ``"is not monotone"`` along ``values``; ``"stays"`` for one value."""
    steps = [b - a for a, b in zip(values, values[1:])]
    if all(d == 0 for d in steps):
        return "stays"
    if all(d < 0 for d in steps):
        return "falls"
    if all(d > 0 for d in steps):
        return "rises"
    return "is not monotone"


def _label(labels: Mapping[str, str] | None, key: str) -> str:
    return (labels or {}).get(key, key)


def _verb(keys: Sequence, singular: str, plural: str) -> str:
    return singular if len(keys) == 1 else plural


def _seconds(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


def _named(keys: Sequence[str], values: Mapping[str, float], labels, digits: int = 3) -> str:
    return join([f"{_label(labels, k)} ({values[k]:.{digits}f})" for k in keys])


# ------------------------------------------------- one photograph, one painting ----


def closest_to_painting(gram: Mapping[str, float], photo: float, labels: Mapping[str, str] | None = None) -> Md:
    """Which rendering is closest to the painting's statistics (``gram``: each
    method's style distance), and which renderings end farther from the
    painting than the photograph itself (distance ``photo``)."""
    best = lowest(gram)
    text = (f"Closest to the painting's statistics: {_named(best, gram, labels)}; the photograph itself is at "
            f"{photo:.3f}.")
    farther = [m for m, v in gram.items() if v >= photo]
    if not farther:
        return Md(text + " Every method moves the photograph towards the painting.")
    return Md(text + f" Not closer to the painting than the photograph it started from: "
                     f"{_named(farther, gram, labels)}.")


def keeps_most(content: Mapping[str, float], labels: Mapping[str, str] | None = None) -> Md:
    """Which rendering keeps most of the photograph's structure (lowest content distance)."""
    return Md(f"Closest to the photograph's structure: {_named(lowest(content), content, labels)}.")


def alpha_tradeoff(alphas: Sequence[float], style: Sequence[float], content: Sequence[float]) -> Md:
    """What the sweep of Gatys' style weight shows: ``style[i]`` and
    ``content[i]`` are the distances to the painting and to the photograph at
    ``alphas[i]`` (sorted here by alpha)."""
    if not len(alphas) == len(style) == len(content):
        raise ValueError(f"{len(alphas)} weights for {len(style)} style and {len(content)} content distances")
    if len(alphas) < 2:
        return Md("One value of $\\alpha$ only at this profile: no trend to read.")
    order = sorted(range(len(alphas)), key=lambda i: alphas[i])
    a, s, c = [alphas[i] for i in order], [style[i] for i in order], [content[i] for i in order]
    ts, tc = trend(s), trend(c)
    text = (f"As $\\alpha$ grows from {a[0]:g} to {a[-1]:g}, the style distance to the painting {ts} "
            f"({s[0]:.3f} to {s[-1]:.3f}) and the content distance to the photograph {tc} ({c[0]:.3f} to {c[-1]:.3f})")
    if ts == "falls" and tc == "rises":
        return Md(text + ": a larger $\\alpha$ moves the image towards the painting's statistics and away from "
                         "the photograph.")
    return Md(text + ": not the clean trade-off (towards the painting, away from the photograph) the loss "
                     "suggests, at this budget.")


def speed(seconds: Mapping[str, float], kinds: Mapping[str, str], labels: Mapping[str, str] | None = None) -> Md:
    """Run times by kind of method (``kinds[m]`` is ``"optimisation"`` or
    ``"feed-forward"``): their ranges, and whether every feed-forward method
    was faster than every optimisation one."""
    by = {k: {m: s for m, s in seconds.items() if kinds[m] == k} for k in ("optimisation", "feed-forward")}
    parts = [f"the {k} methods took {_seconds(min(v.values()))} to {_seconds(max(v.values()))} s" if len(v) > 1
             else f"the {k} method ({_label(labels, next(iter(v)))}) took {_seconds(next(iter(v.values())))} s"
             for k, v in by.items() if v]
    text = "On this machine " + join(parts)
    if not (by["optimisation"] and by["feed-forward"]):
        return Md(text + ".")
    if max(by["feed-forward"].values()) < min(by["optimisation"].values()):
        return Md(text + ": every feed-forward method was faster than every optimisation method.")
    slow = [m for m, s in by["feed-forward"].items() if s >= min(by["optimisation"].values())]
    return Md(text + f": not every feed-forward method was faster than every optimisation method "
                     f"({join([_label(labels, m) for m in slow])} not).")


# ----------------------------------------------------------- Monet's canvases ----


Interval = Sequence[float]  # (mean, low, high)


def _ci(x: Interval, digits: int = 3) -> str:
    m, lo, hi = x
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _side(diff: Interval) -> str:
    """``"below"`` (the interval lies under 0), ``"above"`` or ``"across"`` (it holds 0)."""
    _, lo, hi = diff
    return "below" if hi < 0 else "above" if lo > 0 else "across"


def against_references(dist: Mapping[str, Interval], photo: Interval, canvas: Interval,
                       diffs: Mapping[str, Interval], n_pairs: int,
                       labels: Mapping[str, str] | None = None, level: float = 0.95) -> Md:
    """The comparison with the held-out canvases: ``dist[m]`` each method's
    mean distance to them with its interval ``(mean, low, high)``, ``photo``
    the photograph's (no stylisation), ``canvas`` the style canvas' (another
    canvas of the series: the ceiling), ``diffs[m]`` the mean difference
    method minus photograph over the same pairs, with its interval. A method
    is *closer than the photograph* when that interval lies below 0, *farther*
    when above; otherwise the pairs cannot tell."""
    best = lowest({m: v[0] for m, v in dist.items()})
    pairs = f"{n_pairs} pair{'s' if n_pairs != 1 else ''}"
    text = (f"Mean over {pairs} ({level:.0%} intervals): closest to the held-out canvas is "
            f"{join([f'{_label(labels, m)} ({_ci(dist[m])})' for m in best])}, against {_ci(photo)} for the "
            f"photograph itself and {_ci(canvas)} for the style canvas. ")
    side = {m: _side(diffs[m]) for m in dist}
    closer = [_label(labels, m) for m in dist if side[m] == "below"]
    farther = [_label(labels, m) for m in dist if side[m] == "above"]
    unsure = [_label(labels, m) for m in dist if side[m] == "across"]
    parts = []
    if closer:
        parts.append(f"{join(closer)} {_verb(closer, 'comes', 'come')} closer than the photograph, pair for pair "
                     "(the interval of the difference lies below 0)")
    if farther:
        parts.append(f"{join(farther)} {_verb(farther, 'ends', 'end')} farther than the photograph")
    if unsure:
        parts.append(f"for {join(unsure)} the {pairs} cannot tell (the interval of the difference holds 0)")
    text += "; ".join(parts)[:1].upper() + "; ".join(parts)[1:] + ". "
    beyond = [m for m, v in dist.items() if v[2] < canvas[1]]
    reach = [m for m, v in dist.items() if v[1] <= canvas[2]]
    if beyond:
        text += (f"{join([_label(labels, m) for m in beyond])} {_verb(beyond, 'comes', 'come')} even closer than the "
                 "style canvas, beyond both intervals.")
    elif reach:
        text += (f"The intervals of {join([_label(labels, m) for m in reach])} overlap the style canvas': as close "
                 "as another canvas Monet painted of the motif, as far as these pairs can tell.")
    else:
        text += "None comes as close as the style canvas, another canvas Monet painted of the motif."
    return Md(text)


def position_wise(dist: Mapping[str, Interval], photo: Interval, diffs: Mapping[str, Interval],
                  labels: Mapping[str, str] | None = None) -> Md:
    """The position-by-position comparison of aligned pairs: ``dist[m]`` the
    distance between the features of a method's rendering and of the held-out
    canvas at the same positions, ``photo`` the photograph's, ``diffs[m]`` the
    differences method minus photograph (all ``(mean, low, high)``)."""
    side = {m: _side(diffs[m]) for m in dist}
    closer = [_label(labels, m) for m in dist if side[m] == "below"]
    farther = [_label(labels, m) for m in dist if side[m] == "above"]
    text = (f"Position by position, the aligned photograph is at {_ci(photo)} from the canvas. ")
    if closer and not farther and len(closer) == len(dist):
        return Md(text + "Every method brings it closer, pair for pair.")
    parts = []
    if closer:
        parts.append(f"{join(closer)} {_verb(closer, 'brings', 'bring')} it closer, pair for pair")
    if farther:
        parts.append(f"{join(farther)} {_verb(farther, 'takes', 'take')} it farther: the photograph's own "
                     "features are nearer Monet's, where he put them, than the rendering's")
    rest = [_label(labels, m) for m in dist if side[m] == "across"]
    if rest:
        parts.append(f"for {join(rest)} the pairs cannot tell")
    return Md(text + "; ".join(parts)[:1].upper() + "; ".join(parts)[1:] + ".")


def alignment_errors(rms: Mapping[str, float], loo: Mapping[str, float], side: int) -> Md:
    """The alignments in one sentence: ``rms[p]`` the RMS residual of pair
    ``p``'s points after the fit, ``loo[p]`` the RMS distance of each point
    left out of the fit to its partner, in pixels of canvas frames ``side``
    pixels on the long side."""
    if not rms:
        return Md("")
    worst = max(loo, key=loo.get)
    text = (f"The homographies fit their points to {min(rms.values()):.1f}-{max(rms.values()):.1f} px RMS "
            f"(canvases of {side} px on the long side); a point left out of the fit lands "
            f"{min(loo.values()):.1f}-{max(loo.values()):.1f} px RMS from its partner, worst for {worst}")
    bad = [p for p, v in loo.items() if v > 0.1 * side]
    if bad:
        return Md(text + f". For {join(bad)} that is over a tenth of the canvas: the scene is far from a plane "
                         "seen from two viewpoints, and the position-wise distances of that pair are rough.")
    return Md(text + ", under a tenth of the canvas for every pair.")


def decoder_psnr(psnr: Mapping[str, Interval], target: float = 20.0, kind: str = "adain",
                 labels: Mapping[str, str] | None = None) -> Md:
    """Whether the decoder ``kind`` reconstructs held-out photographs to
    ``target`` dB: ``psnr[k] = (mean, low, high)`` for each decoder."""
    m, lo, hi = psnr[kind]
    text = f"The {_label(labels, kind)} decoder reconstructs the held-out photographs to {m:.1f} dB [{lo:.1f}, {hi:.1f}]"
    if lo >= target:
        return Md(text + f": above the {target:g} dB aimed at.")
    if m >= target:
        return Md(text + f": {target:g} dB on average, though the interval reaches below it.")
    best = max(psnr, key=lambda k: psnr[k][0])
    other = (f"; the best decoder here is {_label(labels, best)} ({psnr[best][0]:.1f} dB)" if best != kind else "")
    return Md(text + f", short of the {target:g} dB aimed at{other}.")


def closest_to_both(gram: Mapping[str, float], content: Mapping[str, float],
                    labels: Mapping[str, str] | None = None) -> Md:
    """Whether the method closest to the painting (``gram``) is also the one
    that keeps most of the photograph (``content``)."""
    to_painting, to_photo = lowest(gram), lowest(content)
    both = [m for m in to_painting if m in to_photo]
    if both:
        return Md(f"{join([_label(labels, m) for m in both])} {_verb(both, 'is', 'are')} both the closest to the "
                  "painting and the closest to the photograph's structure.")
    return Md(f"The method closest to the painting ({join([_label(labels, m) for m in to_painting])}) is not "
              f"the one closest to the photograph's structure ({join([_label(labels, m) for m in to_photo])}): "
              "no method is closest to both.")


# --------------------------------------------------------- iterated projections ----


def first_projection(drift: Mapping[str, Mapping[str, Sequence[float]]],
                     labels: Mapping[str, str] | None = None) -> Md:
    """What the first projection does. ``drift[m]["style"]`` and
    ``drift[m]["content"]`` are the distances to the painting and to the
    photograph at steps 0 .. n (:func:`patchbook.style.projections.drift`).
    Says for which methods step 1 moves towards the painting (the style
    distance falls), and for which it changes both distances more than the
    later steps do together (net, step 1 to n)."""
    if not drift:
        return Md("")
    towards = [m for m, d in drift.items() if d["style"][1] < d["style"][0]]
    away = [m for m in drift if m not in towards]
    most = [m for m, d in drift.items()
            if abs(d["style"][1] - d["style"][0]) >= abs(d["style"][-1] - d["style"][1])
            and abs(d["content"][1] - d["content"][0]) >= abs(d["content"][-1] - d["content"][1])]
    names = lambda ms: join([_label(labels, m) for m in ms])  # noqa: E731
    parts = []
    if towards:
        parts.append(f"The first projection lowers the style distance to the painting for {names(towards)}")
    if away:
        parts.append(f"{'it does not' if towards else 'The first projection does not lower the style distance'}"
                     f" for {names(away)}")
    text = "; ".join(parts) + ". "
    n = max(len(d["style"]) for d in drift.values()) - 1
    if n < 2:
        return Md(text + "One projection only: nothing to compare it with.")
    if len(most) == len(drift):
        return Md(text + "For every method the first step changes both distances more than the later steps "
                         "do together.")
    if most:
        rest = [m for m in drift if m not in most]
        return Md(text + f"The first step changes both distances more than the later steps do together for "
                         f"{names(most)}, not for {names(rest)}.")
    return Md(text + "For no method does the first step change both distances more than the later steps do "
                     "together.")


def later_projections(drift: Mapping[str, Mapping[str, Sequence[float]]],
                      labels: Mapping[str, str] | None = None) -> Md:
    """Where the later projections (steps 2 .. n) take the image: closer to
    the painting's statistics or farther (style distance at step n against
    step 1), and farther from the photograph or back towards it."""
    if not drift:
        return Md("")
    n = max(len(d["style"]) for d in drift.values()) - 1
    if n < 2:
        return Md("One projection only: no later step to follow.")
    names = lambda ms: join([_label(labels, m) for m in ms])  # noqa: E731
    closer = [m for m, d in drift.items() if d["style"][-1] < d["style"][1]]
    farther = [m for m in drift if m not in closer]
    leave = [m for m, d in drift.items() if d["content"][-1] > d["content"][1]]
    parts = []
    if closer:
        parts.append(f"bring {names(closer)} closer to the painting's statistics")
    if farther:
        parts.append(f"take {names(farther)} farther from them (a wander, not a convergence)")
    text = f"From step 1 to step {n}, the later projections " + " and ".join(parts) + "; "
    if len(leave) == len(drift):
        return Md(text + "every method keeps moving away from the photograph.")
    if leave:
        back = [m for m in drift if m not in leave]
        return Md(text + f"{names(leave)} {_verb(leave, 'keeps', 'keep')} moving away from the photograph, "
                         f"{names(back)} {_verb(back, 'comes', 'come')} back towards it.")
    return Md(text + "no method moves farther from the photograph than at step 1.")


def amplification(amps: Mapping[str, float], step: int, labels: Mapping[str, str] | None = None,
                  margin: float = 0.25) -> Md:
    """Which methods amplify a perturbation of the photograph, which shrink
    it and which keep it about as it is: ``amps[m]`` is the spread between
    chains at ``step`` over the perturbation's RMS, above ``1 + margin``,
    below ``1 / (1 + margin)``, or in between."""
    if not amps:
        return Md("")
    names = lambda ms: _named(ms, amps, labels, digits=2)  # noqa: E731
    up = [m for m, a in amps.items() if a > 1 + margin]
    down = [m for m, a in amps.items() if a < 1 / (1 + margin)]
    same = [m for m in amps if m not in up and m not in down]
    parts = []
    if up:
        parts.append(f"{names(up)} {_verb(up, 'amplifies', 'amplify')} the perturbation: the chains drift apart, "
                     "several candidate canvases from one photograph")
    if down:
        parts.append(f"{names(down)} {_verb(down, 'shrinks', 'shrink')} {'it' if parts else 'the perturbation'}: "
                     "the chains come back to about the same image")
    if same:
        parts.append(f"{names(same)} {_verb(same, 'keeps', 'keep')} {'it' if parts else 'the perturbation'} about "
                     f"as it is (within {margin:.0%}): neither a source of diversity nor a return to one image")
    return Md(f"By step {step}, " + "; ".join(parts) + ".")
