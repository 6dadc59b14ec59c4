"""The k-nearest-atom selection at the heart of the patch code.

For whitened patches ``x_i`` and whitened atoms ``d_j`` the squared distance
is ``||x_i||^2 + s_ij`` with the *score* ``s_ij = ||d_j||^2 - 2 <x_i, d_j>``;
the ``||x_i||^2`` term does not change the ranking within a row, so the
selection works on scores, which one matrix product gives.

The code of row ``i`` has ones at the ``K`` atoms of smallest score; ties are
broken towards the lower atom index, i.e. atoms are ranked by
``(s_ij, j)``. Every faster implementation must give exactly this mask on the
same score matrix.

Implementations
---------------
:func:`knn_mask_reference`
    A stable sort of each row: slow, obviously exact; the definition.
:func:`knn_mask`
    Bit-for-bit the reference's mask, for every input (see "Exactness"). On
    the CPU a small native kernel (C++, built once with the machine's ``g++``
    in about 5 s and cached under ``$PATCHBOOK_CACHE/native`` with its
    checksum, checked before it is loaded) selects each
    row in ``O(m)``: the row's scores are cut into 256 value bins (a monotone
    map ``floor((s - min) * 256 / (max - min))``), the bin holding the
    ``K``-th score is found by bisection on counts (vectorised byte
    comparisons, no histogram), every score in a lower bin is selected, and
    the few scores in that bin (about ``m/100``) are ranked by the exact key
    ``(s, j)``. Without a compiler (or with ``PATCHBOOK_KNN_NATIVE=0``) and on
    CUDA a pure-torch path is used: ``torch.kthvalue`` gives the ``K``-th
    value ``t``, the mask is ``s < t`` plus the first ``K - #{s < t}`` ties
    ``s == t`` in column order.
:func:`knn_codes`
    The fused encoder step: scores of patches against atoms are computed a
    tile of rows at a time (one matrix product per tile) and selected at
    once, for ``x`` and, as the authors do, for ``-x`` (scores
    ``||d_j||^2 + 2 <x_i, d_j>`` from the same product). Only the boolean
    mask is allocated in full (1 byte per entry, against 4 for a score
    matrix and 8 more for the indices of a sort or ``topk``).

Exactness
---------
Scores are compared as numbers: ``-0.0`` and ``+0.0`` tie (lower index
first), ``-inf``/``+inf`` are ordinary values, and NaNs rank after ``+inf``
in column order -- all as ``torch.sort(stable=True)`` on the CPU does, so
NaN rows also match the reference (the intended inputs have no NaN).
``float16``/``bfloat16`` scores are widened to ``float32`` (exact and
monotone); integer scores go through the torch path. :func:`knn_codes`
equals ``knn_mask_reference`` applied to ``sqnorms - 2 p`` and
``sqnorms + 2 p`` with ``p = x_tile @ atoms.T (+ offset)`` as computed tile
by tile; a product computed in one piece, or by ``conv2d``, can differ in
the last bit, which may swap two nearly tied atoms. On CUDA the contract is
the CPU reference's (a CUDA sort may order ``-0.0`` before ``+0.0``).

Use in the encoder
------------------
``knn_mask(s, k)`` is a drop-in replacement of the reference. A whole batch
of images is coded without any score matrix by::

    kernels, offset, sq = fold_whitening(atoms_w, whitener.W_, whitener.mean_)  # once
    codes = knn_codes(images, kernels.reshape(m, C, Q, Q), K, both_signs=True,
                      sqnorms=sq, offset=offset, stride=stride)  # N x L x 2m, bool

or, for patches already whitened, ``knn_codes(x_w, atoms_w, K)``, whose two
halves equal ``knn_mask(scores(x_w, atoms_w), K)`` and
``knn_mask(scores(-x_w, atoms_w), K)``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from patchbook import cache
from patchbook.patchknn.patches import n_positions
from patchbook.paths import cache_root

__all__ = [
    "scores", "knn_mask_reference", "knn_mask", "knn_codes", "fold_whitening",
    "native_available",
]


def scores(x: torch.Tensor, atoms: torch.Tensor) -> torch.Tensor:
    """``s = ||d||^2 - 2 x d^T`` for ``x`` ``n x d`` and ``atoms`` ``m x d``; ``n x m``."""
    return (atoms * atoms).sum(1)[None, :] - 2.0 * (x @ atoms.T)


def knn_mask_reference(s: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean ``n x m`` mask of the ``k`` smallest entries of each row of ``s``,
    ties broken towards the lower column index (a stable sort: slow, exact)."""
    n, m = s.shape
    if not 0 <= k <= m:
        raise ValueError(f"k must be in [0, {m}], got {k}")
    order = torch.sort(s, dim=1, stable=True).indices[:, :k]
    mask = torch.zeros(n, m, dtype=torch.bool, device=s.device)
    mask.scatter_(1, order, True)
    return mask


