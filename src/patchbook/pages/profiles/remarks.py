"""Profiles of notebooks/remarks.md."""

_SCALES = [10.0, 1.0, 0.1, 0.01, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9]
_STEPS = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0]

PROFILES = {
    "smoke": {
        "seed": 0,
        "n_fit_per_class": 10,
        "n_atoms": 64,
        "patch": 6,
        "lam": 1e-3,
        "k_fraction": 0.4,
        "ks": [2, 8, 26, 48],
        "noise_levels": [1, 4],
        "n_images": 4,
        "batch_size": 4,
        "n_margin_patches": 100,
        "n_fd_images": 4,
        "fd_steps": [1e-8, 1e-5, 1e-2, 1.0],
        "n_soft_images": 2,
        "soft_scales": [1.0, 1e-2, 1e-4, 1e-6, 1e-9],
        "n_probes": 2,
    },
    "laptop": {
        "seed": 0,
        "n_fit_per_class": 100,
        "n_atoms": 1024,
        "patch": 6,
        "lam": 1e-3,
        "k_fraction": 0.4,
        "ks": [8, 32, 128, 410, 768],
        "noise_levels": [1, 2, 4, 8],
        "n_images": 16,
        "batch_size": 8,
        "n_margin_patches": 1000,
        "n_fd_images": 8,
        "fd_steps": _STEPS,
        "n_soft_images": 2,
        "soft_scales": _SCALES,
        "n_probes": 4,
    },
    "paper": {
        "seed": 0,
        "n_fit_per_class": 5000,
        "n_atoms": 2048,
        "patch": 6,
        "lam": 1e-3,
        "k_fraction": 0.4,
        "ks": [8, 32, 128, 512, 819, 1536],
        "noise_levels": [1, 2, 4, 8],
        "n_images": 1000,
        "batch_size": 8,
        "n_margin_patches": 10_000,
        "n_fd_images": 100,
        "fd_steps": _STEPS,
        "n_soft_images": 16,
        "soft_scales": _SCALES,
        "n_probes": 8,
    },
}

DOC = {
    "seed": "seed of the data subsets, the dictionary, the noise, the directions and the probes",
    "n_fit_per_class": "CIFAR-10 training images per class whose patches give the whitening and the atoms",
    "n_atoms": "dictionary size |D| (the authors: 2,048 in the ablations)",
    "patch": "patch side Q (patches are Q x Q x 3)",
    "lam": "whitening regulariser lambda, in the units of the covariance of [0, 1] pixels",
    "k_fraction": "the authors' K as a fraction of |D| (0.4), the K of the derivative measurements",
    "ks": "numbers of neighbours K at which the pooled code's change is measured (flips: every K)",
    "noise_levels": "standard deviations of the Gaussian pixel noise, in grey levels (1/255 of the [0, 1] range)",
    "n_images": "CIFAR-10 test images perturbed for the stability measurements",
    "batch_size": "images encoded at once in the stability measurements (at least 2)",
    "n_margin_patches": "test patches whose distance to the nearest change of their binary code is computed",
    "n_fd_images": "test images of the finite differences of the binary pooled code",
    "fd_steps": "lengths of the finite-difference steps (l2 norm over the image's pixels, [0, 1] units)",
    "n_soft_images": "test images whose soft-code Jacobian norm is estimated",
    "soft_scales": "sigmoid scales s of the soft code (squared whitened distance units), decreasing",
    "n_probes": "random probes of the Jacobian-norm estimate per image and scale",
}

# --------------------------------------------------------------- bounds ----
from patchbook.pages import profiles as B  # noqa: E402  (the bounds, beside the table they bound)

BOUNDS = {
    "seed": B.SEED,
    "n_fit_per_class": B.Int(1, 5000),
    "n_atoms": B.COUNT,
    "patch": B.Int(1, 32),  # CIFAR-10 images are 32 x 32
    "lam": B.NON_NEGATIVE,
    "k_fraction": B.FRACTION,
    "ks": B.ListOf(B.Int(1, "n_atoms")),  # K <= |D|
    "noise_levels": B.ListOf(B.POSITIVE),
    "n_images": B.Int(1, 10000),
    "batch_size": B.Int(2),  # at least 2 (the DOC)
    "n_margin_patches": B.COUNT,
    "n_fd_images": B.Int(1, 10000),
    "fd_steps": B.ListOf(B.POSITIVE),
    "n_soft_images": B.Int(1, 10000),
    "soft_scales": B.ListOf(B.POSITIVE),
    "n_probes": B.COUNT,
}
