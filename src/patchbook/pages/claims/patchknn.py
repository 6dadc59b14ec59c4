"""What the Part 2 pages say about their numbers (cifar10-table, ablations,
imagenet-table).

Each function takes measured numbers and returns the sentence a page shows,
as a :class:`Claim`: Markdown text with ``holds``, whether the claim it
judges holds for the numbers (``None``: not judged, the numbers are missing).
The words follow ``holds``, so a sentence never says that fewer neighbours
overfit, that whitening is the key step or that the ranking agrees when the
numbers say otherwise. Published values come from the registry
(:mod:`patchbook.pages.published`); which entry each measured point is
compared with is held here (:data:`ABLATION_LOGS`). Accuracies are in
percent; "two standard errors" are those of one measured accuracy
(:func:`patchbook.stats.standard_error`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from patchbook.pages import profiles
from patchbook.pages.profiles.cifar10_table import PAPER_ROWS
from patchbook.pages.published import Published, get
from patchbook.pages.tables import Md
from patchbook.patchknn.pipeline import PointConfig

D_PUBLISHED = 2048  # |D| of the authors' ablation runs


class Claim(Md):
    """A page's sentence on its numbers, with ``holds``: whether what it
    judges holds (``None``: not judged)."""

    holds: bool | None

    def __new__(cls, text: str, holds: bool | None) -> "Claim":
        self = super().__new__(cls, text)
        self.holds = holds
        return self


@dataclass(frozen=True)
class Measured:
    """One measured point of a sweep: the swept ``value``, the test accuracy
    after the last epoch (``test``), the training accuracy (``train``) and
    the best test accuracy over the epochs (``best``), in percent."""

    value: object
    test: float
    train: float = math.nan
    best: float = math.nan


# ------------------------------------------------------------- cifar-10 ----

# The authors' runs of the CIFAR-10 page's paper rows, (best, final): the
# profile's own row, then those of PAPER_ROWS in order.
CIFAR_LOGS = (
    ("cifar10-table/simplepatch-2048-best", "cifar10-table/simplepatch-2048-final"),
    ("cifar10-table/simplepatch-16384-best", "cifar10-table/simplepatch-16384-final"),
    ("cifar10-table/simplepatch-65536-best", "cifar10-table/simplepatch-65536-final"),
    ("cifar10-table/simplepatch-65536-soft-best", "cifar10-table/simplepatch-65536-soft-final"),
)


def cifar_logged(config: PointConfig) -> "Logged":
    """The authors' run a CIFAR-10 row is, if any: its point equal to the
    paper profile's own row or to one of
    :data:`patchbook.pages.profiles.cifar10_table.PAPER_ROWS` (a row at
    another scale has none: its accuracy is not comparable)."""
    P = profiles.resolve("cifar10-table", "paper")
    for row, (best, final) in zip([{}] + PAPER_ROWS, CIFAR_LOGS):
        if config.key() == PointConfig.from_params(P, **row).key():
            return Logged(get(best), get(final), None)
    return Logged(None, None, None)


# ------------------------------------------------------------ ablations ----

# The authors' runs each ablation point is compared with: sweep -> the sweep's
# value in the authors' terms -> (best test, final test, final train) entries.
ABLATION_LOGS: dict[str, dict[object, tuple[str, str, str | None]]] = {
    "k": {
        10: ("ablations/k-10-test-best", "ablations/k-10-test-final", "ablations/k-10-train-final"),
        50: ("ablations/k-50-test-best", "ablations/k-50-test-final", "ablations/k-50-train-final"),
        100: ("ablations/k-100-test-best", "ablations/k-100-test-final", "ablations/k-100-train-final"),
        500: ("ablations/k-500-test-best", "ablations/k-500-test-final", "ablations/k-500-train-final"),
        800: ("ablations/k-800-test-best", "ablations/k-800-test-final", "ablations/k-800-train-final"),
        1000: ("ablations/k-1000-test-best", "ablations/k-1000-test-final", "ablations/k-1000-train-final"),
        1500: ("ablations/k-1500-test-best", "ablations/k-1500-test-final", "ablations/k-1500-train-final"),
    },
    "patch": {
        4: ("ablations/q-4-test-best", "ablations/q-4-test-final", None),
        5: ("ablations/q-5-test-best", "ablations/q-5-test-final", None),
        6: ("ablations/q-6-test-best", "ablations/q-6-test-final", None),
        7: ("ablations/q-7-test-best", "ablations/q-7-test-final", None),
        8: ("ablations/q-8-test-best", "ablations/q-8-test-final", None),
        9: ("ablations/q-9-test-best", "ablations/q-9-test-final", None),
    },
    "lam": {
        0.0: ("ablations/lambda-0-test-best", "ablations/lambda-0-test-final", None),
        1e-5: ("ablations/lambda-1e-5-test-best", "ablations/lambda-1e-5-test-final", None),
        1e-4: ("ablations/lambda-1e-4-test-best", "ablations/lambda-1e-4-test-final", None),
        1e-3: ("ablations/lambda-1e-3-test-best", "ablations/lambda-1e-3-test-final", None),
        1e-2: ("ablations/lambda-1e-2-test-best", "ablations/lambda-1e-2-test-final", None),
        0.1: ("ablations/lambda-0.1-test-best", "ablations/lambda-0.1-test-final", None),
        1.0: ("ablations/lambda-1-test-best", "ablations/lambda-1-test-final", None),
        10.0: ("ablations/lambda-10-test-best", "ablations/lambda-10-test-final", None),
    },
    "n_atoms": {  # |D| as a multiple of the authors' 2048
        0.25: ("ablations/atoms-512-test-best", "ablations/atoms-512-test-final", None),
        0.5: ("ablations/atoms-1024-test-best", "ablations/atoms-1024-test-final", None),
        1.0: ("ablations/atoms-2048-test-best", "ablations/atoms-2048-test-final", None),
        2.0: ("ablations/atoms-4096-test-best", "ablations/atoms-4096-test-final", None),
    },
    "soft": {  # the authors' --sigmoid, in their units
        0.001: ("ablations/sigmoid-0.001-test-best", "ablations/sigmoid-0.001-test-final", None),
        1.0: ("ablations/sigmoid-1-test-best", "ablations/sigmoid-1-test-final", None),
        2.0: ("ablations/sigmoid-2-test-best", "ablations/sigmoid-2-test-final", None),
        4.0: ("ablations/sigmoid-4-test-best", "ablations/sigmoid-4-test-final", None),
        10.0: ("ablations/sigmoid-10-test-best", "ablations/sigmoid-10-test-final", None),
        100.0: ("ablations/sigmoid-100-test-best", "ablations/sigmoid-100-test-final", None),
        1000.0: ("ablations/sigmoid-1000-test-best", "ablations/sigmoid-1000-test-final", None),
    },
    "classifier": {
        "linear": ("ablations/classifier-linear-test-best", "ablations/classifier-linear-test-final", None),
        "bottleneck 64": ("ablations/classifier-bottleneck-64-test-best",
                          "ablations/classifier-bottleneck-64-test-final", None),
        "bottleneck 128": ("ablations/classifier-bottleneck-128-test-best",
                           "ablations/classifier-bottleneck-128-test-final", None),
        "bottleneck 256": ("ablations/classifier-bottleneck-256-test-best",
                           "ablations/classifier-bottleneck-256-test-final", None),
    },
}
# The authors' base run (the same line of several of their files): the reference of the sweeps.
ABLATION_BASE = ("ablations/q-6-test-best", "ablations/q-6-test-final")


@dataclass(frozen=True)
class Logged:
    """The authors' values of one ablation point: best and final test, final train."""

    best: Published | None
    final: Published | None
    train: Published | None


