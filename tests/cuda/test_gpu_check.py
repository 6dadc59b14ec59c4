"""The GPU check's own logic, which needs no GPU (these run everywhere):
the data pack round trip, its refusals, the extrapolation of the epoch time
and the output folder's shape."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from patchbook import data
from patchbook.pages import gpu_check


def _cifar_tree(root, n=2):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in data.CIFAR10_CLASSES:
            d = root / "cifar10-jpeg" / split / c
            d.mkdir(parents=True)
            for j in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / f"{j:04d}.jpg")
    (root / "weights").mkdir()
    (root / "weights" / "vgg16_features_imagenet.pth").write_bytes(b"not really weights")
    return root


def test_pack_round_trip_gives_the_same_data(tmp_path, tmp_cache):
    root = _cifar_tree(tmp_path / "root")
    info = gpu_check.pack(tmp_path / "p.npz", root)
    assert info["files"] == 2 * 10 * 2 + 1
    out = gpu_check.unpack(tmp_path / "p.npz", tmp_path / "dest")
    assert out["files"] == info["files"] and out["bytes"] == info["bytes"]
    for split in ("train", "test"):
        a, b = data.load("cifar10", split, root=root), data.load("cifar10", split, root=tmp_path / "dest")
        assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
        assert a.fingerprint == b.fingerprint
    w = "weights/vgg16_features_imagenet.pth"
    assert (tmp_path / "dest" / w).read_bytes() == (root / w).read_bytes()
    assert gpu_check.pack(tmp_path / "q.npz", root, weights=False)["files"] == 40


def _write_pack(path, names, chunks, digest=None):
    blob = np.frombuffer(b"".join(chunks), np.uint8)
    np.savez(path, names=np.asarray(names), offsets=np.cumsum([0] + [len(c) for c in chunks]).astype(np.int64),
             blob=blob, sha256=np.asarray(digest or hashlib.sha256(blob).hexdigest()))


@pytest.mark.parametrize("name", ["../evil.jpg", "cifar10-jpeg/../../x", "/etc/x", "src/patchbook/x.py",
                                  "cifar10-jpeg//a.jpg"])
def test_unpack_refuses_names_outside_the_data_layout(tmp_path, name):
    _write_pack(tmp_path / "p.npz", [name], [b"x"])
    with pytest.raises(ValueError, match="unexpected file names"):
        gpu_check.unpack(tmp_path / "p.npz", tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_unpack_refuses_a_corrupt_pack(tmp_path):
    _write_pack(tmp_path / "p.npz", ["cifar10-jpeg/train/cat/0.jpg"], [b"abc"], digest="0" * 64)
    with pytest.raises(ValueError, match="checksum"):
        gpu_check.unpack(tmp_path / "p.npz", tmp_path / "dest")


def test_extrapolation_of_the_epoch_time():
    epochs = [{"wall_s": 10.0, "train_s": 8.0}, {"wall_s": 4.0, "train_s": 3.0}, {"wall_s": 6.0, "train_s": 5.0},
              {"wall_s": 5.0, "train_s": 4.0}]
    ex = gpu_check.extrapolate(epochs, setup_s=20.0, n_epochs=80)
    assert ex["epoch_s"] == 5.0 and ex["final_eval_s"] == 1.0 and ex["epochs_measured"] == 4
    assert ex["total_s"] == pytest.approx(20 + 10 + 79 * 5 + 1)
    one = gpu_check.extrapolate(epochs[:1], setup_s=0.0, n_epochs=3)
    assert one["epoch_s"] == 10.0 and one["total_s"] == pytest.approx(10 + 2 * 10 + 2)
    assert gpu_check.extrapolate([], 1.0)["epochs_measured"] == 0


def test_a_check_without_stages_writes_the_summary_and_the_log_only(tmp_path, tmp_cache):
    assert gpu_check.run(tmp_path / "out", budget_s=60, device="cpu", stages=()) == 0
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["check.log", "summary.json"]
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["device"] == "cpu" and s["stages"] == {} and "missing_or_other_version" in s["env"]


def test_missing_dependencies_reads_the_pins(tmp_path):
    p = tmp_path / "pyproject.toml"
    p.write_text('[project]\nname = "x"\ndependencies = ["numpy", "no-such-package-xyz==1.0", "torch==0.0.1"]\n')
    got = gpu_check.missing_dependencies(p)
    assert got["no-such-package-xyz==1.0"] == "missing" and "torch==0.0.1" in got and "numpy" not in got
