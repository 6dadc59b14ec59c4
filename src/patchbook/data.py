"""The data layer: datasets as numpy arrays, paintings, photographs, weights.

Every loader reads from a data root: the ``root`` argument, else
``$PATCHBOOK_DATA``, else ``~/.cache/patchbook/data``. Where a dataset is
missing and torchvision can download it (MNIST, CIFAR-10), it is downloaded
into the root; otherwise a :class:`DataNotFoundError` names the layout that
was expected and the variable to set.

Decoded arrays are cached under ``$PATCHBOOK_CACHE`` keyed by a fingerprint of
the source files, so the 60,000 CIFAR-10 JPEGs are decoded once.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from tqdm.auto import tqdm

from patchbook.cache import memo_arrays
from patchbook.paths import data_root

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

_LAYOUTS = {
    "mnist": "<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (torchvision layout)",
    "cifar10": "<root>/cifar-10-batches-py/ (torchvision pickles) or "
    "<root>/cifar10-jpeg/{train,test}/<class>/*.jpg (ImageFolder, one folder per CIFAR-10 class)",
    "tiny-imagenet-100": "<root>/tiny-imagenet-100/{train,val}/<wnid>/*.JPEG (ImageFolder) "
    "with <root>/tiny-imagenet-100/classes.tsv",
    "imagefolder": "<path>/<class>/<image> (ImageFolder: one sub-folder per class)",
}

# Fingerprints of everything loaded in this process, for results metadata.
_LOADED: dict[str, str] = {}


class DataNotFoundError(FileNotFoundError):
    """A dataset, image or weight file is missing or not laid out as expected."""


class CorruptImageError(ValueError):
    """An image file could not be decoded."""


@dataclass(frozen=True)
class Dataset:
    """Images as ``uint8`` array ``N x H x W x C`` and labels as ``int64`` ``N``."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    fingerprint: str


def loaded_fingerprints() -> dict[str, str]:
    """``{"<name>/<split>": fingerprint}`` of every dataset loaded so far."""
    return dict(_LOADED)


def _missing(name: str, root: Path, detail: str = "") -> DataNotFoundError:
    layout = _LAYOUTS.get(name.split(":")[0], "")
    msg = (
        f"Dataset {name!r} not found under the data root {root}.\n"
        f"Expected layout: {layout}.\n"
        "Set PATCHBOOK_DATA to a folder holding it (or pass root=...)."
    )
    if detail:
        msg += f"\n{detail}"
    return DataNotFoundError(msg)


def _check_split(name: str, split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise ValueError(f"{name}: unknown split {split!r}; expected one of {allowed}")


def _file_fingerprint(paths: list[Path], base: Path, head_bytes: int = 65536) -> str:
    """Hash of relative names, sizes and the first bytes of each file."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(str(p.relative_to(base)).encode())
        h.update(str(p.stat().st_size).encode())
        with open(p, "rb") as f:
            h.update(f.read(head_bytes))
    return h.hexdigest()[:16]


def _tree_fingerprint(files: list[Path], base: Path) -> str:
    """Hash of relative names and sizes (cheap for tens of thousands of files)."""
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(base)).encode())
        h.update(str(p.stat().st_size).encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- images ----

def decode_image(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode one image file to ``uint8`` RGB ``H x W x 3``.

    ``size`` is ``(width, height)`` to resize to (bilinear, antialiased).
    Raises :class:`CorruptImageError` naming the file if it cannot be read.
    """

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != tuple(size):
                im = im.resize(tuple(size), Image.BICUBIC)
            return np.asarray(im, dtype=np.uint8).copy()
    except (OSError, ValueError, SyntaxError) as exc:
        raise CorruptImageError(f"Cannot decode image {path}: {exc}") from exc


def _decode_many(paths: list[Path], desc: str, size: tuple[int, int] | None = None) -> np.ndarray:

    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        out = list(tqdm(pool.map(lambda p: decode_image(p, size), paths, chunksize=256),
                        total=len(paths), desc=desc, leave=False, mininterval=2.0))
    shapes = {a.shape for a in out}
    if len(shapes) > 1:
        raise ValueError(
            f"{desc}: images of different sizes {sorted(shapes)[:3]}...; pass image_size=(W, H)"
        )
    return np.stack(out) if out else np.zeros((0, 0, 0, 3), np.uint8)


def _list_imagefolder(folder: Path, classes: tuple[str, ...] | None = None) -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    """Files and labels of an ImageFolder tree; classes sorted unless given."""
    if classes is None:
        classes = tuple(sorted(d.name for d in folder.iterdir() if d.is_dir()))
    files: list[Path] = []
    labels: list[int] = []
    for i, cls in enumerate(classes):
        d = folder / cls
        if not d.is_dir():
            raise DataNotFoundError(f"Class folder {d} is missing (expected one sub-folder per class).")
        imgs = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files += imgs
        labels += [i] * len(imgs)
    return files, np.asarray(labels, dtype=np.int64), classes


def _load_imagefolder(folder: Path, name: str, classes: tuple[str, ...] | None = None,
                      image_size: tuple[int, int] | None = None) -> Dataset:
    files, labels, classes = _list_imagefolder(folder, classes)
    if not files:
        raise DataNotFoundError(f"No images under {folder} (expected {_LAYOUTS['imagefolder']}).")
    fp = _tree_fingerprint(files, folder)
    key = {"source": "imagefolder", "fingerprint": fp, "image_size": image_size}
    arrays = memo_arrays(
        "datasets", key,
        lambda: {"images": _decode_many(files, f"decoding {name}", image_size), "labels": labels},
        include_code=False,
    )
    return Dataset(arrays["images"], arrays["labels"].astype(np.int64), tuple(classes), fp)


# ----------------------------------------------------------------- MNIST ----

def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">i4", count=ndim, offset=4)
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: truncated IDX file ({arr.size} of {int(np.prod(dims))} values)")
    return arr.reshape(tuple(int(d) for d in dims))