_CPP_SOURCE = r"""
// Exact k-smallest selection per row, ties towards lower column index.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>
#ifdef __AVX2__
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

constexpr int NB = 256;      // first-level bins (uint8 bin ids)
constexpr int NB2 = 64;      // refinement bins
constexpr int64_t SMALL = 96;  // candidates finished by nth_element

inline uint32_t okey(float v) {
  if (v != v) return 0xFFFFFFFFu;           // NaN: after +inf, all equal
  if (v == 0.0f) v = 0.0f;                  // -0 == +0
  uint32_t b; std::memcpy(&b, &v, 4);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
inline uint64_t okey(double v) {
  if (v != v) return ~uint64_t(0);
  if (v == 0.0) v = 0.0;
  uint64_t b; std::memcpy(&b, &v, 8);
  return (b >> 63) ? ~b : (b | (uint64_t(1) << 63));
}

struct Key96 { uint64_t k; uint32_t j; };
inline bool operator<(const Key96& a, const Key96& b) { return a.k < b.k || (a.k == b.k && a.j < b.j); }

template <class T> struct KeyOf;
template <> struct KeyOf<float> {
  using type = uint64_t;
  static type make(float v, uint32_t j) { return (uint64_t(okey(v)) << 32) | j; }
  static uint32_t index(type k) { return uint32_t(k); }
};
template <> struct KeyOf<double> {
  using type = Key96;
  static type make(double v, uint32_t j) { return Key96{okey(v), j}; }
  static uint32_t index(type k) { return k.j; }
};

template <class T>
struct Work {
  std::vector<T> s;
  std::vector<uint8_t> bin;
  std::vector<uint32_t> ci;
  std::vector<T> cv;
  std::vector<typename KeyOf<T>::type> keys;
  explicit Work(int64_t m) : s(m + 32), bin(m + 64), ci(m + 64), cv(m + 64), keys(m + 64) {}
};

// min, max and whether a NaN occurs
template <class T>
inline bool minmax(const T* s, int64_t m, T& mn, T& mx) {
  T a = s[0], b = s[0];
  bool nan = false;
  for (int64_t j = 0; j < m; ++j) {
    T v = s[j];
    a = v < a ? v : a;
    b = v > b ? v : b;
    nan |= (v != v);
  }
  mn = a; mx = b;
  return nan;
}
#ifdef __AVX2__
template <>
inline bool minmax<float>(const float* s, int64_t m, float& mn, float& mx) {
  int64_t j = 0;
  bool nan = false;
  float a = s[0], b = s[0];
  if (m >= 8) {
    __m256 va = _mm256_loadu_ps(s), vb = va, vn = _mm256_cmp_ps(va, va, _CMP_UNORD_Q);
    for (j = 8; j + 8 <= m; j += 8) {
      __m256 v = _mm256_loadu_ps(s + j);
      va = _mm256_min_ps(va, v);
      vb = _mm256_max_ps(vb, v);
      vn = _mm256_or_ps(vn, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    alignas(32) float ta[8], tb[8];
    _mm256_store_ps(ta, va); _mm256_store_ps(tb, vb);
    nan = _mm256_movemask_ps(vn) != 0;
    a = ta[0]; b = tb[0];
    for (int i = 1; i < 8; ++i) { a = ta[i] < a ? ta[i] : a; b = tb[i] > b ? tb[i] : b; }
  }
  for (; j < m; ++j) {
    float v = s[j];
    a = v < a ? v : a; b = v > b ? v : b; nan |= (v != v);
  }
  mn = a; mx = b;
  return nan;
}
#endif

// Signed byte bins sb[j] = bin(s_j) - 128, bin = floor((s - mn) * scale)
// clamped to [0, NB-1]; monotone non-decreasing in s (every IEEE step is).
template <class T>
inline void binning(const T* s, int64_t m, T mn, T scale, int8_t* sb) {
  int64_t j = 0;
#ifdef __AVX2__
  if constexpr (sizeof(T) == 4) {
    const __m256 vmn = _mm256_set1_ps(mn), vsc = _mm256_set1_ps(scale);
    const __m256i top = _mm256_set1_epi32(NB - 1), half = _mm256_set1_epi32(128);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (; j + 32 <= m; j += 32) {
      __m256i b[4];
      for (int u = 0; u < 4; ++u) {
        __m256 v = _mm256_loadu_ps(s + j + 8 * u);
        b[u] = _mm256_sub_epi32(
            _mm256_min_epi32(_mm256_cvttps_epi32(_mm256_mul_ps(_mm256_sub_ps(v, vmn), vsc)), top), half);
      }
      __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(b[0], b[1]), _mm256_packs_epi32(b[2], b[3]));
      _mm256_storeu_si256((__m256i*)(sb + j), _mm256_permutevar8x32_epi32(p, perm));
    }
  }
#endif
  for (; j < m; ++j) {
    int64_t b = int64_t((s[j] - mn) * scale);
    if (b > NB - 1) b = NB - 1;
    sb[j] = int8_t(b - 128);
  }
}

// number of j with sb[j] < v (v in [-128, 128])
inline int64_t count_less(const int8_t* sb, int64_t m, int v) {
  if (v > 127) return m;
  int64_t c = 0, j = 0;
#ifdef __AVX2__
  const __m256i vv = _mm256_set1_epi8(char(v)), zero = _mm256_setzero_si256();
  while (j + 32 <= m) {
    __m256i acc = _mm256_setzero_si256();
    int64_t stop = std::min(m - 31, j + 32 * 255);
    for (; j < stop; j += 32) {
      __m256i x = _mm256_loadu_si256((const __m256i*)(sb + j));
      acc = _mm256_sub_epi8(acc, _mm256_cmpgt_epi8(vv, x));
    }
    __m256i t = _mm256_sad_epu8(acc, zero);
    c += _mm256_extract_epi64(t, 0) + _mm256_extract_epi64(t, 1) + _mm256_extract_epi64(t, 2) +
         _mm256_extract_epi64(t, 3);
  }
#endif
  for (; j < m; ++j) c += sb[j] < v;
  return c;
}

// out[j] = sb[j] < v; ci <- indices with sb[j] == v (increasing); returns count
inline int64_t split(const int8_t* sb, int64_t m, int v, uint8_t* out, uint32_t* ci) {
  int64_t nc = 0, j = 0;
#ifdef __AVX2__
  const __m256i vv = _mm256_set1_epi8(char(v));
  const __m256i one = _mm256_set1_epi8(1);
  for (; j + 32 <= m; j += 32) {
    __m256i b = _mm256_loadu_si256((const __m256i*)(sb + j));
    _mm256_storeu_si256((__m256i*)(out + j), _mm256_and_si256(_mm256_cmpgt_epi8(vv, b), one));
    uint32_t eq = uint32_t(_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, vv)));
    while (eq) {
      ci[nc++] = uint32_t(j + __builtin_ctz(eq));
      eq &= eq - 1;
    }
  }
#endif
  for (; j < m; ++j) {
    out[j] = sb[j] < v;
    ci[nc] = uint32_t(j);
    nc += (sb[j] == v);
  }
  return nc;
}

// Select the r smallest (value, index) among candidates ci[0..nc) (increasing
// indices) of row s; set out[] = 1 for them.
template <class T>
void finish(const T* s, uint32_t* ci, int64_t nc, int64_t r, uint8_t* out, Work<T>& w) {
  using K = KeyOf<T>;
  for (int iter = 0; iter < 6 && r > 0 && r < nc && nc > SMALL; ++iter) {
    T mn = s[ci[0]], mx = mn;
    bool nan = false;
    for (int64_t i = 0; i < nc; ++i) {
      T v = s[ci[i]];
      mn = v < mn ? v : mn; mx = v > mx ? v : mx; nan |= (v != v);
    }
    T range = mx - mn;
    if (nan || !std::isfinite(range)) break;
    if (range == T(0)) {  // all tied: lowest indices first
      for (int64_t i = 0; i < r; ++i) out[ci[i]] = 1;
      return;
    }
    T scale = T(NB2) / range;
    if (!std::isfinite(scale)) break;
    uint32_t h[NB2] = {0};
    uint8_t* b = w.bin.data();  // reuse (first-level bins no longer needed)
    for (int64_t i = 0; i < nc; ++i) {
      int64_t q = int64_t((s[ci[i]] - mn) * scale);
      if (q > NB2 - 1) q = NB2 - 1;
      b[i] = uint8_t(q);
      h[q]++;
    }
    int bs = 0;
    int64_t cum = 0;
    while (cum + int64_t(h[bs]) < r) cum += h[bs++];
    int64_t n2 = 0;
    for (int64_t i = 0; i < nc; ++i) {
      if (b[i] < bs) out[ci[i]] = 1;
      else if (b[i] == bs) ci[n2++] = ci[i];
    }
    nc = n2; r -= cum;
  }
  if (r <= 0) return;
  if (r >= nc) { for (int64_t i = 0; i < nc; ++i) out[ci[i]] = 1; return; }
  auto* keys = w.keys.data();
  for (int64_t i = 0; i < nc; ++i) keys[i] = K::make(s[ci[i]], ci[i]);
  std::nth_element(keys, keys + (r - 1), keys + nc);
  for (int64_t i = 0; i < r; ++i) out[K::index(keys[i])] = 1;
}

// One row, s contiguous (m entries), 0 < k < m.
template <class T>
void select_row(const T* s, int64_t m, int64_t k, uint8_t* out, Work<T>& w) {
  if (k <= 0) { std::memset(out, 0, m); return; }
  if (k >= m) { std::memset(out, 1, m); return; }
  T mn, mx;
  bool nan = minmax<T>(s, m, mn, mx);
  T range = mx - mn;
  T scale = T(NB) / range;
  uint32_t* ci = w.ci.data();
  if (nan || !std::isfinite(range) || !std::isfinite(scale) || range == T(0)) {
    if (!nan && range == T(0)) {  // constant row
      for (int64_t j = 0; j < m; ++j) out[j] = j < k;
      return;
    }
    std::memset(out, 0, m);
    for (int64_t j = 0; j < m; ++j) ci[j] = uint32_t(j);
    using K = KeyOf<T>;
    auto* keys = w.keys.data();
    for (int64_t j = 0; j < m; ++j) keys[j] = K::make(s[j], uint32_t(j));
    std::nth_element(keys, keys + (k - 1), keys + m);
    for (int64_t i = 0; i < k; ++i) out[K::index(keys[i])] = 1;
    return;
  }
  int8_t* sb = reinterpret_cast<int8_t*>(w.bin.data());
  binning<T>(s, m, mn, scale, sb);
  // smallest bin b with #(bin <= b) >= k, by bisection on counts
  int lo = -128, hi = 127;
  int64_t cum = 0;  // #(sb < lo)
  while (lo < hi) {
    int mid = (lo + hi) >> 1;
    int64_t c = count_less(sb, m, mid + 1);
    if (c >= k) hi = mid; else { lo = mid + 1; cum = c; }
  }
  int64_t nc = split(sb, m, lo, out, ci);
  finish<T>(s, ci, nc, k - cum, out, w);
}

// Rows [0, n) in chunks handed out dynamically (a descheduled thread on a
// shared machine does not hold the others up); body(i, ctx) for each row,
// with one ctx per thread from make().
template <class Make, class Body>
void parallel_rows(int64_t n, int nthreads, Make&& make, Body&& body) {
  const int64_t chunk = 8;
  int64_t nchunks = (n + chunk - 1) / chunk;
  if (nthreads > nchunks) nthreads = int(nchunks);
  if (nthreads < 1) nthreads = 1;
  std::atomic<int64_t> next{0};
  auto worker = [&]() {
    auto ctx = make();
    for (;;) {
      int64_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= nchunks) break;
      int64_t a = c * chunk, b = std::min(n, a + chunk);
      for (int64_t i = a; i < b; ++i) body(i, ctx);
    }
  };
  if (nthreads == 1) { worker(); return; }
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
  worker();
#else
  std::vector<std::thread> th;
  for (int t = 1; t < nthreads; ++t) th.emplace_back(worker);
  worker();
  for (auto& x : th) x.join();
#endif
}

template <class T>
struct RowCtx {
  Work<T> w;
  std::vector<T> q;
  explicit RowCtx(int64_t m) : w(m), q(m + 32) {}
};

template <class T>
void select_rows(const T* s, int64_t n, int64_t m, int64_t rs, int64_t cs, int64_t k,
                 uint8_t* out, int64_t ro, int nthreads) {
  parallel_rows(n, nthreads, [m] { return RowCtx<T>(m); }, [&](int64_t i, RowCtx<T>& c) {
    const T* row = s + i * rs;
    if (cs != 1) {
      for (int64_t j = 0; j < m; ++j) c.w.s[j] = row[j * cs];
      row = c.w.s.data();
    }
    select_row<T>(row, m, k, out + i * ro, c.w);
  });
}

// Codes of x and -x from products p: s = sq -/+ 2 (p + off).
template <class T>
void codes_rows(const T* p, int64_t n, int64_t m, int64_t rs, const T* off, const T* sq,
                int64_t k, uint8_t* out_pos, uint8_t* out_neg, int64_t ro, int nthreads) {
  parallel_rows(n, nthreads, [m] { return RowCtx<T>(m); }, [&](int64_t i, RowCtx<T>& c) {
    const T* row = p + i * rs;
    T* s = c.w.s.data();
    if (off) {
      T* q = c.q.data();
      for (int64_t j = 0; j < m; ++j) q[j] = row[j] + off[j];
      row = q;
    }
    if (out_pos) {
      for (int64_t j = 0; j < m; ++j) s[j] = sq[j] - (row[j] + row[j]);
      select_row<T>(s, m, k, out_pos + i * ro, c.w);
    }
    if (out_neg) {
      for (int64_t j = 0; j < m; ++j) s[j] = sq[j] + (row[j] + row[j]);
      select_row<T>(s, m, k, out_neg + i * ro, c.w);
    }
  });
}

}  // namespace

extern "C" {
int pb_knn_abi() { return 1; }
void pb_knn_select_f32(const float* s, int64_t n, int64_t m, int64_t rs, int64_t cs, int64_t k,
                       uint8_t* out, int64_t ro, int nthreads) {
  select_rows<float>(s, n, m, rs, cs, k, out, ro, nthreads);
}
void pb_knn_select_f64(const double* s, int64_t n, int64_t m, int64_t rs, int64_t cs, int64_t k,
                       uint8_t* out, int64_t ro, int nthreads) {
  select_rows<double>(s, n, m, rs, cs, k, out, ro, nthreads);
}
void pb_knn_codes_f32(const float* p, int64_t n, int64_t m, int64_t rs, const float* off,
                      const float* sq, int64_t k, uint8_t* out_pos, uint8_t* out_neg, int64_t ro,
                      int nthreads) {
  codes_rows<float>(p, n, m, rs, off, sq, k, out_pos, out_neg, ro, nthreads);
}
void pb_knn_codes_f64(const double* p, int64_t n, int64_t m, int64_t rs, const double* off,
                      const double* sq, int64_t k, uint8_t* out_pos, uint8_t* out_neg, int64_t ro,
                      int nthreads) {
  codes_rows<double>(p, n, m, rs, off, sq, k, out_pos, out_neg, ro, nthreads);
}
}
"""


