"""The data layer: datasets as numpy arrays, paintings, photographs, weights.

Every loader reads from a data root: the ``root`` argument, else
``$PATCHBOOK_DATA``, else ``$PATCHBOOK_CACHE/data`` (``~/.cache/patchbook/data``
when ``PATCHBOOK_CACHE`` is unset). Where a dataset is missing and torchvision
can download it (MNIST, CIFAR-10), it is downloaded into the root, unless the
root lies inside the patchbook checkout (nothing is downloaded into the
repository); otherwise a :class:`DataNotFoundError` names the layout that was
expected and the variable to set.

Decoded ImageFolder arrays are cached under ``$PATCHBOOK_CACHE``, keyed by the
class list and every file's name, size, modification and change times and
inode, so the 60,000 CIFAR-10 JPEGs are decoded once and a moved, swapped or
edited file is decoded again. A dataset's :attr:`Dataset.fingerprint` hashes
its content (decoded pixels and labels, or the bytes of the source files).

Files are read as data only: IDX headers and label ranges are checked, and
CIFAR-10 python batches are unpickled with an unpickler that can build only
dicts, lists, strings, bytes, numbers and numpy arrays (never code).
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import json
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
from patchbook.paths import data_root, inside_checkout

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


class CorruptDataError(ValueError):
    """A data file is not what its name says (a bad IDX header, labels out of
    range, a CIFAR-10 batch that is not one or that would run code)."""


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


def _content_fingerprint(*parts: bytes | np.ndarray | str) -> str:
    """Hash of byte strings, arrays (dtype, shape and bytes) and strings."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(f"{part.dtype.str}{part.shape}".encode())
            part = memoryview(np.ascontiguousarray(part)).cast("B")
        elif isinstance(part, str):
            part = part.encode()
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()[:16]


def _stat_key(files: list[Path], base: Path, classes: tuple[str, ...]) -> str:
    """Cache key of an ImageFolder tree: the class list and each file's
    relative name, size, modification and change times and inode (cheap for
    tens of thousands of files; a file moved, swapped or rewritten changes it)."""
    h = hashlib.sha256(json.dumps(list(classes)).encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(base)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\n"
                 .encode())
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


def _visible(p: Path) -> bool:
    """Not a hidden file or folder (``.ipynb_checkpoints``, ``.DS_Store``...)."""
    return not p.name.startswith(".")


def _class_folders(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and _visible(d))


