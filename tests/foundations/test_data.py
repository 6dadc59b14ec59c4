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


# ------------------------------------------- honest cache key, ImageFolder ----

def _tree(root: Path, classes: dict[str, int], seed: int = 0, suffix: str = ".bmp") -> Path:
    """An ImageFolder tree of random 6 x 6 images; BMPs of one size have one file size."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for cls, n in classes.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(root / cls / f"{i}{suffix}")
    return root


def test_hidden_folders_are_not_classes(tmp_path, tmp_cache):
    tree = _tree(tmp_path / "tree", {"a": 2, "b": 2})
    before = data.load(f"imagefolder:{tree}", "train")
    _tree(tree, {".ipynb_checkpoints": 3, "a/.ipynb_checkpoints": 1}, seed=1)
    (tree / "a" / ".hidden.bmp").write_bytes((tree / "a" / "0.bmp").read_bytes())
    after = data.load(f"imagefolder:{tree}", "train")
    assert before.classes == after.classes == ("a", "b")
    assert np.array_equal(after.labels, [0, 0, 1, 1]) and np.array_equal(after.images, before.images)


def test_an_empty_class_folder_is_an_error_naming_it(tmp_path, tmp_cache):
    tree = _tree(tmp_path / "tree", {"a": 2, "b": 2})
    data.load(f"imagefolder:{tree}", "train")
    for f in (tree / "b").iterdir():
        f.unlink()
    with pytest.raises(data.DataNotFoundError, match=r"tree/b has no images"):
        data.load(f"imagefolder:{tree}", "train")


def test_swapped_same_size_files_are_not_served_stale(tmp_path, tmp_cache):
    tree = _tree(tmp_path / "tree", {"a": 1, "b": 1})
    a, b = tree / "a" / "0.bmp", tree / "b" / "0.bmp"
    assert a.stat().st_size == b.stat().st_size
    first = data.load(f"imagefolder:{tree}", "train")
    a.rename(tmp_path / "swap")
    b.rename(a)
    (tmp_path / "swap").rename(b)
    second = data.load(f"imagefolder:{tree}", "train")
    assert np.array_equal(second.images[0], first.images[1])
    assert np.array_equal(second.images[1], first.images[0])
    assert second.fingerprint != first.fingerprint


def test_fingerprint_is_of_the_content(tmp_path, tmp_cache, monkeypatch):
    """The same images in another folder (another cache entry) have the same
    fingerprint; other pixels another."""
    one = data.load(f"imagefolder:{_tree(tmp_path / 'one', {'a': 2, 'b': 1})}", "train")
    two = data.load(f"imagefolder:{_tree(tmp_path / 'two', {'a': 2, 'b': 1})}", "train")
    other = data.load(f"imagefolder:{_tree(tmp_path / 'other', {'a': 2, 'b': 1}, seed=5)}", "train")
    assert one.fingerprint == two.fingerprint != other.fingerprint


def test_dataset_loads_with_an_unwritable_cache(tmp_path, monkeypatch):
    tree = _tree(tmp_path / "tree", {"a": 2, "b": 1})
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PATCHBOOK_CACHE", str(blocker / "cache"))
    with pytest.warns(RuntimeWarning, match="not writable"):
        ds = data.load(f"imagefolder:{tree}", "train")
    assert ds.images.shape == (3, 6, 6, 3) and list(ds.labels) == [0, 0, 1]


# ---------------------------------------------------------------- MNIST ----

def _idx(arr: np.ndarray, code: int = 0x08) -> bytes:
    return bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes() + arr.astype(np.uint8).tobytes()


def _mnist(root: Path, images: bytes | None = None, labels: bytes | None = None) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    good_images = _idx(rng.integers(0, 255, (5, 28, 28)))
    good_labels = _idx(np.array([0, 1, 2, 3, 9]))
    (raw / "train-images-idx3-ubyte").write_bytes(good_images if images is None else images)
    (raw / "train-labels-idx1-ubyte").write_bytes(good_labels if labels is None else labels)
    return root


def test_mnist_idx_files_load(tmp_path):
    x, y = data.load_dataset("mnist", "train", root=_mnist(tmp_path), download=False)
    assert x.shape == (5, 28, 28, 1) and x.dtype == np.uint8 and list(y) == [0, 1, 2, 3, 9]


@pytest.mark.parametrize("images, labels, match", [
    ("labels", None, r"train-images-idx3-ubyte: an IDX file of 1 dimension"),
    (None, _idx(np.array([0, 1, 200, 3, 4])), r"train-labels-idx1-ubyte: labels must be digits 0-9, found 200"),
    (_idx(np.zeros((5, 28, 28)), code=0x0D), None, r"type 0x0d; expected 0x08"),
    (b"\x1f\x8b\x08\x00garbage", None, r"train-images-idx3-ubyte is not an IDX file"),
    (_idx(np.zeros((5, 28, 28)))[:-10], None, r"truncated IDX file"),
    (None, _idx(np.array([0, 1, 2])), r"5 images .* but 3 labels"),
])
def test_bad_mnist_files_are_named(tmp_path, images, labels, match):
    if images == "labels":
        images = _idx(np.array([0, 1, 2, 3, 4]))
    root = _mnist(tmp_path, images, labels)
    with pytest.raises(data.CorruptDataError, match=match):
        data.load_dataset("mnist", "train", root=root, download=False)


# ------------------------------------------------------ CIFAR-10 pickles ----

def _cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"batch_label": f"batch {seed}", "labels": [int(v) for v in rng.integers(0, 10, n)],
            "data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
            "filenames": [f"img_{i}.png" for i in range(n)]}


def _cifar_root(root: Path, legacy: bool = False) -> tuple[Path, list[dict]]:
    """CIFAR-10 python batches; ``legacy`` names numpy's module as the
    original (Python 2, numpy 1) files do: ``numpy.core.multiarray``."""
    import pickle

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = []
    for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        batch = _cifar_batch(4, i)
        blob = pickle.dumps(batch, protocol=2)
        if legacy:
            blob = blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
        (folder / name).write_bytes(blob)
        batches.append(batch)
    return root, batches


@pytest.mark.parametrize("legacy", [False, True])
def test_cifar_python_batches_load(tmp_path, legacy):
    root, batches = _cifar_root(tmp_path, legacy)
    x, y = data.load_dataset("cifar10", "train", root=root, download=False)
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8
    assert list(y) == sum((b["labels"] for b in batches[:5]), [])
    assert np.array_equal(x[0], batches[0]["data"][0].reshape(3, 32, 32).transpose(1, 2, 0))
    xt, _ = data.load_dataset("cifar10", "test", root=root, download=False)
    assert xt.shape == (4, 32, 32, 3)


def test_a_planted_cifar_pickle_does_not_run(tmp_path):
    import pickle

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(tmp_path / 'ran')!r}, 'w').close()",))

    root, _ = _cifar_root(tmp_path)
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps({"data": Payload()}))
    with pytest.raises(data.CorruptDataError, match=r"data_batch_1.*builtins\.exec"):
        data.load_dataset("cifar10", "train", root=root, download=False)
    assert not (tmp_path / "ran").exists(), "the planted pickle ran"


def test_a_cifar_batch_of_the_wrong_shape_is_named(tmp_path):
    import pickle

    root, _ = _cifar_root(tmp_path)
    bad = _cifar_batch(4, 0)
    bad["labels"][1] = 12
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(bad))
    with pytest.raises(data.CorruptDataError, match="test_batch is not a CIFAR-10 batch"):
        data.load_dataset("cifar10", "test", root=root, download=False)



def test_balanced_subset_takes_every_example_when_asked_for_all():
    from patchbook.data import balanced_subset

    labels = np.array([0] * 7 + [1] * 5 + [2] * 3)   # classes of different sizes, as MNIST's
    assert np.array_equal(balanced_subset(labels, 15), np.arange(15))
    assert np.array_equal(balanced_subset(labels, 100), np.arange(15))
    idx = balanced_subset(labels, 6, seed=1)
    assert np.array_equal(np.bincount(labels[idx]), [2, 2, 2]) and np.all(np.diff(idx) > 0)
