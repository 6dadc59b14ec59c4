"""The fast k-nearest selection equals the stable-sort definition, ties included."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from functools import lru_cache

import pytest
import torch
from conftest import missing

from patchbook.patchknn import knn
from patchbook.patchknn.knn import (
    fold_whitening,
    knn_codes,
    knn_mask,
    knn_mask_reference,
    scores,
)

NAN, INF = float("nan"), float("inf")


# small matrices (tests/conftest.py); one test below turns threads back on
# to cover the parallel loop
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(params=["native", "torch"])
def backend(request, monkeypatch):
    """Run a test with the compiled kernel and with the pure-torch path."""
    if request.param == "native":
        if not knn.native_available():
            missing(f"native kernel unavailable: {knn._native_state.get('error')}")
    else:
        monkeypatch.setenv("PATCHBOOK_KNN_NATIVE", "0")
    return request.param


def _ks(m):
    return sorted({0, 1, 2, m // 3, int(0.4 * m), m // 2, m - 1, m} & set(range(m + 1)))


@lru_cache(maxsize=1)
def _matrices():
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    ri = lambda lo, hi, *s: torch.randint(lo, hi, s, generator=g)  # noqa: E731
    spiky = r(20, 500)
    spiky[:, 7] = 1e30  # one outlier stretches the range: refinement path
    return {
        "gauss": r(64, 2048),
        "gauss-odd-width": r(33, 777),
        "ties-int": ri(0, 5, 40, 300).float(),
        "ties-int-wide": (r(16, 3000) * 3).round(),
        "ties-binary": ri(0, 2, 16, 129).float(),
        "constant": torch.zeros(8, 50),
        "constant-rows": torch.arange(6.0)[:, None].expand(6, 40),  # row stride only
        "signed-zeros": torch.tensor([[0.0, -0.0, 0.0, -0.0, 1.0, -1.0] * 7] * 3),
        "heavy-tail": r(24, 1000) ** 5,
        "outlier": spiky,
        "tiny": r(10, 300) * 1e-40,  # subnormal
        "huge": r(10, 300) * 1e38,  # max - min overflows
        "with-inf": torch.where(torch.rand(30, 200, generator=g) < 0.1, INF, r(30, 200)),
        "with-minus-inf": torch.where(torch.rand(30, 200, generator=g) < 0.1, -INF, r(30, 200)),
        "with-nan": torch.where(torch.rand(30, 200, generator=g) < 0.1, NAN, r(30, 200)),
        "transposed": r(96, 40).T,  # column stride != 1
        "strided-cols": r(20, 400)[:, ::3],
        "single-column": r(5, 1),
        "empty-rows": r(0, 10),
        "float64": r(30, 1000).double(),
        "float64-ties": ri(-3, 3, 30, 501).double(),
        "bfloat16": r(30, 1000).bfloat16(),  # many ties after rounding
        "float16": r(30, 1000).half(),
        "int64": ri(-5, 5, 12, 100),
    }


@pytest.mark.parametrize("name", list(_matrices()))
def test_knn_mask_equals_reference(name, backend):
    s = _matrices()[name]
    for k in _ks(s.shape[1]):
        got = knn_mask(s, k)
        want = knn_mask_reference(s, k)
        assert got.dtype == torch.bool and got.shape == s.shape
        assert torch.equal(got, want), (name, k, int((got != want).sum()))
        assert (got.sum(1) == k).all()


def test_parallel_rows():
    """The native kernel's threaded loop (used above 2**15 entries)."""
    if not knn.native_available():
        missing(f"native kernel unavailable: {knn._native_state.get('error')}")
    torch.set_num_threads(2)
    try:
        s = torch.randint(0, 50, (24, 2048), generator=torch.Generator().manual_seed(5)).float()
        for k in (1, 819, 2047):
            assert torch.equal(knn_mask(s, k), knn_mask_reference(s, k))
        x, atoms = _int_data(40, 1024, 27)
        assert torch.equal(knn_codes(x, atoms, 409), _reference_codes(x, atoms, 409))
    finally:
        torch.set_num_threads(1)