def _list_imagefolder(folder: Path, classes: tuple[str, ...] | None = None) -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    """Files and labels of an ImageFolder tree; classes sorted unless given.
    Hidden folders and files are skipped; a class folder without images is an
    error naming it."""
    if classes is None:
        classes = tuple(_class_folders(folder))
    files: list[Path] = []
    labels: list[int] = []
    for i, cls in enumerate(classes):
        d = folder / cls
        if not d.is_dir():
            raise DataNotFoundError(f"Class folder {d} is missing (expected one sub-folder per class).")
        imgs = sorted(p for p in d.iterdir()
                      if _visible(p) and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not imgs:
            raise DataNotFoundError(f"Class folder {d} has no images (expected files ending in "
                                    f"{', '.join(IMAGE_SUFFIXES)}); add its images or remove the folder.")
        files += imgs
        labels += [i] * len(imgs)
    return files, np.asarray(labels, dtype=np.int64), classes


def _load_imagefolder(folder: Path, name: str, classes: tuple[str, ...] | None = None,
                      image_size: tuple[int, int] | None = None) -> Dataset:
    files, labels, classes = _list_imagefolder(folder, classes)
    if not files:
        raise DataNotFoundError(f"No images under {folder} (expected {_LAYOUTS['imagefolder']}).")
    key = {"source": "imagefolder", "files": _stat_key(files, folder, classes),
           "image_size": None if image_size is None else list(image_size)}

    def decode() -> dict[str, np.ndarray]:
        images = _decode_many(files, f"decoding {name}", image_size)
        fp = _content_fingerprint(images, labels, json.dumps(list(classes)))
        return {"images": images, "labels": labels, "fingerprint": np.asarray(fp)}

    arrays = memo_arrays("datasets", key, decode, include_code=False)
    return Dataset(arrays["images"], arrays["labels"].astype(np.int64), tuple(classes),
                   str(arrays["fingerprint"]))


# ----------------------------------------------------------------- MNIST ----

_IDX_UBYTE = 0x08


def _read_idx(path: Path, ndim: int, what: str) -> tuple[np.ndarray, bytes]:
    """The ``uint8`` array of an IDX file of ``ndim`` dimensions and the file's
    (decompressed) bytes; a bad header, type, shape or size is a
    :class:`CorruptDataError` naming the file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise CorruptDataError(f"Cannot read IDX file {path}: {exc}") from exc
    if len(data) < 4 or data[:2] != b"\0\0":
        raise CorruptDataError(f"{path} is not an IDX file (its magic number starts {data[:2]!r}, "
                               "expected two zero bytes)")
    if data[2] != _IDX_UBYTE:
        raise CorruptDataError(f"{path}: IDX values of type 0x{data[2]:02x}; expected 0x08 (unsigned bytes)")
    if data[3] != ndim:
        raise CorruptDataError(f"{path}: an IDX file of {data[3]} dimension(s); expected {ndim} ({what})")
    if len(data) < 4 + 4 * ndim:
        raise CorruptDataError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    if min(dims) == 0:
        raise CorruptDataError(f"{path}: IDX dimensions {dims} include a zero")
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    want = int(np.prod(dims))
    if arr.size != want:
        state = "truncated" if arr.size < want else "too long"
        raise CorruptDataError(f"{path}: {state} IDX file ({arr.size} values, its header {dims} says {want})")
    return arr.reshape(dims), data


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
    images, img_bytes = _read_idx(img, 3, "images: count x height x width")
    labels, lab_bytes = _read_idx(lab, 1, "labels: count")
    if len(images) != len(labels):
        raise CorruptDataError(f"MNIST {split}: {len(images)} images in {img} but {len(labels)} labels in {lab}")
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise CorruptDataError(f"{lab}: labels must be digits 0-9, found {int(labels[bad[0]])} at index {bad[0]}")
    fp = _content_fingerprint(img_bytes, lab_bytes)
    return Dataset(images[..., None], labels.astype(np.int64), tuple(str(i) for i in range(10)), fp)


# -------------------------------------------------------------- CIFAR-10 ----

def _numpy_reconstruct():
    core = getattr(np, "_core", None) or np.core
    return core.multiarray._reconstruct


class _BatchUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings, bytes, numbers and numpy arrays only: the
    globals a pickled array needs are the only ones it resolves."""

    _ARRAY_GLOBALS = {
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("_codecs", "encode"): lambda: codecs.encode,  # bytes in Python 3 pickles of protocol 2
    }

    def find_class(self, module: str, name: str):
        make = self._ARRAY_GLOBALS.get((module, name))
        if make is None:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}")
        return make()


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images N x 32 x 32 x 3 uint8, labels N int64)`` of a CIFAR-10 python
    batch, unpickled without running code; anything else is a
    :class:`CorruptDataError` naming the file."""
    expected = ("a CIFAR-10 python batch holds a dict of 'data' (uint8 N x 3072) and 'labels' "
                "(N integers 0-9), made of dicts, lists, strings, bytes, numbers and numpy arrays only")
    try:
        batch = _BatchUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise CorruptDataError(f"Refusing to load {path}: {exc} ({expected}; nothing in it was run)") from exc
    data = batch.get("data") if isinstance(batch, dict) else None
    labels = batch.get("labels") if isinstance(batch, dict) else None
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3072 and isinstance(labels, list) and len(labels) == len(data)
            and all(type(v) is int and 0 <= v <= 9 for v in labels)):
        raise CorruptDataError(f"{path} is not a CIFAR-10 batch: {expected}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(labels, np.int64)


def _load_cifar_pickles(folder: Path, split: str) -> Dataset:
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    paths = [folder / n for n in names]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise DataNotFoundError(f"CIFAR-10 pickles incomplete: missing {missing[0]}")
    xs, ys = zip(*(_read_cifar_batch(p) for p in paths))
    images, labels = np.concatenate(xs), np.concatenate(ys)
    fp = _content_fingerprint(images, labels)
    return Dataset(images, labels, CIFAR10_CLASSES, fp)


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
        found = _class_folders(folder)
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
    checkout = inside_checkout(root)
    if checkout is not None:
        raise _missing(name, root, f"Not downloading it there: {root} is inside the patchbook checkout "
                       f"{checkout}, and nothing is downloaded into the repository. Set PATCHBOOK_DATA to a "
                       "folder outside it, or unset it to download into $PATCHBOOK_CACHE/data.")
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


def balanced_subset(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``n`` examples, ``n // n_classes`` of every class
    (:func:`stratified_subset`); every index when ``n`` is at least the
    number of examples (so "all of MNIST" works although its classes differ
    in size)."""
    if n >= len(labels):
        return np.arange(len(labels))
    return stratified_subset(labels, n // len(np.unique(labels)), seed)


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
    to torchvision's own pretrained weights (a download, unless
    ``PATCHBOOK_OFFLINE=1``). Raises
    :class:`DataNotFoundError` when neither can be had: never random weights.
    """

    if name not in _WEIGHTS:
        raise ValueError(f"Unknown weights {name!r}; expected one of {sorted(_WEIGHTS)}")
    path = data_root(root) / _WEIGHTS[name]
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        return {k: v.float() for k, v in state.items()}
    if os.environ.get("PATCHBOOK_OFFLINE") == "1":
        raise DataNotFoundError(f"No {name} weights: expected {path} (a state dict of torchvision.models.{name}()"
                                f".features), and PATCHBOOK_OFFLINE=1 forbids torchvision's download. Set "
                                f"PATCHBOOK_DATA to a data root holding {_WEIGHTS[name]}.")
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
