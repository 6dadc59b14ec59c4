"""The Part 2 verdicts on synthetic numbers: each sentence says what the numbers say."""

import pytest

from patchbook.pages import profiles, published
from patchbook.pages.claims import patchknn as c
from patchbook.pages.claims.patchknn import Measured as M
from patchbook.pages.profiles.cifar10_table import PAPER_ROWS
from patchbook.patchknn.pipeline import PointConfig


def test_every_ablation_entry_is_mapped_once_and_kinds_match():
    ids = [i for sweep in c.ABLATION_LOGS.values() for t in sweep.values() for i in t if i]
    assert sorted(ids) == sorted(e.id for e in published.entries("ablations")) and len(set(ids)) == len(ids)
    for sweep in c.ABLATION_LOGS.values():
        for best, final, train in sweep.values():
            assert published.get(best).kind == "best" and published.get(final).kind == "final"
            assert train is None or (published.get(train).kind == "final" and "train" in train)
    base_best, base_final = (published.get(i) for i in c.ABLATION_BASE)
    assert (base_best.file, base_best.line) == (base_final.file, base_final.line)   # one run, two kinds
    assert c.logged("k", 800).train.value == pytest.approx(89.626)                 # as the file prints it
    assert c.logged("k", 123) == c.Logged(None, None, None)


def test_cifar_rows_are_compared_with_their_own_run_only():
    paper = profiles.resolve("cifar10-table", "paper")
    base = PointConfig.from_params(paper)
    logged = c.cifar_logged(base)
    assert (logged.best.id, logged.final.id) == ("cifar10-table/simplepatch-2048-best",
                                                 "cifar10-table/simplepatch-2048-final")
    assert c.cifar_logged(base.replace(k=819)).best is not None          # 0.4 x 2048: the same point
    big = c.cifar_logged(PointConfig.from_params(paper, **PAPER_ROWS[1]))
    assert big.final.id == "cifar10-table/simplepatch-65536-final" and "1e-3" in big.final.setting
    for other in (base.replace(epochs=6), base.replace(augment=False), base.replace(whitening="none"),
                  PointConfig.from_params(profiles.resolve("cifar10-table", "laptop"))):
        assert c.cifar_logged(other) == c.Logged(None, None, None)


def test_published_curve_is_the_authors_final_values_in_order():
    lams, acc = c.published_curve("lam")
    assert lams == sorted(lams) and lams[0] == 0 and len(acc) == 8
    assert acc == [c.logged("lam", v).final.value for v in lams]
    _, best = c.published_curve("lam", "best")
    assert all(b >= f for b, f in zip(best, acc))            # best over epochs >= after the last one
    assert c.published_curve("classifier")[0][0] == "linear"


def test_neighbours_follow_the_gaps():
    base = M(6, test=60.0, train=65.0)
    overfit = c.neighbours([M(1, test=50.0, train=90.0), M(6, 60.0, 65.0)], base, 16, se=2.0)
    assert overfit.holds and "do reduce overfitting" in overfit and "does not shrink" not in overfit
    flat = c.neighbours([M(1, test=50.0, train=56.0), M(6, 60.0, 65.0)], base, 16, se=2.0)
    assert flat.holds is False and "does not shrink" in flat and "do reduce" not in flat
    # a gap larger by less than two standard errors is no evidence
    assert c.neighbours([M(1, 50.0, 58.0), M(6, 60.0, 65.0)], base, 16, se=2.0).holds is False
    assert "94.016%" in overfit and "89.626%" in overfit       # the logs' final train values


def test_patch_size_matters_little_only_when_the_spread_is_small():
    small = c.patch_size([M(5, 60.0), M(6, 61.0), M(7, 60.5)], se=0.2)
    assert small.holds and "matters little" in small
    large = c.patch_size([M(5, 40.0), M(6, 61.0), M(7, 60.5)], se=0.2)
    assert large.holds is False and "matters more" in large and "matters little" not in large


def test_whitening_is_key_only_when_its_drop_is_the_largest():
    base = M("zca", 60.0)
    key = c.whitening_key(base, M("none", 40.0), {"K": 5.0, "Q": 3.0})
    assert key.holds and "matters most" in key and "20.0 points below" in key
    not_key = c.whitening_key(base, M("none", 58.0), {"K": 5.0, "Q": 3.0})
    assert not_key.holds is False and "not the largest" in not_key and "(K)" in not_key
    above = c.whitening_key(base, M("none", 62.0), {"K": 1.0})
    assert above.holds is False and "above" in above


def test_regularisation_follows_lambda_zero():
    pts = [M(0.0, 59.5), M(1e-3, 60.0), M(10.0, 40.0)]
    ok = c.regularisation(pts, se=0.5)
    assert ok.holds and "needs no regularisation" in ok
    hurt = c.regularisation([M(0.0, 55.0), M(1e-3, 60.0), M(10.0, 40.0)], se=0.5)
    assert hurt.holds is False and "regularisation matters" in hurt and "needs no" not in hurt
    none = c.regularisation([M(1e-3, 60.0), M(1.0, 50.0)], se=0.5)
    assert none.holds is None and "does not test" in none


