"""Small classifiers trained here: a linear classifier on fixed features, a
LeNet-style CNN for MNIST and a small ResNet for CIFAR-10, with one training
loop (SGD with momentum, cosine learning rate, tqdm progress).

They are the "measured" rows beside the published scattering / AlexNet /
ResNet numbers: small enough to train on a CPU in minutes, so they say what a
convolutional network reaches *at this budget*, not what AlexNet or a
ResNet-50 reach on a GPU.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from patchbook.augment import random_crop_flip as random_crop_flip_padded
from patchbook.cache import memo_arrays, memo_torch, source_hash
from patchbook.runtime import cpu_threads, resolve_device


def device() -> torch.device:
    return torch.device(resolve_device("auto"))


# ------------------------------------------------------------- models ----


class SmallCNN(nn.Module):
    """Two 5 x 5 convolutions with ReLU and 2 x 2 max-pooling, then a linear
    layer (LeNet-like; ``width`` and ``2 width`` channels)."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 16, size: int = 28):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 5, padding=2)
        self.conv2 = nn.Conv2d(width, 2 * width, 5, padding=2)
        self.fc = nn.Linear(2 * width * (size // 4) ** 2, n_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


class BasicBlock(nn.Module):
    """He et al.'s basic residual block: two 3 x 3 convolutions with batch
    normalisation, identity or 1 x 1 projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.short is None else self.short(x)))


class SmallResNet(nn.Module):
    """A ResNet for 32 x 32 images: a ``stem_kernel`` x ``stem_kernel``
    first convolution (5 by default, so its filters can be looked at), then
    three stages of ``blocks`` basic blocks at widths ``w, 2w, 4w``
    (strides 1, 2, 2), global average pooling and a linear layer.
    ``blocks=1, w=16`` is a ResNet-8; ``blocks=3`` the ResNet-20 of He et al."""

    def __init__(self, n_classes: int = 10, width: int = 16, blocks: int = 1, stem_kernel: int = 5,
                 in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, stem_kernel, 1, stem_kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, cin = [], width
        for i, w in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks):
                layers.append(BasicBlock(cin, w, 2 if (i > 0 and b == 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, n_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


# ------------------------------------------------------------ training ----


@dataclass
class TrainResult:
    model: nn.Module
    test_accuracy: float
    train_seconds: float
    history: list[dict] = field(default_factory=list)


def to_tensor(images: np.ndarray, mean: np.ndarray | None = None, std: np.ndarray | None = None) -> torch.Tensor:
    """uint8 ``N x H x W x C`` to float ``N x C x H x W`` in [0, 1], then
    standardised per channel when ``mean``/``std`` are given."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    if mean is not None:
        x = (x - torch.as_tensor(mean, dtype=torch.float32)[None, :, None, None]) / \
            torch.as_tensor(std, dtype=torch.float32)[None, :, None, None]
    return x.contiguous()


def random_crop_flip(x: torch.Tensor, pad: int = 4, flip: bool = True,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """The standard CIFAR augmentation: random translations of up to ``pad``
    pixels (zero padding) and horizontal flips, on a batch
    (:func:`patchbook.augment.random_crop_flip`)."""
    return random_crop_flip_padded(x, pad, "zeros", flip, generator)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    dev = next(model.parameters()).device
    correct = 0
    for i in range(0, len(x), batch_size):
        out = model(x[i:i + batch_size].to(dev))
        correct += (out.argmax(1).cpu() == y[i:i + batch_size]).sum().item()
    return correct / len(x)


def train(model: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
          epochs: int, lr: float = 0.05, weight_decay: float = 5e-4, batch_size: int = 128, momentum: float = 0.9,
          augment=None, seed: int = 0, progress: bool = True, desc: str = "training",
          threads: int | None = None) -> TrainResult:
    """SGD with Nesterov momentum and a cosine learning rate (with one epoch
    of linear warm-up when ``epochs > 2``); cross-entropy loss. Returns the
    test accuracy after the last epoch and the training wall time.
    ``threads``: torch CPU threads during training (``None``: unchanged)."""

    with cpu_threads(threads if device().type == "cpu" else None):
        return _train(model, x_train, y_train, x_test, y_test, epochs, lr, weight_decay, batch_size, momentum,
                      augment, seed, progress, desc)


def _train(model, x_train, y_train, x_test, y_test, epochs, lr, weight_decay, batch_size, momentum, augment, seed,
           progress, desc) -> TrainResult:

    dev = device()
    model = model.to(dev)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    total = epochs * steps_per_epoch
    warm = steps_per_epoch if epochs > 2 else 0

    def lr_at(step):
        if step < warm:
            return lr * (step + 1) / warm
        return 0.5 * lr * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    history, step = [], 0
    t0 = time.perf_counter()
    bar = tqdm(total=total, desc=desc, leave=False, mininterval=2.0, disable=not progress)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x_train), generator=g)
        run_loss, seen = 0.0, 0
        for k in range(steps_per_epoch):
            idx = perm[k * batch_size:(k + 1) * batch_size]
            xb, yb = x_train[idx], y_train[idx]
            if augment is not None:
                xb = augment(xb, generator=g)
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            loss = F.cross_entropy(model(xb.to(dev)), yb.to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run_loss += loss.item() * len(idx)
            seen += len(idx)
            step += 1
            bar.update(1)
        history.append({"epoch": epoch + 1, "train_loss": run_loss / seen})
    bar.close()
    seconds = time.perf_counter() - t0
    acc = accuracy(model, x_test, y_test)
    history[-1]["test_accuracy"] = acc
    return TrainResult(model.cpu().eval(), acc, seconds, history)


def n_parameters(model: nn.Module) -> int:
    """Number of trainable scalars of ``model``."""
    return sum(v.numel() for v in model.parameters())


def _digest(*arrays: np.ndarray | torch.Tensor) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        h.update(str((a.shape, a.dtype)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def train_cached(make: Callable[[], nn.Module], x_train: torch.Tensor, y_train: torch.Tensor,
                 x_test: torch.Tensor, y_test: torch.Tensor, *, epochs: int, lr: float, batch_size: int,
                 seed: int = 0, augment=None, threads: int | None = None) -> TrainResult:
    """:func:`train` a fresh ``make()`` (built after ``torch.manual_seed(seed)``,
    so its initial weights depend on ``seed`` alone), cached on disk under
    the model's architecture, a hash of the data, the hyper-parameters and
    the source of this module."""
    key = {"model": repr(make()), "data": _digest(x_train, y_train, x_test, y_test), "epochs": epochs, "lr": lr,
           "batch": batch_size, "seed": seed, "augment": getattr(augment, "__name__", augment),
           "code": source_hash("invariance.convnets")}

    def fit():
        torch.manual_seed(seed)
        r = train(make(), x_train, y_train, x_test, y_test, epochs=epochs, lr=lr, batch_size=batch_size,
                  augment=augment, seed=seed, progress=False, threads=threads)
        return {"state": r.model.state_dict(), "acc": r.test_accuracy, "seconds": r.train_seconds,
                "history": r.history}

    out = memo_torch("convnets", key, fit)
    model = make()
    model.load_state_dict(out["state"])
    return TrainResult(model.eval(), out["acc"], out["seconds"], out["history"])


# ---------------------------------------------- linear classifier on features ----


@dataclass
class LinearResult:
    test_accuracy: float
    train_accuracy: float
    train_seconds: float
    weight: np.ndarray
    bias: np.ndarray


def standardize(train: np.ndarray, *others: np.ndarray, eps: float = 1e-6):
    """Centre and scale every feature with the training mean and std."""
    mu = train.mean(0, dtype=np.float64).astype(np.float32)
    sd = (train.std(0, dtype=np.float64) + eps).astype(np.float32)
    return tuple((a - mu) / sd for a in (train, *others))


def train_linear(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                 epochs: int = 30, lr: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 256,
                 seed: int = 0, progress: bool = True, desc: str = "linear classifier",
                 threads: int | None = None) -> LinearResult:
    """Multinomial logistic regression (one linear layer, cross-entropy) on
    standardised features, Adam with a cosine learning rate and an L2
    penalty ``weight_decay`` on the weights; on the CPU, on ``threads``
    threads (``None``: unchanged)."""

    with cpu_threads(threads):
        return _train_linear(x_train, y_train, x_test, y_test, epochs, lr, weight_decay, batch_size, seed,
                             progress, desc)


def _train_linear(x_train, y_train, x_test, y_test, epochs, lr, weight_decay, batch_size, seed, progress,
                  desc) -> LinearResult:

    xtr, xte = standardize(np.asarray(x_train, np.float32).reshape(len(x_train), -1),
                           np.asarray(x_test, np.float32).reshape(len(x_test), -1))
    xtr, xte = torch.from_numpy(xtr), torch.from_numpy(xte)
    ytr, yte = torch.as_tensor(y_train), torch.as_tensor(y_test)
    n_classes = int(max(ytr.max(), yte.max()) + 1)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(xtr.shape[1], n_classes)
    nn.init.zeros_(lin.weight)
    nn.init.zeros_(lin.bias)
    opt = torch.optim.Adam(lin.parameters(), lr=lr)
    steps = math.ceil(len(xtr) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
    t0 = time.perf_counter()
    for _ in tqdm(range(epochs), desc=desc, leave=False, mininterval=2.0, disable=not progress):
        perm = torch.randperm(len(xtr), generator=g)
        for k in range(steps):
            idx = perm[k * batch_size:(k + 1) * batch_size]
            loss = F.cross_entropy(lin(xtr[idx]), ytr[idx]) + 0.5 * weight_decay * (lin.weight**2).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        acc_te = (lin(xte).argmax(1) == yte).float().mean().item()
        acc_tr = (lin(xtr).argmax(1) == ytr).float().mean().item()
    return LinearResult(acc_te, acc_tr, seconds, lin.weight.detach().numpy(), lin.bias.detach().numpy())


def train_linear_cached(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, *,
                        epochs: int, lr: float, weight_decay: float, batch_size: int, seed: int = 0,
                        threads: int | None = None) -> LinearResult:
    """:func:`train_linear`, cached on disk under a hash of the features and
    labels, the hyper-parameters and the source of this module."""
    key = {"data": _digest(x_train, y_train, x_test, y_test), "epochs": epochs, "lr": lr, "wd": weight_decay,
           "batch": batch_size, "seed": seed, "code": source_hash("invariance.convnets")}

    def fit():
        r = train_linear(x_train, y_train, x_test, y_test, epochs=epochs, lr=lr, weight_decay=weight_decay,
                         batch_size=batch_size, seed=seed, progress=False, threads=threads)
        return {"acc": np.array([r.test_accuracy, r.train_accuracy, r.train_seconds]), "weight": r.weight,
                "bias": r.bias}

    out = memo_arrays("linear-classifier", key, fit)
    test_acc, train_acc, seconds = (float(v) for v in out["acc"])
    return LinearResult(test_acc, train_acc, seconds, out["weight"], out["bias"])


# ------------------------------------------------------- filters to show ----


def first_layer_filters(weight: torch.Tensor | np.ndarray) -> np.ndarray:
    """First-layer filters ``out x in x k x k`` as images ``out x k x k x in``
    scaled to [0, 1] each (the usual display: each filter's own range)."""
    w = torch.as_tensor(weight).detach().float().cpu().numpy()
    w = w.transpose(0, 2, 3, 1)
    lo = w.reshape(len(w), -1).min(1)[:, None, None, None]
    hi = w.reshape(len(w), -1).max(1)[:, None, None, None]
    return (w - lo) / np.maximum(hi - lo, 1e-12)
