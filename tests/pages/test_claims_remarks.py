"""The sentences of the Remarks page follow its numbers
(patchbook.pages.claims.remarks): each verdict on numbers that make it true
and numbers that make it false."""

import numpy as np

from patchbook.pages.claims import remarks as claims

KS = [8, 64, 410, 768]


def test_falls():
    assert claims.falls([3, 2, 1])
    assert not claims.falls([3, 3, 1]) and not claims.falls([1]) and not claims.falls([1, 2])


def test_neighbours_says_falls_only_when_it_does():
    down = {"noise 1/255": [0.05, 0.02, 0.007, 0.004], "shift": [0.5, 0.3, 0.1, 0.06]}
    mid = {"noise 1/255": [0.001, 0.003, 0.006, 0.004], "shift": [0.008, 0.04, 0.09, 0.07]}
    text = claims.neighbours(down, mid, KS, 1024)
    assert "from 5% to 0.4% (noise 1/255)" in text and "falls at every step of $K$ for every perturbation" in text
    assert "largest in between (at $K$ = 410" in text
    up = {"noise 1/255": [0.05, 0.02, 0.007, 0.004], "shift": [0.1, 0.3, 0.5, 0.6]}
    text = claims.neighbours(up, {"noise 1/255": [0.1, 0.2, 0.3, 0.4], "shift": [0.4, 0.3, 0.2, 0.1]}, KS, 1024)
    assert "for noise 1/255 only; not for shift" in text and "every perturbation" not in text
    assert "largest at an end of the range" in text and "in between" not in text
    none = {"a": [0.1, 0.2, 0.3, 0.4]}
    assert "does not fall steadily" in claims.neighbours(none, none, KS, 1024)


def test_pooled_against_pixels_both_ways():
    text = claims.pooled({"noise": 0.09, "shift": 0.19}, {"noise": 0.012, "shift": 0.26}, 410)
    assert "moves less than the pixels under shift, and more under noise" in text
    text = claims.pooled({"a": 0.1, "b": 0.1, "c": 0.5}, {"a": 0.2, "b": 0.2, "c": 0.1}, 410)
    assert "under a; b, and more under c" in text
    assert "every perturbation" not in text
    assert "less than the pixels under every" in claims.pooled({"shift": 0.1}, {"shift": 0.3}, 410)
    assert "*more* than the pixels under every" in claims.pooled({"noise": 0.1}, {"noise": 0.01}, 410)


def test_pooled_with_k():
    assert "falls at every step" in claims.pooled_with_k({"a": [0.3, 0.2, 0.1, 0.05]}, KS)
    text = claims.pooled_with_k({"a": [0.09, 0.066, 0.087, 0.096]}, KS)
    assert "does not fall steadily" in text and "smallest at $K = 64$ for every perturbation" in text
    text = claims.pooled_with_k({"a": [0.09, 0.066, 0.087, 0.096], "b": [0.2, 0.3, 0.1, 0.4]}, KS)
    assert "$K = 64$ (a); $K = 410$ (b)" in text


def test_binary_derivative_both_ways():
    m = np.array([1e-6, 2e-5, 1e-4, 5e-4])
    steps = [1e-6, 1e-4, 1e-2]
    changes = np.array([[0.0, 0.0], [0.1, 0.0], [1.5, 1.6]])
    text = claims.binary_derivative(m, steps, changes, 108)
    assert text.startswith("100% of the 4 sampled patches have a positive margin")
    assert "derivative is zero there" in text and "Steps up to 1e-06 changed no pooled code" in text
    assert "from 0.01 changed every one" in text and "pieces (the median margin) smaller than one grey" in text
    coarse = claims.binary_derivative(m * 1e3, steps, changes, 108)
    assert "no smaller than one grey" in coarse
    on_boundary = claims.binary_derivative(np.array([0.0, 1e-4]), steps, changes, 108)
    assert "50% of the 2" in on_boundary and "no derivative" in on_boundary and "is zero there" not in on_boundary
    moved = claims.binary_derivative(m, steps, np.array([[0.1, 0.0], [0.1, 0.2], [1.5, 1.6]]), 108)
    assert "Yet some image's pooled code moved" in moved and "is zero there" not in moved
    assert "No step measured changed every" in claims.binary_derivative(m, steps, np.zeros((3, 2)) + [0, 1], 108)


def test_soft_derivative_both_ways():
    scales = [10, 1, 0.1, 0.01, 1e-3, 1e-6, 1e-9]
    base = np.array([200, 650, 2000, 5600, 18000, 3.0, 0.0])
    norms = np.stack([base, base * 1.1], 1)
    gaps = [3e-5, 6e-5]
    text = claims.soft_derivative(scales, norms, gaps)
    assert "the gradient norm grows as $s$ decreases (log-log slope -0.48;" in text
    assert "collapses" in text and "does tend to the binary code's, zero" in text and "it is exactly 0." in text
    flat = np.stack([np.array([200, 150, 100, 90, 80, 70, 60.0])] * 2, 1)
    text = claims.soft_derivative(scales, flat, gaps)
    assert "does not grow steadily" in text and "does not vanish" in text and "collapses" not in text
    assert "not reached here" in claims.soft_derivative(scales[:5], norms[:5], gaps)


def test_conclusion_follows_the_verdicts():
    yes = claims.conclusion(True, True, True, True)
    assert "measured so, for the unpooled and the pooled code" in yes and "tends to it as $s \\to 0$" in yes
    part = claims.conclusion(True, False, True, False)
    assert "not of the pooled code" in part and "does not vanish" in part
    no = claims.conclusion(False, False, False, False)
    assert "not what these measurements show" in no and "not at every sampled patch" in no
