"""The sentences of the dimensionality page follow its numbers
(patchbook.pages.claims.dimensionality): each verdict is checked on synthetic
numbers that make it true and numbers that make it false."""

from types import SimpleNamespace

import numpy as np

from patchbook.pages.claims import dimensionality as claims
from patchbook.pages.published import Published


def test_grows():
    assert claims.grows([(4000, 8.8), (1000, 6.9)])  # sorted by database size first
    assert not claims.grows([(1000, 6.9), (4000, 6.9)]) and not claims.grows([(1000, 7.0), (4000, 6.0)])
    assert not claims.grows([(1000, 6.9)])


def test_beyer_says_falls_only_when_the_contrast_falls():
    iid = np.array([[2, 74.4, 2.0], [128, 0.36, 52.0]])
    curved = np.array([[2, 137.0, 2.0], [128, 30.9, 2.09]])
    text = claims.beyer(iid, curved, 2, 1000)
    assert "falls from 74.4 at $D = 2$ to 0.36 at $D = 128$" in text and "only 36% farther" in text
    assert "stays between 30.9 and 137 whatever $D$" in text and "follows $D$ only while" in text
    flat_iid = np.array([[2, 1.0, 2.0], [128, 3.0, 120.0]])
    text = claims.beyer(flat_iid, np.array([[2, 5.0, 2.0], [128, 0.5, 2.0]]), 2, 1000)
    assert "does not fall" in text and "only" not in text.split("farther")[0]
    assert "falls as low" in text and "follows $D$ up to $D = 128$ (it reads 120)" in text


def test_database_size_verdicts():
    up = {"raw": [(1000, 6.9), (4000, 8.8)], "whitened": [(1000, 18.9), (4000, 21.2)]}
    same = {"raw": [(1000, 7.8), (4000, 7.6)], "whitened": [(1000, 20.3), (4000, 19.9)]}
    text = claims.database_size(up, same, 4, 10, 0.025)
    assert "grows with the database in both cases" in text and "mostly the scale" in text
    mixed = {"raw": [(1000, 6.9), (4000, 8.8)], "whitened": [(1000, 21.2), (4000, 18.9)]}
    apart = {"raw": [(1000, 5.0), (4000, 7.6)], "whitened": [(1000, 20.3), (4000, 19.9)]}
    text = claims.database_size(mixed, apart, 4, 10, 0.025)
    assert "for raw patches only" in text and "both cases" not in text
    assert "differ by more than 15%" in text and "mostly the scale" not in text
    down = {"raw": [(1000, 8.8), (4000, 6.9)], "whitened": [(1000, 21.2), (4000, 18.9)]}
    assert "does not grow monotonically" in claims.database_size(down, same, 4, 10, 0.025)
    assert "mostly the scale" not in claims.database_size(up, {"raw": [(4000, 7.6)], "whitened": []}, 4, 10, 0.025)


def row(kind, Q, nn, nn_star=None, n_db=4000, fraction=1.0, n_energy=48, contrast=5.0, gauss=0.9, nn_authors=None,
        authors_kept=1.0):
    return SimpleNamespace(kind=kind, Q=Q, d=3 * Q * Q, nn=nn, nn_star=nn_star, n_db=n_db, contrast=contrast,
                           contrast_gauss=gauss, cov=SimpleNamespace(fraction=fraction, n_energy=n_energy),
                           nn_authors=nn if nn_authors is None else nn_authors, authors_kept=authors_kept)


def entry(value):
    return Published("dimensionality/x", value, "dimensions", "printed", "s", "k", file="data/f", where="Idim[0]")


