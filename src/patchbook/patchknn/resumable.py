"""Long training runs: resumable, and data-parallel through ``torch.distributed``.

:func:`fit` trains a model on a data source (e.g. codes of augmented images
recomputed every epoch, :class:`patchbook.patchknn.classifier.EncodedBatches`)
with checkpoints after every epoch. :func:`patchbook.patchknn.pipeline.measure`
uses it for points with ``augment=True``, and so does ``python -m patchbook
train CONFIG`` (or ``torchrun --nproc_per_node N -m patchbook train CONFIG``).
Accuracies in the history and the final metrics are in percent
(:func:`patchbook.patchknn.classifier.evaluate`).

Resuming
    After every epoch rank 0 writes a checkpoint (model, optimiser, epoch,
    history, random states, all tensors and plain values, read back with
    ``torch.load(weights_only=True)``) atomically, with a SHA-256 beside it. A
    restarted run loads the newest checkpoint whose checksum matches, reports
    and skips any truncated or corrupt one, and continues. Data order and
    augmentation are functions of ``(seed, epoch)``, so a resumed run sees
    exactly the batches the uninterrupted run would have seen and ends with
    the same weights. A folder holds the run of one key only. A diverging run
    (a non-finite loss or weight) stops with
    :class:`patchbook.patchknn.classifier.Diverged` before that epoch is
    checkpointed; ``history.json`` is strict JSON (no bare ``NaN``).

Data parallelism
    Under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in
    ``DistributedDataParallel`` (NCCL on GPUs, gloo on CPUs). Every rank
    draws the same global batch order and augmentation, takes its
    ``rank::world`` share of each global batch and encodes only that share
    (:class:`patchbook.patchknn.classifier.EncodedBatches` with ``rank``, ``world``);
    gradients are averaged by DDP, so the update equals the single-process
    one up to floating-point summation order. BatchNorm: on GPUs the head's
    BatchNorm becomes ``SyncBatchNorm``; on CPUs (where ``SyncBatchNorm`` is
    unsupported) each rank normalises with its own share's statistics, a
    difference from single-process training that shrinks with the batch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed
import torch.nn as nn

from patchbook.cache import atomic_write
from patchbook.patchknn.classifier import Schedule, evaluate, train

# ------------------------------------------------------------- checkpoints ----


class CorruptCheckpoint(RuntimeError):
    pass


class Checkpoints:
    """Epoch checkpoints in a folder: ``ckpt-000012.pt`` and ``ckpt-000012.pt.sha256``.

    :meth:`save` writes both atomically (checkpoint first, checksum last, so a
    checkpoint without a matching checksum is incomplete). :meth:`latest`
    returns the newest valid one and warns about any it had to skip. A
    checkpoint holds tensors and plain values only and is read with
    ``torch.load(weights_only=True)`` (nothing in it is run as code).
    """

    def __init__(self, folder: str | os.PathLike, keep: int = 2):
        self.folder = Path(folder)
        self.keep = keep

    def path(self, epoch: int) -> Path:
        return self.folder / f"ckpt-{epoch:06d}.pt"

    def save(self, epoch: int, state: dict) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(epoch)
        atomic_write(path, lambda tmp: torch.save(state, tmp))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        atomic_write(path.with_name(path.name + ".sha256"), lambda tmp: tmp.write_text(digest + "\n"))
        for old in self.epochs()[: -self.keep]:
            self.path(old).unlink(missing_ok=True)
            self.path(old).with_name(self.path(old).name + ".sha256").unlink(missing_ok=True)
        return path

    def epochs(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.folder.glob("ckpt-*.pt"))

    def load(self, epoch: int) -> dict:
        path = self.path(epoch)
        sums = path.with_name(path.name + ".sha256")
        if not sums.exists():
            raise CorruptCheckpoint(f"{path}: no checksum file (interrupted while saving?)")
        if hashlib.sha256(path.read_bytes()).hexdigest() != sums.read_text().strip():
            raise CorruptCheckpoint(f"{path}: checksum mismatch (truncated or corrupt)")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CorruptCheckpoint(f"{path}: cannot be read ({exc})") from exc

    def latest(self) -> dict | None:
        for epoch in reversed(self.epochs()):
            try:
                return self.load(epoch)
            except CorruptCheckpoint as exc:
                warnings.warn(f"skipping checkpoint: {exc}; using the previous one", stacklevel=2)
        return None


def strict_json(obj: Any, path: str | os.PathLike) -> str:
    """``obj`` as strict JSON (no bare ``NaN`` or ``Infinity``), or a
    ``ValueError`` naming ``path``, the file it was meant for."""
    try:
        return json.dumps(obj, indent=1, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"{path}: refusing to write a non-finite number as JSON ({exc})") from None


# ------------------------------------------------------------- distributed ----


@dataclass
class Dist:
    """This process's place in a data-parallel run (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def device_for(self, device: str) -> str:
        """``device`` for this process: its own GPU (``cuda:<local rank>``) in a
        data-parallel run on GPUs."""
        if device.startswith("cuda") and self.world > 1:
            torch.cuda.set_device(self.local_rank)
            return f"cuda:{self.local_rank}"
        return device


