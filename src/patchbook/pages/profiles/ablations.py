"""Profiles of notebooks/ablations.md (the ablation study of the patch k-NN code on CIFAR-10).

Every point of a sweep is the base setting below with one parameter changed.
The base setting's parameters have the names of
:class:`patchbook.patchknn.pipeline.PointConfig`'s fields. Sweep values are
given in the authors' terms (K at |D| = 2048, sigmoid scale in their units,
|D| as a multiple of the base dictionary) and mapped to this profile's
dictionary by the notebook; the soft-code sweep runs in the authors'
formulation of the encoder, so its scales are used as they are, in their
unit. The base setting is also measured in both formulations (ours and the
authors', :mod:`patchbook.patchknn.encoding`).

``laptop`` sizing: 1,500 training and 1,000 test images, 4 epochs, |D| = 256,
39 points of 8 sweeps (codes cached across each sweep; the 7 values of K share
one score matrix, the 7 soft scales one encoding pass): 229 s for the page in
a cold ``make book`` on the 2-core build machine with nothing else running
(data 20 s, sweeps 3.3 min; 2026-12-02; benchmarks/RESULTS.md). The page had
3,000 / 2,000 images and 5 epochs (about 15 minutes alone) until the whole
laptop book had to fit 45 minutes; the standard error of an accuracy is now
about 1.6 points.
"""

_SWEEPS = {
    # the authors' values (|D| = 2048), mapped to K / |D| = same fraction
    "k_published": [10, 50, 100, 500, 800, 1000, 1500],
    "patch_values": [4, 5, 6, 7, 8, 9],
    "lam_values": [0.0, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0],
    # |D| as multiples of n_atoms (the authors' 512 ... 4096 are 0.25 ... 2 x 2048)
    "n_atoms_factors": [0.25, 0.5, 1.0, 2.0],
    # the authors' sigmoid scales, measured in their formulation (their threshold and unit)
    "soft_published": [0.001, 1.0, 2.0, 4.0, 10.0, 100.0, 1000.0],
    "classifiers": ["linear", "bottleneck 64", "bottleneck 128", "bottleneck 256"],
}

_BASE = {
    "seed": 0,
    "n_per_class": 0,            # 0: the whole training set
    "n_test_per_class": 0,       # 0: the whole test set
    "n_moment_images": 0,        # 0: the patch covariance of every training image
    "n_atoms": 2048,
    "patch": 6,
    "k": 0.4,
    "lam": 1e-3,
    "whitening": "zca",
    "both_signs": True,
    "soft": None,
    "formulation": "ours",
    "pool": 5,
    "pool_stride": 3,
    "ceil_mode": True,
    "head": "factorized",
    "bottleneck": 128,
    "head_kernel": 6,
    "batch_size": 128,
    "epochs": 80,
    "lr": 3e-3,
    "milestones": [50, 75],
    "momentum": 0.9,
    "weight_decay": 0.0,
    "no_whitening_point": True,
    "n_ratio_patches": 2000,
    "augment": False,
    "padding": 4,
    "device": "auto",
    **_SWEEPS,
}

PROFILES = {
    "smoke": {
        **_BASE,
        "n_per_class": 6, "n_test_per_class": 3, "n_moment_images": 60,
        "n_atoms": 16, "pool": 7, "pool_stride": 4, "ceil_mode": False,
        "bottleneck": 16, "batch_size": 50, "epochs": 1, "lr": 0.01, "milestones": [],
        "n_ratio_patches": 200,
        "k_published": [10, 800], "patch_values": [5, 6], "lam_values": [1e-3, 1.0],
        "n_atoms_factors": [0.5, 1.0], "soft_published": [1.0, 100.0],
        "classifiers": ["linear", "bottleneck 16"],
    },
    "laptop": {
        **_BASE,
        "n_per_class": 150, "n_test_per_class": 100, "n_moment_images": 1000,
        "n_atoms": 256, "pool": 7, "pool_stride": 4, "ceil_mode": False,
        "epochs": 4, "lr": 0.01, "milestones": [3],
    },
    "paper": {**_BASE, "augment": True},
}