def test_random_shapes_and_ties(backend):
    g = torch.Generator().manual_seed(1)
    for trial in range(30):
        n = int(torch.randint(1, 40, (1,), generator=g))
        m = int(torch.randint(1, 600, (1,), generator=g))
        levels = [2, 7, 1000, 0][trial % 4]
        s = (torch.randint(0, levels, (n, m), generator=g).float() if levels
             else torch.randn(n, m, generator=g))
        k = int(torch.randint(0, m + 1, (1,), generator=g))
        assert torch.equal(knn_mask(s, k), knn_mask_reference(s, k)), (n, m, levels, k)


def test_out_argument_and_errors(backend):
    s = torch.randn(10, 30)
    wide = torch.zeros(10, 60, dtype=torch.bool)
    knn_mask(s, 7, out=wide[:, 30:])
    assert torch.equal(wide[:, 30:], knn_mask_reference(s, 7))
    assert not wide[:, :30].any()
    for k in (-1, 31):
        with pytest.raises(ValueError):
            knn_mask(s, k)
    with pytest.raises(ValueError):
        knn_mask(torch.randn(3, 4, 5), 1)


@pytest.mark.parametrize("cxx", ["no-such-compiler-xyz", "false"])
def test_falls_back_to_torch_without_a_working_compiler(cxx, monkeypatch, tmp_path):
    monkeypatch.setattr(knn, "_native_state", {})
    monkeypatch.setenv("CXX", cxx)
    monkeypatch.setenv("PATCHBOOK_CACHE", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))  # no cached build either
    with pytest.warns(RuntimeWarning, match="torch path"):
        assert not knn.native_available()
    s = torch.randint(0, 3, (20, 100)).float()
    assert torch.equal(knn_mask(s, 40), knn_mask_reference(s, 40))


# ------------------------------------------- loading the native library ----

@pytest.fixture(scope="module")
def built_library(cxx, tmp_path_factory):
    """One real build into an empty cache: ``(native folder, file name, bytes)``."""
    root = tmp_path_factory.mktemp("native-build")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(knn, "_native_state", {})
        mp.setenv("PATCHBOOK_CACHE", str(root / "cache"))
        mp.setenv("HOME", str(root / "home"))
        mp.delenv("PATCHBOOK_KNN_NATIVE", raising=False)
        assert knn.native_available(), knn._native_state.get("error")
    folder = root / "cache" / "native"
    (so,) = folder.glob("knn-*.so")
    return folder, so.name, so.read_bytes()


@pytest.fixture
def native_cache(built_library, monkeypatch, tmp_path):
    """A fresh process state and a cache holding a copy of the built library;
    rebuilds return the built bytes (counted in ``builds``) instead of compiling."""
    folder, name, blob = built_library
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    shutil.copytree(folder, cache / "native")
    monkeypatch.setattr(knn, "_native_state", {})
    monkeypatch.setenv("PATCHBOOK_CACHE", str(cache))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PATCHBOOK_KNN_NATIVE", raising=False)
    builds = []

    def compile_(cxx, keys):
        builds.append(1)
        return name[len("knn-"):-len(".so")], blob

    monkeypatch.setattr(knn, "_compile", compile_, raising=False)
    return cache / "native" / name, blob, builds


def _sha256(blob: bytes) -> str:
    import hashlib

    return hashlib.sha256(blob).hexdigest()


def test_the_built_library_is_private_with_its_checksum(built_library):
    import stat

    folder, name, blob = built_library
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0
    digest = folder / f"{name}.sha256"
    for f in (folder / name, digest):
        assert stat.S_IMODE(f.stat().st_mode) & 0o022 == 0, f
    assert digest.read_text().strip() == _sha256(blob)


