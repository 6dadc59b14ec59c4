"""Command line: ``python -m patchbook {run,list,book} ...``."""

from __future__ import annotations

import argparse
import ast
import sys

from patchbook.pages import execute as notebooks
from patchbook.pages import profiles
from patchbook.pages.build import build
from patchbook.patchknn.resumable import main as train_main


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

    train = sub.add_parser("train", help="train a classifier from a config file (long runs)")
    train.add_argument("config")

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

            return train_main(args.config)
    except (profiles.ProfileError, notebooks.NotebookNotFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
