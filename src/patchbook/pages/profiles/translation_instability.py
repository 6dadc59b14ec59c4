"""Profiles of notebooks/translation-instability.md."""

_COMMON = {"seed": 0, "max_shift": 4, "avg_scales": [1, 2, 3], "scat_scales": [2, 3], "scat_L": 8,
           "n_show": 6}

PROFILES = {
    "smoke": {**_COMMON, "n_train": 300, "n_test": 60, "n_distance": 40},
    "laptop": {**_COMMON, "n_train": 10000, "n_test": 1000, "n_distance": 500},
    "paper": {**_COMMON, "n_train": 60000, "n_test": 10000, "n_distance": 2000},
}

DOC = {
    "seed": "random seed (test digits, shift directions)",
    "max_shift": "largest translation, in pixels (max-norm: |dy|, |dx| <= max_shift)",
    "avg_scales": "scales J of the Gaussian local averages (sigma = 0.4 * 2^J pixels)",
    "scat_scales": "scales J of the scattering transforms compared",
    "scat_L": "orientations of the scattering wavelets",
    "n_show": "digits shown in the figures",
    "n_train": "MNIST training digits used as nearest-neighbour references (stratified)",
    "n_test": "MNIST test digits classified at every shift (stratified)",
    "n_distance": "test digits whose distances to their translates and to other digits are measured",
}

# --------------------------------------------------------------- bounds ----
from patchbook.pages import profiles as B  # noqa: E402  (the bounds, beside the table they bound)

BOUNDS = {
    "seed": B.SEED,
    "max_shift": B.Int(1, 13),  # translates of 28 x 28 digits that keep part of the digit
    "avg_scales": B.ListOf(B.Int(0, 4)),
    "scat_scales": B.ListOf(B.Int(1, 4)),  # 2^J and its padding within 28 x 28 digits
    "scat_L": B.COUNT,
    "n_show": B.COUNT,
    "n_train": B.Int(10, 60000),
    "n_test": B.Int(10, 10000),
    "n_distance": B.Int(1, 10000),
}