def _find_idx(raw: Path, stem: str) -> Path | None:
    for p in (raw / stem, raw / f"{stem}.gz"):
        if p.exists():
            return p
    return None


def _load_mnist(root: Path, split: str, download: bool) -> Dataset:
    _check_split("mnist", split, ("train", "test"))
    prefix = "train" if split == "train" else "t10k"
    raw = root / "MNIST" / "raw"
    img, lab = _find_idx(raw, f"{prefix}-images-idx3-ubyte"), _find_idx(raw, f"{prefix}-labels-idx1-ubyte")
    if img is None or lab is None:
        _try_download("mnist", root, download)
        img, lab = _find_idx(raw, f"{prefix}-images-idx3-ubyte"), _find_idx(raw, f"{prefix}-labels-idx1-ubyte")
        if img is None or lab is None:
            raise _missing("mnist", root)
    images = _read_idx(img)[..., None]
    labels = _read_idx(lab).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"MNIST {split}: {len(images)} images but {len(labels)} labels")
    fp = _file_fingerprint([img, lab], root)
    return Dataset(images, labels, tuple(str(i) for i in range(10)), fp)


# -------------------------------------------------------------- CIFAR-10 ----

def _load_cifar_pickles(folder: Path, split: str) -> Dataset:
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    paths = [folder / n for n in names]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise DataNotFoundError(f"CIFAR-10 pickles incomplete: missing {missing[0]}")
    xs, ys = [], []
    for p in paths:
        with open(p, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        xs.append(np.asarray(batch["data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(np.asarray(batch["labels"], np.int64))
    fp = _file_fingerprint(paths, folder.parent)
    return Dataset(np.concatenate(xs), np.concatenate(ys), CIFAR10_CLASSES, fp)


def _load_cifar10(root: Path, split: str, download: bool) -> Dataset:
    _check_split("cifar10", split, ("train", "test"))
    pickles = root / "cifar-10-batches-py"
    jpeg = root / "cifar10-jpeg"
    if pickles.is_dir():
        return _load_cifar_pickles(pickles, split)
    if jpeg.is_dir():
        folder = jpeg / split
        if not folder.is_dir():
            raise _missing("cifar10", root, f"{jpeg} exists but has no {split}/ folder.")
        found = sorted(d.name for d in folder.iterdir() if d.is_dir())
        if tuple(found) != tuple(sorted(CIFAR10_CLASSES)):
            raise _missing("cifar10", root, f"{folder} has class folders {found}; expected {list(CIFAR10_CLASSES)}.")
        return _load_imagefolder(folder, f"cifar10/{split}", CIFAR10_CLASSES)
    _try_download("cifar10", root, download)
    if pickles.is_dir():
        return _load_cifar_pickles(pickles, split)
    raise _missing("cifar10", root)


# ------------------------------------------------------ Tiny-ImageNet-100 ----

def tiny_imagenet_names(root: str | os.PathLike | None = None) -> dict[str, str]:
    """WordNet id -> human-readable name for the Tiny-ImageNet subset."""
    path = data_root(root) / "tiny-imagenet-100" / "classes.tsv"
    if not path.exists():
        raise _missing("tiny-imagenet-100", data_root(root))
    rows = [line.split("\t", 1) for line in path.read_text().splitlines() if line.strip()]
    return {wnid: name.strip() for wnid, name in rows}


def _load_tiny(root: Path, split: str) -> Dataset:
    split = {"test": "val"}.get(split, split)
    _check_split("tiny-imagenet-100", split, ("train", "val"))
    folder = root / "tiny-imagenet-100" / split
    if not folder.is_dir():
        raise _missing("tiny-imagenet-100", root)
    return _load_imagefolder(folder, f"tiny-imagenet-100/{split}")


# ------------------------------------------------------------- download ----

def _try_download(name: str, root: Path, download: bool) -> None:
    """Download ``name`` into ``root`` with torchvision, if allowed and possible."""
    if not download or os.environ.get("PATCHBOOK_OFFLINE") == "1":
        return
    if root.exists() and not os.access(root, os.W_OK):
        return

    cls = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10}[name]
    try:
        root.mkdir(parents=True, exist_ok=True)
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
    except Exception as exc:  # no network, say: report it with the layout
        raise _missing(name, root, f"Download with torchvision failed: {exc}") from exc


# ------------------------------------------------------------ public API ----

def stratified_subset(labels: np.ndarray, n_per_class: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``n_per_class`` examples of every class, chosen at
    random with ``seed``. Raises if a class has fewer examples."""
    rng = np.random.default_rng(seed)
    idx = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < n_per_class:
            raise ValueError(f"class {c} has {len(members)} examples, fewer than n_per_class={n_per_class}")
        idx.append(rng.choice(members, size=n_per_class, replace=False))
    return np.sort(np.concatenate(idx))


def load(name: str, split: str, root: str | os.PathLike | None = None,
         n_per_class: int | None = None, seed: int = 0, download: bool = True,
         image_size: tuple[int, int] | None = None) -> Dataset:
    """Like :func:`load_dataset` but returns a :class:`Dataset` with class names
    and the source fingerprint."""
    base = data_root(root)
    if name == "mnist":
        ds = _load_mnist(base, split, download)
    elif name == "cifar10":
        ds = _load_cifar10(base, split, download)
    elif name == "tiny-imagenet-100":
        ds = _load_tiny(base, split)
    elif name.startswith("imagefolder:"):
        folder = Path(name.split(":", 1)[1]).expanduser()
        if not folder.is_absolute():
            folder = base / folder
        folder = folder / split if (folder / split).is_dir() else folder
        if not folder.is_dir():
            raise _missing("imagefolder", folder)
        ds = _load_imagefolder(folder, name, image_size=image_size)
    else:
        raise ValueError(
            f"Unknown dataset {name!r}; expected one of 'mnist', 'cifar10', "
            "'tiny-imagenet-100' or 'imagefolder:<path>'"
        )
    _LOADED[f"{name}/{split}"] = ds.fingerprint
    if n_per_class is not None:
        idx = stratified_subset(ds.labels, n_per_class, seed)
        ds = Dataset(ds.images[idx], ds.labels[idx], ds.classes, ds.fingerprint)
    return ds


def load_dataset(name: str, split: str, root: str | os.PathLike | None = None,
                 n_per_class: int | None = None, seed: int = 0,
                 **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Load a dataset split as ``(images, labels)``.

    Parameters
    ----------
    name
        ``"mnist"``, ``"cifar10"``, ``"tiny-imagenet-100"`` or
        ``"imagefolder:<path>"`` (absolute, or relative to the data root).
    split
        ``"train"`` or ``"test"`` (``"val"`` for Tiny-ImageNet, which also
        accepts ``"test"`` for its validation images).
    root
        Data root; defaults to ``$PATCHBOOK_DATA``.
    n_per_class
        If given, a stratified subset of that many images per class, chosen
        with ``seed`` and kept in dataset order.

    Returns
    -------
    images : uint8 array, ``N x H x W x C`` (C = 1 for MNIST, 3 otherwise)
    labels : int64 array, ``N``
    """
    ds = load(name, split, root=root, n_per_class=n_per_class, seed=seed, **kwargs)
    return ds.images, ds.labels


# ------------------------------------------- paintings, photos, weights ----

# Collections whose files were squashed to square; value: true width / height.
_SQUASHED_ASPECT = {"monet/rouen-cathedral": 2 / 3}


def _resolve(kind: str, name: str, root: str | os.PathLike | None) -> Path:
    base = data_root(root) / kind
    path = base / name
    if not path.exists():
        hint = ""
        if base.is_dir():
            near = sorted(str(p.relative_to(base)) for p in base.rglob(f"*{Path(name).stem[:8]}*"))[:5]
            hint = f" Similar files: {near}." if near else ""
        raise DataNotFoundError(
            f"{kind[:-1].capitalize()} {name!r} not found: expected {path}.{hint}\n"
            f"Set PATCHBOOK_DATA to a folder holding {kind}/ (see the data README)."
        )
    return path


def list_images(kind: str, collection: str = "", root: str | os.PathLike | None = None) -> list[str]:
    """Names (relative to ``<root>/<kind>``) of the images in a collection,
    e.g. ``list_images("paintings", "monet/rouen-cathedral")``."""
    base = data_root(root) / kind
    folder = base / collection
    if not folder.is_dir():
        raise DataNotFoundError(f"No folder {folder}; set PATCHBOOK_DATA to a data root holding {kind}/{collection}.")
    return sorted(str(p.relative_to(base)) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _fit(img: np.ndarray, max_side: int | None, aspect: float | None) -> np.ndarray:

    h, w = img.shape[:2]
    if aspect is not None:  # undo a squash to square: keep the height
        w = max(1, round(h * aspect))
    if max_side is not None and max(h, w) > max_side:
        s = max_side / max(h, w)
        h, w = max(1, round(h * s)), max(1, round(w * s))
    if (h, w) == img.shape[:2]:
        return img
    return np.asarray(Image.fromarray(img).resize((w, h), Image.LANCZOS))


def load_painting(name: str, max_side: int | None = None, unsquash: bool = True,
                  root: str | os.PathLike | None = None) -> np.ndarray:
    """A painting as ``uint8`` RGB ``H x W x 3``.

    ``name`` is relative to ``<root>/paintings`` (e.g.
    ``"monet/rouen-cathedral/rouen-cathedral-at-sunset.jpg"``). Canvases of
    collections stored squashed to square get their aspect ratio back when
    ``unsquash``. ``max_side`` bounds the longer side in pixels.
    """
    path = _resolve("paintings", name, root)
    aspect = None
    if unsquash:
        for coll, a in _SQUASHED_ASPECT.items():
            if name.startswith(coll + "/"):
                aspect = a
    return _fit(decode_image(path), max_side, aspect)


def load_photo(name: str, max_side: int | None = None, root: str | os.PathLike | None = None) -> np.ndarray:
    """A photograph from ``<root>/photos`` as ``uint8`` RGB ``H x W x 3``."""
    return _fit(decode_image(_resolve("photos", name, root)), max_side, None)


_WEIGHTS = {
    "vgg16": "weights/vgg16_features_imagenet.pth",
    "alexnet": "weights/alexnet_features_imagenet.pth",
}


def load_conv_weights(name: str, root: str | os.PathLike | None = None) -> dict:
    """ImageNet-trained convolutional weights as a float32 state dict for
    ``torchvision.models.<name>().features``; ``name`` in ``{"vgg16", "alexnet"}``.

    Reads the offline file under the data root; if it is absent, falls back
    to torchvision's own pretrained weights (a download). Raises
    :class:`DataNotFoundError` when neither can be had: never random weights.
    """

    if name not in _WEIGHTS:
        raise ValueError(f"Unknown weights {name!r}; expected one of {sorted(_WEIGHTS)}")
    path = data_root(root) / _WEIGHTS[name]
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        return {k: v.float() for k, v in state.items()}
    try:

        weights = {"vgg16": torchvision.models.VGG16_Weights.IMAGENET1K_V1,
                   "alexnet": torchvision.models.AlexNet_Weights.IMAGENET1K_V1}[name]
        model = getattr(torchvision.models, name)(weights=weights)
        return {k: v.float() for k, v in model.features.state_dict().items()}
    except Exception as exc:
        raise DataNotFoundError(
            f"No {name} weights: expected {path} (a state dict of torchvision.models.{name}().features) "
            f"and torchvision's download failed ({exc}). Set PATCHBOOK_DATA to a data root holding {_WEIGHTS[name]}."
        ) from exc
