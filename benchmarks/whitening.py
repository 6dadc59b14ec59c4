#!/usr/bin/env python
"""Time the whitening statistics: ``patches.patch_moments`` over every patch
of the CIFAR-10 training set (50,000 images x 729 positions at Q = 6).

Run by hand (not part of CI)::

    PATCHBOOK_DATA=... python benchmarks/whitening.py [--patch 6] [--images N]
        [--batch-size 512] [--repeats 1]

The target is at most 60 s on a 2-core CPU. The first call decodes the JPEGs
(cached afterwards); that time is reported separately and not counted.

``--proposed`` also times :func:`patch_moments_rows`, a drop-in proposal for
``patches.patch_moments`` (stride 1) that needs about 5x fewer FLOPs and
memory traffic: a Q x Q patch is Q stacked rows of Q pixels, so the second
moment is built from the products of *row segments* ``r`` and ``r + delta``
(``delta < Q``), summed over images and columns once, then over the Q x Q
patch's vertical window with prefix sums; and it checks both agree.
"""

from __future__ import annotations

import argparse
import os
import platform
import time


def patch_moments_rows(images, patch: int, batch_size: int = 512, device="cpu", normalize=None):
    """Same result as ``patches.patch_moments(images, patch, stride=1, ...)``
    (up to float32 rounding of the per-batch products, accumulated in float64).

    For a batch ``x`` (``B x C x H x W``, shifted by a per-channel constant for
    the precision of ``E[xx^T] - mu mu^T``), the row segments
    ``R[r, j] = x[:, :, r, j:j+Q]`` (``C*Q`` entries) give
    ``T[r, delta] = sum_{b, j} R[r, j] R[r + delta, j]^T`` with one batched
    product (``bmm`` over ``r`` of ``C*Q x B*W'`` by ``B*W' x Q*C*Q``, the
    second a strided view of the first: no copy; a ``(1 x Q)`` unfold of the
    batch laid out ``H x C x B x W`` gives the first directly:
    ``H * C*Q * Q*C*Q * W' * 2`` FLOPs per image instead of
    ``H' * W' * (C*Q*Q)^2 * 2``), and the block ``(u1, u2)`` of the second
    moment is ``sum_{r = u1}^{u1 + H' - 1} T[r, u2 - u1]``.
    """
    import torch
    import torch.nn.functional as F

    from patchbook.patches import PatchMoments, to_tensor

    Q = patch
    n_img = len(images)
    T = s1 = shift = None
    total = 0
    for start in range(0, n_img, batch_size):
        x = to_tensor(images[start:start + batch_size], device)
        if normalize is not None:
            x = normalize(x)
        B, C, H, W = x.shape
        Wp, Hp = W - Q + 1, H - Q + 1
        if shift is None:
            shift = x.mean((0, 2, 3))
            T = torch.zeros(H, C * Q, Q * C * Q, dtype=torch.float64, device=device)
            s1 = torch.zeros(C, H, W, dtype=torch.float64, device=device)
        x = x - shift[None, :, None, None]
        s1 += x.sum(0, dtype=torch.float64)
        # rows r of all images side by side: H x C x B x W, so that a (1 x Q)
        # unfold gives R[r] = C*Q x (B*W') directly (no transposed copy)
        Rp = F.unfold(x.permute(2, 1, 0, 3).contiguous(), (1, Q))   # H x CQ x (B W')
        K = B * Wp
        Hm = H - Q + 1
        win = Rp.as_strided((Hm, Q * C * Q, K), (C * Q * K, K, 1))  # rows r .. r+Q-1 stacked
        T[:Hm] += torch.bmm(Rp[:Hm], win.transpose(1, 2)).double()
        for r in range(Hm, H):  # the last rows see fewer rows below them
            T[r, :, :(H - r) * C * Q] += (Rp[r] @ Rp[r:].reshape(-1, K).T).double()
        total += B * Hp * Wp
    if total == 0:
        raise ValueError("no images given")
    C, H, W = s1.shape
    Wp, Hp = W - Q + 1, H - Q + 1
    d = C * Q * Q
    # first moment: window sums of the summed images
    cs = F.pad(s1.cumsum(1).cumsum(2), (1, 0, 1, 0))
    m = torch.empty(C, Q, Q, dtype=torch.float64, device=device)
    for u in range(Q):
        for v in range(Q):
            m[:, u, v] = cs[:, u + Hp, v + Wp] - cs[:, u, v + Wp] - cs[:, u + Hp, v] + cs[:, u, v]
    m = m.reshape(d) / total
    # second moment: vertical window sums of T by prefix sums over r
    P = F.pad(T.cumsum(0), (0, 0, 0, 0, 1, 0))                    # (H+1) x CQ x Q*CQ
    S = torch.empty(C, Q, Q, C, Q, Q, dtype=torch.float64, device=device)   # (c1,u1,v1,c2,u2,v2)
    for u1 in range(Q):
        for u2 in range(u1, Q):
            dl = u2 - u1
            blk = (P[u1 + Hp] - P[u1])[:, dl * C * Q:(dl + 1) * C * Q]     # (c1,v1) x (c2,v2)
            blk = blk.view(C, Q, C, Q)
            S[:, u1, :, :, u2, :] = blk
            S[:, u2, :, :, u1, :] = blk.permute(2, 3, 0, 1)
    S = S.reshape(d, d) / total
    cov = S - torch.outer(m, m)
    cov = (cov + cov.T) / 2
    mean = m + shift.double().repeat_interleave(Q * Q)
    return PatchMoments(mean=mean.cpu(), cov=cov.cpu(), count=total)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--patch", type=int, default=6)
    ap.add_argument("--images", type=int, default=None, help="first N images only (default: all)")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--proposed", action="store_true",
                    help="also time patch_moments_rows (the proposed replacement) and compare")
    ap.add_argument("--proposed-only", action="store_true", help="time only the proposal")
    ap.add_argument("--omp-wait-policy", default="passive", choices=["passive", "active", "unset"],
                    help="OpenMP wait policy, set before torch loads (passive suits shared CPUs)")
    args = ap.parse_args(argv)
    if args.omp_wait_policy != "unset":
        os.environ.setdefault("OMP_WAIT_POLICY", args.omp_wait_policy.upper())

    import torch

    from patchbook.data import load_dataset
    from patchbook.patches import patch_moments

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
    if not args.proposed_only:
        fns["patch_moments"] = lambda: patch_moments(images, args.patch, batch_size=args.batch_size)
    if args.proposed or args.proposed_only:
        fns["patch_moments_rows (proposed)"] = lambda: patch_moments_rows(
            images, args.patch, batch_size=args.batch_size)
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
        k1, k2 = list(times)
        print(f"time ratio {k1} / {k2}: wall {min(times[k1])[0] / min(times[k2])[0]:.2f}, "
              f"cpu {min(times[k1])[1] / min(times[k2])[1]:.2f}")
    print(f"load average at end {os.getloadavg()[0]:.1f}")

if __name__ == "__main__":
    main()