def _planted(cxx: str, tmp_path, marker) -> bytes:
    """A library whose constructor creates ``marker``."""
    src = tmp_path / "planted.cpp"
    src.write_text('#include <cstdio>\n__attribute__((constructor)) static void planted() {\n'
                   f'  FILE* f = std::fopen("{marker}", "w"); if (f) std::fclose(f); }}\n'
                   'extern "C" int pb_knn_abi() { return 1; }\n')
    subprocess.run([cxx, "-shared", "-fPIC", str(src), "-o", str(tmp_path / "planted.so")], check=True)
    return (tmp_path / "planted.so").read_bytes()


@pytest.mark.parametrize("how", ["without its checksum", "with its checksum, folder writable by others"])
def test_a_planted_library_never_runs(how, native_cache, cxx, tmp_path):
    path, blob, builds = native_cache
    marker = tmp_path / "constructor-ran"
    planted = _planted(cxx, tmp_path, marker)
    path.write_bytes(planted)
    if how != "without its checksum":
        path.with_name(path.name + ".sha256").write_text(_sha256(planted))
        path.parent.chmod(0o777)
    assert knn.native_available()
    assert not marker.exists(), "the planted library's constructor ran"
    assert builds == [1] and path.read_bytes() == blob
    assert path.parent.stat().st_mode & 0o077 == 0  # private again
    s = torch.randn(5, 50)
    assert torch.equal(knn_mask(s, 7), knn_mask_reference(s, 7))


def test_a_library_that_does_not_load_is_rebuilt_once(native_cache):
    path, blob, builds = native_cache
    garbage = b"\x7fELF" + b"\0" * 200
    path.write_bytes(garbage)
    path.with_name(path.name + ".sha256").write_text(_sha256(garbage))  # passes the check, fails to load
    assert knn.native_available() and builds == [1]
    assert path.read_bytes() == blob


