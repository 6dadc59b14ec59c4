"""Profiles of notebooks/imagenet-table.md (linear classification at 64 px: the talk's ImageNet table).

``smoke`` and ``laptop`` measure rows on the 100-class Tiny-ImageNet subset
(``tiny-imagenet-100``: 200 training and 50 validation images per class,
64 x 64): SimplePatch, the same without whitening, random AlexNet features,
scattering coefficients and (a reference, not a baseline) ImageNet-trained
AlexNet features, each with the same head.

``laptop`` sizing: 2,500 training images (25 per class) and 1,000 validation
images, 6 epochs: 132 s for the page in a cold ``make book`` on the 2-core
build machine with nothing else running (SimplePatch 29 s, without whitening
30 s, scattering 50 s, AlexNet features 5 s each; 2026-12-02;
benchmarks/RESULTS.md). It had 4,000 / 2,000 images and 8 epochs (about 14
minutes on a shared machine) until the whole laptop book had to fit 45
minutes.

``paper`` trains the authors' ImageNet runs (``paper_runs``: a ``name`` and
:class:`patchbook.patchknn.pipeline.PointConfig` fields that override the
profile's) with codes of augmented images every epoch (the resumable run of
:mod:`patchbook.patchknn.resumable`) on a real ImageNet given as
``imagefolder:<path>`` (``<path>/train/<class>/*`` and ``<path>/test/<class>/*``
of images already at the run's resolution, e.g. downsampled ImageNet 64 x 64;
the pipeline reads the ``test`` split of an image folder, so link the
ILSVRC-2012 validation folder as ``test``).
"""

# louity/patches logs/Inet64_2kpatches6x6_convclass12.log (the README's ImageNet-64 command)
_RUN64 = {"name": "SimplePatch 64 px", "dataset": "imagefolder:imagenet64",
          "n_atoms": 2048, "patch": 6, "k": 0.4, "lam": 1e-3, "whitening": "zca", "pool": 5, "pool_stride": 3,
          "ceil_mode": True, "bottleneck": 192, "head_kernel": 12, "batch_size": 256, "epochs": 80, "lr": 3e-3,
          "milestones": [50, 75], "padding": 8}

_BASE = {
    "seed": 0,
    "dataset": "tiny-imagenet-100",
    "n_per_class": 0,
    "n_test_per_class": 0,
    "n_moment_images": 0,
    "n_atoms": 2048,
    "patch": 6,
    "k": 0.4,
    "lam": 1e-3,
    "pool": 5,
    "pool_stride": 3,
    "ceil_mode": True,
    "head": "factorized",
    "bottleneck": 192,
    "head_kernel": 12,
    "batch_size": 256,
    "epochs": 80,
    "lr": 3e-3,
    "milestones": [50, 75],
    "momentum": 0.9,
    "augment": False,
    "padding": 4,
    "conv_layer": "conv2",
    "conv_out_size": 6,
    "pretrained_reference": True,
    "scattering_J": 3,
    "scattering_L": 4,
    "scattering_order": 2,
    "scattering_out_size": 4,
    "paper_runs": [],
    "device": "auto",
}

PROFILES = {
    "smoke": {
        **_BASE,
        "n_per_class": 2, "n_test_per_class": 1, "n_moment_images": 50,
        "n_atoms": 16, "pool": 14, "pool_stride": 9, "ceil_mode": False,
        "bottleneck": 16, "head_kernel": 6, "batch_size": 50, "epochs": 1, "lr": 0.01, "milestones": [],
        "scattering_J": 2, "scattering_L": 2, "scattering_order": 1,
    },
    "laptop": {
        **_BASE,
        "n_per_class": 25, "n_test_per_class": 10, "n_moment_images": 1000,
        "n_atoms": 256, "pool": 14, "pool_stride": 9, "ceil_mode": False,
        "bottleneck": 128, "head_kernel": 6, "batch_size": 128, "epochs": 6, "lr": 0.01, "milestones": [4, 5],
    },
    "paper": {
        **_BASE,
        "dataset": "imagefolder:imagenet64",
        "augment": True,
        "paper_runs": [
            _RUN64,
            # logs/Inet64_2kpatches6x6_convclass12_nowhitening.log: the same, with a 6 x 6 convolution
            {**_RUN64, "name": "SimplePatch 64 px, no whitening", "whitening": "none", "head_kernel": 6},
            {**_RUN64, "name": "SimplePatch 128 px", "dataset": "imagefolder:imagenet128",
             "patch": 12, "lam": 1e-4, "pool": 10, "pool_stride": 6, "epochs": 105, "padding": 16,
             # bottleneck and schedule of the authors' 105-epoch log (louity/patches,
             # logs/Inet128_2kpatches12x12_convclass12_2.log: lr 3e-3, x0.1 at 70 and 90)
             "bottleneck": 256, "milestones": [70, 90]},
        ],
    },
}

