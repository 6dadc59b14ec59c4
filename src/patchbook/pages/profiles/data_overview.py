"""Profiles of notebooks/data-overview.md."""

PROFILES = {
    "smoke": {"seed": 0, "n_show": 8, "n_paintings": 4, "max_side": 96},
    "laptop": {"seed": 0, "n_show": 10, "n_paintings": 8, "max_side": 256},
    "paper": {"seed": 0, "n_show": 10, "n_paintings": 28, "max_side": 512},
}

DOC = {
    "seed": "random seed of the samples shown",
    "n_show": "images shown per class row",
    "n_paintings": "Rouen Cathedral canvases shown",
    "max_side": "longest side of the paintings and photographs shown, in pixels",
}

# --------------------------------------------------------------- bounds ----
from patchbook.pages import profiles as B  # noqa: E402  (the bounds, beside the table they bound)

BOUNDS = {
    "seed": B.SEED,
    "n_show": B.COUNT,
    "n_paintings": B.Int(1, 28),  # the Rouen Cathedral series in the data has 28 canvases
    "max_side": B.Int(16),
}
