"""Command line: ``python -m patchbook {run,list,book,train,gpu-check} ...``."""

from __future__ import annotations

import argparse
import ast
import json
import sys

import yaml

from patchbook.pages import execute as notebooks
from patchbook.pages import gpu_check, profiles
from patchbook.pages.build import build
from patchbook.patchknn import pipeline, resumable
from patchbook.patchknn.classifier import Diverged


def _value(text: str):
    """A command-line value: a Python literal if it parses as one, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(prog="patchbook", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)

    run = sub.add_parser("run", help="execute one notebook with papermill")
    run.add_argument("notebook")
    run.add_argument("--profile", default="laptop", choices=profiles.PROFILE_NAMES)
    run.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    run.add_argument("--output", default=None, help="folder for results and the executed notebook")
    run.add_argument("--timeout", type=int, default=None, help="seconds per cell")

    sub.add_parser("list", help="notebooks, profiles and parameters")

    book = sub.add_parser("book", help="build the whole book at a profile")
    book.add_argument("--profile", default="laptop", choices=profiles.PROFILE_NAMES)

    train = sub.add_parser("train", help="measure one point of Part 2 from a config file (long runs, torchrun)")
    train.add_argument("config", help="JSON or YAML file of patchbook.patchknn.pipeline.PointConfig fields")
    train.add_argument("--device", default="auto", help="'auto' (CUDA if available), 'cpu' or 'cuda'")
    train.add_argument("--memory-mb", type=int, default=512, help="working memory of one encoding batch")
    train.add_argument("--output", default=None,
                       help="folder of the checkpoints of an augmented run (default: the cache, by the config's key)")

    gpu = sub.add_parser("gpu-check", help="the GPU check (benchmarks/gpu_check.sh), its training and its data pack")
    gsub = gpu.add_subparsers(dest="action", required=True)
    g_run = gsub.add_parser("run", help="every stage into one output folder, within a time budget")
    g_run.add_argument("outdir", help="output folder (at most 8 files, no sub-folder)")
    g_run.add_argument("--budget", type=float, default=540.0, help="seconds for the whole check (default 540)")
    g_run.add_argument("--deadline", type=float, default=None, help="Unix time to end by (overrides --budget)")
    g_run.add_argument("--device", default="auto", help="'auto' (CUDA if available), 'cuda' or 'cpu'")
    g_run.add_argument("--tiny", action="store_true", help="a few images and atoms: checks the check (CPU)")
    g_run.add_argument("--data", default=None, help="data root (default: $PATCHBOOK_DATA)")
    g_run.add_argument("--pack", default=None, help="a data pack (gpu-check pack) to unpack and use as data root")
    g_run.add_argument("--stages", default="tests,encoding,selection,train",
                       help="comma-separated subset of tests,encoding,selection,train")
    g_run.add_argument("--keep-scratch", action="store_true", help="keep the scratch folder (checkpoints, caches)")
    g_train = gsub.add_parser("train", help="the CIFAR-10 paper row, epoch by epoch, while epochs fit a budget")
    g_train.add_argument("--budget", type=float, required=True, help="seconds from now")
    g_train.add_argument("--json", required=True, help="results file (rewritten after every epoch)")
    g_train.add_argument("--run-dir", required=True, help="folder of the resumable run's checkpoints")
    g_train.add_argument("--device", default="auto")
    g_train.add_argument("--memory-mb", type=int, default=None, help="encoding memory (default: the profile's)")
    g_train.add_argument("--tiny", action="store_true")
    g_pack = gsub.add_parser("pack", help="the CIFAR-10 JPEGs (and VGG16 weights) of a data root as one file")
    g_pack.add_argument("file", help="output .npz")
    g_pack.add_argument("--data", default=None, help="data root (default: $PATCHBOOK_DATA)")
    g_pack.add_argument("--no-weights", action="store_true", help="leave out the VGG16 weights")

    args = parser.parse_args(argv)
    try:
        if args.cmd == "run":
            overrides = {k: _value(v) for k, v in args.param}
            out = notebooks.execute(args.notebook, args.profile, overrides, args.output,
                                    timeout=args.timeout, progress=True)
            print(f"executed notebook: {out}")
        elif args.cmd == "list":
            for nb in notebooks.available():
                print(nb)
                if nb not in profiles.notebooks():
                    print("  (no profiles)")
                    continue
                table = profiles.table(nb)
                doc = profiles.docs(nb)
                keys = list(table["laptop"])
                for k in keys:
                    vals = "  ".join(f"{p}={table[p][k]!r}" for p in profiles.PROFILE_NAMES if p in table)
                    line = f"  {k}: {vals}"
                    if k in doc:
                        line += f"  # {doc[k]}"
                    print(line)
        elif args.cmd == "book":
            return build(args.profile)
        elif args.cmd == "train":
            return train_point(args)
        elif args.cmd == "gpu-check":
            return gpu_check_verb(args)
    except (profiles.ProfileError, notebooks.NotebookNotFound, BadConfig) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Diverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


class BadConfig(ValueError):
    """A ``train`` config file that cannot be read or holds a value out of bounds."""


def train_point(args: argparse.Namespace) -> int:
    """``train CONFIG``: :func:`patchbook.patchknn.pipeline.measure` the point of
    the file; rank 0 prints it (accuracies in percent) as JSON."""
    try:
        config = pipeline.load_config(args.config)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        message = " ".join(str(exc).split())
        raise BadConfig(message if args.config in message else f"{args.config}: {message}") from None
    try:
        point = pipeline.measure(config, device=args.device, memory_mb=args.memory_mb, progress=True,
                                 output=args.output)
    finally:
        resumable.finish_distributed()
    if point is not None:
        summary = {k: v for k, v in point.as_dict().items() if k != "history"}
        print(json.dumps({"key": config.key(), **summary}, indent=1, allow_nan=False))
    return 0


def gpu_check_verb(args: argparse.Namespace) -> int:
    """``gpu-check run|train|pack``: see :mod:`patchbook.pages.gpu_check`."""
    if args.action == "run":
        stages = tuple(s for s in args.stages.split(",") if s)
        unknown = sorted(set(stages) - {"tests", "encoding", "selection", "train"})
        if unknown:
            print(f"error: unknown stages {unknown}; choose from tests,encoding,selection,train", file=sys.stderr)
            return 2
        return gpu_check.run(args.outdir, budget_s=args.budget, deadline=args.deadline, device=args.device,
                             tiny=args.tiny, data=args.data, pack_file=args.pack, stages=stages,
                             keep_scratch=args.keep_scratch)
    if args.action == "train":
        gpu_check.train(args.budget, args.json, args.run_dir, device=args.device, tiny=args.tiny,
                        memory_mb=args.memory_mb)
        return 0
    info = gpu_check.pack(args.file, args.data, weights=not args.no_weights)
    print(f"{info['path']}: {info['files']} files, {info['bytes'] / 1e6:.1f} MB in "
          f"{info['packed_bytes'] / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
