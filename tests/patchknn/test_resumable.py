"""Resumable and data-parallel training: checkpoints, bit-identical resume, DDP."""

import json
import math
import os
import random
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from patchbook.pages import profiles
from patchbook.patchknn import pipeline as ex
from patchbook.patchknn import resumable as T
from patchbook.patchknn.classifier import (
    ArrayBatches,
    Diverged,
    EncodedBatches,
    Schedule,
    make_head,
)
from patchbook.patchknn.encoding import PatchEncoder
from patchbook.paths import cache_root


@pytest.fixture(autouse=True)
def fresh_process_memory():
    ex.forget()
    yield
    ex.forget()


@pytest.fixture
def data_cache(tmp_path, monkeypatch) -> Path:
    """An empty cache, except for the decoded data sets of the usual one (linked)."""
    decoded = cache_root() / "datasets"
    decoded.mkdir(parents=True, exist_ok=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "datasets").symlink_to(decoded, target_is_directory=True)
    monkeypatch.setenv("PATCHBOOK_CACHE", str(cache))
    return cache


def small_config(**kw) -> ex.PointConfig:
    """Augmented codes of a few MNIST digits, 3 epochs: a resumable run in seconds."""
    base = dict(dataset="mnist", n_per_class=8, n_test_per_class=4, n_atoms=24, patch=5, k=0.4, lam=1e-2,
                head="factorized", bottleneck=8, head_kernel=6, epochs=3, lr=0.05, milestones=[2], batch_size=20,
                augment=True, seed=0)
    return ex.PointConfig(**{**base, **kw})


def final_weights(folder: Path) -> dict:
    return T.Checkpoints(folder / "checkpoints").latest()["model"]


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


