"""What the style pages say about their numbers (patchbook.pages.claims.style):
each sentence, on synthetic numbers, and on the same numbers reversed."""

import math

import pytest

from patchbook.pages.claims import style as claims

LABELS = {"gatys": "Gatys", "strotss": "STROTSS", "adain": "AdaIN", "wct": "WCT", "mst": "MST"}


def test_helpers():
    assert claims.join([]) == "" and claims.join(["A"]) == "A"
    assert claims.join(["A", "B", "C"]) == "A, B and C"
    assert claims.lowest({"a": 2.0, "b": 1.0, "c": 1.0, "d": math.nan}) == ["b", "c"]
    with pytest.raises(ValueError):
        claims.lowest({"a": math.nan})
    assert claims.trend([3, 2, 1]) == "falls" and claims.trend([1, 2, 3]) == "rises"
    assert claims.trend([1, 3, 2]) == "is not monotone" and claims.trend([2, 2]) == "stays"
    assert claims.trend([5]) == "stays"


def test_closest_to_painting_names_the_lowest_and_those_farther_than_the_photograph():
    gram = {"gatys": 1.55, "strotss": 3.12, "wct": 0.56}
    text = claims.closest_to_painting(gram, 1.61, LABELS)
    assert "Closest to the painting's statistics: WCT (0.560)" in text
    assert "the photograph itself is at 1.610" in text
    assert "Not closer to the painting than the photograph it started from: STROTSS (3.120)" in text
    assert "Every method" not in text
    text = claims.closest_to_painting({"gatys": 1.0, "wct": 0.5}, 1.61, LABELS)
    assert "Every method moves the photograph towards the painting" in text and "Not closer" not in text
    # the numbers reversed: another method is named
    text = claims.closest_to_painting({"gatys": 0.5, "wct": 1.0}, 2, LABELS)
    assert "Closest to the painting's statistics: Gatys" in text
    assert "Closest to the photograph's structure: Gatys (0.138)" in claims.keeps_most(
        {"gatys": 0.138, "wct": 0.947}, LABELS)


def test_alpha_tradeoff():
    text = claims.alpha_tradeoff([100.0, 0.1, 1.0], [0.5, 0.9, 0.7], [0.4, 0.1, 0.2])
    assert "from 0.1 to 100" in text and "falls (0.900 to 0.500)" in text and "rises (0.100 to 0.400)" in text
    assert "moves the image towards the painting's statistics and away from the photograph" in text
    # the opposite numbers: the sentence says the trade-off does not show
    text = claims.alpha_tradeoff([0.1, 1.0, 100.0], [0.5, 0.7, 0.9], [0.4, 0.2, 0.1])
    assert "rises (0.500 to 0.900)" in text and "falls (0.400 to 0.100)" in text
    assert "not the clean trade-off" in text and "moves the image towards" not in text
    assert "is not monotone" in claims.alpha_tradeoff([1, 2, 3], [0.5, 0.7, 0.4], [0.1, 0.2, 0.3])
    assert "no trend" in claims.alpha_tradeoff([100.0], [1.5], [0.1])
    with pytest.raises(ValueError):
        claims.alpha_tradeoff([1, 2], [1], [1, 2])


def test_speed_compares_the_kinds_of_method():
    kinds = {"gatys": "optimisation", "strotss": "optimisation", "adain": "feed-forward", "wct": "feed-forward"}
    text = claims.speed({"gatys": 27.0, "strotss": 95.0, "adain": 0.05, "wct": 0.16}, kinds, LABELS)
    assert "the optimisation methods took 27 to 95 s" in text and "feed-forward methods took 0.05 to 0.16 s" in text
    assert "every feed-forward method was faster than every optimisation method" in text
    text = claims.speed({"gatys": 0.4, "strotss": 95.0, "adain": 0.05, "wct": 0.5}, kinds, LABELS)
    assert "not every feed-forward method was faster" in text and "(WCT not)" in text
    text = claims.speed({"gatys": 3.0}, {"gatys": "optimisation"}, LABELS)
    assert text == "On this machine the optimisation method (Gatys) took 3 s."