# --------------------------------------------------------------------------
# native kernel: built once with g++, loaded with ctypes (no torch headers,
# so the build takes seconds, not minutes); any failure falls back to torch.
#
# Nothing is loaded from the cache without a check: the library's folder and
# file must belong to the user and be writable by no one else, and the file's
# bytes must match the SHA-256 written beside it at build time. The checked
# bytes themselves are what gets loaded (copied into an anonymous memory file),
# so a file swapped or truncated after the check is never mapped: no
# constructor of a planted library runs, no truncated library can SIGBUS the
# process. A library that fails its checks, its load or its self-check is
# rebuilt once; if that fails too, the torch path is used with one warning.

_ABI = 1
_FLAG_SETS = (
    ["-O3", "-march=native", "-fopenmp"],
    ["-O3", "-fopenmp"],
    ["-O3", "-pthread"],
)
_COMMON_FLAGS = ["-std=c++17", "-shared", "-fPIC", "-ffp-contract=off", "-fno-math-errno"]
_BUILD_TIMEOUT_S = 60
_native_lock = threading.Lock()
_native_state: dict = {}
_open_fds: list[int] = []  # memory files of the libraries loaded by this process


class NativeCheckError(RuntimeError):
    """A cached native library failed a check before loading (owner,
    permissions, checksum); it is not loaded."""


