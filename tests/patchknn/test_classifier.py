"""Classifier heads, schedule, metrics, data sources and the training loop."""

import math

import numpy as np
import pytest
import torch

from patchbook.patchknn import classifier as clf
from patchbook.patchknn.encoding import PatchEncoder

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


def test_factorized_head_is_a_linear_map_in_eval_mode():
    torch.manual_seed(0)
    head = clf.FactorizedLinear(8, n_classes=3, bottleneck=4, kernel=3)
    x = torch.randn(20, 8, 5, 5)
    head.train()
    head(x)  # update the BatchNorm statistics
    head.eval()
    a, b = torch.randn(2, 8, 5, 5), torch.randn(2, 8, 5, 5)
    f0 = head(torch.zeros(1, 8, 5, 5))
    torch.testing.assert_close(head(2 * a - b) - f0, 2 * (head(a) - f0) - (head(b) - f0), rtol=1e-4, atol=1e-5)
    assert head(x).shape == (20, 3)


def test_make_head_shapes():
    assert clf.make_head("factorized", (16, 9, 9))(torch.zeros(2, 16, 9, 9)).shape == (2, 10)
    assert clf.make_head("factorized", (16, 4, 4), kernel=6)(torch.zeros(2, 16, 4, 4)).shape == (2, 10)
    assert clf.make_head("linear", (16, 6, 6))(torch.zeros(2, 16, 6, 6)).shape == (2, 10)
    with pytest.raises(ValueError):
        clf.make_head("mlp", (16, 6, 6))


def test_schedule_steps():
    s = clf.Schedule(epochs=80, lr=3e-3, milestones=(50, 75))
    assert [s.lr_at(e) for e in (0, 49, 50, 74, 75, 79)] == pytest.approx([3e-3, 3e-3, 3e-4, 3e-4, 3e-5, 3e-5])


def test_topk_correct():
    logits = torch.tensor([[0.0, 1.0, 2.0], [3.0, 2.0, 1.0], [0.0, 5.0, 1.0]])
    labels = torch.tensor([2, 1, 0])
    assert clf.topk_correct(logits, labels, (1, 2, 5)) == [1, 2, 3]


def test_array_batches_cover_each_sample_once_per_epoch():
    X = np.arange(23 * 2, dtype=np.uint8).reshape(23, 2)
    data = clf.ArrayBatches(X, np.arange(23), batch_size=5, shuffle=True, scale=0.5, seed=1)
    assert len(data) == 5
    seen = []
    for x, y in data:
        assert x.dtype == torch.float32
        torch.testing.assert_close(x[:, 0], 2.0 * y.float() * 0.5)
        seen += y.tolist()
    assert sorted(seen) == list(range(23))
    first = seen
    data.set_epoch(1)
    assert [int(v) for _, y in data for v in y] != first
    data.set_epoch(0)
    assert [int(v) for _, y in data for v in y] == first  # reproducible per epoch


@pytest.mark.parametrize("kind", ["factorized", "linear"])
def test_training_solves_a_separable_problem(kind):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n, C = 600, 6
    y = torch.randint(0, 3, (n,), generator=g)
    centers = torch.randn(3, C, 1, 1, generator=g) * 2
    X = centers[y] + 0.5 * torch.randn(n, C, 3, 3, generator=g)
    model = clf.make_head(kind, (C, 3, 3), n_classes=3, bottleneck=4, kernel=3)
    train = clf.ArrayBatches(X[:400], y[:400], batch_size=32, shuffle=True)
    test = clf.ArrayBatches(X[400:], y[400:], batch_size=100)
    before = clf.evaluate(model, test)["top1"]
    hist = clf.train(model, train, clf.Schedule(epochs=8, lr=0.05, milestones=(6,)), test_data=test,
                     progress=False)
    assert hist.last("test_top1") > 97 and before < 80        # percent
    assert hist.epochs[0]["train_loss"] > hist.epochs[-1]["train_loss"]
    assert [e["lr"] for e in hist.epochs] == pytest.approx([0.05] * 6 + [0.005] * 2)
    ev = clf.evaluate(model, test)
    assert ev["top5"] == 100.0 and ev["n"] == 200 and 0 <= hist.epochs[-1]["train_top1"] <= 100


def test_training_resumes_where_it_stopped():
    torch.manual_seed(0)
    X = torch.randn(64, 4, 2, 2)
    y = (X[:, 0, 0, 0] > 0).long()

    def run(split):
        torch.manual_seed(1)
        model = clf.make_head("linear", (4, 2, 2), n_classes=2, batchnorm=False)
        data = clf.ArrayBatches(X, y, batch_size=16, shuffle=True)
        sched = clf.Schedule(epochs=4, lr=0.1, milestones=(2,))
        opt = sched.optimizer(model)
        if split:
            clf.train(model, data, clf.Schedule(**{**sched.as_dict(), "epochs": 2}), optimizer=opt, progress=False)
            clf.train(model, data, sched, optimizer=opt, start_epoch=2, progress=False)
        else:
            clf.train(model, data, sched, optimizer=opt, progress=False)
        return model.fc.weight.detach()

    torch.testing.assert_close(run(True), run(False))


def test_evaluate_counts_in_percent():
    logits = torch.tensor([[0.0, 1.0, 2.0], [3.0, 2.0, 1.0], [0.0, 5.0, 1.0], [1.0, 0.0, 0.0]])
    labels = torch.tensor([2, 1, 0, 0])
    model = torch.nn.Identity()
    ev = clf.evaluate(model, clf.ArrayBatches(logits, labels, batch_size=3))
    assert (ev["top1"], ev["top5"], ev["n"]) == (50.0, 100.0, 4)   # rows 0 and 3 right at top-1


