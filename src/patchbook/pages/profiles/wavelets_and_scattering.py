"""Profiles of notebooks/wavelets-and-scattering.md."""

_COMMON = {"seed": 0, "bank_J": 3, "bank_L": 8, "bank_size": 64, "digit_J": 2, "n_digits": 4,
           "stab_J": 2, "smoothness": 4.0, "freqs": [1, 2, 3, 4, 6, 8, 10], "dilation": 0.05}

PROFILES = {
    "smoke": {**_COMMON, "n_stability": 6, "grad_norms": [0.0, 0.1, 0.2, 0.4], "n_fields": 1},
    "laptop": {**_COMMON, "n_stability": 100, "n_fields": 2,
               "grad_norms": [0.0, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5]},
    "paper": {**_COMMON, "n_stability": 1000, "n_fields": 5,
              "grad_norms": [0.0, 0.0125, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5]},
}

DOC = {
    "seed": "random seed (digits, deformation fields)",
    "bank_J": "scales of the filter bank shown",
    "bank_L": "orientations of the filter bank shown",
    "bank_size": "grid (pixels) on which the filters are drawn",
    "digit_J": "scale J of the scattering of the digits shown by order",
    "n_digits": "digits whose scattering coefficients are shown",
    "stab_J": "scale J of the scattering (and of the Gaussian average) in the stability test",
    "smoothness": "correlation length (pixels) of the random deformation fields",
    "freqs": "frequencies (cycles per 32 pixels) of the windowed cosines of the frequency sweep",
    "dilation": "||grad tau||_inf of the dilation applied in the frequency sweep",
    "n_stability": "MNIST test digits deformed in the stability test",
    "n_fields": "random deformation fields per digit and amplitude",
    "grad_norms": "values of ||grad tau||_inf swept",
}

# --------------------------------------------------------------- bounds ----
from patchbook.pages import profiles as B  # noqa: E402  (the bounds, beside the table they bound)

_DISPLACEMENT = B.Real(0, 1, hi_open=True)  # ||grad tau||_inf < 1: the deformation stays invertible
BOUNDS = {
    "seed": B.SEED,
    "bank_J": B.Int(1, 6),
    "bank_L": B.COUNT,
    "bank_size": B.Int(16),
    "digit_J": B.Int(1, 4),  # 2^J and its padding within 28 x 28 digits
    "n_digits": B.COUNT,
    "stab_J": B.Int(1, 4),
    "smoothness": B.POSITIVE,
    "freqs": B.ListOf(B.Real(0, 16, lo_open=True)),  # cycles per 32 pixels, up to Nyquist
    "dilation": _DISPLACEMENT,
    "n_stability": B.Int(1, 10000),
    "n_fields": B.COUNT,
    "grad_norms": B.ListOf(_DISPLACEMENT),
}
