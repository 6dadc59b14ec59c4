"""Training on CUDA: the augmented pipeline (codes recomputed every epoch)
checkpointing and resuming with identical metrics, and data parallelism on
several GPUs (SyncBatchNorm, NCCL).

Skipped (and listed as skipped by ``-ra``) without a GPU;
``PATCHBOOK_CUDA_TEST_DEVICE=cpu`` runs them on the CPU to check the tests.
The data are a small lossless image folder written by the test, so no data
root is needed (on a lent GPU machine none may be there).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

# cuBLAS is deterministic only with a fixed workspace, set before its first use in the process
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

from patchbook.patchknn import pipeline, resumable  # noqa: E402

DEVICE = os.environ.get("PATCHBOOK_CUDA_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(),
    reason="no CUDA device: the cuda tests run on a GPU machine (benchmarks/gpu_check.sh)")]


@pytest.fixture(autouse=True)
def fresh_process_memory():
    pipeline.forget()
    yield
    pipeline.forget()


@pytest.fixture
def deterministic():
    """Deterministic kernels (cuDNN, cuBLAS, scatter): a rerun of the same
    steps gives the same bits. Ops without a deterministic version warn."""
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def image_folder(root: Path, n_train: int = 8, n_test: int = 4, classes: int = 3, size: int = 16) -> str:
    """A lossless (PNG) image folder with train/ and test/ splits, as a ``dataset`` name."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for c in range(classes):
            d = root / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            for j in range(n):
                base = rng.integers(0, 256, (size // 4, size // 4, 3)).astype(np.float32)
                img = np.kron(base, np.ones((4, 4, 1), np.float32)) + rng.normal(0, 10, (size, size, 3))
                img[..., c] += 40                                   # a class signal
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(d / f"{j:03d}.png")
    return f"imagefolder:{root}"


def config(dataset: str, **kw) -> pipeline.PointConfig:
    """Augmented codes recomputed every epoch (the paper rows' recipe), 3 epochs, tiny."""
    base = dict(dataset=dataset, n_atoms=32, patch=5, k=0.4, lam=1e-2, pool=4, pool_stride=3, ceil_mode=False,
                head="factorized", bottleneck=8, head_kernel=3, epochs=3, lr=0.05, milestones=[2], batch_size=8,
                augment=True, padding=2, seed=0)
    return pipeline.PointConfig(**{**base, **kw})


def final_weights(folder: Path) -> dict:
    return resumable.Checkpoints(folder / "checkpoints").latest()["model"]


@pytest.mark.parametrize("where", ["cpu", "device"])
def test_augmented_measure_resumes_with_identical_metrics(where, tmp_path, tmp_cache, deterministic):
    """pipeline.measure with augment=True, killed after epoch 0 and resumed
    in a fresh process memory, ends with the weights, the per-epoch history
    and the final metrics of the uninterrupted run: on the device, and on
    the CPU for comparison."""
    device = "cpu" if where == "cpu" else DEVICE
    c = config(image_folder(tmp_path / "data"))
    full = pipeline.measure(c, device=device, output=tmp_path / "full")
    assert pipeline.measure(c, device=device, output=tmp_path / "resumed", stop_after=0) is None
    assert resumable.Checkpoints(tmp_path / "resumed" / "checkpoints").epochs() == [0]
    pipeline.forget()                                             # as a new process would
    resumed = pipeline.measure(c, device=device, output=tmp_path / "resumed")
    a, b = final_weights(tmp_path / "full"), final_weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resuming on {device}"
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in full.history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in resumed.history]
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2] and not resumed.cached
    assert (full.test_top1, full.test_top5, full.best_test_top1) == (resumed.test_top1, resumed.test_top5,
                                                                    resumed.best_test_top1)
    assert full.n_features == 2 * 32 * 3 * 3                       # x and -x, 12 x 12 maps pooled 4 / 3
    again = pipeline.measure(c, device=device, output=tmp_path / "resumed")
    assert again.cached and again.history == resumed.history      # finished: nothing retrained


def test_cached_codes_point_on_device(tmp_path, tmp_cache):
    """augment=False on the device: codes computed once as uint8 counts,
    head trained on them there (ArrayBatches on the device, random flips of
    a mirror-closed dictionary's cached codes), then the point from the cache."""
    c = config(image_folder(tmp_path / "data"), augment=False, mirror=True, pool=4, pool_stride=4)
    p = pipeline.measure(c, device=DEVICE)
    assert 0 <= p.test_top1 <= p.test_top5 <= 100 and len(p.history) == 3 and not p.cached
    assert pipeline.measure(c, device=DEVICE).cached


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cfg: pipeline.PointConfig, out: str, env: dict) -> None:
    os.environ.update(env, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    point = pipeline.measure(cfg, device="cuda", output=out)
    assert (point is not None) == (rank == 0)
    resumable.finish_distributed()


# The same gradients summed in another order (NCCL's all-reduce), float32, 3 epochs.
DDP_ATOL = 1e-4


@pytest.mark.skipif(DEVICE != "cuda" or torch.cuda.device_count() < 2,
                    reason="data parallelism on GPUs needs 2 GPUs (NCCL refuses two ranks on one)")
def test_two_gpus_match_one(tmp_path, tmp_cache):
    """torchrun's path on GPUs: one process per GPU, NCCL, the head's
    BatchNorm as SyncBatchNorm, each rank encoding its share of every
    global batch; the weights equal one process's up to summation order."""
    c = config(image_folder(tmp_path / "data"))
    pipeline.measure(c, device="cuda", output=tmp_path / "one")
    env = {k: os.environ[k] for k in ("PATCHBOOK_CACHE",) if k in os.environ}
    mp.spawn(_worker, args=(2, _free_port(), c, str(tmp_path / "two"), env), nprocs=2, join=True)
    state = resumable.Checkpoints(tmp_path / "two" / "checkpoints").latest()
    assert state["epoch"] == 2
    a = final_weights(tmp_path / "one")
    for k, v in state["model"].items():
        assert torch.allclose(a[k].float(), v.float(), atol=DDP_ATOL, rtol=0), f"{k}: {(a[k] - v).abs().max()}"
