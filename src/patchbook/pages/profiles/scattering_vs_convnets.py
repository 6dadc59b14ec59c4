"""Profiles of notebooks/scattering-vs-convnets.md."""

_COMMON = {"seed": 0, "mnist_J": 2, "cifar_J": 2, "scat_L": 8, "linear_lr": 1e-3, "linear_wd": 1e-4,
           "linear_batch": 256, "cnn_width": 16, "cnn_lr": 0.05, "resnet_width": 16, "resnet_stem": 5,
           "resnet_lr": 0.1, "resnet_batch": 128, "n_alexnet_filters": 64, "cpu_threads": 1}

PROFILES = {
    "smoke": {**_COMMON, "mnist_n_train": 500, "mnist_n_test": 200, "cifar_n_train": 200,
              "cifar_n_test": 100, "linear_epochs": 5, "cnn_epochs": 1, "resnet_n_train": 300,
              "resnet_epochs": 1, "resnet_blocks": 1},
    "laptop": {**_COMMON, "mnist_n_train": 60000, "mnist_n_test": 10000, "cifar_n_train": 5000,
               "cifar_n_test": 2000, "linear_epochs": 10, "cnn_epochs": 2, "resnet_n_train": 10000,
               "resnet_epochs": 4, "resnet_blocks": 1, "cpu_threads": 0},
    "paper": {**_COMMON, "mnist_n_train": 60000, "mnist_n_test": 10000, "cifar_n_train": 50000,
              "cifar_n_test": 10000, "linear_epochs": 60, "cnn_epochs": 20, "resnet_n_train": 50000,
              "resnet_epochs": 160, "resnet_blocks": 3, "cpu_threads": 0},
}

DOC = {
    "seed": "random seed (subsets, initialisation, batches)",
    "mnist_J": "scattering scale J on MNIST (7 x 7 positions at J = 2)",
    "cifar_J": "scattering scale J on CIFAR-10 (8 x 8 positions at J = 2, per colour channel)",
    "scat_L": "orientations of the scattering wavelets",
    "linear_lr": "Adam learning rate of the linear classifiers",
    "linear_wd": "L2 penalty of the linear classifiers (standardised features)",
    "linear_batch": "batch size of the linear classifiers",
    "linear_epochs": "epochs of the linear classifiers",
    "cnn_width": "channels of the first layer of the MNIST CNN (the second has twice as many)",
    "cnn_lr": "peak SGD learning rate of the MNIST CNN",
    "cnn_epochs": "epochs of the MNIST CNN",
    "resnet_width": "channels of the first stage of the CIFAR-10 ResNet",
    "resnet_stem": "kernel size of the ResNet's first convolution (the filters shown)",
    "resnet_lr": "peak SGD learning rate of the ResNet",
    "resnet_batch": "batch size of the CNN and the ResNet",
    "resnet_blocks": "basic blocks per stage (1: ResNet-8, 3: ResNet-20)",
    "resnet_n_train": "CIFAR-10 training images of the ResNet (stratified; 50000 = all)",
    "resnet_epochs": "epochs of the ResNet",
    "mnist_n_train": "MNIST training digits (60000 = all)",
    "mnist_n_test": "MNIST test digits (10000 = all)",
    "cifar_n_train": "CIFAR-10 training images for scattering + linear (stratified; 50000 = all)",
    "cifar_n_test": "CIFAR-10 test images (stratified; 10000 = all)",
    "n_alexnet_filters": "AlexNet conv1 filters shown (it has 64)",
    "cpu_threads": "torch CPU threads for the classifiers (0: torch's default, every core). One at smoke: the "
                   "tests share a 2-core CPU, where intra-op threads cost more in synchronisation than they gain; "
                   "every core at laptop, whose book is built alone",
}

# --------------------------------------------------------------- bounds ----
from patchbook.pages import profiles as B  # noqa: E402  (the bounds, beside the table they bound)

BOUNDS = {
    "seed": B.SEED,
    "mnist_J": B.Int(1, 4),  # 2^J and its padding within 28 x 28 digits
    "cifar_J": B.Int(1, 4),  # and within 32 x 32 images
    "scat_L": B.COUNT,
    "linear_lr": B.POSITIVE,
    "linear_wd": B.NON_NEGATIVE,
    "linear_batch": B.COUNT,
    "linear_epochs": B.COUNT,
    "cnn_width": B.COUNT,
    "cnn_lr": B.POSITIVE,
    "cnn_epochs": B.COUNT,
    "resnet_width": B.COUNT,
    "resnet_stem": B.Int(1, 32),
    "resnet_lr": B.POSITIVE,
    "resnet_batch": B.COUNT,
    "resnet_blocks": B.COUNT,
    "resnet_n_train": B.Int(10, 50000),  # stratified: at least one image per class
    "resnet_epochs": B.COUNT,
    "mnist_n_train": B.Int(10, 60000),
    "mnist_n_test": B.Int(10, 10000),
    "cifar_n_train": B.Int(10, 50000),
    "cifar_n_test": B.Int(10, 10000),
    "n_alexnet_filters": B.Int(1, 64),  # AlexNet's conv1 has 64
    "cpu_threads": B.Int(0),  # 0: torch's default
}
