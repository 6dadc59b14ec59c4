"""Profiles of notebooks/monet-comparisons.md."""

# Pairs of src/patchbook/style/pairs.yaml (photograph, held-out canvas of the same motif and view,
# another canvas of the series as style, points aligning the photograph with the held-out canvas).
_PAIRS = ["rouen-facade-sunset", "rouen-portal-grey", "rouen-portal-grey-2", "london-parliament-fog",
          "venice-san-giorgio", "etretat-needle-cc", "etretat-needle-cc-2", "etretat-needle-above",
          "etretat-porte-d-aval-beach", "etretat-porte-d-aval-beach-2"]
_METHODS = ["gatys", "strotss", "adain", "wct", "mst", "magenta"]

PROFILES = {
    "smoke": {
        "seed": 0, "size": 64, "pairs": _PAIRS[:2], "methods": _METHODS, "metric_size": 96, "level": 0.95,
        "gatys": {"n_iter": 4, "style_weight": 100.0, "init": "content"},
        "strotss": {"n_iter": 3, "lr": 8e-3, "min_size": 32, "n_samples": 128, "n_style": 256,
                    "covariance": "layer"},
        "decoders": "smoke",
    },
    "laptop": {
        "seed": 0, "size": 256, "pairs": _PAIRS, "methods": _METHODS, "metric_size": 224, "level": 0.95,
        "gatys": {"n_iter": 40, "style_weight": 100.0, "init": "content"},
        "strotss": {"n_iter": 40, "lr": 6e-3, "min_size": 64, "n_samples": 256, "n_style": 1024,
                    "covariance": "layer"},
        "decoders": "laptop",
    },
    "paper": {
        "seed": 0, "size": 512, "pairs": _PAIRS, "methods": _METHODS, "metric_size": 224, "level": 0.95,
        "gatys": {"n_iter": 1000, "style_weight": 100.0, "init": "noise"},
        "strotss": {"n_iter": 250, "lr": 2e-3, "min_size": 64, "n_samples": 1024, "n_style": 5000,
                    "covariance": "full"},
        "decoders": "paper",
    },
}

DOC = {
    "seed": "random seed (noise initialisation, STROTSS' sampling)",
    "size": "long side of the held-out canvases' frames (the photographs are warped into them) and of the "
            "style canvases, in pixels",
    "pairs": "ids of the photo-painting pairs compared (src/patchbook/style/pairs.yaml)",
    "methods": "methods compared (those that cannot run here are listed and skipped)",
    "metric_size": "long side at which images are compared (AlexNet features)",
    "level": "confidence level of the intervals over the pairs (Student t)",
    "gatys": "keyword arguments of patchbook.style.optimize.gatys (see style-transfer-methods)",
    "strotss": "keyword arguments of patchbook.style.optimize.strotss (paper: 250 RMSprop steps per scale)",
    "decoders": "training preset of the feed-forward methods' decoders",
}

# --------------------------------------------------------------- bounds ----
from patchbook.pages import profiles as B  # noqa: E402  (the bounds, beside the table they bound)
from patchbook.style import pairs as style_pairs  # noqa: E402

BOUNDS = {
    "seed": B.SEED,
    "size": B.Int(32),
    "pairs": B.ListOf(B.Choice(*style_pairs.load())),
    "level": B.Real(0, 1, lo_open=True, hi_open=True),
    "methods": B.ListOf(B.STYLE_METHODS),
    "metric_size": B.Int(32),
    "gatys": B.GATYS,
    "strotss": B.STROTSS,
    "decoders": B.DECODERS,
}