def test_encoded_batches_match_precomputed_codes():
    imgs = np.random.default_rng(0).integers(0, 256, (10, 12, 12, 3), dtype=np.uint8)
    labels = np.arange(10) % 3
    enc = PatchEncoder(n_atoms=8, patch=3, k=3, pool=4, pool_stride=3).fit(imgs)
    codes = enc.transform(imgs)
    data = clf.EncodedBatches(enc, imgs, labels, batch_size=4, shuffle=True, encode_batch=3)
    got = {}
    for x, y in data:
        assert x.shape[1:] == codes.shape[1:]
        for xi, yi in zip(x, y):
            match = [i for i in range(10) if torch.equal(codes[i], xi)]
            assert match and labels[match[0]] == int(yi)
            got[match[0]] = True
    assert len(got) == 10
    aug = clf.EncodedBatches(enc, imgs, labels, batch_size=5, augment_train=True, padding=2)
    x, _ = next(iter(aug))
    assert x.shape == (5, *codes.shape[1:])


@pytest.mark.parametrize("size,kernel", [(6, 6), (9, 6), (5, 3)])
def test_factorized_head_collapsed_equals_convolutions(size, kernel):
    torch.manual_seed(0)
    head = clf.FactorizedLinear(12, n_classes=4, bottleneck=8, kernel=kernel)
    x = torch.randn(40, 12, size, size, requires_grad=True)
    head.train()
    fast = head(x)  # 40 samples: the collapsed path
    direct = head.classify(head.reduce(head.bn(x))).mean((2, 3))
    torch.testing.assert_close(fast, direct, rtol=1e-4, atol=1e-5)
    g_fast = torch.autograd.grad(fast.square().sum(), [x, head.reduce.weight, head.classify.weight])
    g_direct = torch.autograd.grad(direct.square().sum(), [x, head.reduce.weight, head.classify.weight])
    for a, b in zip(g_fast, g_direct):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------ non-finite training ----

class _PoisonedBatches:
    """Separable batches (``4`` per epoch of 16 samples); the batch
    ``poison = (epoch, batch)`` holds a NaN feature."""

    def __init__(self, poison: tuple[int, int]):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 4, 2, 2, generator=g)
        self.y = (self.x[:, 0, 0, 0] > 0).long()
        self.poison, self.epoch = poison, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return 4

    def __iter__(self):
        for b in range(4):
            x = self.x[16 * b:16 * (b + 1)].clone()
            if (self.epoch, b) == self.poison:
                x[3, 1, 0, 0] = float("nan")
            yield x, self.y[16 * b:16 * (b + 1)]


def _linear(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return clf.make_head("linear", (4, 2, 2), n_classes=2, batchnorm=False)


def test_a_non_finite_loss_stops_training_naming_epoch_batch_and_lr():
    model = _linear()
    seen = []
    with pytest.raises(clf.Diverged, match=r"loss nan at epoch 2, batch 1 of 4, learning rate 0\.01\b") as err:
        clf.train(model, _PoisonedBatches((2, 1)), clf.Schedule(epochs=5, lr=0.1, milestones=(2,)),
                  progress=False, on_epoch=lambda e, rec, m, o: seen.append(e))
    assert "\n" not in str(err.value)
    assert seen == [0, 1]                             # the diverging epoch is never handed on
    assert all(bool(torch.isfinite(t).all()) for t in model.state_dict().values())   # no step on the NaN


def test_a_diverging_learning_rate_stops_instead_of_leaving_nan_weights():
    X = torch.randn(64, 4, 2, 2, generator=torch.Generator().manual_seed(0)) * 100
    y = (X[:, 0, 0, 0] > 0).long()
    data = clf.ArrayBatches(X, y, batch_size=16)
    stable = clf.train(_linear(), data, clf.Schedule(epochs=3, lr=1e-3), progress=False)
    assert all(math.isfinite(e["train_loss"]) for e in stable.epochs)
    model, seen = _linear(), []
    with pytest.raises(clf.Diverged, match=r"training diverged: .* at epoch \d+, .*learning rate 1e\+34"):
        clf.train(model, data, clf.Schedule(epochs=3, lr=1e34), progress=False,
                  on_epoch=lambda e, rec, m, o: seen.append(rec))
    assert all(math.isfinite(r["train_loss"]) for r in seen)


def test_weights_made_non_finite_by_the_last_step_stop_the_epoch():
    """The loss of the only batch is finite (computed before the step), the
    step leaves infinite weights: the epoch ends in Diverged, not in a record."""
    model, seen = _linear(), []
    data = clf.ArrayBatches(torch.randn(16, 4, 2, 2), torch.arange(16) % 2, batch_size=16)
    with pytest.raises(clf.Diverged, match=r"fc\.(weight|bias) is not finite after epoch 0 \(last step: batch 0 "
                                           r"of 1, learning rate inf\)"):
        clf.train(model, data, clf.Schedule(epochs=2, lr=math.inf), progress=False,
                  on_epoch=lambda e, rec, m, o: seen.append(e))
    assert seen == []


def test_evaluate_refuses_non_finite_outputs():
    model = _linear()
    with torch.no_grad():
        model.fc.bias[0] = float("nan")
    data = clf.ArrayBatches(torch.randn(8, 4, 2, 2), torch.zeros(8, dtype=torch.long), batch_size=4)
    with pytest.raises(clf.Diverged, match=r"evaluation: mean loss nan over 8 samples.*\(fc\.bias is not\)"):
        clf.evaluate(model, data)