def _cpu_tag() -> str:
    """The CPU's feature flags (``-march=native`` builds are not portable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _keys(cxx: str) -> list[tuple[list[str], str]]:
    """``(flags, cache key)`` of each flag set, best first: the key hashes the
    source, the compiler version, the CPU and the flags."""
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True,
                             timeout=20).stdout.split("\n")[0]
    return [(flags, hashlib.sha256("\0".join(
        [_CPP_SOURCE, version, _cpu_tag(), platform.machine(), *flags, *_COMMON_FLAGS]
    ).encode()).hexdigest()[:16]) for flags in _FLAG_SETS]


def _folders() -> list[Path]:
    """Where built libraries are looked for: ``$PATCHBOOK_CACHE/native``
    (where they are built), then the default cache's."""
    folder = cache_root() / "native"
    try:
        default = Path.home() / ".cache" / "patchbook" / "native"
    except RuntimeError:  # no home directory
        default = folder
    return list(dict.fromkeys([folder, default]))


def _library_files(folder: Path, key: str) -> tuple[Path, Path]:
    return folder / f"knn-{key}.so", folder / f"knn-{key}.so.sha256"


def _check_private(path: Path, what: str) -> None:
    """``path`` is the user's and writable by no one else (not a link)."""
    st = os.lstat(path)
    kind = stat.S_ISDIR if what == "folder" else stat.S_ISREG
    if not kind(st.st_mode):
        raise NativeCheckError(f"{path} is not a {'folder' if what == 'folder' else 'regular file'}")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise NativeCheckError(f"{path} belongs to user {st.st_uid}, not to this user ({os.getuid()})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise NativeCheckError(f"{path} is writable by its group or by others "
                               f"(mode {stat.filemode(st.st_mode)})")


