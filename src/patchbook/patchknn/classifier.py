"""Linear classifiers on patch codes, their training loop and metrics.

Heads
    :class:`FactorizedLinear` is the authors' "linear" classifier: BatchNorm,
    a 1 x 1 convolution to a bottleneck, a ``kernel x kernel`` convolution to
    the classes and a global average. Every step is linear (BatchNorm at test
    time is an affine map), so the whole head is one linear map of the code,
    factorised to have few parameters. :class:`LinearClassifier` is the plain
    version: (BatchNorm,) flatten, one ``nn.Linear``.

Data sources
    Anything with ``__iter__`` yielding ``(inputs, labels)`` batches on the
    device, ``__len__`` (batches per epoch), ``n_samples`` and
    ``set_epoch(epoch)`` (which fixes that epoch's shuffle and augmentation,
    so a resumed run sees the same batches). :class:`ArrayBatches` serves
    precomputed (e.g. cached ``uint8``) codes; :class:`EncodedBatches`
    encodes images on the fly, optionally after a random crop and flip, as
    the authors do on GPUs (or one process's share of each batch, for
    :mod:`patchbook.patchknn.resumable`'s data-parallel runs).

Training
    :func:`train` takes a model, a data source and a :class:`Schedule`
    (SGD with momentum, step learning-rate decay) and can start from any
    epoch with a given optimizer state, so a resumable or distributed entry
    point can drive it.

A non-finite loss (or non-finite weights after an epoch) stops training
with :class:`Diverged`, naming the epoch, the batch and the learning rate,
before the epoch is recorded or handed to ``on_epoch`` (so never checkpointed).

Units: accuracies are in **percent** (:func:`evaluate` and every record of
:func:`train`), losses are mean cross-entropies in nats, times in seconds.
The pipeline that fits an encoder, computes codes and trains a head is
:mod:`patchbook.patchknn.pipeline`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from patchbook.augment import random_crop_flip
from patchbook.patchknn.patches import to_tensor

# ------------------------------------------------------------------ heads ----

class FactorizedLinear(nn.Module):
    """BatchNorm -> 1 x 1 conv to ``bottleneck`` channels -> ``kernel x kernel``
    conv to ``n_classes`` -> global average pooling (the authors' head).

    For ``C x 9 x 9`` codes and ``kernel=6`` the last convolution sees 4 x 4
    positions; for ``C x 6 x 6`` codes it is a full linear map of the grid.

    The three linear steps are one linear map ``n_classes x (C x H x W)``;
    for batches of more than a few samples :meth:`forward` builds that map
    from the two convolutions' weights and applies it once
    (:meth:`collapsed`), which gives the same outputs and gradients for
    about ``bottleneck / n_classes`` times fewer operations than applying the
    1 x 1 convolution at every position.
    """

    def __init__(self, in_channels: int, n_classes: int = 10, bottleneck: int = 128, kernel: int = 6,
                 batchnorm: bool = True):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels) if batchnorm else nn.Identity()
        self.reduce = nn.Conv2d(in_channels, bottleneck, 1)
        self.classify = nn.Conv2d(bottleneck, n_classes, kernel)

    def collapsed(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight, bias)`` of the linear map from the BatchNorm output
        (``C x height x width``) to the logits: ``weight`` is
        ``n_classes x C x height x width``."""
        k, b = self.classify.out_channels, self.classify.in_channels
        kh, kw = self.classify.kernel_size
        oh, ow = height - kh + 1, width - kw + 1
        # the average over the oh x ow outputs, spread back over the input grid
        eye = torch.eye(k, device=self.classify.weight.device, dtype=self.classify.weight.dtype)
        avg = (eye[:, :, None, None] / (oh * ow)).expand(k, k, oh, ow)
        spread = F.conv_transpose2d(avg, self.classify.weight)            # k x b x H x W
        A = self.reduce.weight.reshape(b, -1)                              # b x C
        weight = torch.einsum("kbhw,bc->kchw", spread, A)
        bias = self.classify.bias + torch.einsum("kbhw,b->k", spread, self.reduce.bias)
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(x)
        k, b = self.classify.out_channels, self.classify.in_channels
        if x.shape[0] * (b - k) > 2 * k * b:  # collapsing is cheaper
            weight, bias = self.collapsed(*x.shape[-2:])
            return x.flatten(1) @ weight.flatten(1).T + bias
        x = self.classify(self.reduce(x))
        return x.mean((2, 3))


class LinearClassifier(nn.Module):
    """(BatchNorm ->) flatten -> ``nn.Linear``: a plain linear classifier."""

    def __init__(self, in_shape: Sequence[int], n_classes: int = 10, batchnorm: bool = True):
        super().__init__()
        in_shape = tuple(in_shape)
        self.bn = nn.BatchNorm2d(in_shape[0]) if (batchnorm and len(in_shape) == 3) else (
            nn.BatchNorm1d(in_shape[0]) if batchnorm else nn.Identity())
        self.fc = nn.Linear(int(np.prod(in_shape)), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(x).flatten(1))


def make_head(kind: str, in_shape: Sequence[int], n_classes: int = 10, bottleneck: int = 128,
              kernel: int = 6, batchnorm: bool = True) -> nn.Module:
    """``kind`` ``"factorized"`` (:class:`FactorizedLinear`) or ``"linear"``."""
    if kind == "factorized":
        return FactorizedLinear(in_shape[0], n_classes, bottleneck, min(kernel, *in_shape[1:]), batchnorm)
    if kind == "linear":
        return LinearClassifier(in_shape, n_classes, batchnorm)
    raise ValueError(f"unknown head {kind!r}; expected 'factorized' or 'linear'")


# ----------------------------------------------------------- data sources ----

def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch))