def _iv(m, half=0.05):
    return (m, m - half, m + half)


def test_against_references_reads_the_intervals_of_the_differences():
    dist = {"gatys": _iv(1.15), "strotss": _iv(1.28), "adain": _iv(0.88), "wct": _iv(0.84)}
    diffs = {"gatys": (-0.03, -0.08, 0.02), "strotss": (0.1, 0.04, 0.16), "adain": (-0.3, -0.4, -0.2),
             "wct": (-0.34, -0.5, -0.2)}
    text = claims.against_references(dist, _iv(1.18), _iv(0.67), diffs, 8, LABELS)
    assert text.startswith("Mean over 8 pairs (95% intervals): closest to the held-out canvas is WCT "
                           "(0.840 [0.790, 0.890])")
    assert "against 1.180 [1.130, 1.230] for the photograph itself and 0.670 [0.620, 0.720]" in text
    assert "AdaIN and WCT come closer than the photograph, pair for pair" in text
    assert "STROTSS ends farther than the photograph" in text and "for Gatys the 8 pairs cannot tell" in text
    assert "None comes as close as the style canvas" in text
    # the numbers the other way round: a method beyond the ceiling, nobody unsure
    text = claims.against_references({"gatys": _iv(0.5, 0.02), "wct": _iv(0.9)}, _iv(1.18), _iv(0.67),
                                     {"gatys": _iv(-0.6), "wct": _iv(-0.3)}, 1, LABELS)
    assert "Mean over 1 pair " in text and "Gatys and WCT come closer than the photograph" in text
    assert "Gatys comes even closer than the style canvas" in text and "None comes" not in text
    assert "cannot tell" not in text and "farther" not in text
    text = claims.against_references({"wct": _iv(0.7)}, _iv(1.18), _iv(0.67), {"wct": _iv(-0.4)}, 3, LABELS)
    assert "The intervals of WCT overlap the style canvas'" in text


def test_position_wise():
    text = claims.position_wise({"gatys": _iv(0.9), "wct": _iv(1.1)}, _iv(0.95),
                                {"gatys": (-0.05, -0.08, -0.01), "wct": (0.15, 0.1, 0.2)}, LABELS)
    assert text.startswith("Position by position, the aligned photograph is at 0.950 [0.900, 1.000]")
    assert "Gatys brings it closer, pair for pair; WCT takes it farther" in text
    text = claims.position_wise({"gatys": _iv(0.9)}, _iv(0.95), {"gatys": (-0.05, -0.08, -0.01)}, LABELS)
    assert "Every method brings it closer" in text
    text = claims.position_wise({"gatys": _iv(0.9)}, _iv(0.95), {"gatys": (-0.05, -0.1, 0.01)}, LABELS)
    assert "For Gatys the pairs cannot tell" in text and "closer" not in text


def test_alignment_errors():
    text = claims.alignment_errors({"a": 2.0, "b": 6.5}, {"a": 10.0, "b": 30.0}, 256)
    assert "fit their points to 2.0-6.5 px RMS (canvases of 256 px" in text
    assert "lands 10.0-30.0 px RMS from its partner, worst for b" in text
    assert "For b that is over a tenth of the canvas" in text
    text = claims.alignment_errors({"a": 2.0, "b": 6.5}, {"a": 10.0, "b": 20.0}, 256)
    assert "under a tenth of the canvas for every pair" in text and "For b" not in text
    assert claims.alignment_errors({}, {}, 256) == ""


