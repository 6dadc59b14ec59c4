#!/usr/bin/env python
"""Time the whitening statistics: ``patches.patch_moments`` over every patch
of the CIFAR-10 training set (50,000 images x 729 positions at Q = 6).

Run by hand (not part of CI)::

    PATCHBOOK_DATA=... python benchmarks/whitening.py [--patch 6] [--images N]
        [--batch-size 512] [--repeats 1]

The target is at most 60 s on a 2-core CPU. The first call decodes the JPEGs
(cached afterwards); that time is reported separately and not counted.

The library computes the moments from products of patch *rows*
(``method="rows"``: a Q x Q patch is Q stacked rows of Q pixels, so the
second moment is built from products of row segments ``r`` and
``r + delta``, summed over images and columns once, then over the patch's
vertical window with prefix sums: about Q times fewer FLOPs than the
explicit patches). ``--baseline`` also times the explicit-patch route
(``method="patches"``, one Gram matrix of the unfolded patches per batch)
in the same run, prints the ratio and checks that both agree.
"""

from __future__ import annotations

import argparse
import os
import platform
import time


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--patch", type=int, default=6)
    ap.add_argument("--images", type=int, default=None, help="first N images only (default: all)")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--baseline", action="store_true",
                    help="also time the explicit-patch route (method='patches') and compare")
    ap.add_argument("--omp-wait-policy", default="passive", choices=["passive", "active", "unset"],
                    help="OpenMP wait policy, set before torch loads (passive suits shared CPUs)")
    args = ap.parse_args(argv)
    if args.omp_wait_policy != "unset":
        os.environ.setdefault("OMP_WAIT_POLICY", args.omp_wait_policy.upper())

    import torch

    from patchbook.data import load_dataset
    from patchbook.patchknn.patches import patch_moments

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    images, _ = load_dataset(args.dataset, "train")
    t_load = time.perf_counter() - t0
    if args.images:
        images = images[: args.images]
    print(f"{args.dataset} train: {images.shape} loaded in {t_load:.1f} s (decode or cache)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    fns = {}
    fns["patch_moments (rows)"] = lambda: patch_moments(images, args.patch, batch_size=args.batch_size)
    if args.baseline:
        fns["explicit patches (baseline)"] = lambda: patch_moments(
            images, args.patch, batch_size=args.batch_size, method="patches")
    times = {k: [] for k in fns}
    res = {}
    for _ in range(args.repeats):
        for name, fn in fns.items():  # interleaved
            t0, c0 = time.perf_counter(), time.process_time()
            res[name] = fn()
            times[name].append((time.perf_counter() - t0, time.process_time() - c0))
    for name, v in times.items():
        wall, cpu = min(v)
        mom = res[name]
        print(f"{name}: {mom.count:,} patches of dimension {mom.cov.shape[0]} in {wall:.1f} s "
              f"(process cpu {cpu:.1f} s, {mom.count / wall / 1e6:.2f} M patches/s); target <= 60 s: "
              f"{'met' if wall <= 60 else 'NOT met'}")
    if len(res) == 2:
        a, b = res.values()
        scale = a.cov.abs().max()
        print(f"agreement: max |d cov| / max |cov| = {((a.cov - b.cov).abs().max() / scale):.2e}, "
              f"max |d mean| = {(a.mean - b.mean).abs().max():.2e}, counts {a.count} / {b.count}")
        k1, k2 = list(times)[::-1]
        print(f"speed-up, {k1} / {k2}: wall {min(times[k1])[0] / min(times[k2])[0]:.2f}, "
              f"cpu {min(times[k1])[1] / min(times[k2])[1]:.2f}")
    print(f"load average at end {os.getloadavg()[0]:.1f}")

if __name__ == "__main__":
    main()
