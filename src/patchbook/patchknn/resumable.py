"""Long training runs: resumable, and data-parallel through ``torch.distributed``.

``python -m patchbook train CONFIG`` (or ``torchrun --nproc_per_node N -m
patchbook train CONFIG``) trains the classifier of the patch k-NN pipeline on
codes recomputed every epoch from augmented images, as the authors do on
GPUs. The notebooks' ``paper`` profiles call :func:`run` with the same
configuration.

Resuming
    After every epoch rank 0 writes a checkpoint (model, optimiser, epoch,
    history, random states) atomically, with a SHA-256 beside it. A restarted
    run loads the newest checkpoint whose checksum matches, reports and skips
    any truncated or corrupt one, and continues. Data order and augmentation
    are functions of ``(seed, epoch)``, so a resumed run sees exactly the
    batches the uninterrupted run would have seen and ends with the same
    weights.

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
import os
import random
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from patchbook.cache import atomic_write
from patchbook.runtime import resolve_device

# ----------------------------------------------------------- configuration ----


@dataclass
class TrainConfig:
    """Everything a run depends on. Read from JSON or YAML by :func:`load_config`."""

    output: str = "runs/cifar10"
    dataset: str = "cifar10"
    n_per_class: int | None = None
    test_n_per_class: int | None = None
    encoder: dict = field(default_factory=lambda: {"n_atoms": 2048, "patch": 6, "k": 0.4, "lam": 1e-3})
    head: dict = field(default_factory=lambda: {"kind": "factorized", "bottleneck": 128, "kernel": 6})
    schedule: dict = field(default_factory=lambda: {"epochs": 80, "lr": 3e-3, "milestones": [50, 75]})
    batch_size: int = 128
    augment: bool = True
    padding: int = 4
    seed: int = 0
    eval_every: int = 1
    device: str = "auto"
    data_root: str | None = None
    notebook: str | None = None      # record final metrics for this notebook ...
    profile: str | None = None       # ... at this profile

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known keys are {sorted(known)}")
        return cls(**d)

    def key(self) -> str:
        """Hash of the settings that define the run (not where it is written)."""
        d = asdict(self)
        for k in ("output", "device", "data_root", "eval_every", "notebook", "profile"):
            d.pop(k)
        for k in ("memory_mb", "progress"):  # how the codes are computed, not what they are
            d["encoder"].pop(k, None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def load_config(path: str | os.PathLike) -> TrainConfig:
    """A :class:`TrainConfig` from a ``.json`` or ``.yaml`` file."""
    text = Path(path).read_text()
    if str(path).endswith((".yaml", ".yml")):
        import yaml

        d = yaml.safe_load(text)
    else:
        d = json.loads(text)
    return TrainConfig.from_dict(d)


# ------------------------------------------------------------- checkpoints ----


class CorruptCheckpoint(RuntimeError):
    pass


class Checkpoints:
    """Epoch checkpoints in a folder: ``ckpt-000012.pt`` and ``ckpt-000012.pt.sha256``.

    :meth:`save` writes both atomically (checkpoint first, checksum last, so a
    checkpoint without a matching checksum is incomplete). :meth:`latest`
    returns the newest valid one and warns about any it had to skip.
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
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise CorruptCheckpoint(f"{path}: cannot be read ({exc})") from exc

    def latest(self) -> dict | None:
        for epoch in reversed(self.epochs()):
            try:
                return self.load(epoch)
            except CorruptCheckpoint as exc:
                warnings.warn(f"skipping checkpoint: {exc}; using the previous one", stacklevel=2)
        return None