def init_distributed(device: str) -> Dist:
    """Join the process group that ``torchrun`` (or a test) set up through the
    environment; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Dist(torch.distributed.get_rank(), torch.distributed.get_world_size(),
                int(os.environ.get("LOCAL_RANK", "0")))


def finish_distributed() -> None:
    """Leave the process group, if this process joined one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


# ------------------------------------------------------------------ states ----


def rng_state() -> dict[str, torch.Tensor]:
    """The states of torch's, numpy's and Python's global generators, as tensors."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, words, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "numpy_pos": torch.tensor(int(pos)), "numpy_has_gauss": torch.tensor(int(has_gauss)),
            "numpy_gauss": torch.tensor(float(gauss), dtype=torch.float64),
            "python_version": torch.tensor(int(version)), "python": torch.tensor(words, dtype=torch.int64),
            "python_gauss": torch.tensor(math.nan if gauss_next is None else gauss_next, dtype=torch.float64)}


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(state["numpy_pos"]),
                         int(state["numpy_has_gauss"]), float(state["numpy_gauss"])))
    g = float(state["python_gauss"])
    random.setstate((int(state["python_version"]), tuple(int(w) for w in state["python"].tolist()),
                     None if math.isnan(g) else g))


# --------------------------------------------------------------------- run ----


@dataclass
class RunResult:
    """What :func:`fit` trained: the history of every epoch (of earlier,
    interrupted sessions too; accuracies in percent), the final evaluation
    (rank 0 only; empty on the others), the model and how many epochs this
    call trained."""

    history: list[dict]
    final: dict[str, float]
    model: nn.Module
    trained_epochs: int
    world_size: int = 1
    meta: dict[str, Any] = field(default_factory=dict)


class _Stop(Exception):
    pass


def fit(model: nn.Module, source, schedule: Schedule, folder: str | os.PathLike, *, key: str,
        meta: dict[str, Any] | None = None, test_data=None, eval_every: int = 1, dist: Dist | None = None,
        progress: bool = True, stop_after: int | None = None) -> RunResult | None:
    """Train ``model`` on the data source ``source`` with ``schedule``,
    checkpointing into ``folder`` after every epoch and resuming from its
    newest valid checkpoint.

    ``key`` names what is trained (a folder holding checkpoints of another
    key is refused); ``meta`` (JSON-able) is stored beside it in every
    checkpoint and in ``history.json``. ``test_data`` is evaluated on rank 0
    every ``eval_every`` epochs and after the last. ``stop_after`` ends the
    run after that epoch as if it had been killed and returns ``None`` (for
    tests of resuming).
    """
    dist = dist or Dist()
    out = Path(folder)
    ckpts = Checkpoints(out / "checkpoints")
    if dist.world > 1:
        if next(model.parameters()).device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(model)
    core = model.module if dist.world > 1 else model
    optimizer = schedule.optimizer(model)
    meta = dict(meta or {})

    start_epoch, history = 0, []
    state = ckpts.latest()
    if state is not None:
        if state["key"] != key:
            raise RuntimeError(f"{out} holds checkpoints of another configuration; use another output folder")
        core.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        start_epoch, history = state["epoch"] + 1, list(state["history"])
        if dist.main and progress:
            print(f"resuming {out} after epoch {state['epoch']}", file=sys.stderr, flush=True)

    def on_epoch(epoch: int, rec: dict, m: nn.Module, opt: torch.optim.Optimizer) -> None:
        if test_data is not None and eval_every and (epoch + 1) % eval_every == 0 and dist.main:
            ev = evaluate(core, test_data)
            rec.update({f"test_{k}": v for k, v in ev.items() if k != "n"})
        history.append(rec)
        if dist.main:
            ckpts.save(epoch, {"epoch": epoch, "model": core.state_dict(), "optimizer": opt.state_dict(),
                               "rng": rng_state(), "history": history, "key": key, "meta": meta})
            log = {"key": key, **meta, "world_size": dist.world, "history": history}
            text = strict_json(log, out / "history.json")
            atomic_write(out / "history.json", lambda tmp: tmp.write_text(text))
        dist.barrier()
        if stop_after is not None and epoch >= stop_after:
            raise _Stop

    try:
        train(model, source, schedule, optimizer=optimizer, start_epoch=start_epoch,
              progress=progress and dist.main, on_epoch=on_epoch)
    except _Stop:
        return None
    final = evaluate(core, test_data) if dist.main and test_data is not None else {}
    return RunResult(history, final, core, schedule.epochs - start_epoch, dist.world, meta)