DOC = {
    "seed": "seed of the subsets, the dictionary draw and the training",
    "n_per_class": "training images per class (0: all 5,000)",
    "n_test_per_class": "test images per class (0: all 1,000)",
    "n_moment_images": "training images whose patches give the whitening covariance (0: all)",
    "n_atoms": "base dictionary size |D|",
    "patch": "base patch side Q",
    "k": "base K as a fraction of |D| (authors: 0.4)",
    "lam": "base whitening regulariser lambda (pixels in [0, 1], the authors' units)",
    "whitening": "base whitening: 'zca' (the authors') or 'none'",
    "soft": "base code: None (binary)",
    "formulation": "base encoder: 'ours' (the paper's definitions) or 'authors' (what their script computes); "
                   "the page measures the base setting in both",
    "both_signs": "codes of x and -x concatenated (authors' variant)",
    "pool": "average-pooling window on the code maps",
    "pool_stride": "average-pooling stride",
    "ceil_mode": "average pooling in ceil mode (authors: 5, 3, ceil -> 9 x 9)",
    "head": "base head: 'factorized' (BatchNorm, 1x1 conv bottleneck, conv, average) or 'linear'",
    "bottleneck": "base bottleneck channels of the factorized head",
    "head_kernel": "spatial size of the head's convolution to the classes",
    "batch_size": "SGD batch size",
    "epochs": "training epochs",
    "lr": "initial learning rate (SGD with momentum)",
    "milestones": "epochs at which the learning rate is multiplied by 0.1",
    "momentum": "SGD momentum",
    "weight_decay": "SGD weight decay",
    "no_whitening_point": "also measure the base setting without whitening (Euclidean neighbours)",
    "n_ratio_patches": "patches used to measure what the authors' soft-code unit is worth in ours",
    "augment": "random crops and flips with codes recomputed every epoch (the resumable run of "
               "patchbook.patchknn.resumable; for GPUs); False: codes computed once and cached",
    "padding": "with augment: padding of the random crop",
    "device": "'auto' (CUDA if available), 'cpu' or 'cuda'",
    "k_published": "K values of the authors' sweep at |D| = 2048 (measured at the same K / |D|)",
    "patch_values": "patch sizes Q of the sweep",
    "lam_values": "whitening regularisers of the sweep",
    "n_atoms_factors": "dictionary sizes of the sweep, as multiples of n_atoms",
    "soft_published": "soft-code scales s of the authors' sweep, in their units (measured in their formulation)",
    "classifiers": "heads of the classifier sweep: 'linear' or 'bottleneck <n>'",
}

# --------------------------------------------------------------- bounds ----
from patchbook.pages import profiles as B  # noqa: E402  (the bounds, beside the table they bound)

_SIDE = 32  # CIFAR-10 images are 32 x 32
BOUNDS = {
    "seed": B.SEED,
    "formulation": B.FORMULATION,
    "n_per_class": B.Int(0, 5000),
    "n_test_per_class": B.Int(0, 1000),
    "n_moment_images": B.Int(0, 50000),
    "n_atoms": B.COUNT,
    "patch": B.Int(1, _SIDE),
    "k": B.FRACTION,
    "lam": B.NON_NEGATIVE,
    "whitening": B.WHITENING,
    "both_signs": B.Flag(),
    "soft": B.OrNone(B.POSITIVE, "binary code"),
    "pool": B.Int(1, _SIDE),
    "pool_stride": B.Int(1, _SIDE),
    "ceil_mode": B.Flag(),
    "head": B.HEAD,
    "bottleneck": B.COUNT,
    "head_kernel": B.Int(1, _SIDE),
    "batch_size": B.COUNT,
    "epochs": B.COUNT,
    "lr": B.POSITIVE,
    "milestones": B.ListOf(B.COUNT, min_len=0),
    "momentum": B.MOMENTUM,
    "weight_decay": B.NON_NEGATIVE,
    "no_whitening_point": B.Flag(),
    "n_ratio_patches": B.COUNT,
    "augment": B.Flag(),
    "padding": B.Int(0, _SIDE),
    "device": B.DEVICE,
    "k_published": B.ListOf(B.Int(1, 2048)),  # K at the authors' |D| = 2048
    "patch_values": B.ListOf(B.Int(1, _SIDE)),
    "lam_values": B.ListOf(B.NON_NEGATIVE),
    "n_atoms_factors": B.ListOf(B.POSITIVE),
    "soft_published": B.ListOf(B.POSITIVE),
    "classifiers": B.ListOf(B.Text(r"linear|bottleneck [1-9][0-9]*", "'linear' or 'bottleneck <n>' (n >= 1)")),
}