DOC = {
    "seed": "seed of the subsets, the dictionary draw, the random network and the training",
    "dataset": "measured data: 'tiny-imagenet-100' or 'imagefolder:<path>' (train/ and test/ class folders)",
    "n_per_class": "training images per class (0: all; Tiny-ImageNet-100 has 200)",
    "n_test_per_class": "validation images per class (0: all; Tiny-ImageNet-100 has 50)",
    "n_moment_images": "training images whose patches give the whitening covariance (0: all)",
    "n_atoms": "dictionary size |D|",
    "patch": "patch side Q",
    "k": "K as a fraction of |D| (authors: 0.4)",
    "lam": "whitening regulariser lambda (pixels in [0, 1])",
    "pool": "average-pooling window on the 59 x 59 code maps",
    "pool_stride": "average-pooling stride",
    "ceil_mode": "average pooling in ceil mode",
    "head": "'factorized' (BatchNorm, 1x1 conv bottleneck, conv, average) or 'linear', for every row",
    "bottleneck": "bottleneck channels of the factorized head (authors at 64 px: 192)",
    "head_kernel": "spatial size of the head's convolution (authors at 64 px: 12 on 19 x 19 maps)",
    "batch_size": "SGD batch size",
    "epochs": "training epochs",
    "lr": "initial learning rate (SGD with momentum)",
    "milestones": "epochs at which the learning rate is multiplied by 0.1",
    "momentum": "SGD momentum",
    "augment": "random crops and flips with codes recomputed every epoch (paper runs; the resumable run); "
               "False: codes computed once and cached",
    "padding": "with augment: padding of the random crop",
    "conv_layer": "AlexNet layer whose ReLU output is the random-network feature ('conv1' ... 'conv5')",
    "conv_out_size": "adaptive average pooling of the AlexNet features to this grid",
    "pretrained_reference": "also measure ImageNet-trained AlexNet features (a reference, not a baseline)",
    "scattering_J": "scattering scales J",
    "scattering_L": "scattering orientations L",
    "scattering_order": "scattering order (1 or 2)",
    "scattering_out_size": "adaptive average pooling of the scattering coefficients to this grid",
    "paper_runs": "paper profile: the authors' ImageNet runs, each a 'name' and point parameters overriding the "
                  "profile's (their checkpoints go to the cache, in a folder named by the point's key)",
    "device": "'auto' (CUDA if available), 'cpu' or 'cuda'",
}

# --------------------------------------------------------------- bounds ----
from patchbook.pages import profiles as B  # noqa: E402  (the bounds, beside the table they bound)

_SIDE = 64  # the smallest images of the page (Tiny-ImageNet, ImageNet 64 x 64)
BOUNDS = {
    "seed": B.SEED,
    "dataset": B.Text(r"tiny-imagenet-100|imagefolder:.+", "'tiny-imagenet-100' or 'imagefolder:<path>'"),
    "n_per_class": B.Int(0),
    "n_test_per_class": B.Int(0),
    "n_moment_images": B.Int(0),
    "n_atoms": B.COUNT,
    "patch": B.Int(1, _SIDE),
    "k": B.FRACTION,
    "lam": B.NON_NEGATIVE,
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
    "augment": B.Flag(),
    "padding": B.Int(0, _SIDE),
    "conv_layer": B.Choice("conv1", "conv2", "conv3", "conv4", "conv5"),
    "conv_out_size": B.COUNT,
    "pretrained_reference": B.Flag(),
    "scattering_J": B.Int(1, 5),  # 2^J and its padding within 64 x 64 images
    "scattering_L": B.COUNT,
    "scattering_order": B.Choice(1, 2),
    "scattering_out_size": B.COUNT,
    "paper_runs": B.ListOf(B.Overrides(name=B.Text(), whitening=B.WHITENING), min_len=0),
    "device": B.DEVICE,
}
