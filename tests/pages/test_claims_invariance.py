"""The sentences of the Part 1 pages follow their numbers (patchbook.pages.claims.invariance):
each verdict is checked on synthetic numbers that make it true and numbers that make it false."""

from types import SimpleNamespace

import numpy as np
import pytest

from patchbook.pages.claims import invariance as claims
from patchbook.pages.published import Published


def test_translation_ratio_says_which_representations_lower_it():
    both = claims.translation_ratio({"pixels": 0.8, "average": 0.5, "scattering": 0.4})
    assert "It is 0.80 for pixels and falls to 0.40 for scattering" in both
    assert "shrink the effect of the translation more" in both
    some = claims.translation_ratio({"pixels": 0.8, "average": 0.9, "scattering": 0.4})
    assert "falls to 0.40 for scattering, but not for every representation (average stay" in some
    assert "shrink the effect of the translation more" not in some
    none = claims.translation_ratio({"pixels": 0.3, "average": 0.5, "scattering": 0.4})
    assert "no representation lowers it" in none and "falls" not in none and "do not shrink" in none
    with pytest.raises(ValueError):
        claims.translation_ratio({"average": 0.5})


def test_energy_shares_names_the_largest_order():
    avg = claims.energy_shares({0: 0.5, 1: 0.27, 2: 0.02}, 500, 2, 8)
    assert "order 0: **50.0%**" in avg and "together 79.0%" in avg
    assert "The average holds the largest share" in avg and "The rest is carried" in avg
    first = claims.energy_shares({0: 0.2, 1: 0.7, 2: 0.1}, 10, 2, 8)
    assert "The average holds" not in first and "Order 1 holds the largest share" in first
    assert "The rest" not in first  # the three orders hold all of it


def fit(slope, r2=0.999, sup=None, ratios=(1.0, 1.0), variation=0.0):
    return SimpleNamespace(slope=slope, r2=r2, sup_ratio=sup or 1.2 * slope, mean_ratio=np.array(ratios),
                           variation=variation)


def test_stability_compares_pixels_and_the_average_with_the_scattering():
    s = fit(0.4, variation=0.04)
    text = claims.stability(s, fit(1.1, ratios=(1.04, 1.12), variation=0.09), fit(0.34))
    assert "slope $K \\approx$ **0.40** fits" in text and "varies by 4%" in text
    assert "The pixels move 2.8 times more" in text and "from 1.04 at the smallest amplitude" in text
    assert "is about as stable as the scattering" in text
    text = claims.stability(fit(0.4, r2=0.5), fit(0.3), fit(0.1))
    assert "fits only roughly" in text and "The pixels move no more than the scattering" in text
    assert "is more stable than the scattering (4.0 times smaller a slope)" in text
    assert "less stable than the scattering (2.5 times its slope)" in claims.stability(s, fit(1.0), fit(1.0))


def test_frequency_sweep_says_grows_and_flat_only_when_they_are():
    text = claims.frequency_sweep([1.9, 4.1, 8.2], [1.6, 1.7, 1.5])
    assert "(4.3 times)" in text and "The pixel ratio grows with the frequency" in text
    assert "the scattering ratio stays flat" in text
    text = claims.frequency_sweep([1.9, 2.0, 2.1], [1.0, 2.0, 3.0])
    assert "does not grow much" in text and "is not flat either" in text and "stays flat" not in text


def test_versus_published_bound_has_no_gap_value_has_one():
    bound = Published("p/b", 99.0, "%", "bound", "MNIST", "k", where="slide", relation=">")
    assert claims.versus_published(99.4, bound) == "meets the bound > 99%"
    assert claims.versus_published(98.0, bound) == "does not meet the bound > 99%"
    assert claims.versus_published(99.0, bound) == "does not meet the bound > 99%"  # strictly above
    value = Published("p/v", 82.3, "%", "printed", "CIFAR-10", "k", where="slide")
    assert claims.versus_published(36.0, value) == "46.3 points below 82.3%"
    assert claims.versus_published(85.0, value) == "2.7 points above 82.3%"