def _read_checked(folder: Path, key: str) -> bytes:
    """The bytes of the cached library ``key`` in ``folder``, after checking
    the folder, the file and its SHA-256 (:class:`NativeCheckError` if any fails)."""
    so, digest = _library_files(folder, key)
    _check_private(folder, "folder")
    _check_private(so, "file")
    _check_private(digest, "file")
    blob = so.read_bytes()
    if hashlib.sha256(blob).hexdigest() != digest.read_text().strip():
        raise NativeCheckError(f"{so} does not match its checksum {digest.name} (truncated or replaced)")
    return blob


def _cached(keys: list[tuple[list[str], str]], reasons: list[str]) -> bytes | None:
    """The checked bytes of the first cached library found, or ``None``;
    the failed checks are appended to ``reasons``."""
    for folder in _folders():
        for _, key in keys:
            if not _library_files(folder, key)[0].exists():
                continue
            try:
                return _read_checked(folder, key)
            except (NativeCheckError, OSError) as exc:
                reasons.append(f"{type(exc).__name__}: {exc}")
    return None


def _compile(cxx: str, keys: list[tuple[list[str], str]]) -> tuple[str, bytes]:
    """Compile the kernel with the first flag set that works, in a private
    temporary folder; returns ``(key, library bytes)``."""
    errors = []
    with tempfile.TemporaryDirectory(prefix="patchbook-knn-") as tmp:
        src = Path(tmp) / "knn.cpp"
        src.write_text(_CPP_SOURCE)
        so = Path(tmp) / "knn.so"
        for flags, key in keys:
            # a timeout (TimeoutExpired) ends the attempts: the torch path is used
            proc = subprocess.run([cxx, *flags, *_COMMON_FLAGS, str(src), "-o", str(so)],
                                  capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S)
            if proc.returncode == 0:
                return key, so.read_bytes()
            errors.append(f"{' '.join(flags)}: {proc.stderr.strip()[-500:]}")
    raise RuntimeError("native kNN kernel did not compile:\n" + "\n".join(errors))


