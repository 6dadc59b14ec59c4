#!/usr/bin/env python
"""Benchmark of the stages of the CIFAR-10 laptop row (run by hand; not part of CI).

The ``shift`` recipe of ``notebooks/cifar10-table.md`` (the laptop profile
with ``-p mirror true -p shift 4``) encodes the padded training images once,
then trains the head for several epochs on random exact shifts and flips of
their cached codes (:mod:`patchbook.patchknn.shifts`). Stages, each timed
in this process on CIFAR-10 training images (best of ``--repeats``), each
printed with the time a plain float32 matrix product of the same FLOPs takes,
measured in the same run (``ratio`` = stage time / matmul time: 1 is the
floor of this CPU's GEMM rate):

``encode``   codes of ``--images`` padded 40 x 40 images at |D| (scores: one
             GEMM of 35 x 35 positions x d x |D| per image, 2 FLOPs a
             multiply-add; the selection and pooling have no GEMM FLOPs)
``augment``  the shifted, flipped windows of one epoch's batches from the
             cached uint8 grids (no FLOPs: its ratio is to a copy of the
             float32 bytes it produces, ``memcpy``)
``epoch``    one training epoch of the factorized head on those windows
             (forward + backward ~ 3 x the forward's 2 x C x bottleneck x
             positions + 2 x bottleneck x classes x positions FLOPs per image),
             for the number of images of an epoch (``--train-images``),
             the windows of ``augment`` included

Examples::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/laptop_pipeline.py
    python benchmarks/laptop_pipeline.py --atoms 1024 --images 256 --train-images 5000

Time it with nothing else running on the machine and report the load
average it prints.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from patchbook.pages import profiles  # noqa: E402
from patchbook.patchknn import pipeline as ex  # noqa: E402
from patchbook.patchknn import shifts  # noqa: E402
from patchbook.patchknn.classifier import Schedule, make_head, train  # noqa: E402


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_seconds(flops: float, repeats: int, n: int = 1024) -> float:
    """Seconds a float32 ``n x n`` GEMM loop of ``flops`` FLOPs takes (its rate measured here)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    per = best_of(lambda: [a @ b for _ in range(8)], repeats) / 8
    return flops / (2 * n ** 3) * per


def copy_seconds(nbytes: float, repeats: int) -> float:
    src = torch.empty(int(min(nbytes, 256e6)) // 4)
    dst = torch.empty_like(src)
    per = best_of(lambda: dst.copy_(src), repeats)
    return nbytes / (src.numel() * 4) * per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atoms", type=int, default=None, help="|D| (default: the laptop profile's)")
    ap.add_argument("--images", type=int, default=512, help="images encoded for the encode stage")
    ap.add_argument("--train-images", type=int, default=10000, help="images of the augment and epoch stages")
    ap.add_argument("--shift", type=int, default=4, help="padding of the exact shifts (a multiple of the stride)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    P = profiles.resolve("cifar10-table", "laptop", {"n_atoms": args.atoms} if args.atoms else {})
    c = ex.PointConfig.from_params(P, n_per_class=max(1, args.train_images // 10), n_test_per_class=10,
                                   n_moment_images=min(5000, args.train_images), mirror=True, shift=args.shift)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}, load average {os.getloadavg()[0]:.2f} before")
    train_split, _ = ex.splits(c)
    enc = ex.fitted_encoder(c, train_split)
    shift = c.shift
    padded = shifts.pad_images(train_split.images, shift, c.padding_mode)
    H = padded.shape[1]
    n_pos = (H - c.patch + 1) ** 2
    d = 3 * c.patch ** 2

    rows = []
    batch = padded[: args.images]
    t = best_of(lambda: enc.transform(batch, dtype=torch.uint8), args.repeats)
    flops = args.images * n_pos * d * enc.n_atoms * 2
    rows.append(("encode", f"{args.images} padded {H} x {H} images", t, flops, matmul_seconds(flops, args.repeats)))

    grids = enc.transform(padded, dtype=torch.uint8)
    h = w = grids.shape[-1] - 2 * shift // c.pool_stride
    perm = enc.flip_permutation(32, 32)
    data = shifts.ShiftedBatches(grids, train_split.labels, (h, w), c.batch_size, scale=ex.codes_scale(enc),
                                 flip_perm=perm)
    t = best_of(lambda: [None for _ in data], args.repeats)
    nbytes = len(grids) * grids.shape[1] * h * w * 4
    rows.append(("augment", f"{len(grids)} windows {h} x {w}, flips", t, 0.0, copy_seconds(nbytes, args.repeats)))

    C = grids.shape[1]
    model = make_head(c.head, (C, h, w), 10, c.bottleneck, c.head_kernel, c.batchnorm)
    one = Schedule(1, c.lr, ())
    t = best_of(lambda: train(model, data, one, progress=False), args.repeats)
    fwd = 2 * C * c.bottleneck * h * w + 2 * c.bottleneck * 10 * c.head_kernel ** 2 * (h - c.head_kernel + 1) ** 2
    flops = 3 * fwd * len(grids)
    rows.append(("epoch", f"{len(grids)} images, head {c.head} {c.bottleneck}", t, flops,
                 matmul_seconds(flops, args.repeats)))

    print(f"|D| = {enc.n_atoms}, {C} code channels, shift {shift}, load average {os.getloadavg()[0]:.2f} after\n")
    print("| stage | work | seconds | GFLOP | baseline seconds | ratio |")
    print("|---|---|---|---|---|---|")
    for name, work, t, flops, base in rows:
        base_name = "memcpy" if not flops else "matmul"
        print(f"| {name} | {work} | {t:.2f} | {flops / 1e9:.1f} | {base:.2f} ({base_name}) | {t / base:.1f} |")
    per_image = {name: t / (args.images if name == "encode" else len(grids)) for name, _, t, _, _ in rows}
    print(f"\nper image: encode {per_image['encode'] * 1e3:.2f} ms, augment {per_image['augment'] * 1e3:.3f} ms, "
          f"epoch {per_image['epoch'] * 1e3:.3f} ms; full scale: encode ~{60000 * per_image['encode']:.0f} s "
          f"(upper bound: the test images are unpadded), an epoch ~{50000 * per_image['epoch']:.0f} s")


if __name__ == "__main__":
    main()