def test_against_authors_says_below_only_when_every_value_of_their_reading_is():
    pub = {("raw", 2): entry(7.0), ("raw", 4): entry(12.0), ("whitened", 2): entry(10.0), ("whitened", 4): entry(25.0)}
    below = [row("raw", 2, 5.0), row("raw", 4, 9.0), row("whitened", 2, 9.0), row("whitened", 4, 20.0)]
    text = claims.against_authors(below, pub, 1e-4, {2: 9, 4: 27}, 100)
    assert "in their reading: raw 0.71 to 0.75, whitened 0.80 to 0.90" in text
    assert "at the matched scale: raw –" in text
    assert "Every measured value of their reading is below the authors'" in text
    assert "only 27 of 48 eigenvalues of the raw covariance exceed λ = 0.0001 at Q = 4" in text
    above = below[:3] + [row("whitened", 4, 20.0, nn_authors=30.0)]
    text = claims.against_authors(above, pub, 1e-4, {2: 9, 4: 27, 6: 60}, 100)
    assert "not all below" in text and "Every measured" not in text
    assert "whitened 0.90 to 1.20 (ours: raw 0.71 to 0.75, whitened 0.80 to 0.90" in text
    assert "60 of 108 eigenvalues" in text and "(27 of 48 at Q = 4)" in text
    # the verdict is on their reading, not ours: ours above the authors' does not make it "not all below"
    ours_above = [row("raw", 2, 8.0, nn_authors=6.0), row("whitened", 2, 11.0, nn_authors=9.0)]
    assert "Every measured value of their reading is below" in claims.against_authors(ours_above, pub, 1e-4, {}, 100)


def test_readings_follow_the_numbers():
    higher = [row("raw", 2, 5.0, nn_authors=5.5, authors_kept=0.97), row("whitened", 2, 9.0, nn_authors=9.9)]
    text = claims.readings(higher, 10, 2000)
    assert "k = 1,999 after dropping the first neighbour" in text and "k = 10..2,000" in text
    assert "1.10 to 1.10; it reads higher at every patch size and kind" in text
    assert "keeps 97.0% to 100.0% of the queries" in text
    lower = [row("raw", 2, 5.0, nn_authors=4.0), row("whitened", 2, 9.0, nn_authors=8.0)]
    text = claims.readings(lower, 10, 100)
    assert "it reads lower at every" in text and "higher" not in text and "drops no query here" in text
    mixed = [row("raw", 2, 5.0, nn_authors=4.0), row("whitened", 2, 9.0, nn_authors=10.0)]
    assert "higher for some rows and lower for others" in claims.readings(mixed, 10, 100)


def test_data_set_lines():
    raw = [row("raw", 2, 5.3, fraction=0.58, n_energy=7), row("raw", 4, 8.8, fraction=0.44, n_energy=21)]
    wh = [row("whitened", 2, 9.1), row("whitened", 4, 21.2)]
    text = claims.data_set("CIFAR-10", raw, wh, 1e-3)
    assert "44% of the ambient dimension at Q = 2 and 18% at Q = 4" in text
    assert "Both shares fall at every step of Q" in text and "The covariance says otherwise" in text
    wh_up = [row("whitened", 2, 5.0, fraction=0.2, n_energy=2), row("whitened", 4, 21.2, fraction=0.3, n_energy=14)]
    text = claims.data_set("CIFAR-10", raw, wh_up, 1e-3)
    assert "The raw share falls at every step of Q, the other does not" in text and "Both" not in text
    assert "The covariance agrees" in text


def test_conclusion_follows_the_numbers():
    raw, wh = row("raw", 4, 8.8), row("whitened", 4, 21.2, fraction=1.0, n_energy=48, contrast=5.44, gauss=0.92)
    text = claims.conclusion("CIFAR-10", raw, wh, grew_at=4)
    assert "almost every direction" in text and "do not fill those directions" in text
    assert "and it does for patches (5.44 whitened)" in text and "Whitening raises the dimension" in text
    assert "grew with the database at Q = 4" in text and "the ordering (raw below whitened" in text
    flat = row("whitened", 4, 6.0, fraction=0.5, n_energy=5, contrast=0.5, gauss=0.92)
    text = claims.conclusion("CIFAR-10", raw, flat, grew_at=None)
    assert "over 50% of the directions" in text and "the neighbours see as many" in text
    assert "no larger than that of i.i.d. data" in text and "does not raise the dimension" in text
    assert "grew with the database" not in text
    assert "the ordering" not in claims.conclusion("CIFAR-10", raw, flat, grew_at=4)