def _store(key: str, blob: bytes) -> None:
    """Cache the library and its checksum in ``$PATCHBOOK_CACHE/native``,
    private to the user (an unwritable cache warns once and stores nothing)."""
    folder = cache_root() / "native"
    so, digest = _library_files(folder, key)
    try:  # a folder of ours that others could write is made private again
        st = os.lstat(folder)
        if hasattr(os, "getuid") and st.st_uid == os.getuid() and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            folder.chmod(0o700)
    except OSError:
        pass
    if cache.store(so, lambda tmp: tmp.write_bytes(blob)):
        cache.store(digest, lambda tmp: tmp.write_text(hashlib.sha256(blob).hexdigest() + "\n"))


def _open(blob: bytes):
    """Load the library from these bytes (an anonymous memory file, or a
    private temporary file where there is none), check its ABI and its
    selections against the definition."""
    if hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir():
        # the descriptor stays open: the dynamic loader knows a library by its
        # path, and a reused descriptor number would return an earlier one
        fd = os.memfd_create("patchbook-knn")
        try:
            with open(fd, "wb", closefd=False) as f:
                f.write(blob)
            lib = ctypes.CDLL(f"/proc/self/fd/{fd}")
        except BaseException:
            os.close(fd)
            raise
        _open_fds.append(fd)
    else:
        with tempfile.TemporaryDirectory(prefix="patchbook-knn-") as tmp:
            path = Path(tmp) / "knn.so"
            path.write_bytes(blob)
            lib = ctypes.CDLL(str(path))
    if lib.pb_knn_abi() != _ABI:
        raise RuntimeError("the native kNN library has another ABI")
    i64, vp, ci = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    for name in ("pb_knn_select_f32", "pb_knn_select_f64"):
        getattr(lib, name).argtypes = [vp, i64, i64, i64, i64, i64, vp, i64, ci]
        getattr(lib, name).restype = None
    for name in ("pb_knn_codes_f32", "pb_knn_codes_f64"):
        getattr(lib, name).argtypes = [vp, i64, i64, i64, vp, vp, i64, vp, vp, i64, ci]
        getattr(lib, name).restype = None
    # self-check against the definition before trusting it
    g = torch.Generator().manual_seed(0)
    for s in (torch.randn(7, 300, generator=g), torch.randint(0, 4, (5, 70), generator=g).double()):
        for k in (1, s.shape[1] // 3, s.shape[1] - 1):
            got = torch.empty(s.shape, dtype=torch.bool)
            _native_select(lib, s, k, got)
            if not torch.equal(got, knn_mask_reference(s, k)):
                raise RuntimeError("native kNN kernel failed its self-check")
    return lib


def _load_native():
    """The checked, loaded kernel: the cached build, else one fresh build."""
    cxx = shutil.which(os.environ.get("CXX", "g++"))
    if cxx is None:
        raise RuntimeError("no C++ compiler (g++) on PATH")
    keys = _keys(cxx)
    reasons: list[str] = []
    blob = _cached(keys, reasons)
    if blob is not None:
        try:
            return _open(blob)
        except Exception as exc:  # noqa: BLE001 - a cached library that does not work is rebuilt
            reasons.append(f"the cached library did not load: {type(exc).__name__}: {exc}")
    key, blob = _compile(cxx, keys)
    _store(key, blob)
    try:
        return _open(blob)
    except Exception as exc:
        raise RuntimeError("; ".join([*reasons, f"the fresh build did not load: {exc}"])) from exc


def _native_lib():
    """The loaded native kernel, or ``None`` (disabled, no compiler, failed)."""
    if os.environ.get("PATCHBOOK_KNN_NATIVE", "1").lower() in ("0", "false", "no", "off"):
        return None
    if "lib" in _native_state:
        return _native_state["lib"]
    with _native_lock:
        if "lib" not in _native_state:
            lib = None
            try:
                lib = _load_native()
            except Exception as exc:  # noqa: BLE001 - any failure means: use torch
                _native_state["error"] = f"{type(exc).__name__}: {exc}"
                warnings.warn(f"patchbook.patchknn.knn: native kernel unavailable, using the torch path "
                              f"({_native_state['error'][:300]})", RuntimeWarning, stacklevel=3)
            _native_state["lib"] = lib
    return _native_state["lib"]


def native_available() -> bool:
    """Whether the CPU paths use the compiled kernel (builds it on first call)."""
    return _native_lib() is not None


def _threads(work: int) -> int:
    return 1 if work < 1 << 15 else max(1, torch.get_num_threads())


def _native_select(lib, s: torch.Tensor, k: int, out: torch.Tensor) -> None:
    n, m = s.shape
    fn = lib.pb_knn_select_f64 if s.dtype == torch.float64 else lib.pb_knn_select_f32
    fn(s.data_ptr(), n, m, s.stride(0), s.stride(1), k, out.data_ptr(), out.stride(0),
       _threads(n * m))


# --------------------------------------------------------------------------
# pure torch (CUDA, and the CPU without a compiler)

def _knn_mask_torch(s: torch.Tensor, k: int) -> torch.Tensor:
    if s.dtype in (torch.float16, torch.bfloat16):
        s = s.float()
    elif s.dtype == torch.bool:
        s = s.to(torch.uint8)
    if s.is_floating_point() and bool(torch.isnan(s).any()):
        return knn_mask_reference(s, k)
    t = s.kthvalue(k, dim=1, keepdim=True).values
    mask = s <= t
    bad = (mask.sum(1) > k).nonzero().squeeze(1)
    if bad.numel():  # ties at the k-th value: keep the first ones
        sb, tb = s[bad], t[bad]
        lt, eq = sb < tb, sb == tb
        need = k - lt.sum(1, keepdim=True)
        mask[bad] = lt | (eq & (eq.cumsum(1) <= need))
    return mask


# --------------------------------------------------------------------------
# public API

def _check_out(out, shape, device) -> torch.Tensor:
    if out is None:
        return torch.empty(shape, dtype=torch.bool, device=device)
    if tuple(out.shape) != tuple(shape) or out.dtype not in (torch.bool, torch.uint8):
        raise ValueError(f"out must be bool/uint8 of shape {tuple(shape)}, "
                         f"got {out.dtype} {tuple(out.shape)}")
    if out.device != torch.device(device) or (out.shape[-1] > 1 and out.stride(-1) != 1):
        raise ValueError("out must be on the scores' device with unit column stride")
    return out


@torch.no_grad()
def knn_mask(s: torch.Tensor, k: int, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean ``n x m`` mask of the ``k`` smallest entries of each row of
    ``s``, ties towards the lower column index: exactly
    :func:`knn_mask_reference` (see the module docstring), much faster.

    Any strides and dtypes are accepted. ``out`` (bool or uint8, ``n x m``,
    unit column stride, e.g. a column slice of a wider code matrix) receives
    the mask and is returned.
    """
    if s.ndim != 2:
        raise ValueError(f"expected a 2-D score matrix, got shape {tuple(s.shape)}")
    n, m = s.shape
    if not 0 <= k <= m:
        raise ValueError(f"k must be in [0, {m}], got {k}")
    out = _check_out(out, (n, m), s.device)
    if k == 0 or k == m or n == 0:
        return out.fill_(k == m and m > 0)
    s = s.detach()
    lib = _native_lib() if s.device.type == "cpu" else None
    if lib is not None and s.is_floating_point():
        if s.dtype not in (torch.float32, torch.float64):
            s = s.float()  # exact for float16 / bfloat16
        _native_select(lib, s, k, out)
    else:
        out.copy_(_knn_mask_torch(s, k))
    return out


def fold_whitening(atoms: torch.Tensor, W: torch.Tensor, mean: torch.Tensor | None = None):
    """Atoms given in whitened coordinates, as arguments of :func:`knn_codes`
    on *raw* patches: returns ``(kernels, offset, sqnorms)`` with
    ``p @ kernels.T + offset == <W (p - mean), atoms>`` and
    ``sqnorms == ||atoms||^2`` (computed in float64, cast to ``atoms.dtype``).

    ``W`` is ``k x d`` (``Whitener.W_``), ``atoms`` ``m x k``; ``kernels`` is
    ``m x d`` and reshapes to ``m x C x Q x Q`` convolution kernels. This saves
    whitening every patch (one more ``d x d`` product per patch) and is the
    authors' formulation; scores then differ from whitening first by
    rounding only.
    """
    A = atoms.double() @ W.double()
    offset = None if mean is None else -(A @ mean.double()).to(atoms.dtype)
    sq = (atoms.double() ** 2).sum(1).to(atoms.dtype)
    return A.to(atoms.dtype), offset, sq


@torch.no_grad()
def knn_codes(x: torch.Tensor, atoms: torch.Tensor, k: int, both_signs: bool = True, *,
              sqnorms: torch.Tensor | None = None, offset: torch.Tensor | None = None,
              stride: int = 1, tile_rows: int | None = None,
              out: torch.Tensor | None = None) -> torch.Tensor:
    """Codes of patches: masks of the ``k`` nearest atoms, computed a tile of
    rows at a time (scores never exist in full).

    Parameters
    ----------
    x
        Patches ``n x d`` (rows = patch positions), or images ``N x C x H x W``
        when ``atoms`` are convolution kernels ``m x C x Q x Q`` (patches are
        then taken tile by tile with ``unfold`` at ``stride``; rows are
        ``(image, position)`` with positions in row-major order, as
        :func:`patchbook.patchknn.patches.extract_patches` orders them).
    atoms
        ``m x d`` (or ``m x C x Q x Q``).
    k
        Number of ones per code, ``0 <= k <= m``.
    both_signs
        Also code ``-x`` (the authors' variant): the result is
        ``[code(x) | code(-x)]``, ``2m`` columns.
    sqnorms, offset
        Scores are ``sqnorms - 2 p`` for ``x`` and ``sqnorms + 2 p`` for ``-x``
        with ``p = x @ atoms.T + offset``; ``sqnorms`` defaults to
        ``(atoms * atoms).sum(1)`` (then the ``x`` code is
        ``knn_mask(scores(x, atoms), k)``) and ``offset`` to zero. See
        :func:`fold_whitening` to code raw patches against whitened atoms.
    tile_rows
        Rows per matrix product (default: 16 MiB of float32 products on the
        CPU, 256 MiB on CUDA); memory beyond ``out`` stays about that.
    out
        Optional bool/uint8 ``n x (2m or m)`` (``N x L x ...`` for images)
        output, e.g. reused across batches.

    Returns the mask, ``n x 2m`` (or ``n x m``); for images ``N x L x 2m``.
    Exactly ``knn_mask_reference`` of those scores, rounded as computed per
    tile (module docstring).
    """
    images = x.ndim == 4
    m = atoms.shape[0]
    if m == 0:
        raise ValueError("no atoms")
    if images:
        if atoms.ndim != 4 or atoms.shape[1] != x.shape[1]:
            raise ValueError(f"images {tuple(x.shape)} need kernels m x C x Q x Q, "
                             f"got {tuple(atoms.shape)}")
        Q = atoms.shape[-1]

        L = n_positions(x.shape[-2], atoms.shape[-2], stride) * n_positions(x.shape[-1], Q, stride)
        rows = x.shape[0] * L
    else:
        if x.ndim != 2 or atoms.ndim != 2 or x.shape[1] != atoms.shape[1]:
            raise ValueError(f"expected x n x d and atoms m x d, got {tuple(x.shape)} "
                             f"and {tuple(atoms.shape)}")
        rows = x.shape[0]
    if not 0 <= k <= m:
        raise ValueError(f"k must be in [0, {m}], got {k}")
    A = atoms.reshape(m, -1).to(x.dtype)
    if sqnorms is None:
        sqnorms = (A * A).sum(1)
    sqnorms = sqnorms.to(device=x.device, dtype=x.dtype).contiguous()
    if offset is not None:
        offset = offset.to(device=x.device, dtype=x.dtype).contiguous()
    width = 2 * m if both_signs else m
    shape = (x.shape[0], L, width) if images else (rows, width)
    out = _check_out(out, shape, x.device)
    flat = out.view(rows, width)
    if rows == 0 or m == 0:
        return out
    if tile_rows is None:  # ~16 MiB of products per tile on the CPU (fewer thread hand-overs)
        tile_rows = max(256, (1 << 22) // m) if x.device.type == "cpu" else max(1024, (1 << 26) // m)
    lib = _native_lib() if x.device.type == "cpu" else None
    native = lib is not None and x.dtype in (torch.float32, torch.float64)
    At = A.T
    buf = torch.empty(min(tile_rows, rows), m, dtype=x.dtype, device=x.device)

    def encode(xt: torch.Tensor, o: torch.Tensor) -> None:  # rows of patches -> rows of out
        p = torch.mm(xt, At, out=buf[: xt.shape[0]])
        if native:
            fn = lib.pb_knn_codes_f32 if x.dtype == torch.float32 else lib.pb_knn_codes_f64
            fn(p.data_ptr(), p.shape[0], m, p.stride(0),
               offset.data_ptr() if offset is not None else None, sqnorms.data_ptr(), k,
               o.data_ptr(), o[:, m:].data_ptr() if both_signs else None, o.stride(0),
               _threads(p.numel()))
            return
        if offset is not None:
            p = p + offset
        knn_mask(sqnorms - 2.0 * p, k, out=o[:, :m])
        if both_signs:
            knn_mask(sqnorms + 2.0 * p, k, out=o[:, m:])

    if not images:
        for r0 in range(0, rows, tile_rows):
            encode(x[r0:r0 + tile_rows], flat[r0:r0 + tile_rows])
        return out
    # images: unfold a few at a time (patches take d/width of the mask's memory)
    per = max(1, min(x.shape[0], (4 * tile_rows) // L))
    for i0 in range(0, x.shape[0], per):
        xt = F.unfold(x[i0:i0 + per], kernel_size=tuple(atoms.shape[-2:]), stride=stride)
        xt = xt.transpose(1, 2).reshape(-1, A.shape[1])
        o = flat[i0 * L:i0 * L + xt.shape[0]]
        for r0 in range(0, xt.shape[0], tile_rows):
            encode(xt[r0:r0 + tile_rows], o[r0:r0 + tile_rows])
    return out
