"""Command line: ``python -m patchbook {run,list,book,train} ...``."""

from __future__ import annotations

import argparse
import ast
import json
import sys

import yaml

from patchbook.pages import execute as notebooks
from patchbook.pages import profiles
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


if __name__ == "__main__":
    sys.exit(main())
