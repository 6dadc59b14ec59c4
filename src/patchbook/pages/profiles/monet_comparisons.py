"""Profiles of notebooks/monet-comparisons.md."""

_R = "monet/rouen-cathedral/"
_W = "monet/wikiart-224/"
# (photograph, the painting of the same motif held out, another canvas of the series used as style)
_PAIRS = [
    ["rouen-cathedral-facade-sunset.jpg", _R + "rouen-cathedral-at-sunset.jpg", _R + "rouen-cathedral-1893.jpg"],
    ["poppy-field-sunset.jpg", _W + "poppy-field-argenteuil.jpg", _W + "poppy-field-near-vetheuil.jpg"],
    ["london-houses-of-parliament-fog.jpg", _W + "houses-of-parliament-fog-effect.jpg",
     _W + "houses-of-parliament-effect-of-sunlight-in-the-fog.jpg"],
    ["rouen-cathedral-portal-grey-weather.jpg", _R + "rouen-cathedral-the-gate-grey-weather.jpg",
     _R + "rouen-cathedral-the-portal-and-the-tour-d-albene-grey-weather.jpg"],
    ["etretat-manneporte-from-the-east-1.jpg", _W + "the-manneport-seen-from-the-east.jpg",
     _W + "the-manneport-etretat-the-porte-d-aval.jpg"],
    ["venice-san-giorgio-maggiore.jpg", _W + "san-giorgio-maggiore.jpg", _W + "san-giorgio-maggiore-twilight.jpg"],
]
_METHODS = ["gatys", "strotss", "adain", "wct", "mst", "magenta"]

PROFILES = {
    "smoke": {
        "seed": 0, "size": 64, "pairs": _PAIRS[:1], "methods": _METHODS, "metric_size": 96,
        "gatys": {"n_iter": 4, "style_weight": 100.0, "init": "content"},
        "strotss": {"n_iter": 3, "lr": 8e-3, "min_size": 32, "n_samples": 128, "n_style": 256,
                    "covariance": "layer"},
        "decoders": "smoke",
    },
    "laptop": {
        "seed": 0, "size": 128, "pairs": _PAIRS[:2], "methods": _METHODS, "metric_size": 224,
        "gatys": {"n_iter": 40, "style_weight": 100.0, "init": "content"},
        "strotss": {"n_iter": 40, "lr": 6e-3, "min_size": 64, "n_samples": 256, "n_style": 1024,
                    "covariance": "layer"},
        "decoders": "laptop",
    },
    "paper": {
        "seed": 0, "size": 512, "pairs": _PAIRS, "methods": _METHODS, "metric_size": 224,
        "gatys": {"n_iter": 1000, "style_weight": 100.0, "init": "noise"},
        "strotss": {"n_iter": 250, "lr": 2e-3, "min_size": 64, "n_samples": 1024, "n_style": 5000,
                    "covariance": "full"},
        "decoders": "paper",
    },
}

DOC = {
    "seed": "random seed (noise initialisation, STROTSS' sampling)",
    "size": "long side of the photographs and style canvases, in pixels",
    "pairs": "[photograph, held-out painting of the same motif, other canvas of the series used as style]",
    "methods": "methods compared (those that cannot run here are listed and skipped)",
    "metric_size": "long side at which images are compared (AlexNet features)",
    "gatys": "keyword arguments of patchbook.style.optimize.gatys (see style-transfer-methods)",
    "strotss": "keyword arguments of patchbook.style.optimize.strotss (paper: 250 RMSprop steps per scale)",
    "decoders": "training preset of the feed-forward methods' decoders",
}

# --------------------------------------------------------------- bounds ----
from patchbook.pages import profiles as B  # noqa: E402  (the bounds, beside the table they bound)

BOUNDS = {
    "seed": B.SEED,
    "size": B.Int(32),
    "pairs": B.ListOf(B.ListOf(B.DataFile("photos/ (first) and paintings/"), min_len=3, max_len=3)),
    "methods": B.ListOf(B.STYLE_METHODS),
    "metric_size": B.Int(32),
    "gatys": B.GATYS,
    "strotss": B.STROTSS,
    "decoders": B.DECODERS,
}