class _Batches:
    """What both batch sources share: labels, an epoch counter, the
    ``(seed, epoch)`` order and the batch count (``drop_last``: whole batches only)."""

    labels: torch.Tensor
    batch_size: int
    shuffle: bool
    seed: int
    drop_last: bool
    epoch: int = 0

    @property
    def n_samples(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = self.n_samples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _indices(self) -> Iterator[tuple[torch.Tensor, torch.Generator]]:
        """The sample indices of each batch of this epoch, with the epoch's
        generator (for per-batch random draws after the order)."""
        g = _epoch_generator(self.seed, self.epoch)
        n = self.n_samples
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        for b in range(len(self)):
            yield order[b * self.batch_size:(b + 1) * self.batch_size], g


def flip_codes(x: torch.Tensor, flip_perm: torch.Tensor) -> torch.Tensor:
    """The codes of the mirror images: pooled codes ``x`` (``B x C x h x w``)
    flipped along their last axis, channels permuted by ``flip_perm`` (a
    mirror-closed dictionary's, see
    :meth:`~patchbook.patchknn.encoding.PatchEncoder.flip_permutation`)."""
    return x.flip(-1).index_select(1, flip_perm)


class ArrayBatches(_Batches):
    """Mini-batches of precomputed features.

    ``features`` is an ``N x ...`` tensor or array (any dtype; ``uint8``
    counts are converted per batch), multiplied by ``scale`` after the
    conversion to float32. ``shuffle`` reshuffles every epoch with
    ``(seed, epoch)``. ``flip_perm`` (a channel permutation, e.g.
    :meth:`patchbook.patchknn.encoding.PatchEncoder.flip_permutation`) replaces a random
    half of each batch by its mirror image: last axis flipped, channels
    permuted -- the codes of the mirrored images for a mirror-closed
    dictionary.
    """

    def __init__(self, features, labels, batch_size: int = 128, shuffle: bool = False, scale: float = 1.0,
                 device: str | torch.device = "cpu", seed: int = 0, drop_last: bool = False,
                 flip_perm: torch.Tensor | None = None):
        self.features = torch.as_tensor(features)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        if len(self.features) != len(self.labels):
            raise ValueError(f"{len(self.features)} feature rows but {len(self.labels)} labels")
        self.batch_size, self.shuffle, self.scale = batch_size, shuffle, scale
        self.device, self.seed, self.drop_last = device, seed, drop_last
        self.flip_perm = None if flip_perm is None else torch.as_tensor(flip_perm).to(device)
        self.epoch = 0

    def _rows(self, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """The features of the batch ``idx`` as stored (a subclass may draw
        from ``g`` here, before the flips)."""
        return self.features[idx]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx, g in self._indices():
            x = self._rows(idx, g).to(self.device, torch.float32, non_blocking=True)
            if self.scale != 1.0:
                x = x.mul_(self.scale)
            if self.flip_perm is not None:
                f = (torch.rand(len(idx), generator=g) < 0.5).to(x.device)
                x = torch.where(f[:, None, None, None], flip_codes(x, self.flip_perm), x)
            yield x, self.labels[idx].to(self.device, non_blocking=True)


class EncodedBatches(_Batches):
    """Mini-batches of codes computed on the fly from images, or one
    process's share of them.

    ``encoder`` is a fitted :class:`patchbook.patchknn.encoding.PatchEncoder`;
    ``images`` ``uint8`` ``N x H x W x C``. With ``augment_train`` every batch
    is randomly cropped (padding ``padding``, ``padding_mode``) and flipped
    before encoding, so the codes change every epoch (the authors' recipe).
    Order and augmentation are functions of ``(seed, epoch)``.

    Data parallelism: with ``world > 1`` processes, each draws the same
    global batches and augmentation and encodes only its ``rank::world``
    share, so the union of the shards is what one process would see; the
    last incomplete global batch is dropped so that every shard has the same
    size (``rank=0, world=1``: one process, every batch). ``encode_batch``
    bounds the images encoded at once (default: the encoder's
    :meth:`~patchbook.patchknn.encoding.PatchEncoder.batch_size_for`).
    """

    def __init__(self, encoder, images: np.ndarray, labels, batch_size: int = 128, shuffle: bool = False,
                 augment_train: bool = False, padding: int = 4, padding_mode: str = "reflect",
                 seed: int = 0, encode_batch: int | None = None, rank: int = 0, world: int = 1):
        if batch_size % world:
            raise ValueError(f"global batch {batch_size} is not divisible by {world} processes")
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in [0, {world})")
        self.encoder, self.images = encoder, images
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment_train
        self.padding, self.padding_mode, self.seed = padding, padding_mode, seed
        self.encode_batch, self.rank, self.world = encode_batch, rank, world
        self.drop_last = world > 1
        self.epoch = 0

    @property
    def device(self):
        return self.encoder.device

    def __iter__(self):
        sub = self.encode_batch or self.encoder.batch_size_for(*self.images.shape[1:3])
        for idx, g in self._indices():
            idx = idx.numpy()
            # no_grad around the encoding only: a `with` spanning the `yield`
            # would switch gradients off in the caller's training step too
            with torch.no_grad():
                if self.augment:  # the global batch's draws, the same on every rank, then the share
                    x = random_crop_flip(to_tensor(self.images[idx], self.device), self.padding, self.padding_mode,
                                generator=g)[self.rank::self.world]
                else:
                    x = to_tensor(self.images[idx[self.rank::self.world]], self.device)
                codes = torch.cat([self.encoder.encode_batch(x[i:i + sub]) for i in range(0, len(x), sub)])
            yield codes, self.labels[idx[self.rank::self.world]].to(codes.device)


# --------------------------------------------------------------- training ----

@dataclass
class Schedule:
    """SGD with momentum and a step learning-rate schedule: ``lr`` times
    ``gamma`` for every milestone epoch passed."""

    epochs: int
    lr: float
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False

    def lr_at(self, epoch: int) -> float:
        return self.lr * self.gamma ** sum(epoch >= m for m in self.milestones)

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum,
                               weight_decay=self.weight_decay, nesterov=self.nesterov)

    def as_dict(self) -> dict:
        return asdict(self)


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> list[int]:
    """Number of samples whose label is among the ``k`` highest logits, per ``k``."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hit = top == labels[:, None]
    return [int(hit[:, :min(k, kmax)].any(1).sum()) for k in ks]


class Diverged(FloatingPointError):
    """Training (or evaluation) met a non-finite loss or non-finite weights."""


def _non_finite_tensor(model: nn.Module) -> str | None:
    """The name of the first floating-point parameter or buffer of ``model``
    holding a NaN or an infinity, or ``None``."""
    for name, t in model.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None


@torch.no_grad()
def evaluate(model: nn.Module, data, progress: bool = False) -> dict[str, float]:
    """Top-1 and top-5 accuracy (percent), mean cross-entropy and the number
    of samples ``n`` on ``data``."""
    was_training = model.training
    model.eval()
    n = c1 = c5 = 0
    loss = 0.0
    for x, y in tqdm(data, disable=not progress, desc="evaluate", leave=False):
        out = model(x)
        loss += float(F.cross_entropy(out, y, reduction="sum"))
        a, b = topk_correct(out, y, (1, 5))
        c1, c5, n = c1 + a, c5 + b, n + len(y)
    model.train(was_training)
    if not math.isfinite(loss):
        bad = _non_finite_tensor(model)
        raise Diverged(f"evaluation: mean loss {loss / n} over {n} samples, the model's outputs are not finite"
                       + (f" ({bad} is not)" if bad else ""))
    return {"top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n, "loss": loss / n, "n": n}


@dataclass
class History:
    """Per-epoch records of :func:`train`."""

    epochs: list[dict] = field(default_factory=list)

    def last(self, key: str):
        return self.epochs[-1][key] if self.epochs else None


def train(model: nn.Module, data, schedule: Schedule, test_data=None,
          optimizer: torch.optim.Optimizer | None = None, start_epoch: int = 0,
          eval_every: int = 0, progress: bool = True,
          on_epoch: Callable[[int, dict, nn.Module, torch.optim.Optimizer], None] | None = None) -> History:
    """Train ``model`` on the data source ``data`` with cross-entropy and
    ``schedule`` (SGD, momentum, step decay) from ``start_epoch`` to
    ``schedule.epochs``.

    ``test_data`` is evaluated every ``eval_every`` epochs (0: after the
    last only). ``on_epoch(epoch, record, model, optimizer)`` is called after
    each epoch (e.g. to checkpoint). Returns a :class:`History` (records:
    ``epoch``, ``lr``, ``train_loss``, ``train_top1`` in percent, the running
    accuracy over the epoch, ``seconds``; ``test_*`` where evaluated).

    Raises :class:`Diverged` at the first batch whose loss is not finite
    (before its step) or after an epoch that left a weight non-finite: that
    epoch is neither recorded nor passed to ``on_epoch``.
    """
    optimizer = optimizer or schedule.optimizer(model)
    history = History()
    bar = tqdm(range(start_epoch, schedule.epochs), disable=not progress, desc="epochs", leave=False)
    for epoch in bar:
        lr = schedule.lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if hasattr(data, "set_epoch"):
            data.set_epoch(epoch)
        model.train()
        t0 = time.perf_counter()
        n = correct = 0
        total = 0.0
        batches = tqdm(data, disable=not progress, desc=f"epoch {epoch}", leave=False, mininterval=2.0)
        where = f"batch {{}} of {len(data)}" if hasattr(data, "__len__") else "batch {}"
        b = -1
        for b, (x, y) in enumerate(batches):
            out = model(x)
            loss = F.cross_entropy(out, y)
            value = loss.item()
            if not math.isfinite(value):
                raise Diverged(f"training diverged: loss {value} at epoch {epoch}, {where.format(b)}, learning "
                               f"rate {lr:g}; nothing of this epoch was recorded or checkpointed (try a lower lr)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += value * len(y)
            correct += int((out.argmax(1) == y).sum())
            n += len(y)
        bad = _non_finite_tensor(model)
        if bad is not None:
            raise Diverged(f"training diverged: {bad} is not finite after epoch {epoch} (last step: "
                           f"{where.format(b)}, learning rate {lr:g}); the epoch was neither recorded nor "
                           f"checkpointed (try a lower lr)")
        rec = {"epoch": epoch, "lr": lr, "train_loss": total / max(n, 1), "train_top1": 100.0 * correct / max(n, 1),
               "seconds": time.perf_counter() - t0}
        last = epoch == schedule.epochs - 1
        if test_data is not None and (last or (eval_every and (epoch + 1) % eval_every == 0)):
            ev = evaluate(model, test_data)
            rec.update({f"test_{k}": v for k, v in ev.items() if k != "n"})
        history.epochs.append(rec)
        bar.set_postfix({k: f"{v:.3f}" for k, v in rec.items() if k in ("train_loss", "test_top1")})
        if on_epoch is not None:
            on_epoch(epoch, rec, model, optimizer)
    return history