def test_when_the_rebuild_fails_too_the_torch_path_warns_once(native_cache, monkeypatch):
    path, _, builds = native_cache
    path.write_bytes(b"garbage")

    def no_compiler(cxx, keys):
        builds.append(1)
        raise RuntimeError("native kNN kernel did not compile")

    monkeypatch.setattr(knn, "_compile", no_compiler, raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not knn.native_available() and not knn.native_available()
        s = torch.randint(0, 3, (20, 100)).float()
        assert torch.equal(knn_mask(s, 40), knn_mask_reference(s, 40))
    assert builds == [1]
    assert len([w for w in caught if "torch path" in str(w.message)]) == 1


def test_a_truncated_library_is_rebuilt_without_sigbus(native_cache, tmp_path):
    """Run in a child process: a mapped truncated library kills it with SIGBUS."""
    path, blob, _ = native_cache
    path.write_bytes(blob[: len(blob) // 2])
    good = tmp_path / "good.so"
    good.write_bytes(blob)
    code = ("import sys; from pathlib import Path; from patchbook.patchknn import knn; "
            "blob = Path(sys.argv[1]).read_bytes(); key = sys.argv[2]; "
            "knn._compile = lambda cxx, keys: (key, blob); print(knn.native_available())")
    key = path.name[len("knn-"):-len(".so")]
    proc = subprocess.run([sys.executable, "-c", code, str(good), key], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"rc {proc.returncode}: {proc.stderr[-500:]}"
    assert proc.stdout.strip() == "True"
    assert path.read_bytes() == blob


def _reference_codes(x, atoms, k, both_signs=True, sqnorms=None, offset=None):
    p = x @ atoms.T
    if offset is not None:
        p = p + offset
    sq = (atoms * atoms).sum(1) if sqnorms is None else sqnorms
    codes = [knn_mask_reference(sq - 2.0 * p, k)]
    if both_signs:
        codes.append(knn_mask_reference(sq + 2.0 * p, k))
    return torch.cat(codes, 1)


def _int_data(n, m, d, seed=0):
    """Small integers: every product and score is exact in float32, whatever
    the summation order, so tiled and one-piece products agree bit for bit."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(-3, 4, (n, d), generator=g).float(),
            torch.randint(-3, 4, (m, d), generator=g).float())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_knn_codes_equal_reference(dtype, backend):
    x, atoms = _int_data(150, 257, 27)
    x, atoms = x.to(dtype), atoms.to(dtype)
    for k in (0, 1, 103, 256, 257):
        for both in (True, False):
            got = knn_codes(x, atoms, k, both_signs=both, tile_rows=64)
            assert torch.equal(got, _reference_codes(x, atoms, k, both)), (k, both)
    # the x half is knn_mask of the module's score function
    assert torch.equal(knn_codes(x, atoms, 50, both_signs=False), knn_mask(scores(x, atoms), 50))
    # sqnorms and offset
    off = torch.arange(257, dtype=dtype) % 5 - 2
    sq = torch.arange(257, dtype=dtype) % 7
    got = knn_codes(x, atoms, 100, sqnorms=sq, offset=off, tile_rows=40)
    assert torch.equal(got, _reference_codes(x, atoms, 100, True, sq, off))


def test_knn_codes_whitened_halves_are_knn_masks(backend):
    g = torch.Generator().manual_seed(6)
    xw, atoms = torch.randn(100, 20, generator=g), torch.randn(64, 20, generator=g)
    got = knn_codes(xw, atoms, 25)
    assert torch.equal(got[:, :64], knn_mask(scores(xw, atoms), 25))
    assert torch.equal(got[:, 64:], knn_mask(scores(-xw, atoms), 25))


def test_knn_codes_random_floats(backend):
    """Generic floats: equal to the reference on the product computed the same way."""
    g = torch.Generator().manual_seed(2)
    x, atoms = torch.randn(200, 108, generator=g), torch.randn(512, 108, generator=g)
    got = knn_codes(x, atoms, 204, tile_rows=200)
    assert torch.equal(got, _reference_codes(x, atoms, 204))
    assert (got.sum(1) == 2 * 204).all()


def test_knn_codes_bfloat16(backend):
    x, atoms = _int_data(50, 64, 12)
    x, atoms = x.bfloat16(), atoms.bfloat16()
    assert torch.equal(knn_codes(x, atoms, 25, tile_rows=50), _reference_codes(x, atoms, 25))


def test_knn_codes_images_match_patches(backend):
    from patchbook.patchknn.patches import extract_patches

    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 4, (3, 2, 9, 8), generator=g).float()
    kernels = torch.randint(-2, 3, (40, 2, 3, 3), generator=g).float()
    for stride in (1, 2):
        got = knn_codes(images, kernels, 13, stride=stride, tile_rows=50)
        p = extract_patches(images, 3, stride).reshape(-1, 18)
        want = _reference_codes(p, kernels.reshape(40, -1), 13)
        assert got.shape == (3, want.shape[0] // 3, 80)
        assert torch.equal(got.reshape(-1, 80), want)
    buf = torch.empty(3, 42, 80, dtype=torch.bool)
    assert knn_codes(images, kernels, 13, out=buf) is buf


def test_fold_whitening_matches_whitened_scores():
    g = torch.Generator().manual_seed(4)
    d, m = 12, 30
    W = torch.randn(d, d, generator=g, dtype=torch.float64)
    mean = torch.randn(d, generator=g, dtype=torch.float64)
    patches = torch.randn(50, d, generator=g, dtype=torch.float64)
    atoms = torch.randn(m, d, generator=g, dtype=torch.float64)
    kernels, offset, sq = fold_whitening(atoms, W, mean)
    direct = scores((patches - mean) @ W.T, atoms)
    folded = sq - 2.0 * (patches @ kernels.T + offset)
    assert torch.allclose(folded, direct, rtol=1e-10, atol=1e-9)
    got = knn_codes(patches, kernels, 9, both_signs=True, sqnorms=sq, offset=offset)
    assert torch.equal(got[:, :m], knn_mask_reference(direct, 9))
    assert torch.equal(got[:, m:], knn_mask_reference(scores(-(patches - mean) @ W.T, atoms), 9))
