"""The data layer on the real data root, and its errors on bad ones."""

from pathlib import Path

import numpy as np
import pytest

from patchbook import data


def test_mnist(data_root):
    x, y = data.load_dataset("mnist", "train", root=data_root)
    assert x.shape == (60000, 28, 28, 1) and x.dtype == np.uint8
    assert y.shape == (60000,) and y.dtype == np.int64
    assert np.bincount(y).min() > 5000
    xt, yt = data.load_dataset("mnist", "test", root=data_root)
    assert xt.shape == (10000, 28, 28, 1) and len(yt) == 10000


@pytest.mark.slow
def test_cifar10(data_root):
    x, y = data.load_dataset("cifar10", "train", root=data_root)
    assert x.shape == (50000, 32, 32, 3) and x.dtype == np.uint8
    assert np.array_equal(np.bincount(y), np.full(10, 5000))
    xt, yt = data.load_dataset("cifar10", "test", root=data_root)
    assert xt.shape == (10000, 32, 32, 3)
    assert np.array_equal(np.bincount(yt), np.full(10, 1000))
    ds = data.load("cifar10", "test", root=data_root)
    assert ds.classes == data.CIFAR10_CLASSES
    # label i really is folder i of the standard order: check one file per class
    root = Path(data_root) / "cifar10-jpeg" / "test"
    for i, cls in enumerate(data.CIFAR10_CLASSES):
        first = sorted((root / cls).iterdir())[0]
        img = data.decode_image(first)
        j = np.flatnonzero(yt == i)[0]
        assert np.array_equal(xt[j], img)


def test_stratified_subset_is_seeded_and_balanced(data_root):
    a, ya = data.load_dataset("mnist", "test", root=data_root, n_per_class=7, seed=1)
    b, yb = data.load_dataset("mnist", "test", root=data_root, n_per_class=7, seed=1)
    c, _ = data.load_dataset("mnist", "test", root=data_root, n_per_class=7, seed=2)
    assert np.array_equal(np.bincount(ya), np.full(10, 7))
    assert np.array_equal(a, b) and np.array_equal(ya, yb)
    assert not np.array_equal(a, c)


def test_tiny_imagenet(data_root):
    ds = data.load("tiny-imagenet-100", "val", root=data_root)
    assert ds.images.shape[1:] == (64, 64, 3)
    assert len(ds.classes) == 100
    names = data.tiny_imagenet_names(data_root)
    assert all(c in names for c in ds.classes)


def test_empty_root_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATCHBOOK_DATA", str(tmp_path))
    monkeypatch.setenv("PATCHBOOK_OFFLINE", "1")
    for name in ("mnist", "cifar10", "tiny-imagenet-100"):
        with pytest.raises(data.DataNotFoundError) as err:
            data.load_dataset(name, "train")
        msg = str(err.value)
        assert "PATCHBOOK_DATA" in msg and str(tmp_path) in msg and "layout" in msg.lower()


def test_malformed_cifar_root(tmp_path):
    (tmp_path / "cifar10-jpeg" / "train" / "cats").mkdir(parents=True)
    with pytest.raises(data.DataNotFoundError, match="class folders"):
        data.load_dataset("cifar10", "train", root=tmp_path, download=False)


def test_unknown_dataset_and_split(tmp_path):
    with pytest.raises(ValueError, match="Unknown dataset"):
        data.load_dataset("svhn", "train", root=tmp_path)
    with pytest.raises(ValueError, match="unknown split"):
        data.load_dataset("mnist", "validation", root=tmp_path)


def test_imagefolder_and_corrupt_image(tmp_path, tmp_cache):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("b", "a"):
        (tmp_path / "tree" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "tree" / cls / f"{i}.png")
    x, y = data.load_dataset(f"imagefolder:{tmp_path / 'tree'}", "train")
    assert x.shape == (6, 8, 8, 3) and list(y) == [0, 0, 0, 1, 1, 1]
    bad = tmp_path / "tree" / "a" / "9.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(data.CorruptImageError, match="9.png"):
        data.load_dataset(f"imagefolder:{tmp_path / 'tree'}", "train")


def test_decoded_arrays_are_cached(tmp_path, tmp_cache):
    from PIL import Image

    (tmp_path / "t" / "c").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "t" / "c" / "0.png")
    data.load_dataset(f"imagefolder:{tmp_path / 't'}", "train")
    assert list((tmp_cache / "datasets").glob("*.npz"))


def test_paintings_photos_weights(data_root):
    rouen = data.list_images("paintings", "monet/rouen-cathedral", root=data_root)
    assert len(rouen) == 28
    img = data.load_painting(rouen[0], root=data_root)
    h, w, c = img.shape
    assert c == 3 and abs(w / h - 2 / 3) < 0.02  # aspect restored
    photo = data.load_photo("rouen-cathedral-facade-sunset.jpg", max_side=200, root=data_root)
    assert max(photo.shape[:2]) == 200
    with pytest.raises(data.DataNotFoundError, match="PATCHBOOK_DATA"):
        data.load_photo("no-such-photo.jpg", root=data_root)
    state = data.load_conv_weights("alexnet", root=data_root)
    assert state["0.weight"].shape == (64, 3, 11, 11)
    assert state["0.weight"].dtype.is_floating_point


def test_missing_weights_never_random(tmp_path, monkeypatch):
    monkeypatch.setenv("PATCHBOOK_DATA", str(tmp_path))
    import torchvision

    def no_download(*a, **k):
        raise RuntimeError("no network")

    monkeypatch.setattr(torchvision.models, "vgg16", no_download)
    with pytest.raises(data.DataNotFoundError, match="vgg16"):
        data.load_conv_weights("vgg16")