# ------------------------------------------------------------- distributed ----


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def init_distributed(device: str) -> Dist:
    """Join the process group that ``torchrun`` (or a test) set up through the
    environment; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


# ------------------------------------------------------------------ states ----


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


# --------------------------------------------------------------------- run ----


def build_encoder(cfg: TrainConfig, images: np.ndarray, device: str):
    """The fitted :class:`~patchbook.patchknn.encoding.PatchEncoder` of a run, cached on disk."""
    from patchbook import data as _data
    from patchbook.cache import memo_arrays
    from patchbook.patchknn.encoding import PatchEncoder

    enc = PatchEncoder(**{"seed": cfg.seed, **cfg.encoder}, device=device)

    key = {"encoder": enc.code_params(), "data": _data.loaded_fingerprints(), "n": len(images),
           "n_per_class": cfg.n_per_class}
    state = memo_arrays("train-encoder", key, lambda: enc.fit(images).state())
    if not hasattr(enc, "kernels_"):
        enc.load_state(state)
    return enc


def run(cfg: TrainConfig, resume: bool = True, stop_after: int | None = None,
        progress: bool = True) -> dict[str, Any]:
    """Train (or resume) the run ``cfg`` and return its history and final metrics.

    ``stop_after`` ends the run after that epoch as if it had been killed
    (for tests of resuming).
    """
    from patchbook import data
    from patchbook.patchknn.classifier import (
        EncodedBatches,
        Schedule,
        evaluate,
        make_head,
        train,
    )

    device = resolve_device(cfg.device)
    dist = init_distributed(device)
    if device.startswith("cuda") and dist.world > 1:
        device = f"cuda:{dist.local_rank}"
        torch.cuda.set_device(dist.local_rank)
    out = Path(cfg.output)
    ckpts = Checkpoints(out / "checkpoints")

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    train_ds = data.load(cfg.dataset, "train", root=cfg.data_root, n_per_class=cfg.n_per_class, seed=cfg.seed)
    test_split = "val" if cfg.dataset == "tiny-imagenet-100" else "test"
    test_ds = data.load(cfg.dataset, test_split, root=cfg.data_root, n_per_class=cfg.test_n_per_class,
                        seed=cfg.seed)
    encoder = build_encoder(cfg, train_ds.images, device)
    H, W = train_ds.images.shape[1:3]
    head = cfg.head.copy()
    model = make_head(head.pop("kind", "factorized"), encoder.out_shape(H, W), len(train_ds.classes), **head)
    model = model.to(device)
    schedule = Schedule(**{**cfg.schedule, "milestones": tuple(cfg.schedule.get("milestones", ()))})
    if dist.world > 1:
        if device.startswith("cuda"):
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(model)
    core = model.module if dist.world > 1 else model
    optimizer = schedule.optimizer(model)

    start_epoch, history = 0, []
    state = ckpts.latest() if resume else None
    if state is not None:
        if state["config_key"] != cfg.key():
            raise RuntimeError(f"{out} holds checkpoints of another configuration; use another output folder")
        core.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
        start_epoch, history = state["epoch"] + 1, state["history"]
        if dist.main and progress:
            print(f"resuming {out} after epoch {state['epoch']}", file=sys.stderr, flush=True)

    source = EncodedBatches(encoder, train_ds.images, train_ds.labels, cfg.batch_size, shuffle=True,
                            augment_train=cfg.augment, padding=cfg.padding, seed=cfg.seed, rank=dist.rank,
                            world=dist.world)
    test_source = EncodedBatches(encoder, test_ds.images, test_ds.labels, cfg.batch_size)

    class _Stop(Exception):
        pass

    def on_epoch(epoch: int, rec: dict, m: nn.Module, opt: torch.optim.Optimizer) -> None:
        if cfg.eval_every and (epoch + 1) % cfg.eval_every == 0 and dist.main:
            ev = evaluate(core, test_source)
            rec.update({f"test_{k}": v for k, v in ev.items() if k != "n"})
        history.append(rec)
        if dist.main:
            ckpts.save(epoch, {"epoch": epoch, "model": core.state_dict(), "optimizer": opt.state_dict(),
                               "rng": _rng_state(), "history": history, "config_key": cfg.key(),
                               "config": asdict(cfg)})
            log = {"config": asdict(cfg), "world_size": dist.world, "history": history}
            atomic_write(out / "history.json", lambda tmp: tmp.write_text(json.dumps(log, indent=1)))
        dist.barrier()
        if stop_after is not None and epoch >= stop_after:
            raise _Stop

    try:
        train(model, source, schedule, optimizer=optimizer, start_epoch=start_epoch,
              progress=progress and dist.main, on_epoch=on_epoch)
    except _Stop:
        return {"stopped_after": stop_after, "history": history, "model": core}
    final = evaluate(core, test_source) if dist.main else {}
    result = {"history": history, "final": final, "model": core, "encoder": encoder, "world_size": dist.world}
    if dist.main and cfg.notebook and cfg.profile and final:
        from patchbook.pages import results

        for k in ("top1", "top5"):
            results.record(cfg.notebook, f"train {cfg.key()} test {k}", 100 * final[k], unit="%",
                           profile=cfg.profile, params=asdict(cfg), history=history, world_size=dist.world)
    return result


# --------------------------------------------------------- notebook rows ----


def config_for_cifar_row(q: dict, *, output: str | os.PathLike | None = None, notebook: str | None = None,
                         profile: str | None = None, eval_every: int = 1) -> TrainConfig:
    """The :class:`TrainConfig` of a measured row of ``notebooks/cifar10-table.md``.

    ``q`` holds the row's parameters (the profile's, see
    :mod:`patchbook.pages.profiles.cifar10_table`, with the row's overrides):
    encoder (``n_atoms``, ``patch``, ``k_fraction``, ``lam``, ``whitening``,
    ``both_signs``, ``soft`` (0: binary code), pooling, ``mirror``), head
    (``head``, ``bottleneck``, ``head_kernel``), SGD (``epochs``, ``lr``,
    ``milestones``, ``momentum``, ``weight_decay``, ``batch_size``), random
    crop after ``padding`` and flip (``augment``), subsets (``n_per_class``,
    ``n_test_per_class``, 0: all) and ``seed``. ``output`` defaults to a
    folder of the cache named by :meth:`TrainConfig.key`, so rerunning the
    row resumes its checkpoints and another row never meets them.
    """
    from patchbook.patchknn.pipeline import (
        ENCODER_KEYS,
        HEAD_KEYS,
        TRAIN_KEYS,
        paper_train_config,
    )
    from patchbook.paths import cache_root

    point = {k: q[k] for k in ENCODER_KEYS + HEAD_KEYS + TRAIN_KEYS if k in q}
    point.update(k=float(q["k_fraction"]), soft=float(q["soft"]) if q["soft"] else None)
    cfg = paper_train_config(point, dataset="cifar10", output="", n_per_class=q["n_per_class"],
                             test_n_per_class=q["n_test_per_class"], augment=bool(q["augment"]),
                             padding=q["padding"], seed=q["seed"], notebook=notebook, profile=profile,
                             device=q["device"], eval_every=eval_every)
    cfg.encoder.update(mirror=bool(q["mirror"]), memory_mb=int(q["memory_mb"]))
    cfg.output = str(output if output is not None else cache_root() / "train-runs" / "cifar10-table" / cfg.key())
    return cfg


def config_for_paper_run(entry: dict, *, output_root: str | os.PathLike, k: float = 0.4,
                         head: str = "factorized", seed: int = 0, device: str = "auto",
                         notebook: str | None = None, profile: str | None = None) -> tuple[str, TrainConfig]:
    """``(name, TrainConfig)`` of one entry of a notebook's ``paper_runs``
    (e.g. :mod:`patchbook.pages.profiles.imagenet_table`): ``name`` and
    ``dataset`` (a data-layer name such as ``imagefolder:<path>``), the
    encoder, head and SGD settings, ``padding`` of the random crop (default
    4) and ``image_size`` (informative: the images are used at their size).
    ``k`` (fraction of |D|) and ``head`` are the defaults an entry may
    override. Checkpoints go to ``output_root / <name without spaces or
    commas>``, so each run resumes its own."""
    from patchbook.patchknn.pipeline import paper_train_config

    cfg = dict(entry)
    name, dataset = cfg.pop("name"), cfg.pop("dataset")
    cfg.pop("image_size", None)
    padding = cfg.pop("padding", 4)
    cfg.setdefault("k", k)
    cfg.setdefault("head", head)
    cfg.setdefault("both_signs", True)
    folder = Path(output_root) / name.replace(" ", "_").replace(",", "")
    return name, paper_train_config(cfg, dataset=dataset, output=str(folder), padding=padding, seed=seed,
                                    device=device, notebook=notebook, profile=profile)


def probe(cfg: TrainConfig, resume: bool = True, progress: bool = False):
    """:func:`run` ``cfg`` (resuming its checkpoints) and return what
    :func:`patchbook.patchknn.classifier.linear_probe` returns, so a notebook treats
    both alike. ``seconds``: ``train_epochs``, the training time of every
    epoch (of earlier, interrupted sessions too), and ``this_run``, the wall
    time of this call (data, encoder, remaining epochs, evaluation). Single
    process (or rank 0) only: the other ranks have no metrics.
    """
    import time

    from patchbook.patchknn.classifier import History, ProbeResult

    t0 = time.perf_counter()
    res = run(cfg, resume=resume, progress=progress)
    if not res.get("final"):
        raise RuntimeError("no final metrics: probe() needs a single process or rank 0")
    seconds = {"train_epochs": float(sum(h["seconds"] for h in res["history"])),
               "this_run": time.perf_counter() - t0}
    return ProbeResult(res["final"]["top1"], res["final"]["top5"], History(list(res["history"])), res["encoder"],
                       res["model"], seconds, cached_codes=False)



def main(config_path: str) -> int:
    """``python -m patchbook train CONFIG``."""
    cfg = load_config(config_path)
    res = run(cfg)
    if res.get("final"):
        print(json.dumps({k: v for k, v in res["final"].items()}, indent=1))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        torch.distributed.destroy_process_group()
    return 0
