#!/usr/bin/env python
"""Does the K-th-value selection dominate the encoding on a GPU? (run by hand; not part of CI)

One tile of the encoder's work at |D| = 2048: ``--rows`` patch rows (default
32,768, the tile :func:`patchbook.patchknn.knn.knn_codes` takes on CUDA at
|D| = 2048) of ``d = 3 Q^2 = 108`` values against |D| kernels, ``K = 0.4 |D|``.
Every method runs on the same device, on the same rows, interleaved,
``--repeats`` times (best and median kept):

``matmul``          the product ``P @ kernels.T`` alone (float32; TF32 as torch is set):
                    the floor of any encoding.
``copy``            one read and one write of the score matrix (``clone``): the
                    memory floor of any selection that reads the scores from memory.
``kthvalue``        ``torch.kthvalue`` of every row (the K-th value only).
``knn_mask``        the library's selection on the scores (on CUDA ``kthvalue``,
                    a comparison, the exact fix of ties; on the CPU the native kernel).
``topk``            ``torch.topk(..., sorted=False)`` and a scatter into a mask.
``sort``            ``torch.sort`` of every row (values and indices).
``radix``           an exact histogram (radix) select in plain torch: four passes
                    of 8-bit digits of the order-preserving integer keys, one
                    ``scatter_add`` histogram per row and pass.
``triton-select``   a Triton kernel: each row's keys in registers, the K-th key
                    by 32 steps of bitwise bisection, ties by column (exact).
``knn_codes``       the library's whole step for x and -x: product, scores, two selections.
``triton-fused``    a Triton kernel doing what ``knn_codes`` does: product
                    (``tl.dot``, IEEE float32) and both selections, the scores
                    never leaving the chip but for a per-program scratch that
                    stays in L2 (persistent programs).

Every selection's mask is compared with the definition
(:func:`patchbook.patchknn.knn.knn_mask_reference`, a stable sort) on the same
scores: all must be equal. The fused kernel computes its own product, so it is
compared with ``knn_codes``: its share of equal code entries is printed (the
dot and cuBLAS round differently, which may swap nearly tied atoms).

The table: milliseconds per tile, rows per second, time as a multiple of
``matmul``, peak memory above the resting level (CUDA), agreement. The last
lines say whether the selection dominates (``knn_mask / matmul``) and what
the fused selection gives (``knn_codes / triton-fused``).

Without a GPU, ``--device cpu`` runs the same methods on the CPU (small
``--rows``) to show the benchmark works; the Triton kernels then run in
Triton's interpreter (``TRITON_INTERPRET=1``, set here before Triton is
imported) on a few rows, for correctness only: their times mean nothing.

Examples::

    python benchmarks/selection.py                          # CUDA, |D| = 2048, a 32,768-row tile
    python benchmarks/selection.py --atoms 2048 8192 --rows 32768 131072 --json sel.json
    python benchmarks/selection.py --device cpu --rows 1024 --repeats 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time

METHODS = ("matmul", "copy", "kthvalue", "knn_mask", "topk", "sort", "radix", "triton-select", "knn_codes",
           "triton-fused")
SELECTIONS = ("knn_mask", "topk", "radix", "triton-select")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="cuda, cpu or auto (cuda when available)")
    ap.add_argument("--atoms", type=int, nargs="+", default=[2048], help="|D| values")
    ap.add_argument("--rows", type=int, nargs="+", default=None,
                    help="patch rows per tile (default: 32768 on CUDA, 2048 on the CPU)")
    ap.add_argument("--dim", type=int, default=108, help="patch dimension d (3 x 6 x 6)")
    ap.add_argument("--k-ratio", type=float, default=0.4, help="K = int(k_ratio * |D|)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--interpret-rows", type=int, default=48,
                    help="rows the Triton kernels get in the interpreter (CPU)")
    ap.add_argument("--json", default=None, help="write the rows and the verdict lines to this file")
    return ap.parse_args(argv)


# ---------------------------------------------------------------- Triton --

def triton_kernels(interpret: bool):
    """The two Triton kernels, or ``None`` (with the reason) without Triton."""
    if interpret:
        os.environ["TRITON_INTERPRET"] = "1"
    try:
        import triton
        import triton.language as tl
    except Exception as exc:  # noqa: BLE001 - no Triton: the methods are skipped
        return None, f"{type(exc).__name__}: {exc}"

    @triton.jit
    def keys_of(s, valid):
        """Order-preserving uint32 keys of float32 scores: -0 == +0, NaN after
        +inf, padding after everything (so ties by column never pick it)."""
        s = s + 0.0
        bits = s.to(tl.uint32, bitcast=True)
        key = tl.where((bits >> 31) != 0, bits ^ 0xFFFFFFFF, bits | 0x80000000)
        key = tl.where(s != s, 0xFFFFFFFF, key)
        return tl.where(valid, key, 0xFFFFFFFF)

    @triton.jit
    def select_block(key, K, RS: tl.constexpr):
        """Mask of the K smallest keys of each row of ``key`` (RS x M), ties by column."""
        v = tl.zeros((RS,), dtype=tl.uint32)
        bit = tl.full((RS,), 0x80000000, dtype=tl.uint32)
        for _ in range(32):                         # the K-th key, bit by bit from the top
            cand = v | bit
            cnt = tl.sum((key < cand[:, None]).to(tl.int32), axis=1)
            v = tl.where(cnt < K, cand, v)
            bit = bit >> 1
        lt = key < v[:, None]
        eq = key == v[:, None]
        need = K - tl.sum(lt.to(tl.int32), axis=1)
        c = tl.cumsum(eq.to(tl.int32), axis=1)
        return lt | (eq & (c <= need[:, None]))

    # kernels resolve the functions they call among the module's globals
    globals().update(keys_of=keys_of, select_block=select_block)

    @triton.jit
    def select_kernel(S, OUT, n, m, ss, so, K, RS: tl.constexpr, M: tl.constexpr):
        rows = tl.program_id(0) * RS + tl.arange(0, RS)
        cols = tl.arange(0, M)
        valid = (rows[:, None] < n) & (cols[None, :] < m)
        s = tl.load(S + rows[:, None] * ss + cols[None, :], mask=valid, other=0.0)
        sel = select_block(keys_of(s, valid), K, RS)
        tl.store(OUT + rows[:, None] * so + cols[None, :], sel.to(tl.int8), mask=valid)

    @triton.jit
    def fused_kernel(X, A, SQ, OFF, OUT, SCR, n, m, d, sx, sa, so, K, n_blocks,
                     BOTH: tl.constexpr, R: tl.constexpr, RS: tl.constexpr, M: tl.constexpr,
                     BN: tl.constexpr, BD: tl.constexpr):
        pid = tl.program_id(0)
        ds = tl.arange(0, BD)
        r = tl.arange(0, R)
        scr = SCR + pid * R * M                       # this program's scratch, reused: it stays in L2
        for blk in range(pid, n_blocks, tl.num_programs(0)):
            rows = blk * R + r
            x = tl.load(X + rows[:, None] * sx + ds[None, :], mask=(rows[:, None] < n) & (ds[None, :] < d),
                        other=0.0)
            for j0 in range(0, M, BN):
                cj = j0 + tl.arange(0, BN)
                a = tl.load(A + cj[None, :] * sa + ds[:, None], mask=(cj[None, :] < m) & (ds[:, None] < d),
                            other=0.0)
                p = tl.dot(x, a, input_precision="ieee") + tl.load(OFF + cj, mask=cj < m, other=0.0)[None, :]
                tl.store(scr + r[:, None] * M + cj[None, :], p)
            tl.debug_barrier()
            cols = tl.arange(0, M)
            sq = tl.load(SQ + cols, mask=cols < m, other=0.0)
            for r0 in range(0, R, RS):
                rr = r0 + tl.arange(0, RS)
                rows_s = blk * R + rr
                valid = (rows_s[:, None] < n) & (cols[None, :] < m)
                p = tl.load(scr + rr[:, None] * M + cols[None, :])
                sel = select_block(keys_of(sq[None, :] - (p + p), valid), K, RS)
                tl.store(OUT + rows_s[:, None] * so + cols[None, :], sel.to(tl.int8), mask=valid)
                if BOTH:
                    sel = select_block(keys_of(sq[None, :] + (p + p), valid), K, RS)
                    tl.store(OUT + rows_s[:, None] * so + m + cols[None, :], sel.to(tl.int8), mask=valid)
            tl.debug_barrier()

    return {"triton": triton, "select": select_kernel, "fused": fused_kernel}, None


# ---------------------------------------------------------------- torch --

def radix_mask(s, k: int):
    """Exact mask of the ``k`` smallest of each row (ties by column): four
    8-bit radix passes on order-preserving int32 keys, one histogram
    (``scatter_add``) per row and pass, then the ties by a running count."""
    import torch

    s = s.float() + 0.0                                             # -0.0 -> +0.0
    i = s.view(torch.int32)
    key = torch.where(i < 0, i ^ 0x7FFFFFFF, i)                     # signed order = float order
    key = torch.where(torch.isnan(s), torch.iinfo(torch.int32).max, key)
    key = key ^ torch.iinfo(torch.int32).min                       # unsigned order in the bits
    n, m = s.shape
    cand = torch.ones(n, m, dtype=torch.bool, device=s.device)
    lt = torch.zeros(n, m, dtype=torch.bool, device=s.device)
    r = torch.full((n,), k, dtype=torch.int64, device=s.device)    # rank sought among the candidates
    ones = torch.ones(n, m, dtype=torch.int32, device=s.device)
    for shift in (24, 16, 8, 0):
        digit = (key >> shift) & 0xFF
        hist = torch.zeros(n, 257, dtype=torch.int32, device=s.device)
        hist.scatter_add_(1, torch.where(cand, digit, 256).long(), ones)
        cum = hist[:, :256].cumsum(1)
        b = (cum < r[:, None]).sum(1)                               # the bin holding the r-th candidate
        below = torch.where(b > 0, cum.gather(1, (b - 1).clamp_min(0)[:, None])[:, 0], 0)
        r = r - below
        lt |= cand & (digit < b[:, None])
        cand &= digit == b[:, None]
    return lt | (cand & (cand.cumsum(1) <= r[:, None]))


# ---------------------------------------------------------------- measure --

def _sync(device):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_mib(fn, device):
    import torch

    if not device.startswith("cuda"):
        return float("nan")
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    r = fn()
    torch.cuda.synchronize()
    del r
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def bench(device: str, m: int, rows: int, args, kernels, reason) -> tuple[list[dict], list[str]]:
    import torch

    from patchbook.patchknn import knn

    g = torch.Generator().manual_seed(0)
    K = int(args.k_ratio * m)
    P = torch.randn(rows, args.dim, generator=g).to(device)
    A = (torch.randn(m, args.dim, generator=g) / args.dim ** 0.5).to(device)
    sq = (A * A).sum(1) + 1.0
    off = 0.1 * torch.randn(m, generator=g).to(device)
    At = A.T.contiguous()
    buf = torch.empty(rows, m, device=device)
    s = sq - 2.0 * (torch.mm(P, At) + off)                              # the scores of x, as knn_codes forms them
    mask_out = torch.empty(rows, m, dtype=torch.bool, device=device)
    interp = not device.startswith("cuda")
    fns, skipped = {}, {}

    def add(name, fn):
        if name in args.methods:
            fns[name] = fn

    add("matmul", lambda: torch.mm(P, At, out=buf))
    add("copy", lambda: s.clone())
    add("kthvalue", lambda: torch.kthvalue(s, K, dim=1).values)
    add("knn_mask", lambda: knn.knn_mask(s, K, out=mask_out))
    add("topk", lambda: torch.zeros_like(mask_out).scatter_(
        1, torch.topk(s, K, dim=1, largest=False, sorted=False).indices, True))
    add("sort", lambda: torch.sort(s, dim=1))
    add("radix", lambda: radix_mask(s, K))
    add("knn_codes", lambda: knn.knn_codes(P, A, K, both_signs=True, sqnorms=sq, offset=off, tile_rows=rows))
    tri_rows = min(rows, args.interpret_rows) if interp else rows
    M = 1 << (m - 1).bit_length()
    if kernels is None:
        for name in ("triton-select", "triton-fused"):
            if name in args.methods:
                skipped[name] = f"no Triton ({reason})"
    else:
        triton = kernels["triton"]
        RS = 1 if interp else 4
        sel_out = torch.empty(tri_rows, m, dtype=torch.int8, device=device)
        s_tri = s[:tri_rows].contiguous()

        def tsel():
            kernels["select"][(triton.cdiv(tri_rows, RS),)](s_tri, sel_out, tri_rows, m, s_tri.stride(0),
                                                             sel_out.stride(0), K, RS=RS, M=M, num_warps=4)
            return sel_out

        R, BN, BD = 16, 64 if interp else 128, 1 << (args.dim - 1).bit_length()
        n_blocks = triton.cdiv(tri_rows, R)
        n_prog = n_blocks if interp else min(n_blocks, 2 * torch.cuda.get_device_properties(0).multi_processor_count)
        scratch = torch.empty(n_prog, R, M, device=device)
        fused_out = torch.empty(tri_rows, 2 * m, dtype=torch.int8, device=device)
        P_tri = P[:tri_rows].contiguous()

        def tfused():
            kernels["fused"][(n_prog,)](P_tri, A, sq, off, fused_out, scratch, tri_rows, m, args.dim,
                                        P_tri.stride(0), A.stride(0), fused_out.stride(0), K, n_blocks,
                                        BOTH=True, R=R, RS=RS, M=M, BN=BN, BD=BD, num_warps=8)
            return fused_out

        add("triton-select", tsel)
        add("triton-fused", tfused)
    # warm-up, support and exactness
    ref = knn.knn_mask_reference(s, K)
    agree: dict[str, str] = {}
    for name in list(fns):
        try:
            r = fns[name]()
            _sync(device)
        except Exception as exc:  # noqa: BLE001 - report and go on
            skipped[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"
            del fns[name]
            continue
        if name in SELECTIONS:
            got = r.bool()
            want = ref[: got.shape[0]]
            agree[name] = "exact" if torch.equal(got, want) else f"DIFFERS in {int((got != want).sum()):,} entries"
        elif name == "triton-fused":
            codes = fns["knn_codes"]() if "knn_codes" in fns else knn.knn_codes(P, A, K, sqnorms=sq, offset=off)
            diff = int((r.bool() != codes[: r.shape[0]]).sum())
            agree[name] = f"{100 * (1 - diff / r.numel()):.4f}% of knn_codes ({diff:,} differ)"
        del r
    times = {n: [] for n in fns}
    timed = {n: f for n, f in fns.items() if not (interp and n.startswith("triton"))}
    for _ in range(args.repeats):
        for name, fn in timed.items():
            _sync(device)
            t0 = time.perf_counter()
            r = fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
            del r
    mem = {n: peak_mib(f, device) for n, f in timed.items()}
    out = []
    base = min(times["matmul"]) if times.get("matmul") else None
    for name in args.methods:
        row = {"device": device, "atoms": m, "K": K, "rows": rows, "method": name}
        if name in skipped:
            row["skipped"] = skipped[name]
        elif not times.get(name):
            row.update(rows=tri_rows, agree=agree.get(name), note="interpreted: correctness only, not timed")
        else:
            best, med = min(times[name]), statistics.median(times[name])
            row.update(ms_best=1e3 * best, ms_median=1e3 * med, rows_per_s=rows / best,
                       x_matmul=best / base if base else None, peak_mib=mem.get(name), agree=agree.get(name))
        out.append(row)
    verdict = []
    t = {r["method"]: r.get("ms_best") for r in out}
    if t.get("knn_mask") and t.get("matmul"):
        dom = "dominates" if t["knn_mask"] > t["matmul"] else "does not dominate"
        line = (f"{device} |D|={m} rows={rows}: the selection (knn_mask, x only) {dom}: "
                f"{t['knn_mask'] / t['matmul']:.2f}x the product")
        if t.get("kthvalue"):
            line += f"; kthvalue alone {t['kthvalue'] / t['matmul']:.2f}x"
        if t.get("copy"):
            line += f"; one pass over the scores (copy) {t['copy'] / t['matmul']:.2f}x"
        verdict.append(line)
    if t.get("knn_codes") and t.get("matmul"):
        verdict.append(f"{device} |D|={m}: knn_codes (x and -x) {t['knn_codes'] / t['matmul']:.2f}x the product")
    for name in ("radix", "triton-select"):
        if t.get(name) and t.get("knn_mask"):
            verdict.append(f"{device} |D|={m}: {name} takes {t[name] / t['knn_mask']:.2f}x the time of knn_mask "
                           f"({t[name] / t['matmul']:.2f}x the product)")
    if t.get("triton-fused") and t.get("knn_codes"):
        verdict.append(f"{device} |D|={m}: triton-fused (x and -x) takes {t['triton-fused'] / t['knn_codes']:.2f}x "
                       f"the time of knn_codes, {t['triton-fused'] / t['matmul']:.2f}x the product")
    return out, verdict


def fmt(rows: list[dict]) -> str:
    cols = ("device", "atoms", "K", "rows", "method", "ms_best", "ms_median", "rows_per_s", "x_matmul", "peak_mib",
            "agree")
    lines = ["| " + " | ".join(cols) + " | note |", "|" + "---|" * (len(cols) + 1)]
    for r in rows:
        vals = []
        for c in cols:
            v = r.get(c, "")
            vals.append(f"{v:.3g}" if isinstance(v, float) else str(v if v is not None else ""))
        lines.append("| " + " | ".join(vals) + f" | {r.get('skipped') or r.get('note') or ''} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from patchbook.runtime import hardware, resolve_device

    device = resolve_device(args.device)
    interp = not device.startswith("cuda")
    kernels, reason = triton_kernels(interpret=interp)
    rows_list = args.rows or ([32768] if not interp else [2048])
    hw = hardware()
    print(f"# {datetime.datetime.now():%Y-%m-%d %H:%M}  {hw['gpu'] or hw['cpu']}, torch {torch.__version__}, "
          f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, Triton "
          f"{'interpreter' if interp and kernels else ('yes' if kernels else 'no')}; {args.repeats} repeats")
    if interp:
        print("# no GPU: CPU times, for checking the benchmark only (the CUDA numbers are not measured)")
    all_rows, verdicts = [], []
    for m in args.atoms:
        for rows in rows_list:
            out, verdict = bench(device, m, rows, args, kernels, reason)
            all_rows += out
            verdicts += verdict
            print(fmt(out))
            for v in verdict:
                print(f"- {v}")
            sys.stdout.flush()
            if args.json:  # after every point: a run stopped at its time limit keeps the points done
                with open(args.json, "w") as f:
                    json.dump({"hardware": hw, "torch": torch.__version__, "device": device,
                               "repeats": args.repeats, "triton": "interpreter" if interp and kernels else
                               bool(kernels), "rows": all_rows, "verdict": verdicts,
                               "measured_on_cuda": not interp}, f, indent=1)
    bad = [r for r in all_rows if str(r.get("agree", "")).startswith("DIFFERS")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
