"""Profiles of notebooks/style-transfer-methods.md."""

_METHODS = ["gatys", "strotss", "adain", "wct", "mst", "magenta"]
_PHOTO = "etretat-porte-d-aval-and-aiguille-cc-by-sa.jpg"
_MONET = "monet/hires/impression-sunrise.jpg"
_STYLES = [_MONET, "other/van-gogh-starry-night.png", "other/munch-the-scream.jpg",
           "monet/hires/japanese-footbridge.jpg"]
# The region shown zoomed for every method (u0, v0, u1, v1 in [0, 1] of the image): the arch and the cliff.
_ZOOM = [0.34, 0.22, 0.62, 0.72]
# The held-out photograph the decoders reconstruct on the page.
_RECON = "venice-san-giorgio-maggiore.jpg"

PROFILES = {
    "smoke": {
        "seed": 0, "size": 64, "photo": _PHOTO, "styles": _STYLES[:2], "compare_style": _MONET,
        "style_weights": [100.0], "methods": _METHODS, "zoom": _ZOOM, "reconstruct": _RECON,
        "gatys": {"n_iter": 4, "style_weight": 100.0, "init": "content"},
        "strotss": {"n_iter": 3, "lr": 8e-3, "min_size": 32, "n_samples": 128, "n_style": 256,
                    "covariance": "layer"},
        "decoders": "smoke",
    },
    "laptop": {
        "seed": 0, "size": 256, "photo": _PHOTO, "styles": _STYLES[:3], "compare_style": _MONET,
        "style_weights": [0.1, 1.0, 100.0], "methods": _METHODS, "zoom": _ZOOM, "reconstruct": _RECON,
        "gatys": {"n_iter": 40, "style_weight": 100.0, "init": "content"},
        "strotss": {"n_iter": 40, "lr": 6e-3, "min_size": 64, "n_samples": 256, "n_style": 1024,
                    "covariance": "layer"},
        "decoders": "laptop",
    },
    "paper": {
        "seed": 0, "size": 512, "photo": _PHOTO, "styles": _STYLES, "compare_style": _MONET,
        "style_weights": [0.1, 1.0, 10.0, 100.0, 1000.0], "methods": _METHODS, "zoom": _ZOOM, "reconstruct": _RECON,
        "gatys": {"n_iter": 1000, "style_weight": 100.0, "init": "noise"},
        "strotss": {"n_iter": 250, "lr": 2e-3, "min_size": 64, "n_samples": 1024, "n_style": 5000,
                    "covariance": "full"},
        "decoders": "paper",
    },
}

DOC = {
    "seed": "random seed (noise initialisation, STROTSS' sampling)",
    "size": "long side of the photograph and of the style images, in pixels",
    "photo": "the photograph (under the data root's photos/)",
    "styles": "paintings (under paintings/) the photograph is rendered in, with Gatys' method",
    "compare_style": "the painting every method uses in the side-by-side comparison",
    "style_weights": "values of Gatys' style weight alpha shown side by side",
    "methods": "methods of the side-by-side comparison (those that cannot run here are listed and skipped)",
    "gatys": "keyword arguments of patchbook.style.optimize.gatys (n_iter: L-BFGS evaluations; "
             "the paper gives no count, 1000 is the reference implementation neural-style's default; "
             "the paper starts from white noise)",
    "strotss": "keyword arguments of patchbook.style.optimize.strotss (paper: scales 64 to 512 px, "
               "250 RMSprop steps per scale at rate 2e-3, 1024 output and 5000 style samples)",
    "decoders": "training preset of the feed-forward methods' decoders (patchbook.style.decoder.PRESETS)",
    "zoom": "region shown enlarged for every method: [u0, v0, u1, v1], fractions of the image's width and height",
    "reconstruct": "photograph (none of the decoders' training data) that each decoder reconstructs on the page",
}

# --------------------------------------------------------------- bounds ----
from patchbook.pages import profiles as B  # noqa: E402  (the bounds, beside the table they bound)

BOUNDS = {
    "seed": B.SEED,
    "size": B.Int(32),
    "photo": B.DataFile("photos/"),
    "styles": B.ListOf(B.DataFile("paintings/")),
    "compare_style": B.DataFile("paintings/"),
    "style_weights": B.ListOf(B.POSITIVE),
    "methods": B.ListOf(B.STYLE_METHODS),
    "gatys": B.GATYS,
    "strotss": B.STROTSS,
    "decoders": B.DECODERS,
    "zoom": B.ListOf(B.Real(0, 1), min_len=4, max_len=4),
    "reconstruct": B.DataFile("photos/"),
}
