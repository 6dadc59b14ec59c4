"""Where and how computations run: the device, the CPU threads, the seeds and
a description of the machine for the records."""

from __future__ import annotations

import os
import platform
import random
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device = "auto") -> str:
    """``"auto"``: ``"cuda"`` when a GPU is visible, else ``"cpu"``; ``"cpu"``,
    ``"cuda"`` and ``"cuda:N"`` are returned as they are, after checking that
    CUDA is there for them."""
    name = str(device)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but no CUDA device is visible; use 'auto' or 'cpu'")
        return name
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run torch's CPU operations on ``n`` threads inside the block (``None``:
    leave the setting alone), then restore the previous setting."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@lru_cache(maxsize=1)
def hardware() -> dict[str, Any]:
    """A short description of the machine: CPU model, cores, GPU if any, torch."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "torch": torch.__version__}


def describe_hardware() -> str:
    """``"NVIDIA H200"`` or ``"AMD EPYC ... (2 cores)"``: where a measurement ran."""
    hw = hardware()
    return hw["gpu"] or f"{hw['cpu']} ({hw['cores']} cores)"