def test_rng_states_are_tensors_and_restore_every_generator(tmp_path):
    torch.manual_seed(3)
    np.random.seed(4)
    random.seed(5)
    np.random.standard_normal()                                    # a cached Gaussian in numpy's state
    state = T.rng_state()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    expected = (torch.rand(3), np.random.standard_normal(3), random.random())
    ck = T.Checkpoints(tmp_path)
    ck.save(0, {"rng": state})
    loaded = torch.load(ck.path(0), weights_only=True)["rng"]      # plain tensors: no pickled objects
    T.set_rng_state(loaded)
    got = (torch.rand(3), np.random.standard_normal(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_resumed_run_equals_uninterrupted(data_root, tmp_cache, tmp_path):
    c = small_config()
    full = ex.measure(c, device="cpu", output=tmp_path / "full")
    assert ex.measure(c, device="cpu", output=tmp_path / "resumed", stop_after=0) is None
    assert T.Checkpoints(tmp_path / "resumed" / "checkpoints").epochs() == [0]
    ex.forget()                                                     # as a new process would
    resumed = ex.measure(c, device="cpu", output=tmp_path / "resumed")
    a, b = final_weights(tmp_path / "full"), final_weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resuming"
    assert [h["train_loss"] for h in full.history] == [h["train_loss"] for h in resumed.history]
    assert (full.test_top1, full.test_top5) == (resumed.test_top1, resumed.test_top5)
    assert not resumed.cached and full.history[-1]["epoch"] == 2


def test_resume_refuses_another_config(data_root, tmp_cache, tmp_path):
    ex.measure(small_config(), device="cpu", output=tmp_path / "r", stop_after=0)
    with pytest.raises(RuntimeError, match="another configuration"):
        ex.measure(small_config(seed=1), device="cpu", output=tmp_path / "r")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cfg: ex.PointConfig, out: str, env: dict) -> None:
    os.environ.update(env, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    point = ex.measure(cfg, device="cpu", output=out)
    assert (point is not None) == (rank == 0)                       # only rank 0 evaluates
    T.finish_distributed()


# Tolerance of the 2-process run against 1 process: the same gradients summed
# in another order (DDP's all-reduce), float32, over 3 epochs.
DDP_ATOL = 1e-5


def test_two_gloo_processes_match_one(data_root, tmp_cache, tmp_path):
    # No BatchNorm: on CPUs each rank would normalise with its own half batch.
    c = small_config(batchnorm=False)
    ex.measure(c, device="cpu", output=tmp_path / "one")
    env = {k: os.environ[k] for k in ("PATCHBOOK_DATA", "PATCHBOOK_CACHE")}
    mp.spawn(_worker, args=(2, _free_port(), c, str(tmp_path / "two"), env), nprocs=2, join=True)
    state = T.Checkpoints(tmp_path / "two" / "checkpoints").latest()
    assert state["epoch"] == 2
    a = final_weights(tmp_path / "one")
    for k, v in state["model"].items():
        assert torch.allclose(a[k], v, atol=DDP_ATOL, rtol=0), f"{k}: max diff {(a[k] - v).abs().max()}"


def test_encoded_batches_leave_gradients_on():
    """Iterating a source must not switch autograd off in the training step."""
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


def cifar_paper_row(**changes) -> ex.PointConfig:
    """The first measured row of notebooks/cifar10-table.md at the paper profile."""
    P = profiles.resolve("cifar10-table", "paper", changes)
    return ex.PointConfig.from_params(P, **P["rows"][0])


def test_cifar_paper_row_config(tmp_cache):
    c = cifar_paper_row()
    assert c.augment and (c.dataset, c.n_per_class, c.n_test_per_class, c.seed) == ("cifar10", 0, 0, 0)
    assert c.encoder_params() == {"n_atoms": 2048, "patch": 6, "k": 0.4, "lam": 1e-3, "whitening": "zca",
                                  "both_signs": True, "soft": None, "pool": 5, "pool_stride": 3,
                                  "ceil_mode": True, "out_size": None, "stride": 1, "mirror": False,
                                  "formulation": "ours", "seed": 0}
    assert (c.head, c.bottleneck, c.head_kernel, c.batchnorm) == ("factorized", 128, 6, True)
    assert (c.epochs, c.lr, c.milestones, c.momentum, c.weight_decay) == (80, 3e-3, (50, 75), 0.9, 0.0)
    assert (c.batch_size, c.padding) == (128, 4)
    # checkpoints in the cache, in a folder of the point: another row never resumes them
    assert ex.run_folder(c) == tmp_cache / "train-runs" / c.key()
    assert ex.run_folder(cifar_paper_row(n_atoms=16384)) != ex.run_folder(c)
    assert cifar_paper_row(soft=1.0).soft == 1.0
    assert cifar_paper_row(memory_mb=512, device="cpu").key() == c.key()   # not settings of the point


def test_cifar_paper_row_runs_and_resumes(data_root, data_cache, tmp_path):
    """A tiny real-data run of a paper-profile row: augmented codes every
    epoch, metrics, a checkpoint; rerunning it resumes (nothing retrained)."""
    c = cifar_paper_row(n_per_class=2, n_test_per_class=2, n_atoms=32, epochs=1, milestones=[], batch_size=10)
    p = ex.measure(c, device="cpu", memory_mb=64, output=tmp_path / "row")
    assert 0 <= p.test_top1 <= p.test_top5 <= 100
    assert [h["epoch"] for h in p.history] == [0] and p.history[0]["lr"] == 3e-3 and not p.cached
    assert p.n_features == 64 * 9 * 9                                # x and -x, pooled 5 / 3 in ceil mode
    assert T.Checkpoints(tmp_path / "row" / "checkpoints").epochs() == [0]
    again = ex.measure(c, device="cpu", output=tmp_path / "row")
    assert again.cached and again.history == p.history and (again.test_top1, again.test_top5) == (p.test_top1, p.test_top5)
    assert again.seconds["train_epochs"] == p.seconds["train_epochs"]


# ---------------------------------------------------- diverging runs, strict JSON ----

class _PoisonedFrom(ArrayBatches):
    """Array batches whose batch ``batch`` holds a NaN feature from epoch
    ``epoch`` on (a run that diverges there, whenever it is run)."""

    def __init__(self, *args, epoch: int, batch: int, **kw):
        super().__init__(*args, **kw)
        self.poison = (epoch, batch)

    def __iter__(self):
        for b, (x, y) in enumerate(super().__iter__()):
            if self.epoch >= self.poison[0] and b == self.poison[1]:
                x = x.clone()
                x[0, 0, 0, 0] = float("nan")
            yield x, y


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"bare {name} in the JSON")
    return json.loads(text, parse_constant=refuse)


def test_a_diverging_run_stops_and_checkpoints_only_finite_epochs(tmp_path):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(48, 3, 2, 2, generator=g)
    y = (X[:, 0, 0, 0] > 0).long()
    source = _PoisonedFrom(X, y, batch_size=16, shuffle=True, epoch=2, batch=1)

    def run():
        torch.manual_seed(0)
        model = make_head("linear", (3, 2, 2), n_classes=2)
        return T.fit(model, source, Schedule(epochs=4, lr=0.05), tmp_path, key="poisoned", meta={"lr": 0.05},
                     test_data=ArrayBatches(X, y, batch_size=16), progress=False)

    for attempt in range(2):                               # a rerun resumes after epoch 1 and stops again
        with pytest.raises(Diverged, match=r"loss nan at epoch 2, batch 1 of 3, learning rate 0\.05"):
            run()
        ckpts = T.Checkpoints(tmp_path / "checkpoints")
        assert ckpts.epochs() == [0, 1]
        for epoch in ckpts.epochs():
            weights = ckpts.load(epoch)["model"]
            assert all(bool(torch.isfinite(t).all()) for t in weights.values() if t.is_floating_point())
        log = _strict((tmp_path / "history.json").read_text())
        assert [h["epoch"] for h in log["history"]] == [0, 1]
        assert all(math.isfinite(v) for h in log["history"] for v in h.values())


def test_history_json_is_strict(tmp_path):
    assert _strict(T.strict_json({"a": [1.0, None]}, tmp_path / "h.json")) == {"a": [1.0, None]}
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match=r"h\.json: refusing to write a non-finite number"):
            T.strict_json({"history": [{"train_loss": bad}]}, tmp_path / "h.json")