def test_dictionary_size_gain_sign():
    up = c.dictionary_size([M(0.5, 50.0), M(1.0, 55.0), M(2.0, 58.0)], 16)
    assert up.holds and "+4.0 points per doubling" in up and "help," in up
    down = c.dictionary_size([M(0.5, 58.0), M(2.0, 50.0)], 16)
    assert down.holds is False and "do not help" in down


def test_soft_code_needs_both_halves():
    base = M(None, 60.0)
    both = c.soft_code([M(1.0, 61.0), M(100.0, 40.0)], base, ratio=1.1, se=1.0)
    assert both.holds and "as published" in both and "about 1.1 in our unit" in both
    # a gain within two standard errors is not called a help; the authors' gain (83.5 - 82.6) is quoted
    assert "does as well as" in both and "helps" not in both and "+0.9 points is not resolved" in both
    helps = c.soft_code([M(1.0, 63.0), M(100.0, 40.0)], base, ratio=1.1, se=1.0)
    assert helps.holds and "helps at a moderate scale (+3.0 points" in helps
    no_collapse = c.soft_code([M(1.0, 61.0), M(100.0, 59.5)], base, ratio=1.1, se=1.0)
    assert no_collapse.holds is False and "does not reproduce" in no_collapse and "their unit" in no_collapse
    no_gain = c.soft_code([M(1.0, 55.0), M(100.0, 40.0)], base, ratio=1.1, se=1.0)
    assert no_gain.holds is False


def test_classifier_verdict():
    better = c.classifier([M("linear", 50.0), M("bottleneck 16", 55.0)], se=1.0)
    assert better.holds and "better than a plain linear layer" in better
    same = c.classifier([M("linear", 50.0), M("bottleneck 16", 50.5)], se=1.0)
    assert same.holds is False and "as good as" in same
    assert c.classifier([M("bottleneck 16", 50.0)], se=1.0).holds is None


PUBLISHED_ORDER = ["SimplePatch", "scattering", "random AlexNet"]


def test_ranking_same_strict_order():
    r = c.ranking({"SimplePatch": 30.0, "scattering": 20.0, "random AlexNet": 10.0}, 1.0, PUBLISHED_ORDER)
    assert r.holds and "SimplePatch > scattering > random AlexNet" in r and "the order of the published" in r


def test_ranking_ties_agree_where_gaps_are_significant():
    r = c.ranking({"SimplePatch": 30.0, "scattering": 29.0, "random AlexNet": 10.0}, 1.0, PUBLISHED_ORDER)
    assert r.holds and "≈" in r and "tie" in r
    # a tie in the wrong order is still a tie
    r = c.ranking({"SimplePatch": 29.0, "scattering": 30.0, "random AlexNet": 10.0}, 1.0, PUBLISHED_ORDER)
    assert r.holds and "scattering ≈ SimplePatch" in r


def test_ranking_inversion_is_reported():
    r = c.ranking({"SimplePatch": 10.0, "scattering": 20.0, "random AlexNet": 30.0}, 1.0, PUBLISHED_ORDER)
    assert r.holds is False and "differs" in r and "random AlexNet above SimplePatch" in r


def test_ranking_sees_inversions_across_ties():
    """Each neighbour within two standard errors, the ends not: an inversion
    that comparing neighbours only would miss."""
    top1 = {"random AlexNet": 13.5, "scattering": 12.0, "SimplePatch": 10.5}   # se 1: gaps 1.5, 1.5, 3.0
    r = c.ranking(top1, 1.0, PUBLISHED_ORDER)
    assert "random AlexNet ≈ scattering ≈ SimplePatch" in r
    assert r.holds is False and "random AlexNet above SimplePatch" in r


def test_whitening_drop():
    big = c.whitening_drop(30.0, 10.0, se=2.0)
    assert big.holds and "matters here too" in big and "relative loss of 67%" in big
    small = c.whitening_drop(30.0, 27.0, se=2.0)
    assert small.holds is False and "within two standard errors" in small
    assert "33.2%" in big and "13.8%" in big and "58%" in big   # the logs' 64 px run, from the registry


def test_formulation_gap_follows_the_difference_and_its_error():
    same = c.formulation_gap(M(102, 60.0), M(102, 60.8), se_ours=0.5, se_authors=0.5)
    assert same.holds and "+0.8 points" in same and "does not change the accuracy" in same
    assert "standard error of the difference 0.7" in same
    apart = c.formulation_gap(M(205, 60.0), M(204, 57.0), se_ours=0.5, se_authors=0.5)
    assert apart.holds is False and "-3.0 points" in apart and "carry this gap" in apart
    assert "$K = 204$" in apart and "$K = 205$" in apart and "does not change" not in apart
    assert "the code of $-\\tilde x$" in apart                                 # LaTeX, not a tab
    # the sign does not decide: a gap either way beyond two standard errors is a gap
    assert c.formulation_gap(M(1, 57.0), M(1, 60.0), 0.5, 0.5).holds is False
