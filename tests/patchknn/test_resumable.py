"""Resumable and data-parallel training (issue: paper-scale training)."""

import json
import os
import socket
import warnings
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from patchbook.patchknn import resumable as T


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


def test_encoded_batches_leave_gradients_on():
    """Iterating a source must not switch autograd off in the training step."""
    import numpy as np

    from patchbook.patchknn.classifier import EncodedBatches
    from patchbook.patchknn.encoding import PatchEncoder

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 12, 12, 3), dtype=np.uint8)
    enc = PatchEncoder(n_atoms=8, patch=3, k=3, lam=1e-2).fit(images)
    for source in (EncodedBatches(enc, images, np.arange(6) % 2, batch_size=3, augment_train=True),
                   EncodedBatches(enc, images, np.arange(6) % 2, batch_size=2, shuffle=True, augment_train=True,
                                  rank=1, world=2)):
        for x, _ in source:
            assert torch.is_grad_enabled()
            w = torch.zeros(1, requires_grad=True)
            assert (x.sum() * w).requires_grad


def test_encoded_batch_shards_make_up_the_single_process_batches():
    """rank::world shares of each augmented global batch, interleaved, are the
    batches of one process (same order, same crops and flips); the last
    incomplete global batch is dropped so that every share has the same size."""
    import numpy as np

    from patchbook.patchknn.classifier import EncodedBatches
    from patchbook.patchknn.encoding import PatchEncoder

    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (11, 12, 12, 3), dtype=np.uint8)
    labels = np.arange(11) % 3
    enc = PatchEncoder(n_atoms=8, patch=3, k=3, lam=1e-2, pool=4, pool_stride=3).fit(images)
    kw = dict(batch_size=4, shuffle=True, augment_train=True, padding=2, seed=3)
    one = EncodedBatches(enc, images, labels, encode_batch=3, **kw)
    shards = [EncodedBatches(enc, images, labels, rank=r, world=2, **kw) for r in range(2)]
    for src in (one, *shards):
        src.set_epoch(2)
    assert len(one) == 3 and all(len(s) == 2 for s in shards)
    for (x, y), (x0, y0), (x1, y1) in zip(one, *shards):
        assert len(x0) == len(x1) == 2
        torch.testing.assert_close(x[0::2], x0, rtol=0, atol=0)
        torch.testing.assert_close(x[1::2], x1, rtol=0, atol=0)
        assert torch.equal(y[0::2], y0) and torch.equal(y[1::2], y1)
    with pytest.raises(ValueError, match="not divisible"):
        EncodedBatches(enc, images, labels, batch_size=5, world=2)


def cifar_paper_row(**changes) -> dict:
    """The first measured row of notebooks/cifar10-table.md at the paper profile."""
    from patchbook.pages import profiles

    P = profiles.resolve("cifar10-table", "paper", changes)
    return {**P, **P["rows"][0]}


def test_cifar_paper_row_config(tmp_path, monkeypatch):
    q = cifar_paper_row()
    assert q["augment"]
    monkeypatch.setenv("PATCHBOOK_CACHE", str(tmp_path / "cache"))
    tc = T.config_for_cifar_row(q)
    assert (tc.dataset, tc.n_per_class, tc.test_n_per_class, tc.seed) == ("cifar10", None, None, 0)
    assert tc.encoder == {"n_atoms": 2048, "patch": 6, "k": 0.4, "lam": 1e-3, "whitening": "zca",
                          "both_signs": True, "soft": None, "pool": 5, "pool_stride": 3, "ceil_mode": True,
                          "mirror": False, "memory_mb": 8192}
    assert tc.head == {"kind": "factorized", "bottleneck": 128, "kernel": 6}
    assert tc.schedule == {"epochs": 80, "lr": 3e-3, "milestones": [50, 75], "momentum": 0.9, "weight_decay": 0.0}
    assert (tc.batch_size, tc.augment, tc.padding) == (128, True, 4)
    assert T.TrainConfig.from_dict(json.loads(json.dumps(asdict(tc)))) == tc   # a config file for torchrun
    # checkpoints in the cache, in a folder of the row: another row never resumes them
    assert Path(tc.output) == tmp_path / "cache" / "train-runs" / "cifar10-table" / tc.key()
    assert T.config_for_cifar_row(cifar_paper_row(n_atoms=16384)).output != tc.output
    assert T.config_for_cifar_row(cifar_paper_row(soft=1.0)).encoder["soft"] == 1.0
    assert T.config_for_cifar_row(cifar_paper_row(memory_mb=512)).output == tc.output   # not a setting of the run
    assert T.config_for_cifar_row(q, output=tmp_path / "x").output == str(tmp_path / "x")


def test_imagenet_paper_run_config(tmp_path):
    """The ImageNet page's ``paper_runs`` entries become resumable configs."""
    from patchbook.pages.profiles import imagenet_table

    entry = imagenet_table.PROFILES["paper"]["paper_runs"][0]
    name, tc = T.config_for_paper_run(entry, output_root=tmp_path, k=0.4, seed=3, notebook="imagenet-table",
                                      profile="paper")
    assert name == entry["name"] and "name" in entry        # the profile's entry is not consumed
    assert (tc.dataset, tc.seed, tc.augment, tc.padding) == (entry["dataset"], 3, True, entry["padding"])
    assert Path(tc.output) == tmp_path / name.replace(" ", "_").replace(",", "")
    assert tc.encoder["k"] == entry["k"] and tc.encoder["both_signs"]
    assert (tc.encoder["n_atoms"], tc.encoder["pool"], tc.encoder["pool_stride"]) == (2048, 5, 3)
    assert tc.head == {"kind": "factorized", "bottleneck": entry["bottleneck"], "kernel": entry["head_kernel"]}
    assert tc.schedule["milestones"] == entry["milestones"] and tc.batch_size == entry["batch_size"]
    assert (tc.notebook, tc.profile) == ("imagenet-table", "paper")
    _, other = T.config_for_paper_run({k: v for k, v in entry.items() if k != "k"}, output_root=tmp_path, k=0.25)
    assert other.encoder["k"] == 0.25                        # the page's K where the entry has none
    assert T.TrainConfig.from_dict(json.loads(json.dumps(asdict(tc)))) == tc


def test_cifar_paper_row_runs_and_resumes(data_root, tmp_path):
    """A tiny real-data run of a paper-profile row: augmented codes every
    epoch, metrics, a checkpoint; rerunning it resumes (nothing retrained)."""
    q = cifar_paper_row(n_per_class=2, n_test_per_class=2, n_atoms=32, epochs=1, milestones=[], batch_size=10,
                        memory_mb=64, device="cpu")
    tc = T.config_for_cifar_row(q, output=tmp_path / "row")
    assert tc.augment and tc.encoder["pool"] == 5 and tc.encoder["ceil_mode"]
    res = T.probe(tc)
    assert 0 <= res.top1 <= res.top5 <= 1
    assert [h["epoch"] for h in res.history.epochs] == [0] and res.history.epochs[0]["lr"] == 3e-3
    assert res.encoder.out_shape(32, 32) == (64, 9, 9)       # x and -x, pooled 5 / 3 in ceil mode
    assert T.Checkpoints(tmp_path / "row" / "checkpoints").epochs() == [0]
    again = T.probe(tc)
    assert again.history.epochs == res.history.epochs and (again.top1, again.top5) == (res.top1, res.top5)
    assert again.seconds["train_epochs"] == res.seconds["train_epochs"]
