"""Resumable and data-parallel training (issue: paper-scale training)."""

import os
import socket
import warnings

import pytest
import torch
import torch.multiprocessing as mp

from patchbook import train as T


def small_config(out, **kw) -> T.TrainConfig:
    base = dict(output=str(out), dataset="mnist", n_per_class=8, test_n_per_class=4,
                encoder={"n_atoms": 24, "patch": 5, "k": 0.4, "lam": 1e-2},
                head={"kind": "factorized", "bottleneck": 8, "kernel": 6},
                schedule={"epochs": 3, "lr": 0.05, "milestones": [2]}, batch_size=20, seed=0, device="cpu")
    base.update(kw)
    return T.TrainConfig(**base)


def weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_checkpoints_detect_corruption(tmp_path):
    ck = T.Checkpoints(tmp_path, keep=3)
    for e in range(3):
        ck.save(e, {"epoch": e, "x": torch.full((100,), float(e))})
    assert ck.latest()["epoch"] == 2
    p = ck.path(2)
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])      # truncated
    with pytest.warns(UserWarning, match="ckpt-000002.pt"):
        state = ck.latest()
    assert state["epoch"] == 1
    ck.path(1).with_name("ckpt-000001.pt.sha256").unlink()           # interrupted while saving
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ck.latest()["epoch"] == 0
    with pytest.raises(T.CorruptCheckpoint):
        ck.load(2)


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown config keys"):
        T.TrainConfig.from_dict({"epochz": 3})


def test_resumed_run_equals_uninterrupted(data_root, tmp_path):
    full = T.run(small_config(tmp_path / "full"), progress=False)
    part = T.run(small_config(tmp_path / "resumed"), stop_after=0, progress=False)
    assert part["stopped_after"] == 0 and len(part["history"]) == 1
    resumed = T.run(small_config(tmp_path / "resumed"), progress=False)
    a, b = weights(full["model"]), weights(resumed["model"])
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resuming"
    assert [h["train_loss"] for h in full["history"]] == [h["train_loss"] for h in resumed["history"]]
    assert full["final"] == resumed["final"]


def test_resume_refuses_another_config(data_root, tmp_path):
    T.run(small_config(tmp_path / "r"), stop_after=0, progress=False)
    with pytest.raises(RuntimeError, match="another configuration"):
        T.run(small_config(tmp_path / "r", seed=1), progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cfg: T.TrainConfig, data_root: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank), PATCHBOOK_DATA=data_root)
    torch.set_num_threads(1)
    T.run(cfg, progress=False)
    torch.distributed.destroy_process_group()


# Tolerance of the 2-process run against 1 process: the same gradients summed
# in another order (DDP's all-reduce), float32, over 3 epochs.
DDP_ATOL = 1e-5


def test_two_gloo_processes_match_one(data_root, tmp_path):
    # No BatchNorm: on CPUs each rank would normalise with its own half batch.
    head = {"kind": "factorized", "bottleneck": 8, "kernel": 6, "batchnorm": False}
    one = T.run(small_config(tmp_path / "one", head=head), progress=False)
    cfg2 = small_config(tmp_path / "two", head=head)
    mp.spawn(_worker, args=(2, _free_port(), cfg2, str(data_root)), nprocs=2, join=True)
    state = T.Checkpoints(tmp_path / "two" / "checkpoints").latest()
    assert state["epoch"] == 2
    a = weights(one["model"])
    for k, v in state["model"].items():
        assert torch.allclose(a[k], v, atol=DDP_ATOL, rtol=0), f"{k}: max diff {(a[k] - v).abs().max()}"


def test_encoded_batches_leave_gradients_on(data_root):
    """Iterating a source must not switch autograd off in the training step."""
    import numpy as np

    from patchbook.classifier import EncodedBatches
    from patchbook.encoding import PatchEncoder

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 12, 12, 3), dtype=np.uint8)
    enc = PatchEncoder(n_atoms=8, patch=3, k=3, lam=1e-2).fit(images)
    for source in (EncodedBatches(enc, images, np.arange(6) % 2, batch_size=3, augment_train=True),
                   T.ShardedEncodedBatches(enc, images, np.arange(6) % 2, batch_size=3)):
        for x, _ in source:
            assert torch.is_grad_enabled()
            w = torch.zeros(1, requires_grad=True)
            assert (x.sum() * w).requires_grad