def logged(sweep: str, value: object) -> Logged:
    """The registry entries of the authors' run of ``sweep`` at ``value``
    (their terms: K of 2048, Q, lambda, |D| / 2048, --sigmoid, classifier),
    or empty ones where they have none."""
    ids = ABLATION_LOGS.get(sweep, {}).get(value)
    if ids is None:
        return Logged(None, None, None)
    return Logged(*(get(i) if i else None for i in ids))


def published_curve(sweep: str, kind: str = "final") -> tuple[list, list[float]]:
    """``(values, accuracies)`` of the authors' sweep, sorted by value:
    ``kind`` ``"final"`` (final test, what their figure script plots),
    ``"best"`` or ``"train"`` (final train; K only)."""
    pts = []
    for v, ids in ABLATION_LOGS[sweep].items():
        i = {"best": 0, "final": 1, "train": 2}[kind]
        if ids[i]:
            pts.append((v, get(ids[i]).value))
    if sweep != "classifier":
        pts.sort(key=lambda p: p[0])
    return [p[0] for p in pts], [p[1] for p in pts]


def _pub(sweep: str, value: object, kind: str = "final") -> Published:
    e = getattr(logged(sweep, value), kind)
    if e is None:
        raise KeyError(f"no published {kind} value of {sweep} = {value!r}")
    return e


