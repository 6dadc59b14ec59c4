"""Profiles of notebooks/interactive-projections.md."""

_METHODS = ["gatys", "strotss", "adain", "wct", "mst", "magenta"]

PROFILES = {
    "smoke": {
        "seed": 0, "size": 64, "photo": "rouen-cathedral-facade-sunset.jpg",
        "style": "monet/rouen-cathedral/rouen-cathedral-1893.jpg", "n_steps": 2, "show_steps": [1, 2],
        "methods": _METHODS, "metric_size": 96,
        "seeds": [1], "seed_methods": ["gatys", "adain"], "seed_steps": 2, "perturbation": 0.02,
        "gatys": {"n_iter": 3, "style_weight": 100.0, "init": "content"},
        "strotss": {"n_iter": 2, "lr": 8e-3, "min_size": 32, "n_samples": 128, "n_style": 256,
                    "covariance": "layer"},
        "decoders": "smoke",
    },
    "laptop": {
        "seed": 0, "size": 256, "photo": "rouen-cathedral-facade-sunset.jpg",
        "style": "monet/rouen-cathedral/rouen-cathedral-1893.jpg", "n_steps": 7, "show_steps": [1, 3, 5, 7],
        "methods": _METHODS, "metric_size": 224,
        "seeds": [1], "seed_methods": ["gatys", "strotss", "adain", "wct", "mst", "magenta"],
        "seed_steps": 3, "perturbation": 0.02,
        "gatys": {"n_iter": 15, "style_weight": 100.0, "init": "content"},
        "strotss": {"n_iter": 12, "lr": 8e-3, "min_size": 64, "n_samples": 256, "n_style": 768,
                    "covariance": "layer"},
        "decoders": "laptop",
    },
    "paper": {
        "seed": 0, "size": 512, "photo": "rouen-cathedral-facade-sunset.jpg",
        "style": "monet/rouen-cathedral/rouen-cathedral-1893.jpg", "n_steps": 7, "show_steps": [1, 3, 5, 7],
        "methods": _METHODS, "metric_size": 224,
        "seeds": [1, 2, 3, 4], "seed_methods": _METHODS, "seed_steps": 7, "perturbation": 0.02,
        "gatys": {"n_iter": 1000, "style_weight": 100.0, "init": "content"},
        "strotss": {"n_iter": 250, "lr": 2e-3, "min_size": 64, "n_samples": 1024, "n_style": 5000,
                    "covariance": "full"},
        "decoders": "paper",
    },
}

DOC = {
    "seed": "random seed of the main chains",
    "size": "long side of the photograph and the style canvas, in pixels",
    "photo": "the photograph projected",
    "style": "the canvas (under paintings/) it is projected onto",
    "n_steps": "projections in a chain (each stylises the previous result)",
    "show_steps": "steps shown in the figure",
    "methods": "methods iterated (those that cannot run here are listed and skipped)",
    "metric_size": "long side at which images are compared (AlexNet features)",
    "seeds": "seeds of the extra chains that measure diversity",
    "seed_methods": "methods whose diversity is measured",
    "seed_steps": "length of the extra chains",
    "perturbation": "standard deviation of the Gaussian noise added to the photograph of an extra chain",
    "gatys": "keyword arguments of patchbook.style.optimize.gatys at every step (initialised "
             "with the step's content; paper: the reference implementation's 1000 L-BFGS evaluations)",
    "strotss": "keyword arguments of patchbook.style.optimize.strotss at every step",
    "decoders": "training preset of the feed-forward methods' decoders",
}

# --------------------------------------------------------------- bounds ----
from patchbook.pages import profiles as B  # noqa: E402  (the bounds, beside the table they bound)

BOUNDS = {
    "seed": B.SEED,
    "size": B.Int(32),
    "photo": B.DataFile("photos/"),
    "style": B.DataFile("paintings/"),
    "n_steps": B.COUNT,
    "show_steps": B.ListOf(B.Int(1, "n_steps")),
    "methods": B.ListOf(B.STYLE_METHODS),
    "metric_size": B.Int(32),
    "seeds": B.ListOf(B.SEED, min_len=0),
    "seed_methods": B.ListOf(B.STYLE_METHODS, min_len=0),
    "seed_steps": B.COUNT,
    "perturbation": B.NON_NEGATIVE,
    "gatys": B.GATYS,
    "strotss": B.STROTSS,
    "decoders": B.DECODERS,
}