def test_decoder_psnr():
    psnr = {"adain": (16.2, 15.1, 17.3), "recon1": (31.0, 30.0, 32.0)}
    text = claims.decoder_psnr(psnr, labels={"adain": "AdaIN", "recon1": "relu1_1"})
    assert text.startswith("The AdaIN decoder reconstructs the held-out photographs to 16.2 dB [15.1, 17.3]")
    assert "short of the 20 dB aimed at; the best decoder here is relu1_1 (31.0 dB)" in text
    assert "above" not in claims.decoder_psnr({"adain": (16.2, 15.1, 17.3)})
    assert "the best" not in claims.decoder_psnr({"adain": (16.2, 15.1, 17.3)})
    assert "above the 20 dB aimed at" in claims.decoder_psnr({"adain": (21.0, 20.5, 21.5)})
    assert "though the interval reaches below it" in claims.decoder_psnr({"adain": (20.4, 19.5, 21.3)})


def test_closest_to_both():
    text = claims.closest_to_both({"gatys": 1.1, "wct": 0.8}, {"gatys": 0.07, "wct": 0.98}, LABELS)
    assert "closest to the painting (WCT) is not the one closest to the photograph's structure (Gatys)" in text
    text = claims.closest_to_both({"gatys": 0.7, "wct": 0.8}, {"gatys": 0.07, "wct": 0.98}, LABELS)
    assert text.startswith("Gatys is both the closest")


def _drift(style, content):
    return {"style": style, "content": content, "step": [0.0] + [0.1] * (len(style) - 1)}


def test_first_projection():
    drift = {"adain": _drift([1.2, 0.9, 0.88], [0, 0.98, 1.0]),  # step 1 does most, towards the painting
             "strotss": _drift([1.2, 1.3, 1.6], [0, 1.0, 1.2])}  # away from it, and later steps move more
    text = claims.first_projection(drift, LABELS)
    assert "lowers the style distance to the painting for AdaIN; it does not for STROTSS" in text
    assert "more than the later steps do together for AdaIN, not for STROTSS" in text
    text = claims.first_projection({"adain": drift["adain"]}, LABELS)
    assert "For every method the first step" in text and "does not" not in text
    text = claims.first_projection({"strotss": drift["strotss"]}, LABELS)
    assert text.startswith("The first projection does not lower the style distance for STROTSS")
    assert "For no method" in text
    assert "One projection only" in claims.first_projection({"adain": _drift([1.2, 0.9], [0, 1])}, LABELS)
    assert claims.first_projection({}) == ""


def test_later_projections():
    drift = {"adain": _drift([1.2, 0.9, 0.8], [0, 0.9, 1.0]), "wct": _drift([1.2, 0.66, 0.68], [0, 0.98, 0.9])}
    text = claims.later_projections(drift, LABELS)
    assert "From step 1 to step 2" in text
    assert "bring AdaIN closer to the painting's statistics" in text and "take WCT farther from them" in text
    assert "AdaIN keeps moving away from the photograph, WCT comes back towards it" in text
    text = claims.later_projections({"adain": drift["adain"]}, LABELS)
    assert "farther" not in text and "every method keeps moving away" in text
    assert "no method moves farther" in claims.later_projections({"wct": drift["wct"]}, LABELS)
    assert "One projection only" in claims.later_projections({"wct": _drift([1, 0.5], [0, 1])}, LABELS)


def test_amplification():
    text = claims.amplification({"gatys": 1.6, "adain": 0.5, "wct": 1.02}, 3, LABELS)
    assert text.startswith("By step 3, Gatys (1.60) amplifies the perturbation: the chains drift apart")
    assert "AdaIN (0.50) shrinks it" in text and "WCT (1.02) keeps it about as it is (within 25%)" in text
    text = claims.amplification({"gatys": 0.7, "adain": 0.5}, 2, LABELS)
    assert "amplif" not in text and "Gatys (0.70) and AdaIN (0.50) shrink the perturbation" in text
    # a small excess over one is not an amplification, nor a small deficit a return to one image
    text = claims.amplification({"gatys": 1.02, "adain": 0.9}, 2, LABELS)
    assert "amplif" not in text and "shrink" not in text
    assert "Gatys (1.02) and AdaIN (0.90) keep the perturbation about as it is" in text
    assert "amplifies" in claims.amplification({"gatys": 1.02}, 2, LABELS, margin=0.01)
    assert claims.amplification({}, 2) == ""