def _spread(points: Sequence[Measured]) -> float:
    a = [p.test for p in points]
    return max(a) - min(a)


def _lam(v: float) -> str:
    return "0" if v == 0 else f"{v:g}"


def neighbours(points: Sequence[Measured], base: Measured, n_atoms: int, se: float) -> Claim:
    """"Large number of neighbors reduces overfitting": ``points`` the K sweep
    (``value`` the measured K), ``base`` the base K. Holds when the gap
    between training and test accuracy at the smallest K exceeds the base
    K's by more than two standard errors."""
    pts = sorted(points, key=lambda p: p.value)
    small, best = pts[0], max(pts, key=lambda p: p.test)
    gap_small, gap_base = small.train - small.test, base.train - base.test
    holds = gap_small > gap_base + 2 * se
    p10, p800 = logged("k", 10), logged("k", 800)
    logs = (f"train {p10.train.text()} → {p800.train.text()}, test {p10.final.text()} → {p800.final.text()} from "
            f"$K = 10$ to 800 of {D_PUBLISHED}, after the last epoch")
    text = (f"**Neighbours.** With $K = {small.value}$ ($K/|D| = {small.value / n_atoms:.3f}$) the head reaches "
            f"{small.train:.1f}% on its training images and {small.test:.1f}% on the test images after the last "
            f"epoch, a gap of {gap_small:.1f} points; at the base $K = {base.value}$ the gap is {gap_base:.1f} points "
            f"({base.train:.1f}% / {base.test:.1f}%), and the best $K$ of the sweep, {best.value} "
            f"($K/|D| = {best.value / n_atoms:.2f}$), gives {best.test:.1f}%. ")
    if holds:
        text += f"More neighbours do reduce overfitting here, as the talk says (the authors' logs: {logs})."
    else:
        text += (f"Here the gap does not shrink by more than two standard errors ({2 * se:.1f} points) with more "
                 f"neighbours, unlike the authors' logs ({logs}): at this scale the measurement does not show the "
                 "effect.")
    return Claim(text, holds)


def patch_size(points: Sequence[Measured], se: float) -> Claim:
    """"Patch size does not affect the performance": holds when the measured
    spread over Q is within twice the authors' spread or four standard
    errors, whichever is larger."""
    spread = _spread(points)
    qs, accs = published_curve("patch")
    pub_spread = max(accs) - min(accs)
    best, pub_best = max(points, key=lambda p: p.test), qs[accs.index(max(accs))]
    holds = spread <= max(2 * pub_spread, 4 * se)
    text = (f"**Patch size.** Over $Q$ = {', '.join(str(p.value) for p in points)} the test accuracy spans "
            f"{spread:.1f} points (best at $Q = {best.value}$, {best.test:.1f}%), against {pub_spread:.2f} in the "
            f"authors' logs (best at $Q = {pub_best}$, {_pub('patch', pub_best).text()}); two standard errors are "
            f"{2 * se:.1f} points. ")
    text += ("The patch size matters little, as the talk says." if holds else
             "It matters more here than in the authors' runs.")
    return Claim(text, holds)