@pytest.mark.parametrize("field, value, match", [
    ("epochs", -2, "epochs must be an int >= 1, got -2"),
    ("epochs", 0, "epochs must be an int >= 1, got 0"),
    ("epochs", 2.5, "epochs must be an int >= 1, got 2.5"),
    ("epochs", True, "epochs must be an int >= 1, got True"),
    ("batch_size", 0, "batch_size must be an int >= 1, got 0"),
    ("lr", 0.0, "lr must be a finite number > 0, got 0.0"),
    ("lr", -1e-3, "lr must be a finite number > 0"),
    ("lr", float("nan"), "lr must be a finite number > 0, got nan"),
    ("lr", float("inf"), "lr must be a finite number > 0, got inf"),
    ("lr", "3e-3", r"got '3e-3' \(YAML reads 3e-3 as text: write 3\.0e-3\)"),
])
def test_training_settings_are_refused_at_config_time(field, value, match):
    with pytest.raises(ValueError, match=match):
        ex.PointConfig(**{field: value})


def test_cli_refuses_a_config_with_negative_epochs_before_training(tmp_path, monkeypatch, capsys):
    from patchbook.__main__ import main

    def measure(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(ex, "measure", measure)
    config = tmp_path / "point.json"
    config.write_text(json.dumps({"dataset": "mnist", "epochs": -2}))
    assert main(["train", str(config)]) == 2
    assert capsys.readouterr().err == f"error: {config}: epochs must be an int >= 1, got -2\n"
    yaml_config = tmp_path / "point.yaml"
    yaml_config.write_text("dataset: mnist\nlr: 3e-3\n")
    assert main(["train", str(yaml_config)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_diverging_cifar_smoke_point_raises_and_keeps_nothing(data_root, data_cache, tmp_path, capsys):
    """The smoke point of the CIFAR-10 page at a learning rate that diverges:
    an error naming the epoch, the batch and the rate, never a point (cached
    codes) or a checkpoint (augmented codes) with NaN weights."""
    P = profiles.resolve("cifar10-table", "smoke")
    for augment in (False, True):
        c = ex.PointConfig.from_params(P, lr=1e4, augment=augment)
        for attempt in range(2):                           # nothing was cached: it diverges again
            with pytest.raises(Diverged, match=r"training diverged: .*epoch 0.* learning rate 10000\b"):
                ex.measure(c, device="cpu", output=tmp_path / f"run-{augment}")
            ex.forget()
        assert not list((tmp_path / f"run-{augment}").rglob("ckpt-*.pt"))
    from patchbook.__main__ import main

    config = tmp_path / "diverging.json"
    config.write_text(json.dumps({**ex.PointConfig.from_params(P, lr=1e4).to_dict(), "augment": True}))
    assert main(["train", str(config), "--device", "cpu", "--output", str(tmp_path / "cli")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: training diverged: ") and "learning rate 10000" in err
