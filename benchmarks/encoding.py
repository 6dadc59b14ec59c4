#!/usr/bin/env python
"""Benchmark of the patch k-NN encoding engine (run by hand; not part of CI).

Every method turns a batch of images into the authors' code: for each patch
position, the mask of the ``K = 0.4 |D|`` nearest whitened atoms of ``x`` and
of ``-x`` (``2 |D|`` channels). Methods, all timed in the same process on the
same batch, interleaved, ``--repeats`` times (best and median kept):

``ours``      :func:`patchbook.patchknn.knn.knn_codes`: one matrix product per tile of
              patch rows, exact selection fused behind it (native kernel).
``mask``      the unfused route: the batch's score matrix from one ``addmm``,
              then :func:`patchbook.patchknn.knn.knn_mask` for ``x``, the scores of
              ``-x`` in place, ``knn_mask`` again (``PatchEncoder``'s route before
              it used ``knn_codes``; its soft code still computes scores so).
``authors``   (a) the authors' formulation: one ``conv2d`` whose kernels are
              the whitening-folded atoms ``W^T d`` (bias ``||d||^2 / 2`` minus
              the mean's term), so the output is half the score; then
              ``torch.kthvalue`` over the ``|D|`` channels and a comparison,
              for ``x`` and for ``-x``.
``cdist``     (b) naive: whiten the patches, ``torch.cdist`` to the atoms,
              ``topk`` and a scatter, for ``x`` and ``-x``.
``matmul``    (c) the matrix-product floor: one plain ``patches @ kernels.T``
              (the same FLOPs as the conv, no selection, no patch extraction).

The table gives images per second (best of the repeats), the time of ``ours``
against each method (``ours speed-up`` = method time / ours time, from the best
and from the median), the peak memory above the resting level while the method
runs (CPU: peak RSS via /proc; CUDA: ``max_memory_allocated``), and the share
of code entries equal to ``ours`` (the conv and GEMM round differently, so a
few near-tied atoms may swap).

Examples::

    python benchmarks/encoding.py --quick          # |D|=2048, 32 px, float32, CPU
    python benchmarks/encoding.py                  # the full grid
    python benchmarks/encoding.py --atoms 512 2048 --sizes 32 --dtypes float32 bfloat16
    python benchmarks/encoding.py --devices cuda --markdown benchmarks/RESULTS.md
    python benchmarks/encoding.py --devices cuda --atoms 2048 --sizes 32 --json enc.json   # the GPU check's

On CUDA every call is timed between two ``torch.cuda.synchronize()``, the
batch defaults to 256 32-px images at |D| = 2048 (scaled like the CPU's) and
the peak memory is ``torch.cuda.max_memory_allocated`` above the memory
allocated before the call; ``ours`` there is :func:`knn_codes`'s torch path
(tiles of 32,768 rows at |D| = 2048, ``torch.kthvalue`` and the exact tie fix
per tile). ``benchmarks/selection.py`` times that selection against the
matrix product alone.

On a shared CPU the OpenMP threads of torch spin while they wait, which costs
every multi-step method dearly when other processes compete for the cores; by
default ``OMP_WAIT_POLICY=PASSIVE`` is set before torch loads (pass
``--omp-wait-policy active`` to see the other regime).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time

METHODS = ("ours", "mask", "authors", "cdist", "matmul")
LABELS = {"ours": "ours (knn_codes)", "mask": "scores+knn_mask", "authors": "(a) conv2d+kthvalue",
          "cdist": "(b) cdist+topk", "matmul": "(c) matmul floor"}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="|D|=2048, 32 px, float32, CPU only, 3 repeats")
    ap.add_argument("--atoms", type=int, nargs="+", default=[512, 2048, 8192], help="|D| values")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64], help="image sizes (px)")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--devices", nargs="+", default=None, help="cpu and/or cuda (default: all present)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--patch", type=int, default=6, help="patch size Q")
    ap.add_argument("--k-ratio", type=float, default=0.4, help="K = int(k_ratio * |D|)")
    ap.add_argument("--batch", type=int, default=None,
                    help="images per call (default: ~16 32-px images at |D|=2048 on CPU, scaled)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--data", choices=["real", "synthetic"], default="real",
                    help="real: CIFAR-10 (32 px) and Tiny-ImageNet-100 (64 px) images from "
                         "$PATCHBOOK_DATA; synthetic: smoothed noise")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    ap.add_argument("--omp-wait-policy", default="passive", choices=["passive", "active", "unset"])
    ap.add_argument("--markdown", default=None, help="append the table (with date and machine) to this file")
    ap.add_argument("--json", default=None, help="write the rows, the summary and the machine to this file")
    args = ap.parse_args(argv)
    if args.quick:
        args.atoms, args.sizes, args.dtypes = [2048], [32], ["float32"]
        args.devices = args.devices or ["cpu"]
        args.repeats = min(args.repeats, 3)
    return args


# ---------------------------------------------------------------- problem --

def load_images(size: int, n: int, data: str):
    import numpy as np
    import torch
    import torch.nn.functional as F

    if data == "real":
        try:
            from patchbook.data import load_dataset

            name, split = ("cifar10", "train") if size <= 32 else ("tiny-imagenet-100", "val")
            imgs, _ = load_dataset(name, split)
            imgs = np.ascontiguousarray(imgs[:n])
            x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div_(255)
            if x.shape[-1] != size:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            return x.contiguous(), f"{name}/{split}"
        except Exception as exc:  # noqa: BLE001
            print(f"# real images unavailable ({type(exc).__name__}: {exc}); using synthetic ones")
    g = torch.Generator().manual_seed(size)
    x = torch.rand(n, 3, size, size, generator=g)
    x = F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), 5, 1)
    return x.contiguous(), "synthetic"


class Problem:
    """Images, whitening and a dictionary of whitened random patches."""

    def __init__(self, size, m, Q, k_ratio, batch, data, pool):
        from patchbook.patchknn.knn import fold_whitening
        from patchbook.patchknn.patches import patch_moments, sample_patches
        from patchbook.patchknn.whitening import Whitener

        self.size, self.m, self.Q = size, m, Q
        self.K = int(k_ratio * m)
        self.images64, self.source = pool(size, max(batch, 256), data)
        fit = self.images64[:256]
        wh = Whitener(lam=1e-3, kind="zca").fit_moments(patch_moments(fit, Q))
        raw = sample_patches(fit, Q, m, seed=0)
        self.W = wh.W_.float()
        self.mean = wh.mean_.float()
        self.atoms = wh.transform(raw.double()).float()                   # m x d, whitened
        kernels, offset, sq = fold_whitening(self.atoms.double(), wh.W_, wh.mean_)
        self.kernels = kernels.float().reshape(m, 3, Q, Q)
        self.offset, self.sq = offset.float(), sq.float()
        self.images = self.images64[:batch].contiguous()
        self.L = (size - Q + 1) ** 2

    def on(self, device, dtype):
        import torch.nn.functional as F

        c = lambda t: t.to(device=device, dtype=dtype)  # noqa: E731
        p = {"images": c(self.images), "kernels": c(self.kernels), "offset": c(self.offset),
             "sq": c(self.sq), "W": c(self.W), "mean": c(self.mean), "atoms": c(self.atoms)}
        p["patches"] = F.unfold(p["images"], self.Q).transpose(1, 2).reshape(-1, p["kernels"][0].numel())
        p["patches"] = p["patches"].contiguous()
        p["kflat"] = p["kernels"].reshape(self.m, -1)
        return p


def make_methods(pb: Problem, t: dict):
    import torch
    import torch.nn.functional as F

    from patchbook.patchknn.knn import knn_codes

    K, m, Q = pb.K, pb.m, pb.Q
    N = t["images"].shape[0]

    def ours():
        return knn_codes(t["images"], t["kernels"], K, both_signs=True, sqnorms=t["sq"], offset=t["offset"])

    from patchbook.patchknn.knn import knn_mask

    bias = t["sq"] - 2 * t["offset"]
    kt = t["kflat"].T.contiguous()

    def mask():
        P = F.unfold(t["images"], Q).transpose(1, 2).reshape(-1, kt.shape[0])
        s = torch.addmm(bias, P, kt, alpha=-2.0)
        pos = knn_mask(s, K)
        s.neg_().add_(2 * t["sq"])
        return pos, knn_mask(s, K)                 # two (N L) x m masks, as PatchEncoder.codes

    half_bias = 0.5 * t["sq"] - t["offset"]
    neg_kernels = -t["kernels"]
    sq4 = t["sq"][None, :, None, None]

    def authors():
        o = F.conv2d(t["images"], neg_kernels, bias=half_bias)   # = ||x - d||^2 / 2 - ||x||^2 / 2
        pos = o <= torch.kthvalue(o, K, dim=1, keepdim=True).values
        o = sq4 - o                                                # the same for -x
        neg = o <= torch.kthvalue(o, K, dim=1, keepdim=True).values
        return torch.cat([pos, neg], 1)                            # N x 2m x H' x W'

    def cdist():
        xw = (F.unfold(t["images"], Q).transpose(1, 2) - t["mean"]) @ t["W"].T   # N x L x d
        out = torch.zeros(N, xw.shape[1], 2 * m, dtype=torch.bool, device=xw.device)
        for half, sign in ((0, 1.0), (1, -1.0)):
            idx = torch.cdist(sign * xw, t["atoms"][None]).topk(K, dim=-1, largest=False).indices
            out[..., half * m:(half + 1) * m].scatter_(-1, idx, True)
        return out

    def matmul():
        return t["patches"] @ t["kflat"].T

    return {"ours": ours, "mask": mask, "authors": authors, "cdist": cdist, "matmul": matmul}


def as_rows(name, codes, pb):
    """Codes in the (N, L, 2m) layout of ``ours``."""
    import torch

    if name == "authors":
        return codes.flatten(2).transpose(1, 2)
    if name == "mask":
        return torch.cat(codes, 1).view(pb.images.shape[0], -1, 2 * pb.m)
    return codes


# ---------------------------------------------------------------- measure --

def _rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _sync(device):
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def peak_memory_mib(fn, device):
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        r = fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        del r
        return peak / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS to the current RSS
    except OSError:
        return float("nan")
    base = _rss_kib("VmRSS")
    r = fn()
    peak = _rss_kib("VmHWM") - base
    del r
    return peak / 1024


def time_methods(fns, device, repeats):
    times = {n: [] for n in fns}
    for _ in range(repeats):
        for name, fn in fns.items():  # interleaved: the load varies over time
            _sync(device)
            t0 = time.perf_counter()
            r = fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
            del r
    return times


def machine_line():
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    s = (f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__} "
         f"({torch.get_num_threads()} threads), OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    if torch.cuda.is_available():
        s += f", GPU {torch.cuda.get_device_name()}"
    return s


def main(argv=None):
    args = parse_args(argv)
    if args.omp_wait_policy != "unset":
        os.environ.setdefault("OMP_WAIT_POLICY", args.omp_wait_policy.upper())
    try:  # freed large blocks go back to the OS, so the peak-RSS probe sees each run alone
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD = 1 MiB (fixed)
    except OSError:
        pass
    import torch

    from patchbook.patchknn.knn import native_available

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    native = native_available()
    header = machine_line()
    load0 = os.getloadavg()
    print(f"# {datetime.datetime.now():%Y-%m-%d %H:%M}  {header}")
    print(f"# native kNN kernel: {'yes' if native else 'no (torch path)'}; load average at start "
          f"{load0[0]:.1f}; {args.repeats} repeats, interleaved")
    cols = ("device", "dtype", "px", "atoms", "K", "batch", "method", "img/s (best)",
            "ms/img (median)", "ours speed-up best/median", "peak MiB", "agree")
    rows, summary = [], []
    images_cache = {}

    def pool(size, n, data):
        key = (size, data)
        if key not in images_cache or images_cache[key][0].shape[0] < n:
            images_cache[key] = load_images(size, n, data)
        return images_cache[key]

    for device in devices:
        for size in args.sizes:
            for m in args.atoms:
                scale = (2048 / m) * (32 / size) ** 2
                batch = args.batch or max(1, round((256 if device == "cuda" else 16) * scale))
                pb = Problem(size, m, args.patch, args.k_ratio, batch, args.data, pool)
                for dname in args.dtypes:
                    dtype = getattr(torch, dname)
                    t = pb.on(device, dtype)
                    fns_all = make_methods(pb, t)
                    fns, skipped, agree = {}, {}, {}
                    ref = None
                    for name in args.methods:  # warm-up, support check, agreement with ours
                        try:
                            r = fns_all[name]()
                            _sync(device)
                        except Exception as exc:  # noqa: BLE001 - e.g. an op without bf16 kernel
                            skipped[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
                            continue
                        fns[name] = fns_all[name]
                        if name == "ours":
                            ref = r
                        elif name != "matmul" and ref is not None:
                            diff = int((as_rows(name, r, pb) != ref).sum())
                            agree[name] = (diff, ref.numel())
                        del r
                    times = time_methods(fns, device, args.repeats)
                    mem = {} if args.no_memory else {n: peak_memory_mib(f, device) for n, f in fns.items()}
                    best = {n: min(v) for n, v in times.items()}
                    med = {n: statistics.median(v) for n, v in times.items()}
                    for name in args.methods:
                        base = [device, dname, size, m, pb.K, batch, LABELS[name]]
                        if name in skipped:
                            rows.append(base + ["n/a", "", "", "", skipped[name]])
                            continue
                        sp = ("1" if name == "ours" else
                              f"{best[name] / best['ours']:.2f} / {med[name] / med['ours']:.2f}"
                              if "ours" in best else "")
                        rows.append(base + [_fmt(batch / best[name]), _fmt(1e3 * med[name] / batch), sp,
                                            f"{mem.get(name, float('nan')):.0f}",
                                            "" if name in ("ours", "matmul") or name not in agree else
                                            f"{100 * (1 - agree[name][0] / agree[name][1]):.3f}% "
                                            f"({agree[name][0]:,} differ)"])
                    if "ours" in best:
                        parts = []
                        if "authors" in best:
                            parts.append(f"ours vs (a): {best['authors'] / best['ours']:.2f}x throughput "
                                         f"(median {med['authors'] / med['ours']:.2f}x)")
                        if "matmul" in best:
                            parts.append(f"ours / (c): {best['ours'] / best['matmul']:.2f}x time "
                                         f"(median {med['ours'] / med['matmul']:.2f}x)")
                        line = f"{device} {dname} {size}px |D|={m}: " + "; ".join(parts)
                        summary.append(line)
                    print_table(cols, rows[-len(args.methods):], header=not summary[:-1])
                    print(f"#   {summary[-1] if summary else ''}  [{pb.source}, load {os.getloadavg()[0]:.1f}]")
                    sys.stdout.flush()
    load1 = os.getloadavg()
    if args.json:
        import json

        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
        with open(args.json, "w") as f:
            json.dump({"machine": header, "gpu": gpu, "native": native, "repeats": args.repeats,
                       "load": [load0[0], load1[0]], "columns": list(cols), "rows": rows, "summary": summary,
                       "argv": argv if argv is not None else sys.argv[1:]}, f, indent=1, default=str)
    print("\n" + markdown(cols, rows))
    print("\n".join(summary))
    if args.markdown:
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip()
        except OSError:
            commit = "?"
        with open(args.markdown, "a") as f:
            f.write(f"\n## {datetime.datetime.now():%Y-%m-%d %H:%M} -- `benchmarks/encoding.py "
                    f"{' '.join(argv if argv is not None else sys.argv[1:])}`\n\n")
            f.write(f"Machine: {header}. Native kernel: {'yes' if native else 'no'}. "
                    f"Commit {commit} (+ working tree). Load average {load0[0]:.1f} at start, "
                    f"{load1[0]:.1f} at end; {args.repeats} interleaved repeats.\n\n")
            f.write(markdown(cols, rows) + "\n\n")
            f.write("\n".join(f"- {s}" for s in summary) + "\n")


def _fmt(v):
    """Three significant digits, no exponent for the usual range."""
    return f"{v:.1f}" if v >= 100 else f"{v:.3g}"


def print_table(cols, rows, header=True):
    widths = [max(len(str(c)), 10) for c in cols]
    if header:
        print("  ".join(str(c).rjust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(r, widths)))


def markdown(cols, rows):
    out = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(out)


if __name__ == "__main__":
    main()