def whitening_key(base: Measured, no_whitening: Measured, others: Mapping[str, float]) -> Claim:
    """"Whitening is key aspect": holds when dropping the whitening costs more
    test accuracy than the largest change any other swept parameter makes
    (``others``: sweep name -> spread of its test accuracies)."""
    drop = base.test - no_whitening.test
    name, other = max(others.items(), key=lambda kv: kv[1])
    holds = drop > other
    w, nw = get("imagenet-table/simplepatch-64-log-top1"), get("imagenet-table/nowhitening-64-log-top1")
    text = (f"**Whitening.** Without whitening (Euclidean neighbours of centred patches) the test accuracy is "
            f"{no_whitening.test:.1f}%, {abs(drop):.1f} points {'below' if drop >= 0 else 'above'} the whitened base "
            f"setting; the largest change of any other swept parameter ({name}) is {other:.1f} points. ")
    text += (f"Whitening is the step that matters most of these, as the talk says (the authors' ImageNet-64 run fell "
             f"from {w.text()} to {nw.text()} top-1 without it)." if holds else
             "Here whitening is not the largest effect, unlike the talk's remark.")
    return Claim(text, holds)


def regularisation(points: Sequence[Measured], se: float) -> Claim:
    """"Whitening does not need regularization" (the sweep of lambda): holds
    when lambda = 0 is within two standard errors of the best lambda; not
    judged when the sweep has no lambda = 0."""
    best = max(points, key=lambda p: p.test)
    near = [p.value for p in points if p.test >= best.test - se]
    worst = min(points, key=lambda p: p.test)
    zero = next((p for p in points if p.value == 0), None)
    lams, accs = published_curve("lam")
    pub_best = lams[accs.index(max(accs))]
    text = (f"**Regularisation.** The best $\\lambda$ of the sweep is {_lam(best.value)} ({best.test:.1f}%); within "
            f"one standard error of it: {', '.join(_lam(v) for v in near)}; at $\\lambda = {_lam(worst.value)}$ the "
            f"accuracy falls to {worst.test:.1f}%. The authors' logs: {_pub('lam', 0.0).text()} without "
            f"regularisation, {_pub('lam', pub_best).text()} at their best $\\lambda = {_lam(pub_best)}$ and "
            f"{_pub('lam', 10.0).text()} at $\\lambda = 10$ (after the last epoch). ")
    if zero is None:
        return Claim(text + "This sweep has no $\\lambda = 0$, so it does not test the talk's sentence.", None)
    holds = best.test - zero.test <= 2 * se
    text += (f"Without regularisation the accuracy is within two standard errors of the best "
             f"({zero.test:.1f}%): whitening needs no regularisation here, as the talk says." if holds else
             f"Without regularisation the accuracy is {best.test - zero.test:.1f} points below the best, more than "
             "two standard errors: here the regularisation matters, as it does in the authors' logs.")
    return Claim(text, holds)


