"""`rir dvc`: write dvc.yaml from params.yaml (or, with --check, fail when the committed one is stale)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write dvc.yaml from params.yaml: the same runs and commands as the Snakefile"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    parser.add_argument("--out", default="dvc.yaml", help="where to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if --out is stale")


def run(args: argparse.Namespace) -> int:
    from rir.config import load_params
    from rir.dvcgen import dvc_yaml
    from rir.io import atomic_write_text

    text = dvc_yaml(load_params(args.params))
    out = Path(args.out)
    current = out.read_text(encoding="utf-8") if out.exists() else None
    if args.check:
        if current != text:
            print(f"{out} is stale: run `rir dvc` after editing {args.params}")
            return 1
        print(f"{out} is up to date with {args.params}")
        return 0
    if current == text:
        print(f"{out} already up to date")
        return 0
    atomic_write_text(out, text)
    print(f"wrote {out} ({text.count(chr(10))} lines)")
    return 0