def dictionary_size(points: Sequence[Measured], n_atoms: int) -> Claim:
    """The gain per doubling of |D| (``value``: |D| / base |D|); holds when
    more atoms help (a positive gain), as in the authors' sweep."""
    pts = sorted(points, key=lambda p: p.value)
    lo, hi = pts[0], pts[-1]
    gain = (hi.test - lo.test) / max(math.log2(hi.value / lo.value), 1e-9)
    f, acc = published_curve("n_atoms")
    pub_gain = (acc[-1] - acc[0]) / math.log2(f[-1] / f[0])
    text = (f"**Dictionary size.** From $|D| = {round(lo.value * n_atoms)}$ to {round(hi.value * n_atoms)} the test "
            f"accuracy goes from {lo.test:.1f}% to {hi.test:.1f}%, {gain:+.1f} points per doubling (the authors' logs: "
            f"{pub_gain:+.1f} per doubling from {round(f[0] * D_PUBLISHED)} to {round(f[-1] * D_PUBLISHED)}). ")
    holds = gain > 0
    text += "More atoms help, as in the authors' sweep." if holds else "Here more atoms do not help."
    return Claim(text, holds)


def soft_code(points: Sequence[Measured], base: Measured, ratio: float, se: float) -> Claim:
    """The soft code (``value``: the authors' s, the points measured in their
    formulation and unit; ``base``: their binary code, ``ratio``: what one
    unit of theirs is worth in ours): holds when the best scale is
    at least as good as the binary code and the largest scale falls more
    than two standard errors below it -- the two halves of the authors' curve.
    The sentence says "helps" only for a gain beyond two standard errors."""
    pts = sorted(points, key=lambda p: p.value)
    best, last = max(pts, key=lambda p: p.test), pts[-1]
    s, acc = published_curve("soft")
    pub_best = s[acc.index(max(acc))]
    holds = best.test >= base.test and last.test < base.test - 2 * se
    text = (f"**Soft code.** Measured in the authors' formulation, so with their threshold and in their unit, the "
            f"best scale is $s = {best.value:g}$ (about {best.value * ratio:.3g} in our unit), "
            f"{best.test:.1f}% against {base.test:.1f}% for their binary code; at $s = {last.value:g}$ the accuracy is "
            f"{last.test:.1f}% (the authors' logs: best at $s = {pub_best:g}$, {_pub('soft', pub_best).text()}, and "
            f"{_pub('soft', s[-1]).text()} at $s = {s[-1]:g}$, after the last epoch). ")
    gain = best.test - base.test
    pub_gain = _pub("soft", pub_best).value - get(ABLATION_BASE[1]).value
    if holds and gain > 2 * se:
        text += (f"A soft code helps at a moderate scale ({gain:+.1f} points, more than two standard errors) and "
                 "destroys the code at a large one, as published.")
    elif holds:
        text += (f"At its best scale the soft code does as well as the binary one ({gain:+.1f} points, within two "
                 f"standard errors: the authors' gain of {pub_gain:+.1f} points is not resolved at this scale) and a "
                 "large scale destroys the code, as published.")
    else:
        text += ("The measured curve does not reproduce both halves of the published one (no loss, and in their "
                 "runs a small gain, at a moderate scale; a collapse at a large one) at this scale.")
    return Claim(text, holds)


def formulation_gap(ours: Measured, authors: Measured, se_ours: float, se_authors: float) -> Claim:
    """The two formulations of the encoder at one point (same dictionary,
    whitening and head; ``value``: each one's K): ``authors`` is what the
    authors' script computes (:mod:`patchbook.patchknn.encoding`), ``ours``
    the paper's definitions, with the standard errors of their accuracies.
    The difference's standard error counts them as independent (an upper
    bound: the two heads err on largely the same test images). Holds when
    the two agree within two standard errors of the difference, i.e. when
    our formulation measures what theirs does at this scale."""
    d = authors.test - ours.test
    se = math.hypot(se_ours, se_authors)
    holds = abs(d) <= 2 * se
    text = (f"**Formulation.** With the same dictionary, whitening and head, the authors' encoder as their script "
            f"computes it (per-channel normalised inputs, raw-atom kernels and bias, the code of $-\\tilde x$, "
            f"$K = {authors.value}$) reaches {authors.test:.1f}% after the last epoch against {ours.test:.1f}% for "
            f"ours ($K = {ours.value}$), a difference of {d:+.1f} points (standard error of the difference "
            f"{se:.1f}): ")
    text += ("within two standard errors, so at this scale the formulation does not change the accuracy measurably "
             "and numbers measured in ours stand for theirs." if holds else
             "more than two standard errors, so comparisons of numbers measured in ours with the published ones "
             "carry this gap.")
    return Claim(text, holds)


def classifier(points: Sequence[Measured], se: float) -> Claim:
    """The head (``value``: ``"linear"`` or ``"bottleneck <n>"``): holds when the
    best factorised head beats the plain linear layer by more than one
    standard error; not judged without both."""
    acc = {p.value: p.test for p in points}
    lin = acc.get("linear")
    bns = {k: v for k, v in acc.items() if k != "linear"}
    pub = ", ".join(f"{k} {_pub('classifier', k).text()}" for k in ABLATION_LOGS["classifier"])
    text = ("**Classifier.** " + "; ".join(f"{k} {v:.1f}%" for k, v in acc.items())
            + f" (the authors' logs, after the last epoch: {pub}). ")
    if lin is None or not bns:
        return Claim(text, None)
    holds = max(bns.values()) > lin + se
    text += ("The factorised head is better than a plain linear layer here too." if holds else
             "Here the plain linear layer is as good as the factorised head.")
    return Claim(text, holds)


# -------------------------------------------------------------- imagenet ----

def ranking(top1: Mapping[str, float], se: float, published_order: Sequence[str]) -> Claim:
    """Rank representations by measured top-1 (``≈``: within two standard
    errors of the next) against ``published_order`` (best first). Holds when
    every pair whose measured gap exceeds two standard errors is in the
    published order (``holds`` with no tie: the same strict order)."""
    order = sorted(top1, key=lambda n: -top1[n])

    def cmp(a: str, b: str) -> str:
        return ">" if top1[a] - top1[b] > 2 * se else "≈"

    text = "Ranked by top-1 ('≈': within two standard errors): " + order[0] + "".join(
        f" {cmp(a, b)} {b}" for a, b in zip(order, order[1:]))
    text += " (" + ", ".join(f"{n} {top1[n]:.1f}%" for n in order) + "). "
    rank = {n: i for i, n in enumerate(published_order)}
    pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1:] if a in rank and b in rank]
    inverted = [(a, b) for a, b in pairs if top1[a] - top1[b] > 2 * se and rank[a] > rank[b]]
    strict = all(top1[a] - top1[b] > 2 * se and rank[a] < rank[b] for a, b in pairs)
    if strict:
        return Claim(text + "That is the order of the published table.", True)
    if not inverted:
        return Claim(text + "The ranking agrees with the published table where the gaps exceed two standard "
                     "errors; the rest is a tie at this scale.", True)
    return Claim(text + "Here the order differs from the published table: " + "; ".join(
        f"{a} above {b} by more than two standard errors" for a, b in inverted) + ".", False)


def whitening_drop(whitened: float, unwhitened: float, se: float) -> Claim:
    """Top-1 with and without whitening against the authors' ImageNet-64
    logs: holds when the drop exceeds two standard errors."""
    drop = whitened - unwhitened
    w, nw = get("imagenet-table/simplepatch-64-log-top1"), get("imagenet-table/nowhitening-64-log-top1")
    rel = f", a relative loss of {100 * drop / whitened:.0f}%" if whitened > 0 else ""
    text = (f"Without whitening it falls to {unwhitened:.1f}% top-1, {drop:.1f} points lower{rel}; the authors' "
            f"ImageNet-64 run fell from {w.text()} to {nw.text()} (their logs, after the last epoch), a relative loss "
            f"of {100 * (w.value - nw.value) / w.value:.0f}%. ")
    holds = drop > 2 * se
    text += "Whitening matters here too." if holds else "Here the drop is within two standard errors."
    return Claim(text, holds)
